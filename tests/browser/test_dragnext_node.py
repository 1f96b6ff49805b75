"""DragNeXt from the real frontend: a pair placed, its region painted, typed `rotate` and given a
centre in the editor; the drag graph wired as a user would; queued by the app. The region reaches
/prompt as the editor wrote it and DragNeXt runs on it (tiny random checkpoint, no LoRA)."""

import json

import pytest

from comfy_page import APP, IMAGE_NAME
from dragkit.core.drag import decode_rle
from harness.checkpoints import write_tiny_checkpoint

HANDLE, TARGET = (42, 32), (66, 32)  # the bright square's centre, dragged right
REGION_STROKE = [(36, 26), (48, 38)]
CENTRE = (42, 50)


@pytest.fixture
def tiny_checkpoint(browser_server):
    path = browser_server.base / "models" / "checkpoints" / "tiny_sd15.safetensors"
    if not path.exists():
        write_tiny_checkpoint(path)
    return path.name


def add_drag_graph(page, editor: int, checkpoint: str, iterations: int) -> dict:
    """Checkpoint → zeroed prompt; image → VAEEncode → DDIM Invert → DragNeXt ← Editor → Mutual-Attention
    Sampler → VAEDecode → Preview. Sized for the tiny checkpoint (one decoder stage, layers 0–3)."""
    return page.evaluate(
        f"""([editorId, checkpoint, iterations]) => {{
          const app = {APP};
          const editor = app.graph.getNodeById(editorId);
          const load = app.graph.findNodesByType("LoadImage")[0];
          const add = (type, pos, widgets = {{}}) => {{
            const node = window.LiteGraph.createNode(type);
            node.pos = pos;
            for (const [name, value] of Object.entries(widgets)) node.widgets.find((w) => w.name === name).value = value;
            app.graph.add(node);
            return node;
          }};
          const ckpt = add("CheckpointLoaderSimple", [20, 420], {{ckpt_name: checkpoint}});
          const text = add("CLIPTextEncode", [20, 560], {{text: ""}});
          const zero = add("ConditioningZeroOut", [20, 700]);
          const encode = add("VAEEncode", [880, 300]);
          const invert = add("DragKitDDIMInvert", [880, 400], {{steps: 10, preset: "custom", strength: 0.7}});
          const drag = add("DragKitDragNeXt", [1180, 40], {{pbsi_timesteps: 2, iterations, feature_block: 0}});
          const sampler = add("DragKitMutualAttentionSampler", [1180, 420], {{start_layer: 2, end_layer: 3}});
          const decode = add("VAEDecode", [1180, 600]);
          const preview = add("PreviewImage", [1400, 600]);
          ckpt.connect(1, text, 0);
          text.connect(0, zero, 0);
          load.connect(0, encode, 0);
          ckpt.connect(2, encode, 1);
          ckpt.connect(0, invert, 0);
          encode.connect(0, invert, 1);
          zero.connect(0, invert, 2);
          ckpt.connect(0, drag, 0);
          invert.connect(0, drag, 1);
          editor.connect(0, drag, 2);
          ckpt.connect(0, sampler, 0);
          drag.connect(0, sampler, 1);
          sampler.connect(0, decode, 0);
          ckpt.connect(2, decode, 1);
          decode.connect(0, preview, 0);
          app.canvas.setDirty(true, true);
          return {{drag: String(drag.id), preview: String(preview.id)}};
        }}""",
        [editor, checkpoint, iterations],
    )


DRAG_NODE_PICTURES = """(id) => {
  const vue = [...document.querySelectorAll(`[data-node-id="${id}"] img`)].filter((i) => i.offsetParent !== null);
  const node = window.comfyAPI.app.app.graph.getNodeById(id);
  return document.querySelector(`[data-node-id="${id}"]`) ? vue.length : (node.imgs?.length ?? 0);
}"""


def test_a_region_painted_and_typed_in_the_editor_drives_dragnext(comfy_page, vue_nodes, tiny_checkpoint):
    page = comfy_page
    editor = page.build_graph(IMAGE_NAME)
    page.click_pixel(editor, *HANDLE)
    page.click_pixel(editor, *TARGET)
    page.press("r")
    page.editor_element(editor).query_selector_all("select")[1].select_option("rotate")
    page.drag_through(editor, REGION_STROKE)
    page.press("c")
    page.click_pixel(editor, *CENTRE)
    ids = add_drag_graph(page, editor, tiny_checkpoint, iterations=3 if vue_nodes else 2)  # no cached run
    body, prompt_id = page.queue()

    prompt = body["prompt"]
    assert prompt[ids["drag"]]["inputs"]["drag"] == [str(editor), 0]
    data = json.loads(prompt[str(editor)]["inputs"]["drag_data"])
    (region,) = data["regions"]
    assert (region["pair"], region["type"], region["center"]) == (0, "rotate", list(CENTRE))
    mask = decode_rle(region["mask"]["rle"], data["width"], data["height"])
    assert mask[32, 42] and mask[26, 36] and mask[38, 48] and not mask[:, 70:].any()

    history = page.wait_for_history(prompt_id)
    assert history["status"]["status_str"] == "success", history["status"]
    outputs = history["outputs"]
    (measures,) = outputs[ids["drag"]]["dragkit_measures"]
    (error,) = measures["region_errors"]
    assert error["pair"] == 1 and error["before"] > 0 and error["after"] >= 0, measures
    assert outputs[ids["drag"]]["dragkit_preview"], "DragNeXt showed no preview of its regions"
    assert outputs[ids["preview"]]["images"], "no edited picture"
    page.screenshot("dragnext-page")
    # The node shows its picture once: the live preview of the handles (Vue nodes used to show it
    # twice, once more as the node's output images).
    page.evaluate("(id) => { const app = window.comfyAPI.app.app; const n = app.graph.getNodeById(id);"
                  " app.canvas.ds.offset = [-n.pos[0] + 100, -n.pos[1] + 100]; app.canvas.ds.scale = 1;"
                  " app.canvas.setDirty(true, true); }", int(ids["drag"]))
    page.page.wait_for_timeout(800)
    shown = page.evaluate(DRAG_NODE_PICTURES, int(ids["drag"]))
    assert shown == 1, f"the DragNeXt node shows its picture {shown} times"
    page.screenshot("drag-node")
