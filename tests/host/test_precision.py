"""fp16 and bf16, as ComfyUI runs SD 1.5 on GPUs, on the SD 1.5-structured UNet (on CPU).

The trainable LoRA weights, the optimiser state and the dragged latent stay float32 while the UNet
computes in its own dtype. Before that, fp16 LoRA training gave losses [1.28, nan, nan]: B starts
at 0, so A's first gradient is 0, and AdamW's ε of 1e-8 rounds to 0 in fp16.
"""

import math

import pytest
import torch

from harness.checkpoints import narrow_sd15_patcher

DTYPES = [torch.float16, torch.bfloat16]
CONTEXT = torch.zeros(1, 77, 64)  # the narrow UNet's context width


def smooth_latent(size=(16, 16), seed=1) -> torch.Tensor:
    coarse = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")


def train(dtype, steps):
    patcher, _ = narrow_sd15_patcher(dtype=dtype)  # imports ComfyUI (CPU) first
    from dragkit.core.lora import LoraSettings, train_lora
    from dragkit.nodes import host

    with host.gradients():
        denoiser = host.ComfyDenoiser(patcher, for_gradients=True)
        denoiser.load_for_gradients()
        return train_lora(denoiser, smooth_latent((8, 8)), CONTEXT, LoraSettings(steps=steps, batch_size=4))


@pytest.fixture(scope="module")
def fp32_losses():
    return train(torch.float32, 30).losses


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_lora_losses_are_finite_fall_and_follow_float32(dtype, fp32_losses):
    result = train(dtype, 30)
    losses = torch.tensor(result.losses)
    assert torch.isfinite(losses).all(), f"{dtype}: {result.losses[:5]}"
    assert losses[-10:].mean() < losses[:10].mean(), result.losses
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in result.weights.values())
    assert any(w.abs().max() > 0 for k, w in result.weights.items() if "lora_up" in k), "the LoRA never moved"
    # Same seeds and data: a sound low-precision run stays close to the float32 one throughout.
    reference = torch.tensor(fp32_losses)
    tolerance = 0.02 if dtype == torch.float16 else 0.05
    assert ((losses - reference).abs() / reference).max() < tolerance


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_drag_reaches_the_target_and_sampling_is_finite(dtype):
    patcher, _ = narrow_sd15_patcher(dtype=dtype)
    from dragkit.core.attention import MutualSelfAttention
    from dragkit.core.drag import DragSpec
    from dragkit.core.inversion import invert
    from dragkit.core.methods import REACHED, dragdiffusion
    from dragkit.core.sampling import mutual_attention_sample
    from dragkit.core.schedule import ddim_schedule
    from dragkit.nodes import host

    spec = DragSpec(128, 128, ((40.0, 64.0),), ((72.0, 64.0),))
    settings = dragdiffusion.DragDiffusionSettings(max_iterations=25)
    with host.gradients():
        denoiser = host.ComfyDenoiser(patcher, for_gradients=True)
        denoiser.load_for_gradients()
        schedule = ddim_schedule(denoiser.alphas_cumprod, 20)
        inversion = invert(denoiser, smooth_latent(), CONTEXT, schedule, 0.7)
        result = dragdiffusion.optimise(denoiser, inversion, spec, CONTEXT, settings)
    assert result.latent.dtype == torch.float32 and torch.isfinite(result.latent).all()
    assert all(torch.isfinite(torch.tensor(result.losses)))
    start, end, target = spec.handles[0], result.handles[0], spec.targets[0]
    assert result.stop_reason == REACHED, f"{dtype}: stopped {result.stop_reason} at {end}, target {target}"
    assert math.dist(end, target) < math.dist(start, target) / 4, f"{dtype}: the handle went from {start} to {end}, target {target}"
    policy = MutualSelfAttention(schedule.timesteps, first_step=result.index)
    sampled = mutual_attention_sample(denoiser, result.reference_latent, result.latent, CONTEXT, schedule, result.index, policy)
    assert torch.isfinite(sampled).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_easydrag_and_reference_guided_sampling_are_finite_and_move_the_handle(dtype):
    patcher, _ = narrow_sd15_patcher(dtype=dtype)
    from dragkit.core.attention import MutualSelfAttention
    from dragkit.core.drag import DragSpec
    from dragkit.core.inversion import invert
    from dragkit.core.methods import easydrag
    from dragkit.core.sampling import reference_guided_sample
    from dragkit.core.schedule import ddim_schedule
    from dragkit.nodes import host

    spec = DragSpec(128, 128, ((40.0, 64.0),), ((72.0, 64.0),))
    with host.gradients():
        denoiser = host.ComfyDenoiser(patcher, for_gradients=True)
        denoiser.load_for_gradients()
        schedule = ddim_schedule(denoiser.alphas_cumprod, 20)
        inversion = invert(denoiser, smooth_latent(), CONTEXT, schedule, 0.7)
        result = easydrag.optimise(denoiser, inversion, spec, CONTEXT, easydrag.EasyDragSettings(max_iterations=20))
    assert result.latent.dtype == torch.float32 and torch.isfinite(result.latent).all()
    assert all(torch.isfinite(torch.tensor(result.losses)))
    start, end, target = spec.handles[0], result.handles[0], spec.targets[0]
    assert math.dist(end, target) < math.dist(start, target), f"{dtype}: the handle went from {start} to {end}"
    policy = MutualSelfAttention(schedule.timesteps, layers=None, places=("up",))
    sampled = reference_guided_sample(denoiser, result.latent, inversion, CONTEXT, result.index, policy, reference_from=8)
    assert torch.isfinite(sampled).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dragnext_is_finite_in_float32_and_lowers_the_region_error(dtype):
    patcher, _ = narrow_sd15_patcher(dtype=dtype)
    import numpy as np

    from dragkit.core.drag import DragSpec, Region
    from dragkit.core.inversion import invert
    from dragkit.core.methods import dragnext
    from dragkit.core.schedule import ddim_schedule
    from dragkit.nodes import host

    region = np.zeros((128, 128), dtype=bool)
    region[52:76, 28:52] = True
    spec = DragSpec(128, 128, ((40.0, 64.0),), ((72.0, 64.0),), regions=(Region(0, "translate", region),))
    settings = dragnext.DragNeXtSettings(pbsi_timesteps=2, eta_mode="final")
    with host.gradients():
        denoiser = host.ComfyDenoiser(patcher, for_gradients=True)
        denoiser.load_for_gradients()
        inversion = invert(denoiser, smooth_latent(), CONTEXT, ddim_schedule(denoiser.alphas_cumprod, 20), 0.7)
        result = dragnext.optimise(denoiser, inversion, spec, CONTEXT, settings)
    assert result.latent.dtype == torch.float32 and torch.isfinite(result.latent).all()
    assert len(result.losses) == 20 and all(torch.isfinite(torch.tensor(result.losses)))
    (error,) = result.region_errors
    assert error.pair == 1 and error.after < error.before, f"{dtype}: {error}"
