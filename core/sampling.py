"""The denoising loops: plain DDIM, DDIM of [reference, edited] under mutual self-attention, and
EasyDrag's reference-guided DDIM."""

from __future__ import annotations

import torch

from .attention import MutualSelfAttention
from .denoiser import AttentionHook, Denoiser
from .inversion import Inversion, StepCallback
from .schedule import DDIMSchedule


def sample(
    denoiser: Denoiser,
    latent: torch.Tensor,
    cond: torch.Tensor,
    schedule: DDIMSchedule,
    start_index: int,
    on_step: StepCallback | None = None,
    hook: AttentionHook | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0, no CFG) from level timesteps[start_index] to the clean latent.

    `hook`, when given, handles every self-attention of every UNet call."""
    if not 0 <= start_index < len(schedule.timesteps):
        raise ValueError(f"start_index must be in [0, {len(schedule.timesteps)}), got {start_index}")
    timesteps = schedule.timesteps[start_index:]
    x = latent
    with torch.no_grad(), denoiser.attention_hook(hook):
        for done, t in enumerate(timesteps, start=1):
            x = schedule.step(x, denoiser.predict(x, t, cond).eps, t)
            if on_step is not None:
                on_step(done, len(timesteps))
    return x


def mutual_attention_sample(
    denoiser: Denoiser,
    reference_latent: torch.Tensor,
    edited_latent: torch.Tensor,
    cond: torch.Tensor,
    schedule: DDIMSchedule,
    start_index: int,
    policy: MutualSelfAttention,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """The edited latent [1, 4, h, w] at level timesteps[start_index], denoised to x_0 beside its reference.

    The reference is the inverted, unedited latent, denoised again with the same model rather than
    read from the stored trajectory (dragdiffusion.md §3.8). Both go through the UNet as the batch
    [reference, edited] so that `policy` can give the edited row the reference row's keys and values
    (a `GuidedDenoiser` doubles it into the [uncond pair, cond pair] the policy also handles).
    """
    if reference_latent.shape != edited_latent.shape or reference_latent.shape[0] != 1:
        raise ValueError(
            "reference and edited latents must both be one latent of the same shape, got "
            f"{tuple(reference_latent.shape)} and {tuple(edited_latent.shape)}"
        )
    batch = torch.cat([reference_latent, edited_latent])
    denoised = sample(denoiser, batch, cond, schedule, start_index, on_step, hook=policy)
    return denoised[1:]


def reference_guided_sample(
    denoiser: Denoiser,
    edited_latent: torch.Tensor,
    inversion: Inversion,
    cond: torch.Tensor,
    start_index: int,
    policy: MutualSelfAttention,
    weight: float = 4.0,
    reference_from: int = 20,
    timestep_consistent: bool = False,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """EasyDrag's sampling (easydrag.md §4.9): DDIM of the edited latent [1, 4, h, w] from level
    schedule.timesteps[start_index]; in the last `reference_from` steps (ascending index i below it)
    ε = ε_plain + w·(ε_ref − ε_plain), where ε_ref comes from the pair [reference, edited] under
    `policy`, the reference being the STORED inversion latent L[i] (the code's, one level cleaner)
    or L[i+1] (the same level). w = 1 is plain mutual self-attention on stored latents.

    One plain pass per step, plus one pair pass on guided steps (the code's second, identical
    plain pass when the negative prompt equals the prompt is not made)."""
    schedule = inversion.schedule
    timesteps = schedule.timesteps[start_index:]
    x = edited_latent
    with torch.no_grad():
        for done, t in enumerate(timesteps, start=1):
            eps = denoiser.predict(x, t, cond).eps
            i = len(schedule.timesteps) - start_index - done  # ascending DDIM index of level t
            if i < reference_from:
                reference = inversion.trajectory[i + 1 if timestep_consistent else i]
                with denoiser.attention_hook(policy):
                    guided = denoiser.predict(torch.cat([reference, x]), t, cond).eps[1:]
                eps = eps + weight * (guided - eps)
            x = schedule.step(x, eps, t)
            if on_step is not None:
                on_step(done, len(timesteps))
    return x
