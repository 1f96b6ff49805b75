"""The mechanics every point-drag method shares: grids, patches, motion supervision, tracking, stops.

Coordinates. Features, handles, targets and every radius live on the *feature grid*, a fraction
of the image size (the papers' code: half, int(0.5·H) × int(0.5·W)). Grid points are float
tensors [n, 2] of (row, col); image points are (x, y) tuples in pixels.

Sampling. Pixel centres sit at integer grid coordinates, so the position (row, col) is the pixel
F[..., row, col] itself; between pixels the value is bilinear in the four neighbours. This is
`F.grid_sample(..., align_corners=True)` after normalising coordinates by (size − 1).

Borders (the official code has no border handling, §7 of gooddrag.md). The rule here:
- a patch keeps its full (2r+1)² shape; positions off the map read the nearest border value
  (clamped indices, grid_sample's padding_mode="border"), and `patch_inside` says which entries lie
  on the map;
- a motion-supervision term counts only the patch offsets whose every sample lies on the map, and
  its mean runs over those entries; for a current-handle reference this is exactly DragDiffusion's
  window clipped to the map;
- a tracking window is clipped to the map, so candidates are always real positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .denoiser import Denoiser
from .schedule import DDIMSchedule

Point = tuple[float, float]

# on_step(iteration, total, handles): after each gradient step, with the handles in image pixels.
# DragNeXt adds regions=: a bool [rows, cols] grid mask of where its regions are being sent.
# The nodes report progress, preview the moving handles and check for cancel in it; whatever it
# raises stops the optimisation and propagates.
DragStepCallback = Callable[..., None]


# --- coordinates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureGrid:
    """The supervision grid (rows × cols) of an image (width × height)."""

    width: int
    height: int
    rows: int
    cols: int

    @classmethod
    def scaled(cls, width: int, height: int, scale: float) -> FeatureGrid:
        """The grid at `scale` times the image size, truncated as the papers' code does (int(0.5·H))."""
        rows, cols = int(scale * height), int(scale * width)
        if rows < 1 or cols < 1:
            raise ValueError(f"a feature scale of {scale} leaves no grid for a {width}×{height} image")
        return cls(width, height, rows, cols)

    @property
    def size(self) -> tuple[int, int]:
        return self.rows, self.cols

    def to_grid(self, points: Sequence[Point], device: torch.device | str = "cpu") -> torch.Tensor:
        """Image (x, y) → grid (row, col), rounded half to even (torch.round, as the code) and kept on the map."""
        xy = torch.tensor(points, dtype=torch.float64).reshape(-1, 2)
        rows = torch.round(xy[:, 1] * self.rows / self.height).clamp(0, self.rows - 1)
        cols = torch.round(xy[:, 0] * self.cols / self.width).clamp(0, self.cols - 1)
        return torch.stack([rows, cols], dim=1).to(device=device, dtype=torch.float32)

    def to_image(self, points: torch.Tensor) -> tuple[Point, ...]:
        """Grid (row, col) → image (x, y) pixels (GoodDrag: x = 2·col, y = 2·row at half size)."""
        return tuple(
            (col * self.width / self.cols, row * self.height / self.rows) for row, col in points.detach().cpu().tolist()
        )


def keep_mask(editable: np.ndarray, grid: FeatureGrid, latent_size: tuple[int, int]) -> torch.Tensor:
    """1 − M at latent size [1, 1, h, w]: the region the outside-mask term preserves.

    The editable H×W mask is nearest-resized to the grid, then to the latent, as the code does."""
    mask = torch.from_numpy(np.asarray(editable, dtype=np.float32))[None, None]
    mask = F.interpolate(F.interpolate(mask, size=grid.size, mode="nearest"), size=tuple(latent_size), mode="nearest")
    return 1 - mask


# --- one UNet pass ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Observation:
    """What one UNet pass on a latent z_t gives the drag: features on the grid and ẑ_{t−1}."""

    features: torch.Tensor  # [1, C, rows, cols]
    previous: torch.Tensor  # one-step DDIM prediction from the same pass

    def detached(self) -> Observation:
        return Observation(self.features.detach(), self.previous.detach())


@dataclass(frozen=True, eq=False)
class FeatureProbe:
    """Runs the denoiser with one feature tap, resized bilinearly (align_corners False) to the grid."""

    denoiser: Denoiser
    schedule: DDIMSchedule
    cond: torch.Tensor
    block: int  # diffusers up_blocks[block]
    grid: FeatureGrid

    def __call__(self, z: torch.Tensor, t: int) -> Observation:
        prediction = self.denoiser.predict(z, t, self.cond, up_features=(self.block,))
        features = F.interpolate(prediction.features[self.block], size=self.grid.size, mode="bilinear", align_corners=False)
        return Observation(features.float(), self.schedule.step(z, prediction.eps.float(), t))

    def denoise(self, z: torch.Tensor, t: int) -> torch.Tensor:
        """One plain DDIM step t → previous(t), without gradients."""
        with torch.no_grad():
            return self.schedule.step(z, self.denoiser.predict(z, t, self.cond).eps.float(), t)


# --- patches ------------------------------------------------------------------------------------


def sample_patches(features: torch.Tensor, centres: torch.Tensor, radius: int) -> torch.Tensor:
    """Bilinear samples of features [1, C, H, W] on the (2r+1)² grids around centres [n, 2] → [n, C, P, P].

    All offsets of a patch share the centre's fractional part, so four integer crops and one set of
    weights make the whole patch. Off-map neighbours read the border value (clamped indices)."""
    height, width = features.shape[-2:]
    offsets = torch.arange(-radius, radius + 1, device=features.device)
    base = centres.floor()
    frac = (centres - base).to(features.dtype)
    rows = base[:, :1].long() + offsets  # [n, P]
    cols = base[:, 1:].long() + offsets

    def crop(dr: int, dc: int) -> torch.Tensor:  # [C, n, P, P]
        r = (rows + dr).clamp(0, height - 1)
        c = (cols + dc).clamp(0, width - 1)
        return features[0][:, r[:, :, None], c[:, None, :]]

    fy = frac[:, 0].view(1, -1, 1, 1)
    fx = frac[:, 1].view(1, -1, 1, 1)
    blended = (1 - fy) * ((1 - fx) * crop(0, 0) + fx * crop(0, 1)) + fy * ((1 - fx) * crop(1, 0) + fx * crop(1, 1))
    return blended.transpose(0, 1)


def patch_inside(centres: torch.Tensor, radius: int, size: tuple[int, int]) -> torch.Tensor:
    """Bool [n, P, P]: which positions of each patch lie on the map (0 ≤ row ≤ H−1, 0 ≤ col ≤ W−1)."""
    offsets = torch.arange(-radius, radius + 1, device=centres.device, dtype=centres.dtype)
    rows = centres[:, :1] + offsets
    cols = centres[:, 1:] + offsets
    rows_in = (rows >= 0) & (rows <= size[0] - 1)
    cols_in = (cols >= 0) & (cols <= size[1] - 1)
    return rows_in[:, :, None] & cols_in[:, None, :]


def feature_vectors(features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The feature vectors [n, C] at integer grid points [n, 2]."""
    index = points.round().long()
    return features[0][:, index[:, 0], index[:, 1]].transpose(0, 1)


# --- motion supervision -------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionRule:
    """How a method supervises motion; every length is in grid pixels."""

    radius: int  # r1: the patch is (2r1+1)²
    step: float  # step length along the unit direction to the target
    clamp_step: bool  # step = min(step, distance) (GoodDrag's code) rather than the fixed step
    skip_below: float  # pairs closer than this to their targets are not supervised
    scale: float | None  # code: scale · mean |·| over the patch's entries; None: plain L1 sum (papers)


def distances(handles: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (targets - handles).norm(dim=1)


def motion_steps(handles: torch.Tensor, targets: torch.Tensor, rule: MotionRule) -> torch.Tensor:
    """d_i = unit(q_i − p_i) · length, with length = min(step, ‖q_i − p_i‖) when clamped. Zero for p_i = q_i."""
    gap = targets - handles
    distance = gap.norm(dim=1, keepdim=True)
    length = distance.clamp(max=rule.step) if rule.clamp_step else torch.full_like(distance, rule.step)
    return torch.where(distance > 0, gap / distance.clamp(min=1e-12) * length, torch.zeros_like(gap))


def motion_loss(
    features: torch.Tensor,
    handles: torch.Tensor,
    targets: torch.Tensor,
    rule: MotionRule,
    reference: torch.Tensor | None = None,
    reference_handles: torch.Tensor | None = None,
) -> torch.Tensor:
    """Σ_i |F(Ω(p_i) + d_i) − sg(R(Ω(c_i)))| over the pairs still at least `skip_below` from their targets.

    The moving patch is sampled bilinearly from `features` around p_i + d_i. The fixed patch R is
    - DragDiffusion (no reference): the current features, detached, around the current p_i;
    - GoodDrag's information-preserving loss: the unedited `reference` features around the
      ORIGINAL handles c_i = `reference_handles` (give both), which stay fixed while p_i moves."""
    if reference is None:
        reference, reference_handles = features, handles
    active = distances(handles, targets) >= max(rule.skip_below, 1e-12)
    if not active.any():
        return features.new_zeros(())
    moved_centres = handles[active] + motion_steps(handles[active], targets[active], rule)
    fixed_centres = reference_handles[active]
    moved = sample_patches(features, moved_centres, rule.radius)
    fixed = sample_patches(reference.detach(), fixed_centres, rule.radius)
    size = features.shape[-2:]
    counted = patch_inside(moved_centres, rule.radius, size) & patch_inside(fixed_centres, rule.radius, size)
    error = ((moved - fixed).abs() * counted[:, None]).sum(dim=(1, 2, 3))
    if rule.scale is None:
        return error.sum()
    entries = counted.sum(dim=(1, 2)) * features.shape[1]
    return (rule.scale * error / entries).sum()


def outside_mask_loss(
    previous: torch.Tensor, reference_previous: torch.Tensor, keep: torch.Tensor, weight: float
) -> torch.Tensor:
    """λ · Σ |(ẑ_{t−1} − sg(ẑ⁰_{t−1})) ⊙ (1 − M)|: a sum over all latent elements, as the code."""
    return weight * ((previous - reference_previous.detach()).abs() * keep).sum()


# --- tracking and stopping ----------------------------------------------------------------------


def track_points(features: torch.Tensor, handles: torch.Tensor, anchors: torch.Tensor, radius: int) -> torch.Tensor:
    """Each handle moves to its anchor's nearest neighbour in the square window of `radius` around it.

    Distance: L1 over channels. The window is clipped to the map. Ties go to the first position in
    row-major order (torch.argmin). `anchors` [n, C] are the feature vectors being followed."""
    rows, cols = features.shape[-2:]
    moved = []
    for (row, col), anchor in zip(handles.round().long().tolist(), anchors):
        top, left = max(0, row - radius), max(0, col - radius)
        window = features[0, :, top : min(rows, row + radius + 1), left : min(cols, col + radius + 1)]
        distance = (window - anchor[:, None, None]).abs().sum(dim=0)
        best = int(distance.argmin())
        moved.append((top + best // distance.shape[1], left + best % distance.shape[1]))
    return torch.tensor(moved, dtype=handles.dtype, device=handles.device)


def reached(handles: torch.Tensor, targets: torch.Tensor, radius: float) -> bool:
    """True when every handle is closer than `radius` grid pixels to its target."""
    return bool((distances(handles, targets) < radius).all())


def count_stalls(count: int, before: torch.Tensor, after: torch.Tensor) -> int:
    """GoodDrag's no-progress counter: one more when a tracking left every handle in place, else 0."""
    return count + 1 if torch.equal(before, after) else 0


# --- the optimisation loop's bookkeeping --------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DragResult:
    """An optimised latent, ready for the sampler to continue from schedule.timesteps[index]."""

    latent: torch.Tensor  # the edited latent at level schedule.timesteps[index]
    reference_latent: torch.Tensor  # the unedited latent at that same level (mutual-attention source)
    index: int  # position in the schedule's timesteps where sampling continues (len(timesteps): none left)
    handles: tuple[Point, ...]  # final handle positions, image pixels (x, y)
    losses: tuple[float, ...]  # total loss of every gradient step, in order
    stop_reason: str  # REACHED, STALLED or BUDGET
    region_errors: tuple[RegionError, ...] = ()  # DragNeXt: each moving region's error at its final target


@dataclass(frozen=True)
class RegionError:
    """A region's feature error at its final target, of the unedited and of the edited latent."""

    pair: int  # 1-based, as the editor numbers pairs
    before: float
    after: float


def gradient_step(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


class StepLog:
    """Losses of the gradient steps so far, and the on_step report after each iteration."""

    def __init__(self, total: int, grid: FeatureGrid, on_step: DragStepCallback | None) -> None:
        self.total = total
        self.grid = grid
        self.on_step = on_step
        self.losses: list[float] = []
        self.iterations = 0  # gradient steps and the iterations a method skipped (DragNeXt: nothing to move yet)

    def record(self, loss: torch.Tensor | None, handles: torch.Tensor, regions: torch.Tensor | None = None) -> None:
        """One iteration done; `loss` None when it took no step."""
        if loss is not None:
            self.losses.append(float(loss.detach()))
        self.iterations += 1
        if self.on_step is not None:
            extra = {} if regions is None else {"regions": regions}
            self.on_step(self.iterations, self.total, self.grid.to_image(handles), **extra)

    def result(self, latent: torch.Tensor, start: torch.Tensor, index: int, handles: torch.Tensor,
               stop_reason: str) -> DragResult:
        """The DragResult of a drag that optimised `start` (the inverted latent at timesteps[index])
        into `latent`, in start's dtype, with the losses recorded here."""
        return DragResult(latent=latent.detach().to(start.dtype), reference_latent=start, index=index,
                          handles=self.grid.to_image(handles), losses=tuple(self.losses), stop_reason=stop_reason)
