"""The shipped example workflows, opened in the real frontend: every link reaches the input it was
saved on (the drag and sampler nodes' optional `conditioning` moved behind the required inputs)."""

import json
import shutil

import numpy as np
import pytest

from harness.comfy_inprocess import in_the_current_hosts_pass_only
from comfy_page import ComfyPage
from harness.comfy_server import ROOT, ComfyClient
from conftest import ARTIFACTS



def producer(prompt: dict, inputs: dict, name: str) -> str:
    source, _slot = inputs[name]
    return prompt[str(source)]["class_type"]


@pytest.fixture
def sample_images(browser_server):
    """The shipped workflows' pictures in ComfyUI's input folder, as the README asks users to put them."""
    for image in (ROOT / "example_workflows" / "images").iterdir():
        shutil.copy(image, browser_server.base / "input" / image.name)


def test_gooddrag_workflow_opens_with_every_link_in_place(comfy_page, sample_images):
    page = comfy_page
    page.load_workflow(json.loads((ROOT / "example_workflows" / "gooddrag.json").read_text()))
    prompt = page.api_prompt()
    (drag,) = [node["inputs"] for node in prompt.values() if node["class_type"] == "DragKitGoodDrag"]
    (sampler,) = [node["inputs"] for node in prompt.values() if node["class_type"] == "DragKitMutualAttentionSampler"]
    assert {name: producer(prompt, drag, name) for name in ("model", "inversion", "drag", "conditioning")} == {
        "model": "DragKitLoRAFinetune", "inversion": "DragKitDDIMInvert", "drag": "DragKitEditor",
        "conditioning": "CLIPTextEncode"}
    assert {name: producer(prompt, sampler, name) for name in ("model", "edit", "conditioning")} == {
        "model": "DragKitLoRAFinetune", "edit": "DragKitGoodDrag", "conditioning": "CLIPTextEncode"}
    assert (drag["mode"], drag["drag_timesteps"], drag["tracks_per_timestep"], drag["steps_per_track"]) == ("code (UI)", 7, 10, 3)
    assert (sampler["start_layer"], sampler["end_layer"], sampler["start_step"]) == (10, 15, 0)
    page.screenshot("gooddrag-workflow")


def test_adaptivedrag_workflow_opens_with_every_link_in_place(comfy_page, sample_images):
    page = comfy_page
    page.load_workflow(json.loads((ROOT / "example_workflows" / "adaptivedrag.json").read_text()))
    prompt = page.api_prompt()
    node = {inputs["class_type"]: inputs["inputs"] for inputs in prompt.values()}
    drag, sampler, auto = node["DragKitAdaptiveDrag"], node["DragKitCLossSampler"], node["DragKitAutoMask"]
    assert {name: producer(prompt, drag, name) for name in ("model", "inversion", "drag", "image", "sam2_model")} == {
        "model": "DragKitLoRAFinetune", "inversion": "DragKitDDIMInvert", "drag": "DragKitAutoMask",
        "image": "LoadImage", "sam2_model": "DragKitSAM2Loader"}
    assert {name: producer(prompt, sampler, name) for name in ("model", "edit")} == {
        "model": "DragKitLoRAFinetune", "edit": "DragKitAdaptiveDrag"}
    assert (auto["mode"], auto["include_path"], producer(prompt, auto, "drag")) == ("adaptivedrag", False, "DragKitEditor")
    assert (node["DragKitLoRAFinetune"]["preset"], node["DragKitDDIMInvert"]["preset"]) == ("AdaptiveDrag", "AdaptiveDrag")
    assert node["DragKitLoRAFinetune"]["learning_rate"] == 0.0005  # not rounded to a display precision
    assert (drag["budget_mode"], drag["initial_budget"], drag["max_budget"]) == ("adaptive", 160, 300)
    assert (sampler["closs"], sampler["start_layer"], sampler["end_layer"]) == ("sce", 10, 15)
    page.screenshot("adaptivedrag-workflow")


def test_dragnext_workflow_opens_with_every_link_and_its_region_in_place(comfy_page, sample_images):
    page = comfy_page
    page.load_workflow(json.loads((ROOT / "example_workflows" / "dragnext.json").read_text()))
    prompt = page.api_prompt()
    node = {inputs["class_type"]: inputs["inputs"] for inputs in prompt.values()}
    drag, sampler = node["DragKitDragNeXt"], node["DragKitMutualAttentionSampler"]
    assert {name: producer(prompt, drag, name) for name in ("model", "inversion", "drag", "conditioning")} == {
        "model": "DragKitLoRAFinetune", "inversion": "DragKitDDIMInvert", "drag": "DragKitEditor",
        "conditioning": "CLIPTextEncode"}
    assert producer(prompt, sampler, "edit") == "DragKitDragNeXt"
    (region,) = json.loads(node["DragKitEditor"]["drag_data"])["regions"]
    assert (region["type"], region["center"]) == ("rotate", [215, 265])
    (editor,) = page.editor_nodes()
    page.wait_for_image(editor)
    page.screenshot("dragnext-workflow")
    page.screenshot("dragnext-editor", editor)


# --- every workflow, end to end ---------------------------------------------------------------------

WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))


def saved_links(workflow: dict) -> dict:
    """(target node, input name) → [source node, output slot] for every link the file saves."""
    origin = {link[0]: [str(link[1]), link[2]] for link in workflow["links"]}
    return {(str(node["id"]), slot["name"]): origin[slot["link"]]
            for node in workflow["nodes"] for slot in node.get("inputs", []) if slot.get("link") is not None}


@pytest.fixture(scope="module")
def structure_server(browser_server):
    """The browser server with the sample pictures and the random-weight structure checkpoint."""
    from harness.examples import STRUCTURE_CHECKPOINT, copy_sample_images
    from harness.checkpoints import write_structure_checkpoint

    copy_sample_images(browser_server.base)
    write_structure_checkpoint(browser_server.base / "models" / "checkpoints" / STRUCTURE_CHECKPOINT)
    return browser_server


# The run itself does not depend on the host's frontend beyond graphToPrompt: once, on the current
# ComfyUI with the newest frontend (the one scripts/demo.sh serves), canvas nodes.
@in_the_current_hosts_pass_only("run once, in the current ComfyUI's pass")
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_the_workflow_opened_in_the_frontend_runs_to_a_drag_on_the_structure_checkpoint(browser, structure_server, path):
    from harness.examples import STRUCTURE_CHECKPOINT, run_example

    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = ComfyPage(context.new_page(), structure_server, ARTIFACTS, f"run-{path.stem}")
    try:
        page.open(vue_nodes=False)
        page.import_workflow_file(path)  # the app's own Open workflow
        workflow = json.loads(path.read_text())
        page.page.wait_for_function(f"() => window.comfyAPI.app.app.graph.nodes.length === {len(workflow['nodes'])}"
                                    " && window.comfyAPI.app.app.graph.nodes.some((n) => n.type === 'DragKitEditor')")
        prompt = page.api_prompt()
        assert {(node_id, name): value for node_id, node in prompt.items() for name, value in node["inputs"].items()
                if isinstance(value, list)} == saved_links(workflow)
        client = ComfyClient(structure_server.url)
        try:
            result = run_example(client, structure_server.base, path, STRUCTURE_CHECKPOINT, True, prompt=prompt, fit_side=128)
        finally:
            client.close()
        after = np.asarray(result.after, dtype=np.float32)
        assert np.isfinite(after).all() and after.std() > 1
        assert result.nearer() == [True] * len(result.handles), result.handles
        page.assert_no_console_errors()
    finally:
        context.close()
