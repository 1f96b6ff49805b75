"""Drag methods: one module per paper, each with a frozen `...Settings` and `optimise() -> DragResult`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..motion import Point

# Why a drag stopped: every handle within the reach distance of its target, GoodDrag's
# no-progress rule, or the iteration budget / drag timesteps ran out.
REACHED, STALLED, BUDGET = "reached", "stalled", "budget"


@dataclass(frozen=True, eq=False)
class DragResult:
    """An optimised latent, ready for the sampler to continue from schedule.timesteps[index]."""

    latent: torch.Tensor  # the edited latent at level schedule.timesteps[index]
    reference_latent: torch.Tensor  # the unedited latent at that same level (mutual-attention source)
    index: int  # position in the schedule's timesteps where sampling continues (len(timesteps): none left)
    handles: tuple[Point, ...]  # final handle positions, image pixels (x, y)
    losses: tuple[float, ...]  # total loss of every gradient step, in order
    stop_reason: str  # REACHED, STALLED or BUDGET
