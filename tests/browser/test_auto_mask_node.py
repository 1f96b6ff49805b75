"""DragKit Auto Mask in the real frontend: a pair placed in the editor, the node added and wired as a
user would, queued by the app; the mask it shows covers the handle and the way to the target."""

import io

import numpy as np
import requests
from PIL import Image

from comfy_page import APP, IMAGE_NAME

HANDLE, TARGET = (40, 30), (70, 30)  # from the bright square to the right, on the 96×64 picture


def add_auto_mask(page, editor: int, dilation: int) -> int:
    """Load Image → Auto Mask (slic) ← Editor's drag; its mask replaces the editor's in the MaskToImage preview."""
    return page.evaluate(
        f"""([editorId, dilation]) => {{
          const app = {APP};
          const editor = app.graph.getNodeById(editorId);
          const load = app.graph.findNodesByType("LoadImage")[0];
          const toImage = app.graph.findNodesByType("MaskToImage")[0];
          const auto = window.LiteGraph.createNode("DragKitAutoMask");
          auto.pos = [880, 330];
          auto.widgets.find((w) => w.name === "dilation").value = dilation;
          app.graph.add(auto);
          load.connect(0, auto, 0);
          editor.connect(0, auto, 1);
          auto.connect(1, toImage, 0);
          app.canvas.setDirty(true, true);
          return auto.id;
        }}""",
        [editor, dilation],
    )


def test_auto_mask_runs_from_the_frontend_and_covers_the_handle_and_the_path(comfy_page, vue_nodes):
    page = comfy_page
    editor = page.build_graph(IMAGE_NAME)
    page.click_pixel(editor, *HANDLE)
    page.click_pixel(editor, *TARGET)
    dilation = 1 if vue_nodes else 0  # a prompt of its own per renderer: ComfyUI would serve the other from its cache
    auto = add_auto_mask(page, editor, dilation)
    body, prompt_id = page.queue()
    inputs = body["prompt"][str(auto)]["inputs"]
    assert (inputs["mode"], inputs["include_path"], inputs["superpixels"], inputs["dilation"]) == ("slic", True, 200, dilation)
    assert inputs["drag"][0] == str(editor)
    history = page.wait_for_history(prompt_id)
    assert history["status"]["status_str"] == "success", history["status"]
    assert history["outputs"][str(auto)]["images"], "the node showed no preview"
    (shown,) = [o["images"][0] for o in history["outputs"].values() if o.get("images") and o is not history["outputs"][str(auto)]]
    picture = requests.get(f"{page.server.url}/view", params=shown, timeout=10).content
    mask = np.asarray(Image.open(io.BytesIO(picture)).convert("L")) > 127
    assert mask.shape == (64, 96)
    assert mask[30, 40] and mask[30, 70] and all(mask[30, x] for x in range(40, 71))
    assert not mask[58:, :12].any() and not mask[:4, 85:].any(), "the mask reaches the far corners"
    page.screenshot("auto-mask-page")
