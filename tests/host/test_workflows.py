"""The shipped example workflows: they convert to prompts the server accepts, carrying the sample's points."""

import json
import shutil
from pathlib import Path

import pytest

from workflow import fit_to_tiny_checkpoint, nodes_of_type, workflow_to_prompt

ROOT = Path(__file__).resolve().parents[2]
DRAG100 = ROOT.parent / "shared" / "data" / "Drag100" / "lion_0"


@pytest.fixture(scope="module")
def gooddrag_prompt(client_module, comfy_base):
    for image in (ROOT / "workflows" / "images").iterdir():
        shutil.copy(image, comfy_base / "input" / image.name)
    workflow = json.loads((ROOT / "workflows" / "gooddrag.json").read_text())
    return workflow_to_prompt(workflow, client_module.object_info())


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


def test_gooddrag_workflow_is_accepted_by_the_server(client, gooddrag_prompt):
    prompt = json.loads(json.dumps(gooddrag_prompt))
    fit_to_tiny_checkpoint(prompt, "tiny_sd15.safetensors")
    # Validation (the /prompt answer) is what this test is about; the pipeline itself runs, at a
    # size the CPU handles, in test_drag_pipeline. Stop at the first progress report.
    run = client.run(prompt, on_progress=lambda c, _data: c.interrupt())
    assert run.status == "interrupted", run.describe()
    assert "4" in run.executed  # the DragKit Editor ran with the sample's points
