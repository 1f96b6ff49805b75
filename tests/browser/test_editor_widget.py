"""The DragKit Editor widget in the real ComfyUI frontend (Chromium), in both node renderers.

Every test runs with LiteGraph canvas nodes and with Vue nodes (`Comfy.VueNodes.Enabled`), on a
96×64 picture shown enlarged in a canvas of another size, at a graph zoom other than 1.
"""

import json
import re

import requests

from comfy_page import IMAGE_NAME, IMAGE_SIZE
from harness.comfy_server import ROOT
from dragkit.core.drag import DragSpec, decode_rle

PAIRS = [((20, 15), (40, 30)), ((70, 50), (60, 20))]
MOVED_TARGET = (44, 33)  # pair 1's target, dragged here after placing it
MASK_STROKE = [(30, 40), (60, 40)]
REGION_STROKE = [(66, 46), (74, 54)]
ROTATION_CENTRE = (68, 30)
BRUSH_RADIUS = 3  # the editor's default brush on this 96-px picture: a sixteenth of it, 6 pixels across
# Previews of the editor node besides the editor: canvas nodes' drawn images, Vue nodes' image panel.
SECOND_PREVIEWS = """(id) => {
  const node = window.comfyAPI.app.app.graph.getNodeById(id);
  const panels = [...document.querySelectorAll(`[data-node-id="${id}"] .lg-node-content`)];
  return (node.imgs?.length ?? 0) + panels.filter((panel) => panel.offsetParent !== null).length;
}"""
XSS = '<img src=x onerror="window.__dragkitXss = (window.__dragkitXss || 0) + 1">'


def place_pair(page, node, handle, target):
    page.click_pixel(node, *handle)
    page.click_pixel(node, *target)


def draw_example_drag(page, node):
    """Two pairs (a third placed, deleted, undone and redone), one point moved, a mask, a rotation region."""
    for handle, target in PAIRS:
        place_pair(page, node, handle, target)
    place_pair(page, node, (10, 55), (85, 5))
    assert page.editor_view(node)["pairs"] == 3
    page.click_pixel(node, 10, 55, button="right")
    assert page.editor_view(node)["pairs"] == 2, "right-click on a handle deletes its pair"
    page.press("z")
    assert page.editor_view(node)["pairs"] == 3, "Z undoes the deletion"
    page.press("Shift+Z")
    assert page.editor_view(node)["pairs"] == 2, "Shift+Z redoes it"
    page.drag_through(node, [PAIRS[0][1], MOVED_TARGET])
    page.press("b")
    page.drag_through(node, MASK_STROKE)
    page.press("r")
    page.editor_element(node).query_selector_all("select")[1].select_option("rotate")
    page.drag_through(node, REGION_STROKE)
    page.press("c")
    page.click_pixel(node, *ROTATION_CENTRE)


def expected_pairs():
    return [
        {"handle": list(PAIRS[0][0]), "target": list(MOVED_TARGET)},
        {"handle": list(PAIRS[1][0]), "target": list(PAIRS[1][1])},
    ]


def covered(mask, stroke):
    """Pixels on the stroke's centre line are painted; pixels well beside it are not."""
    (x0, y), (x1, _) = stroke
    assert mask[y, x0:x1 + 1].all(), "the stroke's centre line is not painted"
    assert not mask[y + BRUSH_RADIUS + 2, :].any() and not mask[y - BRUSH_RADIUS - 2, :].any()


def check_drag(drag_data):
    data = json.loads(drag_data)
    width, height = IMAGE_SIZE
    assert (data["version"], data["width"], data["height"]) == (1, width, height)
    assert data["pairs"] == expected_pairs()
    mask = decode_rle(data["mask"]["rle"], width, height)
    covered(mask, MASK_STROKE)
    assert not mask[:, :20].any(), "the mask reaches far from the stroke"
    (region,) = data["regions"]
    assert (region["pair"], region["type"], region["center"]) == (1, "rotate", list(ROTATION_CENTRE))
    region_mask = decode_rle(region["mask"]["rle"], width, height)
    assert region_mask[50, 66:75].all() and region_mask[46, 66] and region_mask[54, 74]
    assert not region_mask[:40, :].any()
    DragSpec.from_json(drag_data)  # what the backend's validation accepts


def test_edits_reach_the_backend_in_image_pixels(comfy_page):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    box = page.canvas_box(node)
    assert (round(box["width"]), round(box["height"])) != IMAGE_SIZE, "the test needs a canvas of another size"
    view_before, position_before = page.graph_view(), page.node_position(node)
    assert view_before["scale"] != 1

    draw_example_drag(page, node)

    assert page.graph_view() == view_before, "painting on the editor panned or zoomed the graph"
    assert page.node_position(node) == position_before, "painting on the editor moved the node"
    drag_data = page.drag_data(node)
    check_drag(drag_data)
    assert page.editor_view(node)["json"] == drag_data
    page.screenshot("editor", node)
    page.screenshot("page")
    slider = page.editor_element(node).query_selector("input[type=range]").bounding_box()
    page.page.mouse.move(slider["x"] + 4, slider["y"] + slider["height"] / 2)
    page.page.mouse.down()
    page.page.mouse.move(slider["x"] + slider["width"] / 2, slider["y"] + 40, steps=5)
    page.page.mouse.up()
    assert page.node_position(node) == position_before, "dragging the brush-size slider moved the node"
    assert page.drag_data(node) == drag_data

    page.forget_cached_results()
    body, prompt_id = page.queue()
    assert body["prompt"][str(node)]["inputs"]["drag_data"] == drag_data
    history = page.wait_for_history(prompt_id)
    assert history["status"]["status_str"] == "success", history["status"]
    assert history["outputs"][str(node)]["dragkit_image"], "the editor node returned no picture for its widget"
    page.wait_for_image(node, url_part="type=temp")  # onExecuted showed the node's own preview
    page.screenshot("executed", node)
    page.screenshot("executed-page")
    assert page.evaluate(SECOND_PREVIEWS, node) == 0, "the node's preview repeats the picture below the editor"


def test_the_first_click_selects_the_editor_and_places_nothing(comfy_page):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    assert not page.editor_has_focus(node)
    page.page.mouse.click(*page.screen_point(node, 20, 15))
    view = page.editor_view(node)
    assert page.editor_has_focus(node) and view["pairs"] == 0 and view["pending"] is None
    page.page.mouse.click(*page.screen_point(node, 20, 15))
    assert page.editor_view(node)["pending"] == [20, 15], "once selected, a click places a handle"


def test_keys_act_after_a_toolbar_click(comfy_page):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    place_pair(page, node, *PAIRS[0])
    toolbar = page.editor_element(node)
    toolbar.query_selector("button[title^='Brush']").click()
    assert page.editor_view(node)["tool"] == "brush" and page.editor_has_focus(node)
    page.press("e")
    assert page.editor_view(node)["tool"] == "eraser", "a key after a toolbar button"
    toolbar.query_selector_all("select")[1].select_option("deform")
    page.press("p")
    assert page.editor_view(node)["tool"] == "points", "a key after choosing a region type"
    toolbar.query_selector("button[title^='Undo']").click()
    assert page.editor_view(node)["pairs"] == 0
    page.press("Shift+Z")
    assert page.editor_view(node)["pairs"] == 1, "undo by button, redo by key"


# The editor draws on the next animation frame: a read waits for two, so the last change is on the canvas.
NEXT_FRAMES = "await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));"

BAND_PIXELS = """async ([id, from, to]) => {
  const editor = window.comfyAPI.app.app.graph.getNodeById(id).dragkitEditor;
  """ + NEXT_FRAMES + """
  const box = editor.canvas.getBoundingClientRect();
  const ctx = editor.canvas.getContext("2d");
  let white = 0;
  for (let i = 1; i < 40; i++) {  // points between the two ends, away from the dots
    const t = 0.15 + 0.7 * i / 40;
    const x = (from[0] + (to[0] - from[0]) * t - box.x) * editor.canvas.width / box.width;
    const y = (from[1] + (to[1] - from[1]) * t - box.y) * editor.canvas.height / box.height;
    const [r, g, b] = ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data;
    if (r > 230 && g > 230 && b > 230) white++;
  }
  return white;
}"""


def test_a_placed_handle_shows_a_band_to_the_pointer(comfy_page):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    page.click_pixel(node, 20, 15)
    start, pointer = page.screen_point(node, 20, 15), page.screen_point(node, 70, 50)
    page.page.mouse.move(*pointer, steps=3)
    with_band = page.evaluate(BAND_PIXELS, [node, start, pointer])
    page.press("Escape")
    without = page.evaluate(BAND_PIXELS, [node, start, pointer])
    assert with_band >= 10 and without <= 2, (with_band, without)
    page.screenshot("band", node)


POINTER_BURST = """async (id) => {
  const editor = window.comfyAPI.app.app.graph.getNodeById(id).dragkitEditor;
  """ + NEXT_FRAMES + """
  const before = editor.framesDrawn;
  const box = editor.canvas.getBoundingClientRect();
  for (let i = 0; i < 30; i++) {
    editor.canvas.dispatchEvent(new PointerEvent("pointermove", {
      clientX: box.x + box.width * (0.2 + i / 60), clientY: box.y + box.height / 2, bubbles: true, pointerId: 1}));
  }
  const during = editor.framesDrawn;
  """ + NEXT_FRAMES + """
  return {before, during, after: editor.framesDrawn, hover: editor.hover};
}"""


def test_a_burst_of_pointer_events_is_drawn_once_on_the_next_frame(comfy_page):
    """Pointer events only ask for a redraw; the picture is drawn on the next animation frame, once."""
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    page.click_pixel(node, 20, 15)  # a handle: every pointer move now changes the picture (the band)
    frames = page.evaluate(POINTER_BURST, node)
    assert frames["during"] == frames["before"], frames  # nothing drawn while the events came in
    assert 1 <= frames["after"] - frames["before"] <= 2, frames  # the burst, drawn once (plus at most one other)
    assert frames["hover"][0] > 20, frames  # the last event's position is what was drawn


TOOLBAR_LAYOUT = """(id) => {
  const editor = window.comfyAPI.app.app.graph.getNodeById(id).dragkitEditor;
  const lines = (row) => {  // a row that wraps is taller than its tallest control by a line
    const tallest = Math.max(...[...row.children].map((child) => child.getBoundingClientRect().height));
    return Math.round(row.getBoundingClientRect().height / tallest);
  };
  const rows = [...editor.element.querySelectorAll(".dragkit-row")].map(lines);
  const status = editor.status;
  return { rows, statusCut: status.scrollWidth > status.clientWidth + 1,
           statusInside: status.getBoundingClientRect().bottom <= editor.element.getBoundingClientRect().bottom + 1 };
}"""


def test_a_workflow_sized_editor_has_a_two_row_toolbar_its_whole_hint_and_a_brush_to_scale(comfy_page):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    assert page.editor_view(node)["brush"] == 6, "default brush: a sixteenth of the picture's longer side (96 px)"
    page.evaluate("(id) => { const app = window.comfyAPI.app.app; app.graph.getNodeById(id).setSize([340, 560]);"
                  " app.canvas.ds.scale = 1; app.canvas.setDirty(true, true); }", node)  # the example workflows' size
    page.page.wait_for_timeout(300)
    for tool in "pberc":
        page.select_editor(node)
        page.press(tool)
        layout = page.evaluate(TOOLBAR_LAYOUT, node)
        assert layout == {"rows": [1, 1], "statusCut": False, "statusInside": True}, (tool, layout)
    page.screenshot("workflow-size", node)


SLOT_COLOUR = """(id) => {
  const app = window.comfyAPI.app.app;
  const node = app.graph.getNodeById(id);
  const [x, y] = app.canvas.ds.convertOffsetToCanvas(node.getConnectionPos(false, 0));
  const ratio = app.canvas.canvas.width / app.canvas.canvas.getBoundingClientRect().width;
  return [...app.canvas.canvas.getContext("2d").getImageData(Math.round(x * ratio), Math.round(y * ratio), 1, 1).data];
}"""


def test_dragkit_sockets_have_their_own_colours(comfy_page, vue_nodes):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    colours = page.evaluate("() => window.comfyAPI.app.app.canvas.default_connection_color_byType")
    assert {colours.get(t) for t in ("DRAGKIT_DRAG", "DRAGKIT_INVERSION", "DRAGKIT_EDIT", "DRAGKIT_SAM2_MODEL")} == {
        "#26C6DA", "#D4E157", "#FF7043", "#A1887F"}
    if vue_nodes:  # Vue nodes colour a slot from a CSS variable per type
        value = page.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--color-datatype-DRAGKIT_DRAG')")
        assert value.strip().upper() == "#26C6DA"
    else:  # the Editor's drag output dot, as drawn on the graph canvas
        page.page.wait_for_timeout(300)
        r, g, b, _ = page.evaluate(SLOT_COLOUR, node)
        assert abs(r - 0x26) < 40 and abs(g - 0xC6) < 40 and abs(b - 0xDA) < 40, (r, g, b)
    page.screenshot("sockets")


def test_nothing_painted_writes_no_mask(comfy_page):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    place_pair(page, node, *PAIRS[0])
    page.press("b")
    page.drag_through(node, MASK_STROKE)
    page.press("e")
    for _ in range(5):  # a wider eraser than the brush, as one erases a stroke
        page.press("]")
    page.drag_through(node, [(20, 40), (70, 40)])
    data = json.loads(page.drag_data(node))
    assert data["mask"] is None, "an erased mask must be written as null (an all-zero mask is invalid)"
    DragSpec.from_json(page.drag_data(node))


def test_value_survives_export_reload_import_and_paste(comfy_page, tmp_path):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    draw_example_drag(page, node)
    drag_data = page.drag_data(node)
    workflow = page.export_workflow()
    (saved,) = [n for n in workflow["nodes"] if n["type"] == "DragKitEditor"]
    assert saved["widgets_values"] == [drag_data], "the workflow must carry exactly the drag"

    page.reload()
    (restored,) = page.editor_nodes()
    page.wait_for_image(restored)
    assert page.drag_data(restored) == drag_data, "the reloaded page lost the drag"

    page.load_workflow(workflow)
    (loaded,) = page.editor_nodes()
    page.wait_for_image(loaded)
    assert page.drag_data(loaded) == drag_data
    assert page.editor_view(loaded)["json"] == drag_data, "the editor does not show the loaded drag"

    exported = tmp_path / "exported.json"
    exported.write_text(json.dumps(workflow))
    page.evaluate("() => window.comfyAPI.app.app.graph.clear()")
    page.import_workflow_file(exported)
    page.page.wait_for_function("() => window.comfyAPI.app.app.graph.nodes.some((n) => n.type === 'DragKitEditor')")
    (imported,) = page.editor_nodes()
    assert page.drag_data(imported) == drag_data

    page.evaluate(
        """(id) => {
          const canvas = window.comfyAPI.app.app.canvas;
          canvas.copyToClipboard([canvas.graph.getNodeById(id)]);
          canvas.pasteFromClipboard({ position: [380, 620] });
        }""",
        imported,
    )
    (pasted,) = [n for n in page.editor_nodes() if n != imported]
    assert page.drag_data(pasted) == drag_data
    assert page.editor_view(pasted)["json"] == drag_data
    body, _ = page.queue()
    assert body["prompt"][str(pasted)]["inputs"]["drag_data"] == drag_data
    page.screenshot("imported-and-pasted")


def test_workflow_strings_are_never_html(comfy_page, tmp_path):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    workflow = page.export_workflow()
    (editor,) = [n for n in workflow["nodes"] if str(n["id"]) == str(node)]  # newer frontends: string ids
    editor["title"] = XSS
    editor["widgets_values"] = [XSS]
    bad_region = {"version": 1, "width": 96, "height": 64, "pairs": [{"handle": [1, 1], "target": [2, 2]}],
                  "mask": None, "regions": [{"pair": 0, "type": XSS, "mask": {"rle": [96 * 64]}}]}
    bad_version = dict(bad_region, version=XSS, regions=[])
    for offset, value in ((1, bad_region), (2, bad_version)):
        copy = json.loads(json.dumps(editor))
        copy.update(id=int(node) + 100 * offset, pos=[380 + 480 * offset, 40], widgets_values=[json.dumps(value)], inputs=[
            dict(slot, link=None) for slot in copy["inputs"]], outputs=[dict(slot, links=[]) for slot in copy["outputs"]])
        workflow["nodes"].append(copy)
    page.load_workflow(workflow)
    page.page.wait_for_timeout(1000)  # long enough for an injected image's onerror to fire

    assert page.evaluate("() => window.__dragkitXss") is None, "a workflow string was run as HTML"
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    statuses = [page.editor_view(n)["status"] for n in page.editor_nodes()]
    assert len(statuses) == 3 and all("<img" in status or "unknown type" in status for status in statuses), statuses
    assert any("<img src=x" in status for status in statuses), "the bad value is shown as text"
    assert all(page.drag_data(n) for n in page.editor_nodes()), "loading must not rewrite a value the editor cannot read"
    page.screenshot("untrusted-strings")


def test_node_help_is_served(browser_server):
    """The frontend's node help reads /extensions/<pack>/docs/<node id>.md for custom nodes."""
    info = requests.get(f"{browser_server.url}/object_info/DragKitEditor", timeout=10).json()["DragKitEditor"]
    pack = info["python_module"].split(".")[1]
    help_page = requests.get(f"{browser_server.url}/extensions/{pack}/docs/DragKitEditor.md", timeout=10)
    assert help_page.status_code == 200
    assert "Shift+Z" in help_page.text and "| Brush | `B` |" in help_page.text


def test_web_has_no_html_injection_sinks():
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in sorted((ROOT / "web").rglob("*.js"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if sinks.search(line)]
    assert not offenders, offenders


def test_a_workflow_claiming_a_huge_picture_is_shown_as_unreadable_before_anything_is_allocated(comfy_page):
    """The widget applies the server's bounds before allocating: sizes past them (which used to make the tab
    allocate gigabytes, or throw a RangeError out of the loader) are shown as an unreadable value."""
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    workflow = page.export_workflow()
    (editor,) = [n for n in workflow["nodes"] if str(n["id"]) == str(node)]
    huge = [
        {"version": 1, "width": 200_000, "height": 200_000, "pairs": [], "mask": {"rle": [1]}},
        {"version": 1, "width": 4096, "height": 4096, "pairs": [{"handle": [1, 1], "target": [2, 2]}] * 9, "mask": None,
         "regions": [{"pair": i, "type": "translate", "mask": {"rle": [4096 * 4096]}} for i in range(9)]},
    ]
    for offset, value in enumerate(huge, start=1):
        copy = json.loads(json.dumps(editor))
        copy.update(id=int(node) + 100 * offset, pos=[380 + 480 * offset, 40], widgets_values=[json.dumps(value)], inputs=[
            dict(slot, link=None) for slot in copy["inputs"]], outputs=[dict(slot, links=[]) for slot in copy["outputs"]])
        workflow["nodes"].append(copy)
    page.load_workflow(workflow)
    page.page.wait_for_timeout(500)
    statuses = {n: page.editor_view(n)["status"] for n in page.editor_nodes() if int(n) != int(node)}
    assert len(statuses) == 2, statuses
    assert any("from 1 to 8192" in s for s in statuses.values()), statuses
    assert any("at most 67108864 pixels in all" in s for s in statuses.values()), statuses
    assert all(page.drag_data(n) for n in statuses), "loading must not rewrite a value the editor cannot read"
    page.assert_no_console_errors()
