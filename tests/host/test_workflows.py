"""The shipped example workflows: they convert to prompts the server accepts, carrying the sample's points."""

import json
import shutil
from pathlib import Path

import pytest
import requests

from dragkit.core.drag import decode_rle
from harness.workflow import nodes_of_type, workflow_to_prompt

ROOT = Path(__file__).resolve().parents[2]
DRAG100 = ROOT.parent / "shared" / "data" / "Drag100" / "lion_0"


@pytest.fixture(scope="module")
def prompt_of(client_module, comfy_base):
    """The API prompt of a shipped workflow, by name, with the sample pictures in input/."""
    for image in (ROOT / "example_workflows" / "images").iterdir():
        shutil.copy(image, comfy_base / "input" / image.name)
    info = client_module.object_info()
    return lambda name: workflow_to_prompt(json.loads((ROOT / "example_workflows" / f"{name}.json").read_text()), info)


@pytest.fixture(scope="module")
def gooddrag_prompt(prompt_of):
    return prompt_of("gooddrag")


def test_gooddrag_workflow_carries_the_drag100_sample(gooddrag_prompt):
    (editor,) = nodes_of_type(gooddrag_prompt, "DragKitEditor")
    drag = json.loads(editor["drag_data"])
    points = json.loads((DRAG100 / "points.json").read_text())["points"]
    assert [[p["handle"], p["target"]] for p in drag["pairs"]] == [points[0:2]]
    assert (drag["width"], drag["height"]) == (512, 512) and drag["mask"] is not None
    assert [n["class_type"] for n in gooddrag_prompt.values()] == [
        "CheckpointLoaderSimple", "CLIPTextEncode", "LoadImage", "DragKitEditor", "VAEEncode", "DragKitLoRAFinetune",
        "DragKitDDIMInvert", "DragKitGoodDrag", "DragKitMutualAttentionSampler", "VAEDecode", "SaveImage"]
    (good,) = nodes_of_type(gooddrag_prompt, "DragKitGoodDrag")
    assert (good["drag_timesteps"], good["tracks_per_timestep"], good["steps_per_track"]) == (7, 10, 3)


def test_dragnext_workflow_turns_the_lions_head_as_a_rotate_region(prompt_of):
    prompt = prompt_of("dragnext")
    (editor,) = nodes_of_type(prompt, "DragKitEditor")
    drag = json.loads(editor["drag_data"])
    points = json.loads((DRAG100 / "points.json").read_text())["points"]
    assert [[p["handle"], p["target"]] for p in drag["pairs"]] == [points[0:2]]
    (region,) = drag["regions"]
    assert (region["pair"], region["type"]) == (0, "rotate")
    mask, head = decode_rle(drag["mask"]["rle"], 512, 512), decode_rle(region["mask"]["rle"], 512, 512)
    assert head[166, 273] and head.sum() > 5000 and (mask | ~head).all(), "the head region lies in the editable mask"
    assert [n["class_type"] for n in prompt.values()] == [
        "CheckpointLoaderSimple", "CLIPTextEncode", "LoadImage", "DragKitEditor", "VAEEncode", "DragKitLoRAFinetune",
        "DragKitDDIMInvert", "DragKitDragNeXt", "DragKitMutualAttentionSampler", "VAEDecode", "SaveImage"]
    (lora,), (invert,), (drag_node,) = (nodes_of_type(prompt, t) for t in ("DragKitLoRAFinetune", "DragKitDDIMInvert",
                                                                           "DragKitDragNeXt"))
    assert (lora["preset"], invert["preset"]) == ("DragNeXt", "GoodDrag / DragNeXt")
    assert (drag_node["mode"], drag_node["eta_mode"], drag_node["pbsi_timesteps"], drag_node["iterations"]) == (
        "regions (paper)", "code", 5, 10)


def test_every_workflow_is_in_the_template_browser(server):
    """ComfyUI lists a pack's workflows folder under the pack's name (Workflow → Browse Templates)."""
    listed = requests.get(f"{server.url}/workflow_templates", timeout=30).json()
    assert sorted(listed["dragkit"]) == sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))

    # what the template browser fetches when a user picks one: the file itself (a thumbnail is optional)
    served = requests.get(f"{server.url}/api/workflow_templates/dragkit/gooddrag.json", timeout=30)
    assert served.ok and served.json() == json.loads((ROOT / "example_workflows" / "gooddrag.json").read_text())


@pytest.mark.parametrize("name, chain, presets", [
    ("dragdiffusion", ["DragKitLoRAFinetune", "DragKitDDIMInvert", "DragKitDragDiffusion", "DragKitMutualAttentionSampler"],
     ("DragDiffusion", "DragDiffusion")),
    ("easydrag", ["DragKitDDIMInvert", "DragKitEasyDrag", "DragKitReferenceGuidedSampler"], (None, "EasyDrag")),
    ("drag_upscale_img2img", ["DragKitLoRAFinetune", "DragKitDDIMInvert", "DragKitGoodDrag", "DragKitMutualAttentionSampler",
                              "VAEDecode", "ImageScaleBy", "VAEEncode", "KSampler", "VAEDecode", "SaveImage"], ("GoodDrag", "GoodDrag / DragNeXt")),
])
def test_each_method_workflow_chains_its_methods_nodes_on_the_sample(prompt_of, name, chain, presets):
    prompt = prompt_of(name)
    (editor,) = nodes_of_type(prompt, "DragKitEditor")
    points = json.loads((DRAG100 / "points.json").read_text())["points"]
    assert [[p["handle"], p["target"]] for p in json.loads(editor["drag_data"])["pairs"]] == [points[0:2]]
    for source, target in zip(chain, chain[1:]):  # each node feeds the next
        assert any(prompt[value[0]]["class_type"] == source for inputs in nodes_of_type(prompt, target)
                   for value in inputs.values() if isinstance(value, list)), (source, target)
    lora, (invert,) = nodes_of_type(prompt, "DragKitLoRAFinetune"), nodes_of_type(prompt, "DragKitDDIMInvert")
    assert ([entry["preset"] for entry in lora] or [None])[0] == presets[0] and invert["preset"] == presets[1]
    if name == "easydrag":  # no LoRA: the checkpoint's own MODEL everywhere
        (checkpoint,) = [k for k, v in prompt.items() if v["class_type"] == "CheckpointLoaderSimple"]
        models = {tuple(inputs["model"]) for inputs in (n["inputs"] for n in prompt.values()) if "model" in inputs}
        assert models == {(checkpoint, 0)}
