"""The DragKit Editor widget in the real ComfyUI frontend (Chromium), in both node renderers.

Every test runs with LiteGraph canvas nodes and with Vue nodes (`Comfy.VueNodes.Enabled`), on a
96×64 picture shown enlarged in a canvas of another size, at a graph zoom other than 1.
"""

import json
import re

import requests

from comfy_page import IMAGE_NAME, IMAGE_SIZE
from comfy_server import ROOT
from dragkit.core.drag import DragSpec, decode_rle

PAIRS = [((20, 15), (40, 30)), ((70, 50), (60, 20))]
MOVED_TARGET = (44, 33)  # pair 1's target, dragged here after placing it
MASK_STROKE = [(30, 40), (60, 40)]
REGION_STROKE = [(66, 46), (74, 54)]
ROTATION_CENTRE = (68, 30)
BRUSH_RADIUS = 6  # the editor's default brush: 12 image pixels across
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

    body, prompt_id = page.queue()
    assert body["prompt"][str(node)]["inputs"]["drag_data"] == drag_data
    history = page.wait_for_history(prompt_id)
    assert history["status"]["status_str"] == "success", history["status"]
    assert history["outputs"][str(node)]["dragkit_image"], "the editor node returned no picture for its widget"
    page.wait_for_image(node, url_part="type=temp")  # onExecuted showed the node's own preview
    page.screenshot("executed", node)
    page.screenshot("executed-page")
    assert page.evaluate(SECOND_PREVIEWS, node) == 0, "the node's preview repeats the picture below the editor"


def test_nothing_painted_writes_no_mask(comfy_page):
    page = comfy_page
    node = page.build_graph(IMAGE_NAME)
    place_pair(page, node, *PAIRS[0])
    page.press("b")
    page.drag_through(node, MASK_STROKE)
    page.press("e")
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
