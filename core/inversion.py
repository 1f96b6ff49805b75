"""DDIM inversion of a clean latent up to the timestep an edit starts from (dragdiffusion.md §3.3).

As in the papers' code (`inv_step`), the step up to level t evaluates ε at the destination t on
the latent that is still at the level below, uses the text conditioning only (CFG 1.0), and runs
only the round(strength · steps) steps the edit will later denoise through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .denoiser import Denoiser
from .schedule import DDIMSchedule

# on_step(done, total): called after each step with the number of steps done so far. The nodes
# report progress and check for cancellation in it; whatever it raises stops the loop.
StepCallback = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class Inversion:
    """A DDIM inversion and the part of the schedule an edit of it denoises through.

    `timesteps` are the schedule's timesteps from `start_index` on, descending (SD 1.5, 50 steps,
    strength 0.7: 681, 661, …, 1). `latent` sits at level timesteps[0].
    `trajectory` runs upward from the clean `source` to `latent`, one entry per level:
    trajectory[0] is `source` and trajectory[-1 - j] sits at level timesteps[j], so
    trajectory[-1] is `latent`; `latent_at(j)` reads it that way.
    """

    latent: torch.Tensor
    trajectory: tuple[torch.Tensor, ...]
    timesteps: tuple[int, ...]
    start_index: int
    source: torch.Tensor
    schedule: DDIMSchedule

    def latent_at(self, step: int) -> torch.Tensor:
        """The inversion's latent at level timesteps[step]."""
        return self.trajectory[-1 - step]


def invert(
    denoiser: Denoiser,
    latent: torch.Tensor,
    cond: torch.Tensor,
    schedule: DDIMSchedule,
    strength: float,
    on_step: StepCallback | None = None,
) -> Inversion:
    """Invert the clean `latent` (DDPM-scaled) over the last round(strength · steps) steps of `schedule`."""
    start_index = schedule.start_index(strength)
    timesteps = schedule.timesteps[start_index:]
    x = latent
    trajectory = [x]
    with torch.no_grad():
        for done, t in enumerate(reversed(timesteps), start=1):
            x = schedule.invert_step(x, denoiser.predict(x, t, cond).eps, t)
            trajectory.append(x)
            if on_step is not None:
                on_step(done, len(timesteps))
    return Inversion(
        latent=x,
        trajectory=tuple(trajectory),
        timesteps=timesteps,
        start_index=start_index,
        source=latent,
        schedule=schedule,
    )
