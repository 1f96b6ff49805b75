"""DragNeXt: Latent Region Optimization with Progressive Backward Self-Intervention
(reference/dragnext.md §1–3).

At each of the first `pbsi_timesteps` inverted timesteps: a fresh Adam and K iterations on the
latent; iteration (i, k) sends every handle region to its target at progress η(i, k) (§1.3) and
pulls the edited features there toward the unedited features of the region (F0 of the reference
trajectory at the same timestep, re-indexed by the warp), plus λ·|ẑ_{t−1} − ẑ⁰_{t−1}| outside the
editable mask; then one DDIM step. No point tracking: the regions say where things go. The
released code's GoodDrag point phase before the region loop is an option (`point_timesteps`).
Sampling goes on with mutual self-attention from the next timestep (layers 10–15).
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
    Observation,
    RegionError,
    StepLog,
    gradient_step,
    keep_mask,
    outside_mask_loss,
)
from ..regions import RegionMotion, Warp, check_regions, region_motions
from .recipe import MUTUAL_ATTENTION, InversionPreset, Recipe
from . import BUDGET, REACHED, DragResult
from .gooddrag import AlternatingDrag, GoodDragSettings

# η(i, k) at iteration k of PBSI timestep i: code = a ramp over `ramp_timesteps`, then 1 (reaches the
# target); paper = Eq. 5 read literally (never reaches 1); final = "w/o intermediate states" (§1.3, §7).
ETA_MODES = ("code", "paper", "final")


@dataclass(frozen=True)
class DragNeXtSettings:
    """The spec's defaults (dragnext.md §4, §9): the paper's pure region method on the code's
    schedule; lengths in feature-grid pixels (half the image size)."""

    learning_rate: float = 0.02  # Adam, a new one per PBSI timestep (§2.4)
    iterations: int = 10  # K per PBSI timestep
    pbsi_timesteps: int = 5  # 741 … 661 from strength 0.75 of 50 (§3.3)
    ramp_timesteps: int = 3  # S: η reaches 1 at the end of the third timestep (code's drag_end_step)
    eta_mode: str = "code"
    feature_block: int = DEFAULT_FAMILY.block("motion")  # SD 1.5: up_blocks[2], the code's feature_idx 3 (§2.2); the paper concatenates all stages
    feature_scale: float = 0.5
    feature_weight: float = 10.0  # w_f · mean L1 (§2.3)
    mask_weight: float = 0.2  # λ of R_M, a sum-L1 (§2.3)
    mask_term_per_region: bool = False  # the code adds R_M once per region (n·λ); here once
    angle_step: float = 2.0  # degrees; the progressive angle is rounded to multiples of it (§1.2)
    fallback_radius: float = 4.0  # a pair without a painted region moves the disc of this radius
    point_timesteps: int = 0  # code parity: GoodDrag's point phase at the first 3 timesteps (§3.5)

    @classmethod
    def code(cls) -> DragNeXtSettings:
        """The released code: its point phase at the first three timesteps and R_M per region."""
        return replace(cls(), point_timesteps=3, mask_term_per_region=True)

    def eta(self, timestep_index: int, iteration: int) -> float:
        k, total = self.iterations, self.iterations * timestep_index + iteration
        if self.eta_mode == "code":
            return min(1.0, (total + 1) / (k * self.ramp_timesteps))
        if self.eta_mode == "paper":
            return total / (k * (self.pbsi_timesteps + 1))
        if self.eta_mode == "final":
            return 1.0
        raise ValueError(f"eta_mode: {self.eta_mode!r} is not one of {', '.join(ETA_MODES)}")

    def point_settings(self) -> GoodDragSettings:
        """The point phase (§3.5): GoodDrag's UI values with this method's learning rate and λ."""
        return replace(GoodDragSettings(), learning_rate=self.learning_rate, mask_weight=self.mask_weight,
                       feature_block=self.feature_block, feature_scale=self.feature_scale)


def check_drag(spec: DragSpec, settings: DragNeXtSettings = DragNeXtSettings()) -> None:
    """Raises DragSpecError naming the pair when a painted region cannot be moved on this method's
    feature grid: what the Editor checks when a prompt is queued (optimise refuses the same)."""
    check_regions(spec, FeatureGrid.scaled(spec.width, spec.height, settings.feature_scale), settings.angle_step)


def region_loss(features: torch.Tensor, reference: torch.Tensor, warp: Warp, weight: float) -> torch.Tensor:
    """w_f · mean over channels and target pixels of |F1[ρ] − sg(F0[Π⁻¹ρ])|."""
    moved = features[0].flatten(1)[:, warp.target]
    fixed = reference[0].flatten(1)[:, warp.source].detach()
    return weight * (moved - fixed).abs().mean()


def optimise(
    denoiser: Denoiser,
    inversion: Inversion,
    spec: DragSpec,
    cond: torch.Tensor,
    settings: DragNeXtSettings = DragNeXtSettings(),
    on_step: DragStepCallback | None = None,
) -> DragResult:
    """PBSI from the inversion's timestep; the result sits after the last PBSI timestep's DDIM step.

    `region_errors` holds each pair's region error at its final target (η = 1) on the last PBSI
    timestep, of the unedited latent ("pair i region error before") and the edited one ("… after").
    Call it outside inference mode."""
    grid = FeatureGrid.scaled(spec.width, spec.height, settings.feature_scale)
    motions = region_motions(spec, grid, settings.fallback_radius, settings.angle_step)  # refuses bad regions first
    probe = FeatureProbe(denoiser, inversion.schedule, cond, settings.feature_block, grid)
    timesteps = inversion.timesteps[: settings.pbsi_timesteps]
    point_steps = min(settings.point_timesteps, len(timesteps)) * 30  # at most 10 tracks of 3 steps each
    log = StepLog(len(timesteps) * settings.iterations + point_steps, grid, on_step)
    keep = keep_mask(spec.editable_mask(), grid, inversion.latent.shape[-2:]).to(inversion.latent.device)
    lro = _RegionOptimisation(settings, probe, motions, keep, log)
    points = None
    if settings.point_timesteps:
        points = AlternatingDrag(spec, settings.point_settings(), probe, inversion.latent, log)

    edited = unedited = inversion.latent.detach().float()
    region_errors = ()
    with torch.enable_grad():
        for i, t in enumerate(timesteps):
            with torch.no_grad():
                reference = probe(unedited, t)
            z = edited
            if points is not None and i < settings.point_timesteps:
                points.handles = points.originals  # the code's RecInp hands back the initial handles
                z = points.at_timestep(z, t, reference)
            z = lro.at_timestep(z, t, i, reference)
            with torch.no_grad():
                seen = probe(z, t)  # its ẑ_{t−1} is the plain DDIM step
            edited, unedited = seen.previous, reference.previous
            if i == len(timesteps) - 1:
                region_errors = lro.final_errors(seen, reference)
    final_eta = settings.eta(len(timesteps) - 1, settings.iterations - 1) if len(timesteps) else 0.0
    handles = torch.tensor([m.handle_at(final_eta) for m in motions], dtype=torch.float32)
    dtype = inversion.latent.dtype
    return DragResult(
        latent=edited.to(dtype),
        reference_latent=unedited.to(dtype),
        index=inversion.start_index + len(timesteps),
        handles=grid.to_image(handles),
        losses=tuple(log.losses),
        stop_reason=REACHED if final_eta >= 1.0 else BUDGET,
        region_errors=region_errors,
    )


class _RegionOptimisation:
    """K Adam iterations of L_LRO at one timestep, each region at its progressive target."""

    def __init__(self, settings: DragNeXtSettings, probe: FeatureProbe, motions: tuple[RegionMotion, ...],
                 keep: torch.Tensor, log: StepLog) -> None:
        self.settings, self.probe, self.motions, self.log = settings, probe, motions, log
        self.keep = keep

    def warps(self, eta: float) -> list[Warp]:
        warps = (motion.warp_at(eta) for motion in self.motions)
        return [warp for warp in warps if warp is not None and warp.target.numel()]

    def at_timestep(self, z: torch.Tensor, t: int, timestep_index: int, reference: Observation) -> torch.Tensor:
        settings = self.settings
        z = z.detach().clone().requires_grad_(True)
        adam = torch.optim.Adam([z], lr=settings.learning_rate)
        for k in range(settings.iterations):
            eta = settings.eta(timestep_index, k)
            warps = self.warps(eta)
            loss = None
            if warps:  # the code skips an iteration with nothing to move (every shift under a pixel)
                seen = self.probe(z, t)
                loss = sum(region_loss(seen.features, reference.features, w, settings.feature_weight) for w in warps)
                copies = len(warps) if settings.mask_term_per_region else 1
                loss = loss + copies * outside_mask_loss(seen.previous, reference.previous, self.keep, settings.mask_weight)
                gradient_step(adam, loss)
            self.log.record(loss, self._handles(eta), self._targets(warps))
        return z.detach()

    def final_errors(self, seen: Observation, reference: Observation) -> tuple[RegionError, ...]:
        """Each pair's region error at η = 1, of the unedited ("before") and the edited ("after")
        features at one timestep; pairs whose region does not move are left out."""
        weight = self.settings.feature_weight
        errors = []
        for pair, motion in enumerate(self.motions, start=1):
            warp = motion.warp_at(1.0)
            if warp is None or not warp.target.numel():
                continue
            before, after = (float(region_loss(f, reference.features, warp, weight)) for f in (reference.features, seen.features))
            errors.append(RegionError(pair, before, after))
        return tuple(errors)

    def _handles(self, eta: float) -> torch.Tensor:
        return torch.tensor([motion.handle_at(eta) for motion in self.motions], dtype=torch.float32)

    def _targets(self, warps: list[Warp]) -> torch.Tensor:
        size = self.probe.grid.size
        union = torch.zeros(size, dtype=torch.bool)
        for warp in warps:
            union |= warp.target_mask(size).cpu()
        return union


# dragnext.md §3.2: trains and inverts as GoodDrag
RECIPE = Recipe(
    name="DragNeXt",
    key="dragnext",
    node_id="DragKitDragNeXt",
    settings=DragNeXtSettings,
    optimise=optimise,
    lora_steps=70,
    inversion=InversionPreset("GoodDrag / DragNeXt", 0.75),
    sampler=MUTUAL_ATTENTION,
)
