"""Reading weights files the user puts into a models folder: `.safetensors`, or a torch checkpoint
with `weights_only=True`, so a pickle that would run code is refused."""

from __future__ import annotations

import json
from pathlib import Path

import torch


class WeightsFileError(ValueError):
    """A weights file that cannot be read; the message names it and says why."""


def read_state_dict(path: Path, remedy: str) -> dict:
    """The file's state dict (a checkpoint's "model" entry when it keeps it there). Whatever is wrong
    with the file (empty, cut short, not a weights file, a pickle that would run code, no tensors)
    raises WeightsFileError naming it and what was wrong, ending with `remedy` (what file is expected
    and where to get it)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zipfile, pickle, safetensors and OS errors alike: say what and what to do
        size = path.stat().st_size if path.exists() else 0
        why = "it is empty" if size == 0 else _first_line(exc)
        raise WeightsFileError(
            f"{path.name}: cannot be read as weights ({why}); it is damaged or cut short, not a weights file, or "
            f"holds more than tensors (a pickle that could run code is refused). {remedy}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path.name}: holds no weights (expected a dict of tensors). {remedy}")
    return state


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def check_weights_file(path: Path, remedy: str) -> None:
    """A cheap look at a weights file before a prompt is queued (it reads a few bytes, not the
    weights): refuses an empty file, a .safetensors file without a valid header, and a .pt/.pth that is
    neither a torch zip archive nor a pickle. `read_state_dict` still checks everything when it runs."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        why = None
        if size == 0:
            why = "it is empty"
        elif path.suffix == ".safetensors":
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < length <= size - 8:
                why = "its safetensors header is missing or longer than the file"
            else:
                try:
                    json.loads(handle.read(min(length, 100_000_000)))
                except ValueError:
                    why = "its safetensors header is not JSON"
        elif not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
            why = "it is neither a torch checkpoint (zip) nor a pickle"
    if why is not None:
        raise WeightsFileError(f"{path.name}: cannot be read as weights ({why}); it is damaged or not a weights "
                               f"file. {remedy}")
