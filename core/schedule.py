"""DDIM timesteps and updates from a model's own ᾱ (diffusers' DDIMScheduler does the spacing).

The papers' code uses DDIMScheduler(scaled_linear 0.00085–0.012, clip_sample=False,
set_alpha_to_one=False, steps_offset=1): with 50 steps the timesteps are 981, 961, …, 1 and below
t = 1 the scheduler uses ᾱ_0 = 0.99915. We give diffusers the betas that reproduce the model's
ᾱ, so any ε-model's schedule is followed, and SD 1.5 gives exactly those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DDIMSchedule:
    timesteps: tuple[int, ...]  # descending, e.g. (981, 961, …, 1)
    alphas_cumprod: torch.Tensor  # ᾱ_t for every training timestep, float64
    final_alpha_cumprod: float  # ᾱ used for the level below the last timestep

    @property
    def stride(self) -> int:
        return len(self.alphas_cumprod) // len(self.timesteps)

    def alpha(self, t: int) -> float:
        """ᾱ at level t; levels below 0 use the final ᾱ, as DDIMScheduler does."""
        return float(self.alphas_cumprod[t]) if t >= 0 else self.final_alpha_cumprod

    def previous(self, t: int) -> int:
        """The next lower level DDIM steps to from t (may be negative at the end)."""
        return t - self.stride

    def start_index(self, strength: float) -> int:
        """Index into `timesteps` at which an edit with this inversion strength starts.

        strength 0.7 of 50 steps inverts round(0.7·50) = 35 steps: SD 1.5 starts at t = 681."""
        if not 0 < strength <= 1:
            raise ValueError(f"inversion strength must be in (0, 1], got {strength}")
        steps = round(strength * len(self.timesteps))
        if steps < 1:
            raise ValueError(
                f"inversion strength {strength} of {len(self.timesteps)} steps inverts no step; "
                f"use at least {1 / len(self.timesteps):.3g}"
            )
        return len(self.timesteps) - steps

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        a = self.alpha(t)
        return (x_t - (1 - a) ** 0.5 * eps) / a**0.5

    def step(self, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """Deterministic DDIM (η = 0) from level t to `previous(t)`."""
        a_prev = self.alpha(self.previous(t))
        return a_prev**0.5 * self.predict_x0(x_t, eps, t) + (1 - a_prev) ** 0.5 * eps

    def invert_step(self, x: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """DDIM inversion from level `previous(t)` up to t, with ε evaluated at t (DragDiffusion's rule)."""
        a_from, a_to = self.alpha(self.previous(t)), self.alpha(t)
        x0 = (x - (1 - a_from) ** 0.5 * eps) / a_from**0.5
        return a_to**0.5 * x0 + (1 - a_to) ** 0.5 * eps


class ScheduleError(ValueError):
    """The model's noise schedule cannot be a DDPM schedule; the message says what is wrong."""


def check_alphas(alphas_cumprod: torch.Tensor) -> None:
    """ᾱ must be finite, in (0, 1] and strictly decreasing, as every DDPM-trained model's is. Anything
    else means the model's sampling object was replaced or changed (e.g. by another node)."""
    acp = alphas_cumprod.detach().to("cpu", torch.float64)
    what = None
    if acp.ndim != 1 or len(acp) < 2:
        what = f"has {acp.numel()} values"
    elif not torch.isfinite(acp).all():
        what = f"has non-finite values (first at t = {int((~torch.isfinite(acp)).nonzero()[0])})"
    elif not ((acp > 0) & (acp <= 1)).all():
        what = f"leaves (0, 1] (from {float(acp.min()):.3g} to {float(acp.max()):.3g})"
    elif not (acp[1:] < acp[:-1]).all():
        what = f"is not decreasing (first at t = {int((acp[1:] >= acp[:-1]).nonzero()[0]) + 1})"
    if what is not None:
        raise ScheduleError(
            f"model: its noise schedule (ᾱ over {acp.numel()} timesteps) {what}, so DDIM cannot run on it. Another node "
            "may have changed the model's sampling settings (e.g. ModelSamplingDiscrete with other values); connect "
            "the checkpoint loader's MODEL, or reload the checkpoint")


def ddim_schedule(alphas_cumprod: torch.Tensor, steps: int) -> DDIMSchedule:
    """The DDIM schedule the papers use, for a model with these ᾱ."""
    from diffusers import DDIMScheduler  # heavy import, only when a schedule is built

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    acp = alphas_cumprod.detach().to("cpu", torch.float64)
    check_alphas(acp)
    previous = torch.cat([acp.new_ones(1), acp[:-1]])
    betas = 1 - acp / previous
    scheduler = DDIMScheduler(
        num_train_timesteps=len(acp),
        trained_betas=betas.tolist(),
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )
    scheduler.set_timesteps(steps)
    return DDIMSchedule(
        timesteps=tuple(int(t) for t in scheduler.timesteps),
        alphas_cumprod=acp,
        final_alpha_cumprod=float(acp[0]),
    )
