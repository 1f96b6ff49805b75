"""The shipped example workflows, opened in the real frontend: every link reaches the input it was
saved on (the drag and sampler nodes' optional `conditioning` moved behind the required inputs)."""

import json
import shutil

import pytest

from comfy_server import ROOT


def producer(prompt: dict, inputs: dict, name: str) -> str:
    source, _slot = inputs[name]
    return prompt[str(source)]["class_type"]


@pytest.fixture
def sample_images(browser_server):
    """The shipped workflows' pictures in ComfyUI's input folder, as the README asks users to put them."""
    for image in (ROOT / "workflows" / "images").iterdir():
        shutil.copy(image, browser_server.base / "input" / image.name)


def test_gooddrag_workflow_opens_with_every_link_in_place(comfy_page, sample_images):
    page = comfy_page
    page.load_workflow(json.loads((ROOT / "workflows" / "gooddrag.json").read_text()))
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
    page.load_workflow(json.loads((ROOT / "workflows" / "adaptivedrag.json").read_text()))
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
    page.load_workflow(json.loads((ROOT / "workflows" / "dragnext.json").read_text()))
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
