"""AdaptiveDrag's semantic-driven latent optimisation (reference/adaptivedrag.md §5).

DragDiffusion's loop on one timestep, with super-pixels in charge of the geometry: the radii follow
the size of the super-pixel under each handle (§5.2); motion supervision and tracking see only the
handle's super-pixel on the side facing the target (§5.3–5.5), so a handle never steps backwards;
λ·L1 of ẑ_{t−1} outside the mask keeps the background (§5.6); and the step budget grows while
handles stall, up to a cap, rejecting backward moves (§5.7, the paper's intent; the released code
runs a fixed 160 steps, `budget_mode="official"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..families import DEFAULT_FAMILY
from ..denoiser import Denoiser
from ..drag import DragSpec
from ..inversion import Inversion
from ..masks import facing_cells
from ..motion import (
    DragStepCallback,
    FeatureGrid,
    FeatureProbe,
    StepLog,
    distances,
    feature_vectors,
    gradient_step,
    keep_mask,
    outside_mask_loss,
    patch_inside,
    reached,
    sample_patches,
)
from .recipe import CLOSS, InversionPreset, Recipe
from . import BUDGET, REACHED, DragResult

BUDGET_MODES = ("adaptive", "official")


@dataclass(frozen=True)
class AdaptiveDragSettings:
    """The specification's choices (adaptivedrag.md §8); lengths in feature-grid pixels."""

    learning_rate: float = 0.01  # Adam on z_t (UI latent_lr)
    feature_block: int = DEFAULT_FAMILY.block("motion")  # SD 1.5: up_blocks[2] (the code's unet_feature_idx 3)
    feature_scale: float = 0.5  # sup_res = int(H/2) × int(W/2)
    initial_budget: int = 160  # n_init (the UI's n_pix_step)
    max_budget: int = 300  # n_max (paper §4.1; the code's inert max_step is 500)
    budget_mode: str = "adaptive"  # "official": exactly initial_budget steps, no direction check
    reach_distance: float = 2.0  # all handles this close: stop
    skip_below: float = 1.0  # pairs this close are not supervised (DragDiffusion: 2)
    mask_weight: float = 0.1  # λ of the background term
    superpixels: int = 200  # SLIC's n_segments: the semantic region's minimum area is grid / (4·n)


class Superpixels:
    """SLIC labels (image size, 1…N) and, per label, the distance from its centroid to the nearest
    other centroid (truncated to whole pixels, as the code's int())."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        count = int(labels.max())
        rows, cols = np.indices(labels.shape)
        area = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.float64)
        centroid = np.stack([np.bincount(labels.ravel(), weights=rows.ravel(), minlength=count + 1)[1:],
                             np.bincount(labels.ravel(), weights=cols.ravel(), minlength=count + 1)[1:]], axis=1)
        centroid /= np.maximum(area, 1)[:, None]
        gaps = np.linalg.norm(centroid[:, None] - centroid[None], axis=-1)
        gaps[np.arange(count), np.arange(count)] = np.inf
        gaps[:, area == 0] = np.inf  # labels SLIC did not use
        nearest = gaps.min(axis=1)
        # a lone super-pixel has no neighbour: its own side length stands in for the spacing
        self.nearest = np.where(np.isfinite(nearest), nearest, np.sqrt(area)).astype(np.int64)
        self._on_grid: dict[tuple[int, tuple[int, int]], torch.Tensor] = {}

    def label_at(self, grid: FeatureGrid, point: torch.Tensor) -> int:
        """The label under a grid point, read at its image pixel (the code's (2·row, 2·col))."""
        height, width = self.labels.shape
        row = min(max(int(round(float(point[0]) * grid.height / grid.rows)), 0), height - 1)
        col = min(max(int(round(float(point[1]) * grid.width / grid.cols)), 0), width - 1)
        return int(self.labels[row, col])

    def radii(self, label: int) -> tuple[int, int]:
        """(r_m, r_p) = (⌊D/7⌋, ⌊2D/5⌋), at least 1 (§5.2)."""
        gap = int(self.nearest[label - 1])
        return max(1, gap // 7), max(1, 2 * gap // 5)

    def on_grid(self, label: int, grid: FeatureGrid, device: torch.device) -> torch.Tensor:
        """The super-pixel as a bool map on the grid: its share of each cell ≥ 0.5 (OpenCV's linear
        resize of the 0/1 mask, which is the 2×2 mean for a half-size grid)."""
        key = (label, grid.size)
        if key not in self._on_grid:
            mask = torch.from_numpy((self.labels == label).astype(np.float32))[None, None]
            self._on_grid[key] = F.interpolate(mask, size=grid.size, mode="area")[0, 0] >= 0.5
        return self._on_grid[key].to(device)


def semantic_region(segment: torch.Tensor, point: torch.Tensor, target: torch.Tensor, radius: int,
                    minimum_area: int) -> torch.Tensor:
    """R = super-pixel ∩ half-plane facing the target; when that covers fewer than `minimum_area`
    cells, the half-disc of `radius` instead (§5.3). Bool map on the grid."""
    plane = facing_cells(segment.shape, point, target)
    region = segment & plane
    if int(region.sum()) >= minimum_area:
        return region
    rows = torch.arange(segment.shape[0], device=point.device, dtype=point.dtype)[:, None]
    cols = torch.arange(segment.shape[1], device=point.device, dtype=point.dtype)[None, :]
    return ((rows - point[0]) ** 2 + (cols - point[1]) ** 2 <= radius**2) & plane


def patch_of(region: torch.Tensor, centre: torch.Tensor, radius: int) -> torch.Tensor:
    """The (2r+1)² window of a grid map around an integer centre; off-map entries are False."""
    offsets = torch.arange(-radius, radius + 1, device=region.device)
    rows = int(centre[0]) + offsets
    cols = int(centre[1]) + offsets
    inside = ((rows >= 0) & (rows < region.shape[0]))[:, None] & ((cols >= 0) & (cols < region.shape[1]))[None, :]
    crop = region[rows.clamp(0, region.shape[0] - 1)[:, None], cols.clamp(0, region.shape[1] - 1)[None, :]]
    return crop & inside


def region_motion_loss(features: torch.Tensor, handle: torch.Tensor, target: torch.Tensor, radius: int,
                       region: torch.Tensor) -> torch.Tensor:
    """(2r+1)² · mean over channels and the clipped window of |M ⊙ (F(W + d) − sg(F(W)))|, d the unit
    step toward the target and M the semantic region (§5.4): the masked zeros count in the mean."""
    gap = target - handle
    moved = sample_patches(features, (handle + gap / gap.norm())[None], radius)
    fixed = sample_patches(features.detach(), handle[None], radius)
    window = patch_inside(handle[None], radius, features.shape[-2:])[0]
    counted = patch_of(region, handle, radius)
    error = ((moved - fixed).abs() * counted).sum()
    return (2 * radius + 1) ** 2 * error / (features.shape[1] * window.sum())


def track_in_region(features: torch.Tensor, handle: torch.Tensor, anchor: torch.Tensor, radius: int,
                    region: torch.Tensor) -> torch.Tensor:
    """The candidate nearest (L1) to the anchor feature among the window of `radius` ∩ the region
    (§5.5); ties to the first in row-major order; the handle stays when no candidate is left."""
    rows, cols = features.shape[-2:]
    row, col = int(handle[0]), int(handle[1])
    top, left = max(0, row - radius), max(0, col - radius)
    bottom, right = min(rows, row + radius + 1), min(cols, col + radius + 1)
    candidates = region[top:bottom, left:right]
    if not candidates.any():
        return handle
    distance = (features[0, :, top:bottom, left:right] - anchor[:, None, None]).abs().sum(dim=0)
    distance = distance.masked_fill(~candidates, float("inf"))
    best = int(distance.argmin())
    return torch.tensor([top + best // distance.shape[1], left + best % distance.shape[1]],
                        dtype=handle.dtype, device=handle.device)


@dataclass
class StepBudget:
    """The adaptive step budget (§5.7): a tracked move backwards (against t − p⁰) is rejected, and
    every unreached handle that moves less than l/n_init (a stall; a rejected move is one) buys one
    more step, up to the cap. `official` keeps the code's fixed budget and accepts every move."""

    settings: AdaptiveDragSettings
    lengths: torch.Tensor  # l_i = |t_i − p⁰_i|
    directions: torch.Tensor  # t_i − p⁰_i
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = self.settings.initial_budget

    def accept(self, previous: torch.Tensor, tracked: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.settings.budget_mode == "official":
            return tracked
        move = tracked - previous
        backwards = (move.norm(dim=1) > 0) & ((move * self.directions).sum(dim=1) <= 0)
        accepted = torch.where(backwards[:, None], previous, tracked)
        unreached = distances(previous, targets) >= self.settings.reach_distance
        stalled = unreached & ((accepted - previous).norm(dim=1) < self.lengths / self.settings.initial_budget)
        self.total = min(self.total + int(stalled.sum()), self.settings.max_budget)
        return accepted


def optimise(
    denoiser: Denoiser,
    inversion: Inversion,
    spec: DragSpec,
    cond: torch.Tensor,
    settings: AdaptiveDragSettings = AdaptiveDragSettings(),
    on_step: DragStepCallback | None = None,
    *,
    superpixels: np.ndarray,
) -> DragResult:
    """Optimise the inverted latent at schedule.timesteps[inversion.start_index]. `superpixels` are
    SLIC labels at the image's size (core.masks.adaptive_segments); the editable mask is the spec's."""
    if superpixels.shape != (spec.height, spec.width):
        raise ValueError(f"superpixels are {superpixels.shape[1]}×{superpixels.shape[0]}, the image "
                         f"{spec.width}×{spec.height}")
    schedule, index = inversion.schedule, inversion.start_index
    t = schedule.timesteps[index]
    start = inversion.latent
    grid = FeatureGrid.scaled(spec.width, spec.height, settings.feature_scale)
    probe = FeatureProbe(denoiser, schedule, cond, settings.feature_block, grid)
    keep = keep_mask(spec.editable_mask(), grid, start.shape[-2:]).to(start.device)
    cells = Superpixels(superpixels)
    minimum_area = grid.rows * grid.cols // (4 * settings.superpixels)
    handles = grid.to_grid(spec.handles, start.device)
    targets = grid.to_grid(spec.targets, start.device)
    budget = StepBudget(settings, distances(handles, targets), targets - handles)
    log = StepLog(budget.total, grid, on_step)

    def region(point: torch.Tensor, target: torch.Tensor, use: int) -> tuple[int, torch.Tensor]:
        """The radius and the semantic region at the handle's current super-pixel, for motion
        supervision (`use` 0: r_m) or tracking (1: r_p)."""
        label = cells.label_at(grid, point)
        radius = cells.radii(label)[use]
        return radius, semantic_region(cells.on_grid(label, grid, start.device), point, target, radius, minimum_area)

    with torch.enable_grad():
        z = start.detach().clone().float().requires_grad_(True)
        adam = torch.optim.Adam([z], lr=settings.learning_rate)
        unedited = anchors = None
        stop_reason = BUDGET
        steps = 0
        while steps < budget.total:
            seen = probe(z, t)
            if unedited is None:
                unedited = seen.detached()  # the first pass is the unedited latent's: the references
                anchors = feature_vectors(unedited.features, handles)
            else:
                features = seen.features.detach()
                tracked = torch.stack([track_in_region(features, h, a, *region(h, q, 1))
                                       for h, a, q in zip(handles, anchors, targets)])
                handles = budget.accept(handles, tracked, targets)
            if reached(handles, targets, settings.reach_distance):
                stop_reason = REACHED
                break
            loss = outside_mask_loss(seen.previous, unedited.previous, keep, settings.mask_weight)
            for handle, target in zip(handles, targets):
                if float((target - handle).norm()) >= settings.skip_below:
                    loss = loss + region_motion_loss(seen.features, handle, target, *region(handle, target, 0))
            gradient_step(adam, loss)
            steps += 1
            log.total = budget.total
            log.record(loss, handles)

    return log.result(z, start, index, handles, stop_reason)


# adaptivedrag.md §2–3: LoRA as DragDiffusion; 0.7 is the paper's "35th step", its released UI inverts 0.8
RECIPE = Recipe(
    name="AdaptiveDrag",
    key="adaptivedrag",
    node_id="DragKitAdaptiveDrag",
    settings=AdaptiveDragSettings,
    optimise=optimise,
    lora_steps=80,
    inversion=InversionPreset("AdaptiveDrag", 0.7),
    sampler=CLOSS,
    code_inversion=InversionPreset("AdaptiveDrag (code UI)", 0.8),
)
