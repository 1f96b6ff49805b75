"""Reading weights files the user puts into a models folder: `.safetensors`, or a torch checkpoint
with `weights_only=True`, so a pickle that would run code is refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


class WeightsFileError(ValueError):
    """A weights file that cannot be read; the message names it and says why."""


def read_state_dict(path: Path, remedy: str) -> dict:
    """The file's state dict (a checkpoint's "model" entry when it keeps it there); `remedy` ends
    the message for a refused file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        raise WeightsFileError(
            f"{path.name}: refused; it holds more than tensors (a pickle that could run code) or is damaged "
            f"({str(exc).splitlines()[0][:200]}). {remedy}"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return state
