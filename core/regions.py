"""DragNeXt's regions: each handle region on the feature grid, and where it goes at progress η
(reference/dragnext.md §1).

Everything here is on the feature grid (half the image size), in (row, col) with rows downward.
- translate / deform: the region shifts by trunc(η·(g − h)) whole pixels; pixels shifted off the
  grid are dropped; an offset under one pixel gives no target (the code skips that step).
- rotate: by the signed angle ∠h c g (visually counter-clockwise positive), times η, rounded to
  a multiple of `angle_step` degrees. The target is a backward nearest warp: each grid pixel takes
  the nearest pre-image, with torchvision's conventions (pixel centres at i + ½, the centre given
  as a point), so it matches the code's `rotate(mask)` and `rotate(F0 ⊙ mask)` pixel for pixel.
A `Warp` lists, per target pixel, the source pixel whose unedited feature it should take (Π⁻¹).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .drag import DragSpec, DragSpecError, Region
from .motion import FeatureGrid

GridPoint = tuple[float, float]  # (row, col)
TRANSLATING = ("translate", "deform")  # one operator: deform moves a part of an object (§1.1)


@dataclass(frozen=True, eq=False)
class Warp:
    """Target pixel `target[j]` (flat grid index) takes the unedited feature at `source[j]`."""

    source: torch.Tensor  # long [n]
    target: torch.Tensor  # long [n]

    def target_mask(self, size: tuple[int, int]) -> torch.Tensor:
        mask = torch.zeros(size[0] * size[1], dtype=torch.bool, device=self.target.device)
        mask[self.target] = True
        return mask.reshape(size)


def signed_angle(center: GridPoint, handle: GridPoint, target: GridPoint) -> float:
    """∠ h c g in degrees, counter-clockwise as seen on screen positive, in (−180, 180]."""

    def direction(point: GridPoint) -> float:  # rows grow downward, so up is −row
        return math.degrees(math.atan2(-(point[0] - center[0]), point[1] - center[1]))

    delta = direction(target) - direction(handle)
    return delta - 360.0 * math.ceil((delta - 180.0) / 360.0)


def rotate_point(point: GridPoint, center: GridPoint, degrees: float) -> GridPoint:
    """The point turned `degrees` counter-clockwise on screen about `center`."""
    angle = math.radians(degrees)
    dy, dx = point[0] - center[0], point[1] - center[1]
    return (center[0] - dx * math.sin(angle) + dy * math.cos(angle),
            center[1] + dx * math.cos(angle) + dy * math.sin(angle))


@dataclass(frozen=True, eq=False)
class RegionMotion:
    """One handle region on the grid and how it moves."""

    kind: str  # translate | deform | rotate
    mask: torch.Tensor  # bool [rows, cols]
    handle: GridPoint
    target: GridPoint
    center: GridPoint | None = None  # rotate only
    angle_step: float = 2.0  # the code's quantum of the progressive angle, degrees

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    def angle_at(self, eta: float) -> float:
        """The rotation at progress η, rounded to the quantum (the code: 2 · round(η·Δθ / 2))."""
        full = signed_angle(self.center, self.handle, self.target)
        return self.angle_step * round(eta * full / self.angle_step) if self.angle_step > 0 else eta * full

    def offset_at(self, eta: float) -> tuple[int, int]:
        """Whole-pixel shift at progress η, truncated toward zero as the code's cast to long."""
        return (int(eta * (self.target[0] - self.handle[0])), int(eta * (self.target[1] - self.handle[1])))

    def handle_at(self, eta: float) -> GridPoint:
        """Where the handle point is sent at progress η."""
        if self.kind == "rotate":
            return rotate_point(self.handle, self.center, self.angle_at(eta))
        dr, dc = self.offset_at(eta)
        return self.handle[0] + dr, self.handle[1] + dc

    def warp_at(self, eta: float) -> Warp | None:
        """The target region at progress η, or None when it gives no loss (shift under one pixel)."""
        if self.kind == "rotate":
            return self._rotated(self.angle_at(eta))
        dr, dc = self.offset_at(eta)
        if max(abs(dr), abs(dc)) < 1:
            return None
        return self._shifted(dr, dc)

    def lands_on_grid(self, eta: float) -> bool:
        """Whether any of the region stays on the grid when sent to progress η (a shift is checked on
        the mask's overlapping block, without building the warp: queue-time checks stay cheap)."""
        if self.kind == "rotate":
            warp = self.warp_at(eta)
            return warp is None or warp.target.numel() > 0
        dr, dc = (int(v) for v in self.offset_at(eta))
        rows, cols = self.size
        if abs(dr) >= rows or abs(dc) >= cols:
            return False
        return bool(self.mask[max(0, -dr):rows - max(0, dr), max(0, -dc):cols - max(0, dc)].any())

    def _shifted(self, dr: int, dc: int) -> Warp:
        rows, cols = self.size
        r, c = self.mask.nonzero(as_tuple=True)
        kept = (r + dr >= 0) & (r + dr < rows) & (c + dc >= 0) & (c + dc < cols)
        r, c = r[kept], c[kept]
        return Warp(source=r * cols + c, target=(r + dr) * cols + (c + dc))

    def _rotated(self, degrees: float) -> Warp:
        rows, cols = self.size
        device = self.mask.device
        angle = math.radians(degrees)
        cos, sin = math.cos(angle), math.sin(angle)
        (r0, r1), (c0, c1) = self._rotated_box(cos, sin)  # only target pixels there can have a source
        # torchvision: pixel i's centre is at i + ½ and the centre point is taken as given
        y = torch.arange(r0, r1, device=device, dtype=torch.float64)[:, None] + 0.5 - self.center[0]
        x = torch.arange(c0, c1, device=device, dtype=torch.float64)[None, :] + 0.5 - self.center[1]
        source_x = self.center[1] + x * cos - y * sin - 0.5  # the inverse rotation, back to indices
        source_y = self.center[0] + x * sin + y * cos - 0.5
        sr, sc = torch.round(source_y).long(), torch.round(source_x).long()
        on_grid = (sr >= 0) & (sr < rows) & (sc >= 0) & (sc < cols)
        inside = on_grid & self.mask[sr.clamp(0, rows - 1), sc.clamp(0, cols - 1)]
        tr, tc = inside.nonzero(as_tuple=True)
        return Warp(source=sr[tr, tc] * cols + sc[tr, tc], target=(tr + r0) * cols + (tc + c0))

    def _rotated_box(self, cos: float, sin: float) -> tuple[tuple[int, int], tuple[int, int]]:
        """The target rows and columns (half-open, on the grid) the rotated mask can reach: its bounding
        box's corners sent forward (the inverse of _rotated's backward map), a pixel of margin for the
        rounding. Everything outside has no source pixel, so the warp is the same, and cheap."""
        rows, cols = self.size
        found_rows, found_cols = self.mask.any(dim=1).nonzero(), self.mask.any(dim=0).nonzero()
        if not len(found_rows):
            return (0, 0), (0, 0)
        (cy, cx) = self.center
        us = (int(found_cols[0]) - cx, int(found_cols[-1]) + 1 - cx)  # source x + ½ − cx over the box
        vs = (int(found_rows[0]) - cy, int(found_rows[-1]) + 1 - cy)
        xs = [cos * u + sin * v + cx - 0.5 for u in us for v in vs]
        ys = [-sin * u + cos * v + cy - 0.5 for u in us for v in vs]
        return _on_grid(min(ys), max(ys), rows), _on_grid(min(xs), max(xs), cols)


def _on_grid(low: float, high: float, size: int) -> tuple[int, int]:
    """[low, high] widened by a pixel each side for rounding, as a half-open range on 0 … size."""
    start = min(size, max(0, math.floor(low) - 1))
    return start, max(start, min(size, math.ceil(high) + 2))


def grid_mask(mask: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """An image-size bool mask nearest-resized to the grid (the code's cv2 INTER_NEAREST → F.interpolate)."""
    resized = F.interpolate(torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None], size=size, mode="nearest")
    return resized[0, 0] > 0.5


def disc(center: GridPoint, radius: float, size: tuple[int, int]) -> torch.Tensor:
    """Bool [rows, cols]: the grid pixels within `radius` of `center`."""
    rows = torch.arange(size[0], dtype=torch.float32)[:, None] - center[0]
    cols = torch.arange(size[1], dtype=torch.float32)[None, :] - center[1]
    return rows**2 + cols**2 <= radius**2


def component_masks(mask: np.ndarray, handles: Sequence[tuple[float, float]]) -> list[np.ndarray]:
    """The code's and NextBench's one handle mask → one region per handle: the 8-connected component
    (holes filled, as an external contour) holding the handle (x, y). A handle outside every
    component is an error that names it."""
    from scipy.ndimage import binary_fill_holes, label

    labels, _ = label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3), dtype=bool))
    regions = []
    for index, (x, y) in enumerate(handles):
        row = min(max(int(round(y)), 0), labels.shape[0] - 1)
        col = min(max(int(round(x)), 0), labels.shape[1] - 1)
        if labels[row, col] == 0:
            raise ValueError(f"handle {index + 1} ({x:g}, {y:g}) lies outside every region of the handle mask")
        regions.append(binary_fill_holes(labels == labels[row, col]))
    return regions


def region_motions(spec: DragSpec, grid: FeatureGrid, fallback_radius: float = 4.0, angle_step: float = 2.0) -> tuple[RegionMotion, ...]:
    """One RegionMotion per pair of the drag on `grid`: its painted region,
    or, for a pair without one, a translated disc of `fallback_radius` grid pixels around the handle.
    Raises DragSpecError as `check_regions` does."""
    handles, targets = grid.to_grid(spec.handles).tolist(), grid.to_grid(spec.targets).tolist()
    painted = {region.pair: region for region in spec.regions}
    motions = []
    for pair, (handle, target) in enumerate(zip(handles, targets)):
        if pair in painted:
            motions.append(_painted_motion(painted[pair], tuple(handle), tuple(target), grid, angle_step))
        else:
            motions.append(RegionMotion("translate", disc(handle, fallback_radius, grid.size), tuple(handle),
                                        tuple(target), angle_step=angle_step))
    return tuple(motions)


def check_regions(spec: DragSpec, grid: FeatureGrid, angle_step: float = 2.0) -> None:
    """Raises DragSpecError naming the pair when a painted region is too small for the grid or, fully
    moved, would leave the image entirely (nothing would be left to supervise)."""
    handles, targets = grid.to_grid(spec.handles).tolist(), grid.to_grid(spec.targets).tolist()
    for region in spec.regions:
        _painted_motion(region, tuple(handles[region.pair]), tuple(targets[region.pair]), grid, angle_step)


def _painted_motion(region: Region, handle: GridPoint, target: GridPoint, grid: FeatureGrid, angle_step: float) -> RegionMotion:
    where = f"region for pair {region.pair + 1}"
    center = None if region.center is None else tuple(grid.to_grid([region.center])[0].tolist())
    if region.kind == "rotate" and center is not None:
        for name, point in (("handle", handle), ("target", target)):
            if tuple(center) == tuple(point):  # the turn from handle to target about it has no angle
                raise DragSpecError(f"{where}: its rotation centre lies on the pair's {name} (on DragNeXt's half-size "
                                    "grid), so the turn has no defined angle; move the centre away from both points")
    motion = RegionMotion(region.kind, grid_mask(region.mask, grid.size), handle, target, center, angle_step)
    if not motion.mask.any():
        raise DragSpecError(f"{where} is too thin for DragNeXt's half-size feature grid; paint it at least 2 pixels wide")
    if not motion.lands_on_grid(1.0):
        raise DragSpecError(f"{where}: moved to its target it would leave the image entirely; "
                            "move the target or paint the region around the handle")
    return motion
