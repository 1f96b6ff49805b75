"""The optimised paths follow the plain float32 ones, through ComfyUI's UNet (on CPU).

- `features_only`: on a gradient clone the UNet stops after the last tapped decoder stage; the taps
  and their gradients are those of the whole forward (the same operations, so bit for bit).
- EasyDrag records the unedited latent's decoder keys and values once and passes the edited row
  alone, where the code passes both rows at every step: on the structure UNet (SD 1.5's layout) at
  128², 20 steps, the same handle trajectory, the latent within 1e-4 (measured 4e-6: batch-1 vs
  batch-2 rounding), half the forward rows.
- The mutual-attention sampler's recorded reference branch (the re-drag path: the reference
  denoised once, each edit alone): within 1e-4 of the [reference, edited] batch, half the rows
  on the second edit.
- EasyDrag's fast path with the UNet in fp16 or bf16, as on a GPU, against the plain float32 path
  (narrow SD 1.5-structured UNet, 40 steps; CPU fp16 kernels make the structure UNet take minutes):
  the same handle trajectory; the latent within 0.1 (fp16, measured 0.049) or 0.6 (bf16, measured
  0.43, mean 0.043) of it. Adam moves each element by up to lr per step whatever the gradient's size,
  so 40 steps at lr 0.01 bound any two runs at 0.8: bf16's 8-bit mantissa flips the sign of small
  gradient entries now and then, and the latent itself stays float32.
"""

import pytest
import torch

from harness.checkpoints import STRUCTURE_UNET, narrow_sd15_patcher
from test_precision import CONTEXT, smooth_latent

STRUCTURE_CONTEXT = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(2)) * 0.5
SIZE = 128


def gradient_denoiser(dtype=torch.float32, unet=STRUCTURE_UNET):
    patcher, _ = narrow_sd15_patcher(seed=5, dtype=dtype, unet=unet)
    from dragkit.nodes import host

    with host.gradients():
        denoiser = host.ComfyDenoiser(patcher, for_gradients=True)
        denoiser.load_for_gradients()
    return denoiser


def test_features_only_stops_after_the_last_tap_with_the_same_features_and_gradients():
    denoiser = gradient_denoiser()
    from dragkit.core.passes import CountingDenoiser
    from dragkit.nodes import host

    taps = (1, 2)
    results = {}
    with host.gradients():
        for features_only in (False, True):
            x = smooth_latent().requires_grad_(True)
            prediction = denoiser.predict(x, 681, STRUCTURE_CONTEXT, taps, features_only=features_only)
            loss = sum((f.float() ** 2).mean() for f in prediction.features.values())
            (gradient,) = torch.autograd.grad(loss, x)
            results[features_only] = prediction, gradient
    (whole, whole_gradient), (stopped, stopped_gradient) = results[False], results[True]
    assert whole.eps is not None and stopped.eps is None
    for tap in taps:
        assert torch.equal(stopped.features[tap], whole.features[tap])
    assert torch.equal(stopped_gradient, whole_gradient)
    # The last decoder stage has no later patch point: asked for, the whole UNet runs.
    assert denoiser.predict(smooth_latent(), 681, STRUCTURE_CONTEXT, (3,), features_only=True).eps is not None
    # A clone for inference (under Dynamic VRAM its weights stream per op) always runs whole.
    patcher = denoiser.patcher
    inference = host.ComfyDenoiser(patcher)
    with torch.inference_mode():
        assert CountingDenoiser(inference).predict(smooth_latent(), 681, STRUCTURE_CONTEXT, taps, True).eps is not None


def easydrag_run(denoiser, context, reuse_reference_pass: bool, iterations: int):
    from dragkit.core.drag import DragSpec
    from dragkit.core.inversion import invert
    from dragkit.core.methods import easydrag
    from dragkit.core.passes import CountingDenoiser
    from dragkit.core.schedule import ddim_schedule
    from dragkit.nodes import host

    spec = DragSpec(SIZE, SIZE, ((SIZE * 0.3, SIZE * 0.5),), ((SIZE * 0.6, SIZE * 0.5),))
    settings = easydrag.EasyDragSettings(max_iterations=iterations, reuse_reference_pass=reuse_reference_pass)
    handles = []
    with host.gradients():
        inversion = invert(denoiser, smooth_latent(), context, ddim_schedule(denoiser.alphas_cumprod, 50), 0.7)
        counting = CountingDenoiser(denoiser)
        result = easydrag.optimise(counting, inversion, spec, context, settings,
                                   on_step=lambda _done, _total, points, **_: handles.append(points))
    return result, handles, counting.passes


def moved(handles) -> bool:
    """Whether the handle trajectory changes at all (else comparing two shows nothing)."""
    return len(set(handles)) > 1


def test_easydrag_reusing_the_reference_pass_follows_the_plain_path_with_half_the_rows():
    denoiser = gradient_denoiser()
    steps = 20
    plain, plain_handles, plain_passes = easydrag_run(denoiser, STRUCTURE_CONTEXT, False, steps)
    fast, fast_handles, fast_passes = easydrag_run(denoiser, STRUCTURE_CONTEXT, True, steps)

    assert len(plain.losses) == steps and moved(plain_handles)
    assert fast_handles == plain_handles
    torch.testing.assert_close(torch.tensor(fast.losses), torch.tensor(plain.losses), rtol=1e-5, atol=0)
    assert (fast.latent - plain.latent).abs().max() < 1e-4
    assert (plain_passes.forward_rows, fast_passes.forward_rows) == (1 + 2 * steps, 1 + steps)
    assert fast_passes.backward_rows * 2 == plain_passes.backward_rows


@pytest.fixture(scope="module")
def plain_narrow_float32():
    from harness.checkpoints import NARROW_SD15_UNET

    return easydrag_run(gradient_denoiser(unet=NARROW_SD15_UNET), CONTEXT, False, 40)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 0.1), (torch.bfloat16, 0.6)], ids=str)
def test_easydrag_fast_path_in_low_precision_follows_the_plain_float32_path(dtype, tolerance, plain_narrow_float32):
    from harness.checkpoints import NARROW_SD15_UNET

    plain, plain_handles, _ = plain_narrow_float32
    fast, fast_handles, _ = easydrag_run(gradient_denoiser(dtype, NARROW_SD15_UNET), CONTEXT, True, 40)
    assert fast.latent.dtype == torch.float32 and torch.isfinite(fast.latent).all()
    assert moved(plain_handles) and fast_handles == plain_handles
    assert (fast.latent - plain.latent).abs().max() < tolerance


def test_mutual_attention_sampling_from_a_recording_follows_the_pair_batch():
    """The sampler's re-drag path: the reference branch recorded once, then each edit alone."""
    denoiser = gradient_denoiser()
    from dragkit.core.attention import MutualSelfAttention, RecordedReference
    from dragkit.core.inversion import invert
    from dragkit.core.passes import CountingDenoiser
    from dragkit.core.sampling import mutual_attention_sample
    from dragkit.core.schedule import ddim_schedule

    schedule = ddim_schedule(denoiser.alphas_cumprod, 20)
    with torch.no_grad():
        inversion = invert(denoiser, smooth_latent(), STRUCTURE_CONTEXT, schedule, 0.7)
    reference, index = inversion.latent, inversion.start_index
    recorded = RecordedReference(MutualSelfAttention(schedule.timesteps, first_step=index))
    counting = CountingDenoiser(denoiser)
    for seed in (3, 4):  # the first edit records, the second (a re-drag) reads the recording
        edited = reference + 0.3 * smooth_latent(seed=seed)
        pair = mutual_attention_sample(denoiser, reference, edited, STRUCTURE_CONTEXT, schedule, index,
                                       MutualSelfAttention(schedule.timesteps, first_step=index))
        counting.passes.forward_rows = 0
        alone = mutual_attention_sample(counting, reference, edited, STRUCTURE_CONTEXT, schedule, index,
                                        recorded)
        assert (alone - pair).abs().max() < 1e-4, (seed, (alone - pair).abs().max())
        assert not torch.allclose(alone, mutual_attention_sample(denoiser, edited, edited, STRUCTURE_CONTEXT, schedule,
                                                                 index, recorded.policy), atol=1e-3)
        steps = len(schedule.timesteps) - index
        assert counting.passes.forward_rows == (2 * steps if seed == 3 else steps)
