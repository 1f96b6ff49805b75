"""The first end-to-end drag on a live server: Load image → Editor → LoRA → Invert → Drag → Sampler → Save."""

import numpy as np
import pytest
from PIL import Image

from graphs import drag_measures, drag_pipeline, editor_spec, ksampler_graph, sampling_figures

METHODS = ["DragKitDragDiffusion", "DragKitGoodDrag"]


@pytest.fixture(scope="module")
def image_name(comfy_base):
    rng = np.random.default_rng(0)
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[20:40, 12:30] = (220, 80, 40)  # an object to drag
    pixels += rng.integers(0, 20, pixels.shape, dtype=np.uint8)
    Image.fromarray(pixels).save(comfy_base / "input" / "dragkit_square.png")
    return "dragkit_square.png"


def spec(handle=(20, 30), target=(40, 30)):
    return editor_spec(pairs=((handle, target),))


def ksampler_digest(client, seed):
    run = client.run(ksampler_graph(seed))
    assert run.status == "success", run.describe()
    return run.outputs["digest"]["digest"][0]


@pytest.mark.parametrize("method", METHODS)
def test_pipeline_produces_an_image_and_requeue_reruns_only_drag_and_sampling(client, comfy_base, image_name, method):
    before = ksampler_digest(client, 51)
    first = client.run(drag_pipeline(method, spec(), image_name))
    assert first.status == "success", first.describe()
    saved = first.outputs["save"]["images"]
    assert saved and (comfy_base / "output" / saved[0]["filename"]).is_file()
    measures = drag_measures(first.outputs["drag"])
    assert measures["steps"] == len(measures["losses"]) > 0 and measures["stop_reason"], measures

    moved = client.run(drag_pipeline(method, spec(target=(44, 34)), image_name))
    assert moved.status == "success", moved.describe()
    assert set(moved.executed) == {"editor", "drag", "sampler", "decode", "save"}, moved.executed
    assert {"lora", "invert", "encode", "ckpt"} <= set(moved.cached)
    # The sampler denoised the reference branch beside the edit, recording it; the re-drag reads that.
    assert sampling_figures(first.outputs["sampler"])["reference"] == "recorded"
    assert sampling_figures(moved.outputs["sampler"])["reference"] == "read"
    # Another node's patch on the sampler's model since (same weights) makes the recording stale.
    patched = drag_pipeline(method, spec(target=(44, 34)), image_name)
    patched["pag"] = {"class_type": "PerturbedAttentionGuidance", "inputs": {"model": ["lora", 0], "scale": 3.0}}
    patched["sampler"]["inputs"]["model"] = ["pag", 0]
    again = client.run(patched)
    assert again.status == "success", again.describe()
    assert "drag" in again.cached and sampling_figures(again.outputs["sampler"])["reference"] == "recorded"

    ksampler_digest(client, 151)
    assert ksampler_digest(client, 51) == before, "the user's MODEL changed"


@pytest.mark.parametrize("method", METHODS)
def test_cancel_during_drag_reports_interrupted_and_the_next_run_works(client, image_name, method):
    many = {"max_iterations": 400} if method == "DragKitDragDiffusion" else {"tracks_per_timestep": 100}
    graph = drag_pipeline(method, spec(handle=(18, 28), target=(50, 28)), image_name, drag_settings=many)

    def interrupt(c, data):
        if data.get("node") == "drag" and data.get("value", 0) >= 2:
            c.interrupt()

    run = client.run(graph, on_progress=interrupt)
    assert run.status == "interrupted", run.describe()
    assert max(p[1] for p in run.progress if p[0] == "drag") < 20, "cancel was not prompt"
    again = client.run(drag_pipeline(method, spec(handle=(18, 28), target=(30, 28)), image_name))
    assert again.status == "success", again.describe()

