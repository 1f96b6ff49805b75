"""Every method at its default settings, end to end through a real server, on a checkpoint with SD
1.5's whole block layout: the methods' default feature block (up_blocks[2]) and mutual-attention
layers (10–15) only exist in that layout, so the one-level tiny checkpoint could never run them.

Non-square picture, painted mask; the handles must end nearer their targets than they started.
"""

import json
import math

import numpy as np
import pytest
from PIL import Image

from harness.comfy_inprocess import with_the_full_checks_only
from graphs import base_graph, region, region_errors, sampling_figures
from harness.checkpoints import STRUCTURE_UNET, write_tiny_checkpoint

CHECKPOINT = "structure_sd15.safetensors"
WIDTH, HEIGHT = 128, 64
PAIRS = (((40, 30), (60, 34)),)


@pytest.fixture(scope="module")
def structure_inputs(comfy_base):
    import torch

    path = comfy_base / "models" / "checkpoints" / CHECKPOINT
    if not path.exists():
        write_tiny_checkpoint(path, seed=11, unet=STRUCTURE_UNET, dtype=torch.float16)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    blob = np.exp(-((x - 40) ** 2 + (y - 30) ** 2) / 120.0)
    picture = np.stack([0.3 + 0.6 * blob, 0.2 + 0.3 * x / WIDTH, 0.5 - 0.4 * blob], axis=-1)
    Image.fromarray((picture * 255).astype(np.uint8)).save(comfy_base / "input" / "structure.png")
    return comfy_base


def painted_mask() -> dict:
    """Editable: the left 96 columns (rows are runs of 96 ones then 32 zeros)."""
    return {"rle": [0] + [96, 32] * HEIGHT}


def default_pipeline(method: str, lora_preset: str | None, invert_preset: str, painted: bool = True,
                     regions: list | None = None, pairs=PAIRS) -> dict:
    """Load → Editor → VAEEncode → (LoRA) → Invert → Drag → the method's sampler → VAEDecode → Save."""
    spec = {"version": 1, "width": WIDTH, "height": HEIGHT, "mask": painted_mask() if painted else None,
            "regions": regions or [], "pairs": [{"handle": list(h), "target": list(t)} for h, t in pairs]}
    graph = base_graph()
    del graph["latent"]
    graph["ckpt"]["inputs"]["ckpt_name"] = CHECKPOINT
    graph.update({
        "load": {"class_type": "LoadImage", "inputs": {"image": "structure.png"}},
        "editor": {"class_type": "DragKitEditor", "inputs": {"image": ["load", 0], "drag_data": json.dumps(spec)}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["load", 0], "vae": ["ckpt", 2]}},
        "lora": {"class_type": "DragKitLoRAFinetune", "inputs": {
            "model": ["ckpt", 0], "conditioning": ["cond", 0], "preset": lora_preset, "steps": 70, "rank": 16,
            "learning_rate": 5e-4, "batch_size": 4, "seed": 0, "disk_cache": False, "latent": ["encode", 0]}},
        "invert": {"class_type": "DragKitDDIMInvert", "inputs": {
            "model": ["lora", 0], "latent": ["encode", 0], "conditioning": ["cond", 0], "steps": 50,
            "preset": invert_preset, "strength": 0.75, "guidance": 1.0}},
        "drag": {"class_type": method, "inputs": {"model": ["lora", 0], "inversion": ["invert", 0], "drag": ["editor", 0]}},
        "report": {"class_type": "DragKitTestEditReport", "inputs": {"edit": ["drag", 0]}},
        "sampler": {"class_type": "DragKitMutualAttentionSampler", "inputs": {
            "model": ["lora", 0], "edit": ["drag", 0], "start_layer": 10, "end_layer": 15, "start_step": 0}},
        "digest": {"class_type": "DragKitTestDigest", "inputs": {"latent": ["sampler", 0]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "dragkit_structure"}},
    })
    if method == "DragKitAdaptiveDrag":  # the picture for its super-pixels, and the CLoss sampler
        graph["drag"]["inputs"]["image"] = ["load", 0]
        graph["sampler"] = {"class_type": "DragKitCLossSampler", "inputs": {"model": ["lora", 0], "edit": ["drag", 0]}}
    if lora_preset is None:  # EasyDrag: the checkpoint's own MODEL, and its sampler
        del graph["lora"]
        for node in ("invert", "drag"):
            graph[node]["inputs"]["model"] = ["ckpt", 0]
        graph["sampler"] = {"class_type": "DragKitReferenceGuidedSampler", "inputs": {
            "model": ["ckpt", 0], "edit": ["drag", 0], "guidance_weight": 4.0, "ref_start_step": 20,
            "reference_latent": "code: one level cleaner (L[i])"}}
    return graph


def with_defaults(graph: dict, node: str, object_info: dict) -> None:
    """Fill every widget of `node` that the graph leaves unset with its declared default."""
    info = object_info[graph[node]["class_type"]]["input"]
    for name, (kind, *rest) in {**info.get("required", {}), **info.get("optional", {})}.items():
        options = rest[0] if rest else {}
        if name not in graph[node]["inputs"] and "default" in options:
            graph[node]["inputs"][name] = options["default"]


def run_at_defaults(client, graph: dict) -> tuple:
    """Runs the graph with the drag's and the sampler's unset inputs at their defaults; the run and
    the drag's report, both checked (success, finite latents, some steps)."""
    info = client.object_info()
    with_defaults(graph, "drag", info)
    with_defaults(graph, "sampler", info)
    run = client.run(graph, timeout=1500)
    assert run.status == "success", run.describe()
    (report,) = run.outputs["report"]["edit"]
    assert report["finite"] and report["steps"] > 0, report
    assert run.outputs["digest"]["finite"] == [True]
    return run, report


def saved_picture(base, run) -> np.ndarray:
    (saved,) = run.outputs["save"]["images"]
    return np.asarray(Image.open(base / "output" / saved["subfolder"] / saved["filename"]))


@with_the_full_checks_only("each method's default settings end to end: 6 min per ComfyUI on 2 cores")
@pytest.mark.parametrize("method, lora_preset, invert_preset, painted", [
    ("DragKitDragDiffusion", "DragDiffusion", "DragDiffusion", True),
    ("DragKitGoodDrag", "GoodDrag", "GoodDrag / DragNeXt", True),
    ("DragKitEasyDrag", None, "EasyDrag", False),  # no LoRA, no mask: the auto mask
    ("DragKitEasyDrag", None, "EasyDrag", True),
    ("DragKitAdaptiveDrag", "AdaptiveDrag", "AdaptiveDrag", False),  # no mask: the paper's auto mask
])
def test_default_settings_run_end_to_end_and_move_the_handles(client, structure_inputs, method, lora_preset, invert_preset,
                                                              painted):
    run, report = run_at_defaults(client, default_pipeline(method, lora_preset, invert_preset, painted))
    for start, end, target in zip(report["start"], report["handles"], report["targets"]):
        assert math.dist(end, target) < math.dist(start, target), report
    assert saved_picture(structure_inputs, run).shape == (HEIGHT, WIDTH, 3)
    if method == "DragKitAdaptiveDrag":  # the CLoss sampler reports its loss, which falls
        losses = sampling_figures(run.outputs["sampler"])["closs_losses"]
        assert losses[-1] < losses[0], losses
    if method == "DragKitEasyDrag" and painted:  # a re-drag: the sampler reads its recording of the stored latents
        moved = tuple((handle, (target[0] + 4, target[1])) for handle, target in PAIRS)
        again, _ = run_at_defaults(client, default_pipeline(method, lora_preset, invert_preset, painted, pairs=moved))
        assert "invert" in again.cached and "sampler" in again.executed
        assert sampling_figures(again.outputs["sampler"])["reference"] == "read"


# One pair per kind on the 128×64 picture, each region around its handle: the blob at (40, 30) is
# translated right, a patch to its right deformed down, a patch at the bottom left turned about a centre.
DRAGNEXT_PAIRS = (((40, 30), (60, 34)), ((80, 18), (84, 34)), ((30, 52), (44, 44)))
DRAGNEXT_REGIONS = [
    region(0, "translate", (28, 18, 52, 42), WIDTH, HEIGHT),
    region(1, "deform", (74, 12, 86, 24), WIDTH, HEIGHT),
    region(2, "rotate", (22, 46, 38, 60), WIDTH, HEIGHT, center=(36, 58)),
]


def test_dragnext_moves_a_translated_a_deformed_and_a_rotated_region_toward_their_targets(client, structure_inputs):
    """At the defaults (a short LoRA: the drag is under test), with the painted mask."""
    graph = default_pipeline("DragKitDragNeXt", "custom", "GoodDrag / DragNeXt", regions=DRAGNEXT_REGIONS,
                             pairs=DRAGNEXT_PAIRS)
    graph["lora"]["inputs"]["steps"] = 5
    run, report = run_at_defaults(client, graph)
    assert report["change_inside"] > report["change_outside"], report
    errors = region_errors(run.outputs["drag"])
    assert sorted(errors) == [1, 2, 3]
    for pair, error in errors.items():  # each target region now looks more like its handle region
        assert error["after"] < error["before"], (pair, error)
    picture = saved_picture(structure_inputs, run)
    assert picture.shape == (HEIGHT, WIDTH, 3) and picture.std() > 0


@pytest.mark.parametrize("method, lora_preset, invert_preset, budget", [
    ("DragKitEasyDrag", None, "EasyDrag", {"max_iterations": 1000}),
    ("DragKitDragNeXt", "custom", "GoodDrag / DragNeXt", {"iterations": 1000, "eta_mode": "final"}),  # no skipped step
    ("DragKitAdaptiveDrag", "custom", "AdaptiveDrag", {"initial_budget": 1000, "max_budget": 1000}),
])
def test_a_drag_cancels_promptly_and_leaves_the_model_as_it_was(client, structure_inputs, method, lora_preset,
                                                                invert_preset, budget):
    graph = default_pipeline(method, lora_preset, invert_preset, painted=False)
    info = client.object_info()
    with_defaults(graph, "drag", info)
    with_defaults(graph, "sampler", info)
    graph["drag"]["inputs"].update(budget)
    if "lora" in graph:
        graph["lora"]["inputs"]["steps"] = 2  # cancel is about the drag: a short LoRA
    probe = {"sample": {"class_type": "KSampler", "inputs": {
        "model": ["ckpt", 0], "seed": 5, "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
        "positive": ["cond", 0], "negative": ["cond", 0], "latent_image": ["empty", 0], "denoise": 1.0}},
        "empty": {"class_type": "EmptyLatentImage", "inputs": {"width": WIDTH, "height": HEIGHT, "batch_size": 1}},
        "probe_digest": {"class_type": "DragKitTestDigest", "inputs": {"latent": ["sample", 0]}}}
    digest_graph = {k: v for k, v in graph.items() if k in ("ckpt", "text", "cond")} | probe
    before = client.run(digest_graph)
    assert before.status == "success", before.describe()

    def interrupt(c, data):
        if data.get("node") == "drag" and data.get("value", 0) >= 2:
            c.interrupt()

    run = client.run(graph, on_progress=interrupt, timeout=1500)
    assert run.status == "interrupted", run.describe()
    assert max(p[1] for p in run.progress if p[0] == "drag") < 10, "cancel was not prompt"
    digest_graph["sample"]["inputs"]["seed"] = 6  # a fresh run, not ComfyUI's cache
    client.run(digest_graph)
    digest_graph["sample"]["inputs"]["seed"] = 5
    after = client.run(digest_graph)
    assert after.outputs["probe_digest"]["digest"] == before.outputs["probe_digest"]["digest"], "the user's MODEL changed"
