"""The conformance drags again, through ComfyUI: the same diffusers UNet converted to LDM keys with
ComfyUI's own converter (`comfy.utils.unet_to_diffusers`), the official LoRA loaded by ComfyUI's LoRA
loader, and DragKit's inversion and GoodDrag on `nodes/host/`'s denoiser (a CPU ModelPatcher).

ComfyUI computes ᾱ from its own float64 beta schedule and runs its own attention, so the last bits
differ from the official run's; what must still agree is the drag's course: the number of
motion-supervision steps and trackings, the timesteps, the stop, and the handles. Measured on
ComfyUI 0.3.75, 2 threads (against the official run):
- N: inverted latent norm rel −2.9e-6, step-0 loss rel 2.5e-5, handles equal for 15 steps, then at
  most 3 cells apart (the same near-tie as through diffusers), final handles 1 cell apart;
- A: rel 1.7e-6 and −1.9e-5, equal for 18 steps, then at most 1 cell, final handles equal;
- L: rel 1.7e-6 and −6.6e-5, equal for 42 steps, then at most 4 cells, final handle equal;
all with the official step and tracking counts and the stop "reached". The bounds below allow one
cell more than the diffusers path (and 1e-3 on the step-0 loss) for the other ComfyUI's last bits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.comfy_inprocess import import_comfy
from harness.checkpoints import NARROW_SD15_UNET
from test_gooddrag_conformance import (
    CONFORMANCE,
    FINAL_CELLS,
    LORA,
    REFERENCE,
    TRANSIENT_CELLS,
    cell_distance,
    drag_spec,
    encode_source,
    grid_of,
    official_steps,
    record_drag,
)

from dragkit.core.inversion import invert
from dragkit.core.schedule import ddim_schedule

# The conformance UNet (unet/config.json) in ComfyUI's terms: SD 1.5's layout at 32/64/64/64 channels.
CONFORMANCE_UNET = dict(NARROW_SD15_UNET, channel_mult=[1, 2, 2, 2], context_dim=768)


def comfy_patcher(with_lora: bool):
    """A ComfyUI MODEL holding the conformance UNet (and the official LoRA), on the CPU."""
    import_comfy()
    import comfy.model_patcher
    import comfy.sd
    import comfy.supported_models
    import comfy.utils
    from safetensors.torch import load_file

    diffusers_sd = load_file(CONFORMANCE / "unet" / "diffusion_pytorch_model.safetensors")
    to_ldm = comfy.utils.unet_to_diffusers(CONFORMANCE_UNET)  # diffusers key → LDM key (and optional extras)
    assert set(diffusers_sd) <= set(to_ldm), "ComfyUI's converter does not cover the conformance UNet"
    config = comfy.supported_models.SD15(dict(CONFORMANCE_UNET))
    model = config.get_model({})
    model.diffusion_model.load_state_dict({to_ldm[k]: v for k, v in diffusers_sd.items()}, strict=True)
    cpu = torch.device("cpu")
    patcher = comfy.model_patcher.ModelPatcher(model.eval(), load_device=cpu, offload_device=cpu)
    if with_lora:
        patcher, _ = comfy.sd.load_lora_for_models(patcher, None, load_file(LORA), 1.0, 0)
    return patcher


@pytest.fixture(scope="module")
def cond():
    from safetensors.torch import load_file

    return load_file(CONFORMANCE / "empty_prompt_embedding.safetensors")["text_embedding"]


@pytest.fixture(scope="module")
def host():
    import importlib

    import_comfy()
    return importlib.import_module("dragkit.nodes.host")


@pytest.mark.parametrize("name", ["N", "A", "L"])
def test_the_drag_through_comfyui_keeps_the_official_course(host, name, cond):
    reference = REFERENCE[name]
    with host.gradients():
        denoiser = host.ComfyDenoiser(comfy_patcher(reference["with_lora"]), for_gradients=True)
        denoiser.load_for_gradients()
        z0 = encode_source()
        schedule = ddim_schedule(denoiser.alphas_cumprod, reference["settings"]["n_inference_step"])
        inversion = invert(denoiser, z0, cond, schedule, reference["settings"]["inversion_strength"])
        recording = record_drag(denoiser, inversion, drag_spec(reference), cond)

    official = official_steps(name)
    assert inversion.timesteps[0] == 741
    assert float(inversion.latent.double().norm()) == pytest.approx(reference["inverted_latent"]["norm"], rel=1e-3)
    assert len(recording.steps) == len(official) == reference["final"]["n_ms_steps"]
    assert [e["ms_index"] for e in recording.tracking] == [e["ms_index"] for e in reference["tracking"]]
    assert max(cell_distance(a, b) for a, b in zip(recording.steps, official)) <= TRANSIENT_CELLS[name] + 1
    assert cell_distance(grid_of(recording, reference), reference["final"]["handles_halfres"]) <= FINAL_CELLS[name] + 1
    assert recording.result.losses[0] == pytest.approx(reference["ms_steps"][0]["loss"], rel=1e-3)

