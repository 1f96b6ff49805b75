"""Drag benchmarks on disk: DragBench (DragDiffusion) and Drag100 (GoodDrag), as picture + drag + prompt.

DragBench: `<root>/<category>/<sample>/original_image.png` with either `drag_instruction.json` +
`mask.png` (the plain-file copy) or only `meta_data.pkl` (the released zip). The pickle is read with
an unpickler that can build numpy arrays and nothing else. Drag100: `<root>/<sample>/original.jpg`,
`mask.png`, `points.json`. Points alternate handle, target, in image pixels; mask > 0 is editable.

Both papers' runners take a picture at width 512 and height int(512 · h / w), bilinear (the
DragDiffusion / GoodDrag UIs; the stored sets already have width 512, so this is then a no-op);
`load_*` do the same and scale the points and mask with the picture.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .drag import MAX_PAIRS, DragSpec, DragSpecError

RUNNER_WIDTH = 512


class BenchmarkDataError(ValueError):
    """A sample folder that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class BenchmarkSample:
    name: str  # "<category>/<sample>" (DragBench) or "<sample>" (Drag100)
    image: np.ndarray  # uint8 H × W × 3
    drag: DragSpec  # on `image`, in its pixels
    prompt: str


def sample_folders(kind: str, root: Path) -> list[Path]:
    """The dataset's sample folders in a fixed order (sorted by category, then name)."""
    if kind not in _LAYOUTS:
        raise BenchmarkDataError(f"unknown dataset {kind!r}; choose one of {sorted(_LAYOUTS)}")
    pattern, read, expected = _LAYOUTS[kind]
    folders = sorted(p.parent for p in Path(root).glob(pattern))
    if not folders:
        raise BenchmarkDataError(f"{root}: no {kind} samples ({expected})")
    return folders


def load_sample(kind: str, folder: Path, width: int = RUNNER_WIDTH) -> BenchmarkSample:
    """One sample; anything wrong with its files raises BenchmarkDataError naming the sample and file."""
    folder = Path(folder)
    try:
        return _LAYOUTS[kind][1](folder, width)
    except BenchmarkDataError:
        raise
    except (DragSpecError, ValueError, OSError) as error:  # a point off the picture, NaN, an unreadable image
        raise BenchmarkDataError(f"{sample_name(kind, folder)} ({folder}): {error}") from None


def sample_name(kind: str, folder: Path) -> str:
    """How a sample is named in results: <category>/<sample> (DragBench) or <sample> (Drag100)."""
    folder = Path(folder)
    return f"{folder.parent.name}/{folder.name}" if kind == "dragbench" else folder.name


def load_dataset(kind: str, root: Path, width: int = RUNNER_WIDTH) -> list[BenchmarkSample]:
    return [load_sample(kind, folder, width) for folder in sample_folders(kind, root)]


def load_dragbench(root: Path, width: int = RUNNER_WIDTH) -> list[BenchmarkSample]:
    return load_dataset("dragbench", root, width)


def load_drag100(root: Path, width: int = RUNNER_WIDTH) -> list[BenchmarkSample]:
    return load_dataset("drag100", root, width)


def _dragbench_sample(folder: Path, width: int) -> BenchmarkSample:
    instruction, mask_png = folder / "drag_instruction.json", folder / "mask.png"
    if instruction.is_file() and mask_png.is_file():
        data = _read_json(instruction)
        mask = np.asarray(Image.open(mask_png).convert("L"))
    elif (folder / "meta_data.pkl").is_file():
        data = read_meta_data(folder / "meta_data.pkl")
        mask = np.asarray(data.get("mask"))
    else:
        raise BenchmarkDataError(f"{folder}: neither drag_instruction.json + mask.png nor meta_data.pkl")
    return _sample(sample_name("dragbench", folder), folder / "original_image.png", data.get("points"), mask, str(data.get("prompt", "")), width)


def _drag100_sample(folder: Path, width: int) -> BenchmarkSample:
    data = _read_json(folder / "points.json")
    mask = np.asarray(Image.open(folder / "mask.png").convert("L"))
    return _sample(sample_name("drag100", folder), folder / "original.jpg", data.get("points"), mask, "", width)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BenchmarkDataError(f"{path}: {error}") from error
    if not isinstance(data, dict):
        raise BenchmarkDataError(f"{path}: expected a JSON object with 'points'")
    return data


def _sample(name: str, picture: Path, points, mask: np.ndarray, prompt: str, width: int) -> BenchmarkSample:
    if not isinstance(points, list) or len(points) < 2 or len(points) % 2:
        raise BenchmarkDataError(f"{name}: 'points' must alternate handle and target (got {points!r:.80})")
    if len(points) > 2 * MAX_PAIRS:
        raise BenchmarkDataError(f"{name}: {len(points) // 2} pairs; at most {MAX_PAIRS} are supported")
    image = np.asarray(Image.open(picture).convert("RGB"))
    h, w = image.shape[:2]
    if mask.shape[:2] != (h, w):
        raise BenchmarkDataError(f"{name}: mask is {mask.shape[1]}×{mask.shape[0]}, picture {w}×{h}")
    editable = mask > 0
    pairs = [_finite_point(point, f"{name} ({picture.parent}): point {index + 1}") for index, point in enumerate(points)]
    drag = DragSpec(w, h, tuple(pairs[0::2]), tuple(pairs[1::2]), editable if editable.any() else None)
    height = int(width * h / w)
    if (w, h) != (width, height):
        image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
        drag = drag.resized(width, height)
    return BenchmarkSample(name, image, drag, prompt)


def _finite_point(value, what: str) -> tuple[float, float]:
    """[x, y] of two finite numbers (lists or numpy arrays, as the datasets store them)."""
    try:
        point = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        point = None
    if point is None or point.shape != (2,) or not np.isfinite(point).all() or np.asarray(value).dtype == bool:
        raise BenchmarkDataError(f"{what} must be two finite numbers, got {value!r:.60}")
    return float(point[0]), float(point[1])


_LAYOUTS = {
    "dragbench": ("*/*/original_image.png", _dragbench_sample, "<category>/<sample>/original_image.png"),
    "drag100": ("*/points.json", _drag100_sample, "<sample>/original.jpg, mask.png, points.json"),
}
DATASETS = tuple(_LAYOUTS)


# --- meta_data.pkl ------------------------------------------------------------------------------

# What a DragBench pickle may name: numpy's array rebuilding, nothing that runs code.
_ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise BenchmarkDataError(f"refused to load {module}.{name}: a DragBench pickle holds only arrays, "
                                     "lists, dicts, numbers and strings")
        return super().find_class(module, name)


def read_meta_data(path: Path) -> dict:
    """A DragBench `meta_data.pkl` ({prompt, points, mask}), without running anything it names."""
    try:
        data = _ArraysOnlyUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    except BenchmarkDataError as error:
        raise BenchmarkDataError(f"{path}: {error}") from None
    except Exception as error:  # a damaged pickle: any of pickle's many error types
        raise BenchmarkDataError(f"{path}: not a readable pickle ({error})") from error
    if not isinstance(data, dict):
        raise BenchmarkDataError(f"{path}: expected a dict with prompt, points and mask")
    return data
