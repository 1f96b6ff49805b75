"""What the user asked for: handle → target pairs, an editable mask and DragNeXt regions.

Everything is in image pixel coordinates, (x, y) with x to the right and y downward, on the image
the points were placed on (`width` × `height`). The JSON form (schema v1) is what the editor
widget writes into the workflow and what the API prompt carries; `DragSpec.from_json` validates it
and every error names the offending part, so a node can report it at queue time.

Schema v1:
    {"version": 1, "width": W, "height": H,
     "pairs": [{"handle": [x, y], "target": [x, y]}, ...],
     "mask": null | {"rle": [n0, n1, n2, ...]},
     "regions": [{"pair": i, "type": "translate" | "deform" | "rotate",
                  "center": [x, y] (rotate only), "mask": {"rle": [...]}}, ...]}

A mask is run-length encoded over the row-major H × W grid: alternating runs of 0 and 1, starting
with a (possibly empty) run of 0. The counts add up to W · H.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

SCHEMA_VERSION = 1
REGION_TYPES = ("translate", "deform", "rotate")

# Bounds checked before anything is decoded, so no input can make validation allocate much or a
# drag run for long: 8192 px a side and 32 Mpx in all (SD needs far less), 100 pairs, and a text of
# at most 16 MB (a 4096² mask with a run every few pixels).
MAX_SIDE = 8192
MIN_SIDE = 64  # SD's VAE makes it an 8×8 latent, the smallest the UNet's three halvings take
MAX_PIXELS = 1 << 25
MAX_PAIRS = 100
# The whole drag's decoded masks (the editable mask and every region, each width × height): what one
# drag_data may make the server decode and check, whatever its size on the wire (64 MiB of bools; its
# queue-time check then takes a fraction of a second, benchmarks/drag_validation.py).
MAX_MASK_PIXELS = 1 << 26
MAX_JSON_CHARS = 16_000_000


class DragSpecError(ValueError):
    """A drag specification that cannot be used; the message says which part and why."""


Point = tuple[float, float]


@dataclass(frozen=True)
class Region:
    """DragNeXt handle region: the pixels that move with pair `pair`, and how they move."""

    pair: int
    kind: str
    mask: np.ndarray  # bool, H × W
    center: Point | None = None  # rotation centre, rotate only


@dataclass(frozen=True)
class DragSpec:
    width: int
    height: int
    handles: tuple[Point, ...]
    targets: tuple[Point, ...]
    mask: np.ndarray | None = None  # bool, H × W, True = editable; None = whole image editable
    regions: tuple[Region, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def pair_count(self) -> int:
        return len(self.handles)

    def editable_mask(self) -> np.ndarray:
        """The editable region as a bool H × W array (all True when no mask was painted)."""
        if self.mask is None:
            return np.ones((self.height, self.width), dtype=bool)
        return self.mask

    def with_mask(self, mask: np.ndarray | None) -> DragSpec:
        return DragSpec(self.width, self.height, self.handles, self.targets, mask, self.regions)

    def resized(self, width: int, height: int) -> DragSpec:
        """The same drag on the picture scaled to `width` × `height`: points and centres scaled,
        masks resampled nearest (as the editor does when another picture is loaded)."""
        sx, sy = width / self.width, height / self.height

        def point(p: Point) -> Point:
            return p[0] * sx, p[1] * sy

        def mask(m: np.ndarray) -> np.ndarray:
            rows = np.minimum((np.arange(height) + 0.5) / sy, self.height - 1).astype(int)
            cols = np.minimum((np.arange(width) + 0.5) / sx, self.width - 1).astype(int)
            return m[np.ix_(rows, cols)]

        regions = tuple(Region(r.pair, r.kind, mask(r.mask), None if r.center is None else point(r.center))
                        for r in self.regions)
        return DragSpec(width, height, tuple(map(point, self.handles)), tuple(map(point, self.targets)),
                        None if self.mask is None else mask(self.mask), regions)

    # --- JSON -------------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def to_dict(self) -> dict:
        return {
            "version": SCHEMA_VERSION,
            "width": self.width,
            "height": self.height,
            "pairs": [{"handle": list(h), "target": list(t)} for h, t in zip(self.handles, self.targets)],
            "mask": None if self.mask is None else {"rle": encode_rle(self.mask)},
            "regions": [_region_to_dict(r) for r in self.regions],
        }

    @classmethod
    def from_json(cls, text: str) -> DragSpec:
        if not isinstance(text, str):
            raise DragSpecError(f"the drag data must be a JSON string, got {type(text).__name__}")
        if len(text) > MAX_JSON_CHARS:
            raise DragSpecError(f"the drag data is {len(text):,} characters long; at most {MAX_JSON_CHARS:,} are accepted")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DragSpecError(f"the drag data is not valid JSON ({exc}); reset the editor or paste a schema v1 object") from None
        except RecursionError:
            raise DragSpecError("the drag data is nested too deeply to be a schema v1 object; reset the editor") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> DragSpec:
        if not isinstance(data, dict):
            raise DragSpecError("the drag data must be a JSON object with version, width, height and pairs")
        version = data.get("version")
        if version != SCHEMA_VERSION:
            raise DragSpecError(
                f"the drag data has unknown schema version {version!r}; this DragKit reads version {SCHEMA_VERSION} "
                "(update DragKit or re-save the workflow)"
            )
        width, height = _size(data.get("width"), "width"), _size(data.get("height"), "height")
        if width * height > MAX_PIXELS:
            raise DragSpecError(f"the image is {width}×{height} = {width * height:,} pixels; at most {MAX_PIXELS:,} are supported")
        pairs = data.get("pairs")
        if not isinstance(pairs, list):
            raise DragSpecError("pairs must be a list of {handle: [x, y], target: [x, y]}")
        if len(pairs) > MAX_PAIRS:
            raise DragSpecError(f"there are {len(pairs)} pairs; at most {MAX_PAIRS} are supported")
        handles, targets = [], []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, dict) or "handle" not in pair or "target" not in pair:
                raise DragSpecError(f"pair {i + 1} must have both a handle and a target point")
            handles.append(_point(pair["handle"], f"pair {i + 1} handle"))
            targets.append(_point(pair["target"], f"pair {i + 1} target"))
        mask = data.get("mask")
        regions = data.get("regions") or []
        if not isinstance(regions, list):
            raise DragSpecError("regions must be a list")
        _check_mask_budget((mask is not None) + len(regions), width, height)  # before any mask is decoded
        mask = None if mask is None else _mask(mask, width, height, "mask")
        _check_region_pairs(regions, len(pairs))  # before any region mask is decoded
        parsed = tuple(_region(r, width, height) for r in regions)
        return cls(width, height, tuple(handles), tuple(targets), mask, parsed)


def _check_mask_budget(layers: int, width: int, height: int) -> None:
    if layers * width * height > MAX_MASK_PIXELS:
        raise DragSpecError(
            f"the drag has {layers} masks (editable mask and regions) of {width}×{height} pixels, "
            f"{layers * width * height:,} in all; at most {MAX_MASK_PIXELS:,} are accepted per drag: "
            "use fewer regions or a smaller picture")


def check_picture_size(width: int, height: int) -> None:
    """The smallest picture DragKit edits (`MIN_SIDE` on each side); smaller ones would reach the
    feature grid or the VAE and fail there."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise DragSpecError(f"the picture is {width}×{height} pixels; DragKit needs at least {MIN_SIDE}×{MIN_SIDE} "
                            "(scale it up first, e.g. with Upscale Image)")


def _check_region_pairs(regions: list, pair_count: int) -> None:
    """One region per existing pair at most, checked on the raw objects (cheap)."""
    seen = set()
    for index, region in enumerate(regions):
        if not isinstance(region, dict):
            raise DragSpecError(f"region {index + 1} must be an object with pair, type and mask")
        pair = region.get("pair")
        if isinstance(pair, bool) or not isinstance(pair, int):
            raise DragSpecError(f"region {index + 1} needs the index of its pair, got {pair!r}")
        if not 0 <= pair < pair_count:
            raise DragSpecError(f"region refers to pair {pair + 1}, but there are {pair_count} pairs")
        if pair in seen:
            raise DragSpecError(f"region for pair {pair + 1} is given twice")
        seen.add(pair)
        if region.get("type") not in REGION_TYPES:
            raise DragSpecError(f"region for pair {pair + 1} has unknown type {region.get('type')!r}; use one of {', '.join(REGION_TYPES)}")


def _check_spec(spec: DragSpec) -> None:
    if len(spec.handles) > MAX_PAIRS:
        raise DragSpecError(f"there are {len(spec.handles)} pairs; at most {MAX_PAIRS} are supported")
    if len(spec.handles) != len(spec.targets):
        raise DragSpecError(f"there are {len(spec.handles)} handle points but {len(spec.targets)} targets; every handle needs a target")
    if not spec.handles:
        raise DragSpecError("there are no handle → target pairs; place at least one pair in the editor")
    for i, (h, t) in enumerate(zip(spec.handles, spec.targets)):
        _inside(h, spec, f"pair {i + 1} handle")
        _inside(t, spec, f"pair {i + 1} target")
    _check_mask_budget((spec.mask is not None) + len(spec.regions), spec.width, spec.height)
    if spec.mask is not None:
        _mask_shape(spec.mask, spec, "mask")
        if not spec.mask.any():
            raise DragSpecError("the mask is empty: paint the editable region or clear the mask to edit the whole image")
    seen = set()
    for region in spec.regions:
        where = f"region for pair {region.pair + 1}"
        if not 0 <= region.pair < len(spec.handles):
            raise DragSpecError(f"region refers to pair {region.pair + 1}, but there are {len(spec.handles)} pairs")
        if region.pair in seen:
            raise DragSpecError(f"{where} is given twice")
        seen.add(region.pair)
        if region.kind not in REGION_TYPES:
            raise DragSpecError(f"{where} has unknown type {region.kind!r}; use one of {', '.join(REGION_TYPES)}")
        _mask_shape(region.mask, spec, where)
        if not region.mask.any():
            raise DragSpecError(f"{where} is empty: paint it, or delete it to move a small disc around the handle")
        if region.kind == "rotate":
            if region.center is None:
                raise DragSpecError(f"{where} is a rotation but has no centre; click the rotation centre")
            _inside(region.center, spec, f"{where} centre")


def _inside(p: Point, spec: DragSpec, what: str) -> None:
    x, y = p
    if not (0 <= x < spec.width and 0 <= y < spec.height):
        raise DragSpecError(f"{what} ({x:g}, {y:g}) lies outside the {spec.width}×{spec.height} image")


def _mask_shape(mask: np.ndarray, spec: DragSpec, what: str) -> None:
    if mask.shape != (spec.height, spec.width):
        raise DragSpecError(
            f"{what} is {mask.shape[1]}×{mask.shape[0]} but the image is {spec.width}×{spec.height}; "
            "masks must have the image's size"
        )


def _size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SIDE:
        raise DragSpecError(f"{what} must be a whole number of image pixels from 1 to {MAX_SIDE}, got {value!r}")
    return value


def _point(value: object, what: str) -> Point:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise DragSpecError(f"{what} must be [x, y], got {value!r}")
    coords = []
    for c in value:
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            raise DragSpecError(f"{what} must be two finite numbers, got {value!r}")
        coords.append(float(c))
    return coords[0], coords[1]


def _mask(value: object, width: int, height: int, what: str) -> np.ndarray:
    if not isinstance(value, dict) or not isinstance(value.get("rle"), list):
        raise DragSpecError(f"{what} must be {{\"rle\": [counts...]}}")
    counts = value["rle"]
    if len(counts) > width * height + 1:
        raise DragSpecError(f"{what} has {len(counts):,} runs, more than its {width * height:,} pixels allow")
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
        raise DragSpecError(f"{what} run lengths must be non-negative integers")
    total = sum(counts)
    if total != width * height:
        raise DragSpecError(
            f"{what} covers {total} pixels but the image is {width}×{height} = {width * height}; "
            "masks must have the image's size"
        )
    return decode_rle(counts, width, height)


def _region(value: dict, width: int, height: int) -> Region:
    """A region whose pair and type `_check_region_pairs` has checked."""
    pair = value["pair"]
    where = f"region for pair {pair + 1}"
    center = value.get("center")
    return Region(
        pair=pair,
        kind=value.get("type"),
        mask=_mask(value.get("mask"), width, height, f"{where} mask"),
        center=None if center is None else _point(center, f"{where} centre"),
    )


def _region_to_dict(region: Region) -> dict:
    out = {"pair": region.pair, "type": region.kind, "mask": {"rle": encode_rle(region.mask)}}
    if region.center is not None:
        out["center"] = list(region.center)
    return out


def encode_rle(mask: np.ndarray) -> list[int]:
    """Alternating run lengths of 0 and 1 over the row-major flattened mask, starting with 0."""
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    return runs


def decode_rle(counts: list[int], width: int, height: int) -> np.ndarray:
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(height, width)


# --- coordinates as other packs write them ---------------------------------------------------------
MAX_POINTS_CHARS = 1_000_000


def points_from_text(text: str) -> tuple[Point, ...]:
    """Points from a coordinate string: KJNodes' PointsEditor format (a JSON list of {"x": …, "y": …})
    or a plain JSON list of [x, y]. Raises DragSpecError saying what is wrong (the caller names the input)."""
    if not isinstance(text, str) or not text.strip():
        raise DragSpecError("is empty; give a JSON list of points, [{\"x\": 10, \"y\": 20}, …] or [[10, 20], …]")
    if len(text) > MAX_POINTS_CHARS:
        raise DragSpecError(f"is {len(text):,} characters long; at most {MAX_POINTS_CHARS:,} are accepted")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DragSpecError(f"is not JSON ({exc}); give [{{\"x\": 10, \"y\": 20}}, …] or [[10, 20], …]") from None
    if isinstance(data, dict):  # one point
        data = [data]
    if not isinstance(data, list) or not data:
        raise DragSpecError("must be a non-empty JSON list of points")
    if len(data) > MAX_PAIRS:
        raise DragSpecError(f"has {len(data)} points; at most {MAX_PAIRS} are supported")
    points = []
    for i, item in enumerate(data):
        if isinstance(item, dict):
            if "x" not in item or "y" not in item:
                raise DragSpecError(f"point {i + 1} must have x and y, got {item!r}")
            item = [item["x"], item["y"]]
        points.append(_point(item, f"point {i + 1}"))
    return tuple(points)


def points_to_text(points) -> str:
    """Points in KJNodes' PointsEditor format: a JSON list of {"x": …, "y": …} (image pixels)."""
    return json.dumps([{"x": _plain(x), "y": _plain(y)} for x, y in points])


def _plain(value: float) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value
