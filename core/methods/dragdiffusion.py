"""DragDiffusion's latent optimisation (reference/dragdiffusion.md §3.4–3.7).

Adam on the inverted latent z_t at one timestep. Each iteration: one UNet pass; from the second
iteration on, track the handles on its features; stop once every handle is within reach; motion
supervision (current features, detached, pulled one grid pixel toward the target) plus λ·L1 of the
one-step prediction ẑ_{t−1} outside the editable mask; one Adam step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..families import DEFAULT_FAMILY
from ..denoiser import Denoiser
from ..drag import DragSpec
from ..inversion import Inversion
from ..motion import (
    DragStepCallback,
    FeatureGrid,
    FeatureProbe,
    MotionRule,
    StepLog,
    feature_vectors,
    gradient_step,
    keep_mask,
    motion_loss,
    outside_mask_loss,
    reached,
    track_points,
)
from .recipe import MUTUAL_ATTENTION, InversionPreset, Recipe
from . import BUDGET, REACHED, DragResult


@dataclass(frozen=True)
class DragDiffusionSettings:
    """The official code's values (dragdiffusion.md §4); lengths are in feature-grid pixels."""

    learning_rate: float = 0.01  # Adam on z_t, default betas (§3.5)
    max_iterations: int = 80  # n_pix_step (§3.6)
    feature_block: int = DEFAULT_FAMILY.block("motion")  # SD 1.5: diffusers up_blocks[2]: the code's unet_feature_idx 3 counts the mid-block first (§3.4)
    feature_scale: float = 0.5  # features, points and radii at half the image size (§3.4)
    patch_radius: int = 1  # r1: 3×3 motion-supervision patch (§3.5)
    step: float = 1.0  # unit step along the direction to the target (§3.5)
    track_radius: int = 3  # r2: 7×7 tracking window (§3.6)
    reach_distance: float = 2.0  # pairs this close are not supervised; all this close stops (§3.6)
    mask_weight: float = 0.1  # λ of the outside-mask term (§3.5)
    # Code: (2r1+1)² · mean over channels and patch, i.e. a channel MEAN per position (§3.5, §5.2).
    # The paper's per-position L1 norm sums over channels (C = 640 times larger): set True.
    sum_feature_loss: bool = False

    @classmethod
    def paper(cls) -> DragDiffusionSettings:
        """The paper's loss normalisation (dragdiffusion.md §3.5 [P*]); every other value is shared."""
        return replace(cls(), sum_feature_loss=True)

    def motion_rule(self) -> MotionRule:
        return MotionRule(
            radius=self.patch_radius,
            step=self.step,
            clamp_step=False,
            skip_below=self.reach_distance,
            scale=None if self.sum_feature_loss else float((2 * self.patch_radius + 1) ** 2),
        )


def optimise(
    denoiser: Denoiser,
    inversion: Inversion,
    spec: DragSpec,
    cond: torch.Tensor,
    settings: DragDiffusionSettings = DragDiffusionSettings(),
    on_step: DragStepCallback | None = None,
) -> DragResult:
    """Optimise the inverted latent at schedule.timesteps[inversion.start_index]; sampling continues there.

    Call it outside inference mode: it builds an autograd graph through the denoiser."""
    schedule, index = inversion.schedule, inversion.start_index
    t = schedule.timesteps[index]
    start = inversion.latent
    grid = FeatureGrid.scaled(spec.width, spec.height, settings.feature_scale)
    probe = FeatureProbe(denoiser, schedule, cond, settings.feature_block, grid)
    keep = keep_mask(spec.editable_mask(), grid, start.shape[-2:]).to(start.device)
    handles = grid.to_grid(spec.handles, start.device)
    targets = grid.to_grid(spec.targets, start.device)
    rule = settings.motion_rule()
    log = StepLog(settings.max_iterations, grid, on_step)

    with torch.enable_grad():
        z = start.detach().clone().float().requires_grad_(True)
        adam = torch.optim.Adam([z], lr=settings.learning_rate)
        unedited = anchors = None
        stop_reason = BUDGET
        for _ in range(settings.max_iterations):
            seen = probe(z, t)
            if unedited is None:
                # The first pass sees the unedited latent: its features (tracking) and ẑ⁰_{t−1}
                # (mask term) are the references, so they cost no extra UNet pass.
                unedited = seen.detached()
                anchors = feature_vectors(unedited.features, handles)
            else:
                handles = track_points(seen.features.detach(), handles, anchors, settings.track_radius)
            if reached(handles, targets, settings.reach_distance):
                stop_reason = REACHED
                break
            loss = motion_loss(seen.features, handles, targets, rule) + outside_mask_loss(
                seen.previous, unedited.previous, keep, settings.mask_weight
            )
            gradient_step(adam, loss)
            log.record(loss, handles)

    return log.result(z, start, index, handles, stop_reason)


# dragdiffusion.md §3.2 (LoRA 80), §3.3 (strength 0.7); mutual-attention sampling §3.8
RECIPE = Recipe(
    name="DragDiffusion",
    key="dragdiffusion",
    node_id="DragKitDragDiffusion",
    settings=DragDiffusionSettings,
    optimise=optimise,
    lora_steps=80,
    inversion=InversionPreset("DragDiffusion", 0.7),
    sampler=MUTUAL_ATTENTION,
)
