"""GoodDrag: Alternating Drag and Denoising with information-preserving motion supervision
(reference/gooddrag.md §3.4–3.9).

At each of the first `drag_timesteps` timesteps of the inversion: a fresh Adam; re-localise the
handles; `tracks_per_timestep` drag operations, each `steps_per_track` gradient steps followed by
one tracking; then one DDIM step of the edited latent. The reference branch (the inverted latent,
denoised again with plain DDIM) gives, once per timestep, the original handle features F0[t] (the
IP loss and the tracking follow them) and ẑ⁰_{t−1} (the mask term's target).
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
    Observation,
    StepLog,
    count_stalls,
    feature_vectors,
    gradient_step,
    keep_mask,
    motion_loss,
    outside_mask_loss,
    reached,
    track_points,
)
from .recipe import MUTUAL_ATTENTION, InversionPreset, Recipe
from . import BUDGET, REACHED, STALLED, DragResult


@dataclass(frozen=True)
class GoodDragSettings:
    """The official UI's values (gooddrag.md §4, which the paper's §5.1 shares unless noted);
    lengths are in feature-grid pixels."""

    learning_rate: float = 0.02  # Adam, re-created at each drag timestep (§3.6; class default 0.01)
    drag_timesteps: int = 7  # K/B: drag at the first 7 inverted timesteps (§3.6)
    tracks_per_timestep: int = 10  # B drag operations per denoising step (§3.6)
    steps_per_track: int = 3  # J motion-supervision steps per tracking (§3.6, Eq. 9)
    feature_block: int = DEFAULT_FAMILY.block("motion")  # SD 1.5: up_blocks[2], the code's index 3 (§3.5); paper: "last layer", up_blocks[3]
    feature_scale: float = 0.5  # half the image size (§3.5); paper: the input image size, 1.0
    patch_radius: int = 4  # r1: 9×9 patch (§3.7)
    step: float = 4.0  # β (§3.7)
    clamp_step: bool = True  # code: min(β, distance) · unit; paper: β · unit (§7.2)
    track_radius: int = 12  # r2: 25×25 window (§3.8)
    reach_distance: float = 2.0  # pairs this close are not supervised; all this close stops (§3.9)
    mask_weight: float = 0.2  # λ (paper, UI); the benchmark script uses 0.1 (§4)
    max_unchanged_tracks: int | None = 10  # no-progress stop (UI 10, benchmark 5, paper none) (§3.9)
    retrack_each_timestep: bool = True  # code re-localises the handles after each denoise; paper does not (§3.8)
    # Code tracks on the features of the last gradient step's pass, before its update; the paper
    # tracks the updated latent, which costs one more UNet pass per tracking (§3.8, §8).
    track_after_update: bool = False
    # Code: (2r1)² · mean over channels and patch (64, not 81; §3.7); paper Eq. 8: plain L1 sum.
    sum_feature_loss: bool = False

    @classmethod
    def benchmark(cls) -> GoodDragSettings:
        """bench_gooddrag.py, the Drag100 runner: λ 0.1 and early stop after 5 (gooddrag.md §4)."""
        return replace(cls(), mask_weight=0.1, max_unchanged_tracks=5)

    @classmethod
    def paper(cls) -> GoodDragSettings:
        """The paper read literally (gooddrag.md §5.1, §8): the last decoder block at image size with
        r1, r2 and β as stated (now in image pixels), a fixed step, L1 sums, tracking after the
        update, no re-localisation and no early stop."""
        return replace(
            cls(),
            feature_block=3,
            feature_scale=1.0,
            clamp_step=False,
            max_unchanged_tracks=None,
            retrack_each_timestep=False,
            track_after_update=True,
            sum_feature_loss=True,
        )

    def motion_rule(self) -> MotionRule:
        return MotionRule(
            radius=self.patch_radius,
            step=self.step,
            clamp_step=self.clamp_step,
            skip_below=self.reach_distance,
            scale=None if self.sum_feature_loss else float((2 * self.patch_radius) ** 2),
        )


def optimise(
    denoiser: Denoiser,
    inversion: Inversion,
    spec: DragSpec,
    cond: torch.Tensor,
    settings: GoodDragSettings = GoodDragSettings(),
    on_step: DragStepCallback | None = None,
) -> DragResult:
    """AlDD from the inversion's timestep; the result sits after the last drag timestep's denoising step.

    When dragging stops early the timestep it stopped at is still denoised, as in the code (so
    mutual attention starts at the next one). Call it outside inference mode."""
    grid = FeatureGrid.scaled(spec.width, spec.height, settings.feature_scale)
    probe = FeatureProbe(denoiser, inversion.schedule, cond, settings.feature_block, grid)
    drag_timesteps = min(settings.drag_timesteps, len(inversion.timesteps))
    total = drag_timesteps * settings.tracks_per_timestep * settings.steps_per_track
    drag = AlternatingDrag(spec, settings, probe, inversion.latent, StepLog(total, grid, on_step))

    edited = unedited = inversion.latent.detach().float()
    index = inversion.start_index
    with torch.enable_grad():
        for t in inversion.timesteps[:drag_timesteps]:
            with torch.no_grad():
                reference = probe(unedited, t)
            edited = probe.denoise(drag.at_timestep(edited, t, reference), t)
            unedited = reference.previous
            index += 1
            if drag.stop_reason is not None:
                break
    dtype = inversion.latent.dtype
    return DragResult(
        latent=edited.to(dtype),
        reference_latent=unedited.to(dtype),
        index=index,
        handles=grid.to_image(drag.handles),
        losses=tuple(drag.log.losses),
        stop_reason=drag.final_stop_reason(),
    )


class AlternatingDrag:
    """The drag state that runs across timesteps: handles, the no-progress counter, the stop.
    DragNeXt's code-parity point phase runs it too."""

    def __init__(
        self, spec: DragSpec, settings: GoodDragSettings, probe: FeatureProbe, latent: torch.Tensor, log: StepLog
    ) -> None:
        self.settings = settings
        self.probe = probe
        self.log = log
        self.rule = settings.motion_rule()
        self.keep = keep_mask(spec.editable_mask(), probe.grid, latent.shape[-2:]).to(latent.device)
        self.originals = probe.grid.to_grid(spec.handles, latent.device)  # p⁰, fixed
        self.targets = probe.grid.to_grid(spec.targets, latent.device)
        self.handles = self.originals
        self.stalls = 0  # global across timesteps, as the code's counter
        self.stop_reason: str | None = None

    def at_timestep(self, z: torch.Tensor, t: int, reference: Observation) -> torch.Tensor:
        """B drag operations of J steps at t, or fewer when a stop rule fires; a fresh Adam each time."""
        settings = self.settings
        anchors = feature_vectors(reference.features, self.originals)
        z = z.detach().clone().requires_grad_(True)
        adam = torch.optim.Adam([z], lr=settings.learning_rate)
        steps = tracks = 0
        while tracks < settings.tracks_per_timestep:
            seen = self.probe(z, t)
            if steps == 0 and settings.retrack_each_timestep:
                self.handles = track_points(seen.features.detach(), self.handles, anchors, settings.track_radius)
            self.stop_reason = self._stop_rule()
            if self.stop_reason is not None:
                break
            loss = motion_loss(seen.features, self.handles, self.targets, self.rule, reference.features, self.originals)
            loss = loss + outside_mask_loss(seen.previous, reference.previous, self.keep, settings.mask_weight)
            gradient_step(adam, loss)
            steps += 1
            if steps % settings.steps_per_track == 0:
                self._track(self._tracking_features(seen, z, t), anchors)
                tracks += 1
            self.log.record(loss, self.handles)
        if self.stop_reason is None and self._stalled():
            # The official loop checks the no-progress counter before each timestep's drag: reached
            # at this timestep's last tracking, it drags no more (mutual attention from the next step).
            self.stop_reason = STALLED
        return z.detach()

    def final_stop_reason(self) -> str:
        return self.stop_reason or self._stop_rule() or BUDGET

    def _stop_rule(self) -> str | None:
        if reached(self.handles, self.targets, self.settings.reach_distance):
            return REACHED
        return STALLED if self._stalled() else None

    def _stalled(self) -> bool:
        limit = self.settings.max_unchanged_tracks
        return limit is not None and self.stalls >= limit

    def _tracking_features(self, seen: Observation, z: torch.Tensor, t: int) -> torch.Tensor:
        if not self.settings.track_after_update:
            return seen.features.detach()
        with torch.no_grad():
            return self.probe(z, t).features

    def _track(self, features: torch.Tensor, anchors: torch.Tensor) -> None:
        moved = track_points(features, self.handles, anchors, self.settings.track_radius)
        self.stalls = count_stalls(self.stalls, self.handles, moved)
        self.handles = moved


# gooddrag.md §3.2 (LoRA 70), §3.3 (strength 0.75)
RECIPE = Recipe(
    name="GoodDrag",
    key="gooddrag",
    node_id="DragKitGoodDrag",
    settings=GoodDragSettings,
    optimise=optimise,
    lora_steps=70,
    inversion=InversionPreset("GoodDrag / DragNeXt", 0.75),
    sampler=MUTUAL_ATTENTION,
)
