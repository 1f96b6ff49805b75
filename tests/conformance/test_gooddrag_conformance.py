"""DragKit's inversion and GoodDrag (official UI settings) against what the official GoodDrag code
recorded on the same tiny seeded model (`../shared/conformance/gooddrag/reference.json`).

Runs N (no LoRA, two pairs), A (the official LoRA, two pairs) and L (the LoRA, one long drag across
three timesteps), each compared step by step, on 2 CPU threads (the CI's; the thread count changes
the UNet's last bits, and so where a near-tie in tracking falls).

What is exact: the points on the half-resolution grid, the editable cells, the timesteps, the number
of motion-supervision steps and trackings, the stop reason, and the source latent (rel 1e-5).
What is measured, not exact (torch 2.15 / diffusers 0.42 here against the official run's stack):
- the inverted latent agrees within rel 6e-7 (norm); the step-0 loss, which differences features at
  neighbouring cells, within rel 2.3e-5 (N) and 1.7e-5 (L): the bound is 5e-5, not 1e-5;
- Adam's first steps move every latent entry by ±lr whatever its gradient's size, so 1e-6 noise
  reaches 1e-3 in the loss after a few steps. In run N a tracking at step 15 is a near-tie (the two
  candidate cells' L1 distances are 1.9068 and 1.9078 here): DragKit keeps the handle where the
  official code moved it 3 cells on, follows one tracking later, and ends one cell apart. Run A keeps
  every loss within 1 % and every handle within 1 cell; run L its handles within 4 cells, its losses
  within 1.04 % until they part (step 27); both end on the official final handles.
Deliberate differences in DragKit's arithmetic, none of which changes these figures (checked by
running the DDIM steps with the official float32 scalars instead): the DDIM scalars are correctly
rounded from float64, the four bilinear neighbours of a patch are blended in one expression, and
after each drag timestep the edited latent is denoised on its own where the official code runs
[reference, edited] as one batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dragkit.core.drag import DragSpec
from dragkit.core.inversion import invert
from dragkit.core.methods import REACHED, gooddrag
from dragkit.core.methods.gooddrag import GoodDragSettings
from dragkit.core.motion import FeatureGrid, keep_mask
from dragkit.core.schedule import ddim_schedule

from diffusers_denoiser import DiffusersDenoiser

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "gooddrag"
REFERENCE = json.loads((CONFORMANCE / "reference.json").read_text()) if CONFORMANCE.is_dir() else {}
LORA = CONFORMANCE / "lora" / "pytorch_lora_weights.safetensors"
# Measured tolerances (see the module docstring): cells between DragKit's and the official handles at
# any step, the first step at which run N's handles may part, and the step-0 loss.
TRANSIENT_CELLS = {"N": 3, "A": 1, "L": 4}
FINAL_CELLS = {"N": 1, "A": 0, "L": 0}
RUN_N_EXACT_STEPS = 15
STEP_0_LOSS = 5e-5
# Losses while the handles still agree: measured at most 0.85 % (N), 0.71 % (A) and 1.04 % (L, at its
# step 26, the last before its handles part); A stays within 1 % at every step.
LOSS_WHILE_AGREED = 0.02


@pytest.fixture(scope="module", autouse=True)
def shared_data_on_two_threads():
    if not REFERENCE:
        pytest.fail(f"the conformance data is missing: expected {CONFORMANCE} (../shared beside the checkout)")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def denoisers():
    cache = {}

    def get(with_lora: bool) -> DiffusersDenoiser:
        if with_lora not in cache:
            cache[with_lora] = DiffusersDenoiser(CONFORMANCE, LORA if with_lora else None)
        return cache[with_lora]

    return get


def encode_source() -> torch.Tensor:
    """z0 = the VAE posterior's mean × 0.18215 of the image in [−1, 1], as the official code encodes it."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(CONFORMANCE / "vae", torch_dtype=torch.float32).eval()
    pixels = np.asarray(Image.open(CONFORMANCE / "inputs" / "original.png").convert("RGB"), dtype=np.float32)
    image = torch.from_numpy(pixels / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        return vae.encode(image).latent_dist.mean * 0.18215


@pytest.fixture(scope="module")
def source_latent():
    return encode_source()


@pytest.fixture(scope="module")
def cond():
    from safetensors.torch import load_file

    return load_file(CONFORMANCE / "empty_prompt_embedding.safetensors")["text_embedding"]


def drag_spec(run: dict) -> DragSpec:
    points = [tuple(float(c) for c in p) for p in run["points_image_px"]]
    mask = np.asarray(Image.open(CONFORMANCE / "inputs" / "mask.png").convert("L")) > 0
    return DragSpec(mask.shape[1], mask.shape[0], tuple(points[0::2]), tuple(points[1::2]), mask=mask)


@dataclass
class Recording:
    """What DragKit's GoodDrag did, in the reference's terms: the handles each motion-supervision
    step used, and every tracking (a relocalisation at a timestep's start, or after J steps)."""

    steps: list
    tracking: list
    result: object = None


@pytest.fixture(scope="module")
def runs(denoisers, source_latent, cond):
    done = {}

    def run(name: str) -> tuple[Recording, object]:
        if name not in done:
            reference = REFERENCE[name]
            denoiser = denoisers(reference["with_lora"])
            settings = reference["settings"]
            schedule = ddim_schedule(denoiser.alphas_cumprod, settings["n_inference_step"])
            inversion = invert(denoiser, source_latent, cond, schedule, settings["inversion_strength"])
            done[name] = (record_drag(denoiser, inversion, drag_spec(reference), cond), inversion)
        return done[name]

    return run


def record_drag(denoiser, inversion, spec, cond) -> Recording:
    recording = Recording([], [])
    original_loss, original_track = gooddrag.motion_loss, gooddrag.track_points

    def motion_loss(features, handles, *args, **kwargs):
        recording.steps.append(handles.tolist())
        return original_loss(features, handles, *args, **kwargs)

    def track_points(features, handles, *args, **kwargs):
        moved = original_track(features, handles, *args, **kwargs)
        recording.tracking.append({"ms_index": len(recording.steps), "before": handles.tolist(), "after": moved.tolist()})
        return moved

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gooddrag, "motion_loss", motion_loss)
        patch.setattr(gooddrag, "track_points", track_points)
        recording.result = gooddrag.optimise(denoiser, inversion, spec, cond, GoodDragSettings())
    return recording


def test_points_map_to_the_half_resolution_grid_rounding_half_to_even():
    reference = REFERENCE["N"]
    spec = drag_spec(reference)
    grid = FeatureGrid.scaled(spec.width, spec.height, 0.5)
    assert grid.to_grid(spec.handles).tolist() == reference["ms_steps"][0]["handles_halfres"]


def test_the_editable_cells_are_the_masks_nearest_samples():
    """The code resizes the mask to the half grid, then to the latent, both nearest: every 8th pixel."""
    spec = drag_spec(REFERENCE["N"])
    grid = FeatureGrid.scaled(spec.width, spec.height, 0.5)
    keep = keep_mask(spec.mask, grid, (spec.height // 8, spec.width // 8))[0, 0]
    assert torch.equal(keep, torch.from_numpy(1 - spec.mask[::8, ::8].astype(np.float32)))


def test_the_source_latent_is_the_official_one(source_latent):
    z0 = REFERENCE["N"]["z0"]
    assert list(source_latent.shape) == z0["shape"]
    assert float(source_latent.double().norm()) == pytest.approx(z0["norm"], rel=1e-5)
    assert float(source_latent.double().sum()) == pytest.approx(z0["sum"], rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("name", ["N", "A"])
def test_the_inverted_latent_and_timesteps_are_the_official_ones(runs, name):
    _, inversion = runs(name)
    expected = REFERENCE[name]["inverted_latent"]
    assert inversion.timesteps[0] == REFERENCE[name]["ms_steps"][0]["t"] == 741
    assert float(inversion.latent.double().norm()) == pytest.approx(expected["norm"], rel=1e-4)
    assert float(inversion.latent.double().sum()) == pytest.approx(expected["sum"], rel=1e-4)


def official_steps(name: str) -> list:
    return [step["handles_halfres"] for step in REFERENCE[name]["ms_steps"]]


def cell_distance(a, b) -> float:
    return max(abs(x - y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


@pytest.mark.parametrize("name", ["N", "A", "L"])
def test_every_step_and_tracking_follows_the_official_run(runs, name):
    recording, _ = runs(name)
    reference = REFERENCE[name]
    official = official_steps(name)
    assert len(recording.steps) == len(official) == reference["final"]["n_ms_steps"]
    assert max(cell_distance(a, b) for a, b in zip(recording.steps, official)) <= TRANSIENT_CELLS[name]
    assert [e["ms_index"] for e in recording.tracking] == [e["ms_index"] for e in reference["tracking"]]
    for ours, theirs in zip(recording.tracking, reference["tracking"]):
        assert cell_distance(ours["after"], theirs["after"]) <= TRANSIENT_CELLS[name], (ours, theirs)
    assert cell_distance(grid_of(recording, reference), reference["final"]["handles_halfres"]) <= FINAL_CELLS[name]


def test_run_n_is_exact_until_its_near_tie(runs):
    recording, _ = runs("N")
    official = official_steps("N")
    assert recording.steps[:RUN_N_EXACT_STEPS] == official[:RUN_N_EXACT_STEPS]


@pytest.mark.parametrize("name", ["N", "A", "L"])
def test_losses_follow_the_official_run_while_the_handles_agree(runs, name):
    recording, _ = runs(name)
    official = [step["loss"] for step in REFERENCE[name]["ms_steps"]]
    ours = recording.result.losses
    assert ours[0] == pytest.approx(official[0], rel=STEP_0_LOSS)
    same = [a == b for a, b in zip(recording.steps, official_steps(name))]
    agreed = same.index(False) if False in same else len(same)
    assert agreed >= RUN_N_EXACT_STEPS
    for step in range(agreed):
        assert ours[step] == pytest.approx(official[step], rel=LOSS_WHILE_AGREED), f"step {step}"
    if name == "A":  # its handles never part by more than a cell: every loss stays within 1 %
        for step, (a, b) in enumerate(zip(ours, official)):
            assert a == pytest.approx(b, rel=0.01), f"step {step}"


def test_the_long_drag_has_the_official_trackings(runs):
    recording, _ = runs("L")
    assert len(recording.steps) == 66 and len(recording.tracking) == 25


@pytest.mark.parametrize("name", ["N", "A", "L"])
def test_drags_at_the_official_timesteps_and_stops_for_the_same_reason(runs, name):
    recording, inversion = runs(name)
    blocks = REFERENCE[name]["drag_blocks"]
    dragged = recording.result.index - inversion.start_index
    assert list(inversion.timesteps[:dragged]) == [block["t"] for block in blocks]
    assert recording.result.stop_reason == REACHED  # every run ends within 2 cells before the 7th timestep


def grid_of(recording: Recording, reference: dict) -> list:
    spec = drag_spec(reference)
    grid = FeatureGrid.scaled(spec.width, spec.height, 0.5)
    return grid.to_grid(recording.result.handles).tolist()
