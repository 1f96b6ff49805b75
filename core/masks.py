"""Editable masks from super-pixels and segment masks (AdaptiveDrag §4; reference/adaptivedrag.md).

Everything is at the image's full resolution, points in image pixels (x, y). Super-pixels are
scikit-image SLIC labels starting at 1. `segment masks` are bool H × W arrays (SAM 2's masks, or
any other segmenter's). The AdaptiveDrag optimiser reuses `slic_segments` and `segment_at` for
its adaptive radii and semantic regions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

Point = tuple[float, float]

# scikit-image's SLIC as the official code ran it (0.19.3 defaults, pinned: defaults have changed
# across versions, §4.2 step 3).
SLIC_SEGMENTS = 200
SLIC_COMPACTNESS = 10.0
COLOUR_MAP_SEED = 42


def slic_segments(image: np.ndarray, segments: int = SLIC_SEGMENTS, compactness: float = SLIC_COMPACTNESS) -> np.ndarray:
    """SLIC super-pixels of an H × W × 3 uint8 image: int32 labels 1…N, every pixel labelled."""
    from skimage.segmentation import slic  # heavy import, only when a mask is made

    labels = slic(image, n_segments=segments, compactness=compactness, sigma=0, max_num_iter=10, convert2lab=True,
                  enforce_connectivity=True, min_size_factor=0.5, max_size_factor=3, slic_zero=False,
                  start_label=1, mask=None, channel_axis=-1)
    return labels.astype(np.int32)


def colour_map(masks: Sequence[np.ndarray], height: int, width: int, seed: int = COLOUR_MAP_SEED) -> np.ndarray:
    """SAM 2's automatic masks painted as the official code does (§4.2 step 2): largest first, so
    smaller masks overwrite larger ones, each in a random colour (numpy's RNG seeded 42), on white;
    as uint8 in BGR order (the code saves the picture and re-reads it with OpenCV)."""
    rng = np.random.RandomState(seed)
    canvas = np.ones((height, width, 3))
    for mask in sorted(masks, key=lambda m: int(m.sum()), reverse=True):
        canvas[mask] = rng.random_sample(3)
    return (canvas * 255).astype(np.uint8)[..., ::-1].copy()


def clamp_point(point: Point, height: int, width: int) -> tuple[int, int]:
    """(row, col) of the pixel under an image point, clamped into the image (a click at x = W is
    the last column; the official code indexes out of range there, §7 item 11)."""
    x, y = point
    return min(max(int(round(y)), 0), height - 1), min(max(int(round(x)), 0), width - 1)


def segment_at(segments: np.ndarray, point: Point) -> np.ndarray:
    """The super-pixel under a point, as a bool mask."""
    row, col = clamp_point(point, *segments.shape)
    return segments == segments[row, col]


def line_pixels(handle: Point, target: Point, height: int, width: int) -> np.ndarray:
    """(row, col) of samples along the segment handle → target, at least one per pixel of length,
    both ends included, clamped into the image."""
    count = max(2, int(math.ceil(math.dist(handle, target))) + 1)
    s = np.linspace(0.0, 1.0, count)
    xs = handle[0] + s * (target[0] - handle[0])
    ys = handle[1] + s * (target[1] - handle[1])
    rows = np.clip(np.rint(ys).astype(int), 0, height - 1)
    cols = np.clip(np.rint(xs).astype(int), 0, width - 1)
    return np.stack([rows, cols], axis=1)


def official_line_pixels(handle: Point, target: Point, height: int, width: int) -> np.ndarray:
    """The official line search's samples (§4.2 step 4): in half-resolution (row, col) it walks the
    bounding box's main diagonal from (min row, min col) with n = 2(b − a) + 1 steps, at full
    resolution (2a + s(2b + 1 − 2a)/n, ...): the wrong diagonal for up-right and down-left drags and
    two samples for a horizontal one. Kept to reproduce the code."""
    half = [clamp_point((p[0] / 2, p[1] / 2), height // 2, width // 2) for p in (handle, target)]
    a, b = sorted(r for r, _ in half)
    c, d = sorted(col for _, col in half)
    n = 2 * (b - a) + 1
    s = np.arange(n + 1)
    rows = (2 * a + s * (2 * b + 1 - 2 * a) / n).astype(int)
    cols = (2 * c + s * (2 * d + 1 - 2 * c) / n).astype(int)
    return np.stack([np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)], axis=1)


def line_mask(segments: np.ndarray, handles: Sequence[Point], targets: Sequence[Point], official: bool = False) -> np.ndarray:
    """The paper's line search (M_line): for each pair the handle's and the target's super-pixels
    and every super-pixel the segment between them crosses. `official` uses the released code's
    samples instead (its bounding-box diagonal, without the handle's own super-pixel)."""
    height, width = segments.shape
    labels: set[int] = set()
    for handle, target in zip(handles, targets):
        if official:
            samples = official_line_pixels(handle, target, height, width)
        else:
            samples = line_pixels(handle, target, height, width)
        labels.update(int(v) for v in segments[samples[:, 0], samples[:, 1]])
    return np.isin(segments, sorted(labels))


def facing_cells(size: tuple[int, int], point: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cells q (row, col) of a size[0] × size[1] map with (q − point)·(target − point) ≥ 0: the
    half-plane through the point that faces the target (the point and the 90° boundary included).
    `point` and `target` are (row, col) tensors; the map is on their device."""
    rows = torch.arange(size[0], device=point.device, dtype=point.dtype)[:, None]
    cols = torch.arange(size[1], device=point.device, dtype=point.dtype)[None, :]
    gap = target - point
    return (rows - point[0]) * gap[0] + (cols - point[1]) * gap[1] >= 0


def half_plane(height: int, width: int, point: Point, target: Point) -> np.ndarray:
    """`facing_cells` for image points (x, y), as a bool H × W array."""
    row_col = [torch.tensor([float(y), float(x)], dtype=torch.float64) for x, y in (point, target)]
    return facing_cells((height, width), *row_col).numpy()


def handle_object_mask(masks: Sequence[np.ndarray], handles: Sequence[Point], targets: Sequence[Point],
                       height: int, width: int) -> np.ndarray:
    """M_sam (§4.2 step 5): for each handle the smallest segment mask containing it, cut to the
    half-plane facing its target; the whole mask when the cut keeps at least half of it (dragging
    from an object's middle), else only the cut. Union over handles; empty when no mask contains
    a handle."""
    result = np.zeros((height, width), dtype=bool)
    by_area = sorted(masks, key=lambda m: int(m.sum()))
    for handle, target in zip(handles, targets):
        row, col = clamp_point(handle, height, width)
        mask = next((m for m in by_area if m[row, col]), None)
        if mask is None:
            continue
        cut = mask & half_plane(height, width, handle, target)
        result |= mask if cut.sum() >= 0.5 * mask.sum() else cut
    return result


def sweep(mask: np.ndarray, handles: Sequence[Point], targets: Sequence[Point]) -> np.ndarray:
    """The mask together with its copies shifted along each handle → target offset, one pixel at a
    time: the room the dragged content needs on its way to the target."""
    source = torch.from_numpy(mask)
    out = source.clone()
    height, width = mask.shape
    for handle, target in zip(handles, targets):
        dx, dy = target[0] - handle[0], target[1] - handle[1]
        count = int(math.ceil(math.hypot(dx, dy)))
        for step in range(1, count + 1):
            sx, sy = int(round(dx * step / count)), int(round(dy * step / count))
            if abs(sx) >= width or abs(sy) >= height:
                continue
            out[max(sy, 0):height + min(sy, 0), max(sx, 0):width + min(sx, 0)] |= \
                source[max(-sy, 0):height - max(sy, 0), max(-sx, 0):width - max(sx, 0)]
    return out.numpy()


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a mask by a disc of `radius` pixels (0: unchanged); linear time in the image size."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~mask) <= radius


MASK_MODES = ("slic", "sam2", "adaptivedrag")
BACKGROUND_MODES = ("official", "paper", "union")


def adaptive_segments(image: np.ndarray, automatic_masks: Sequence[np.ndarray] | None,
                      superpixels: int = SLIC_SEGMENTS) -> np.ndarray:
    """AdaptiveDrag's super-pixels: SLIC on SAM 2's automatic masks as a colour map, or on the
    picture itself when there is no SAM 2 (`None`; the paper's Fig. 3(b) shows this is worse)."""
    height, width = image.shape[:2]
    picture = image if automatic_masks is None else colour_map(automatic_masks, height, width)
    return slic_segments(picture, superpixels)


def background_mask(line: np.ndarray, automatic_masks: Sequence[np.ndarray] | None, handles: Sequence[Point],
                    targets: Sequence[Point], mode: str = "official") -> np.ndarray:
    """The mask of AdaptiveDrag's background term (§4.4) from the line mask `line`: `official` the
    SAM 2 handle mask, or the line mask when that is empty or there is no SAM 2; `paper` the line
    mask; `union` both."""
    if mode == "paper" or automatic_masks is None:
        return line
    sam = handle_object_mask(automatic_masks, handles, targets, *line.shape)
    if mode == "union":
        return line | sam
    if mode != "official":
        raise ValueError(f"mask mode: {mode!r} is not one of {', '.join(BACKGROUND_MODES)}")
    return sam if sam.any() else line


@dataclass(frozen=True, eq=False)
class AdaptiveMasks:
    """AdaptiveDrag's super-pixels and masks of one drag (§4.2–4.4)."""

    segments: np.ndarray  # SLIC labels at the image's size
    line: np.ndarray  # the line search's super-pixels from handle to target
    background: np.ndarray  # the editable mask of the background term


def adaptive_masks(image: np.ndarray, handles: Sequence[Point], targets: Sequence[Point],
                   automatic_masks: Sequence[np.ndarray] | None, superpixels: int = SLIC_SEGMENTS,
                   background_mode: str = "official", official_line: bool = False) -> AdaptiveMasks:
    """AdaptiveDrag's mask pipeline, once for the Auto Mask node and the drag node alike: the
    super-pixels (`adaptive_segments`), the line search over them, and the background mask."""
    segments = adaptive_segments(image, automatic_masks, superpixels)
    line = line_mask(segments, handles, targets, official=official_line)
    return AdaptiveMasks(segments, line, background_mask(line, automatic_masks, handles, targets, background_mode))


def drag_mask(image: np.ndarray, handles: Sequence[Point], targets: Sequence[Point], mode: str, *,
              object_masks: Sequence[np.ndarray] = (), automatic_masks: Sequence[np.ndarray] = (),
              include_path: bool = True, superpixels: int = SLIC_SEGMENTS, official_line: bool = False,
              dilation: int = 0) -> np.ndarray:
    """The editable mask for a drag of an H × W × 3 uint8 image.

    - `slic`: SLIC on the picture itself; the handles' super-pixels.
    - `sam2`: the union of `object_masks` (SAM 2's object under each handle).
    - `adaptivedrag`: SLIC on SAM 2's automatic masks painted as a colour map (§4.2); the official
      code's background mask M_sam from `automatic_masks`, or the line mask when M_sam is empty.
    `include_path` adds the way to the targets: the object swept along the drag (sam2) or the
    paper's line search over the super-pixels (slic, adaptivedrag). Then grown by `dilation` px."""
    height, width = image.shape[:2]
    if mode == "sam2":
        mask = np.zeros((height, width), dtype=bool)
        for object_mask in object_masks:
            mask |= object_mask
        if include_path:
            mask = sweep(mask, handles, targets)
    elif mode == "slic":
        segments = slic_segments(image, superpixels)
        mask = np.zeros((height, width), dtype=bool)
        for handle in handles:
            mask |= segment_at(segments, handle)
        if include_path:
            mask |= line_mask(segments, handles, targets, official=official_line)
    elif mode == "adaptivedrag":
        adaptive = adaptive_masks(image, handles, targets, automatic_masks, superpixels, official_line=official_line)
        mask = adaptive.background.copy()
        if include_path:
            mask |= adaptive.line
    else:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MASK_MODES)}")
    return dilate(mask, dilation)
