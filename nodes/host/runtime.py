"""The node runtime: autograd inside a node, progress bars with previews, and cancel."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from PIL import Image

import comfy.model_management as model_management
import comfy.utils


@contextlib.contextmanager
def gradients() -> Iterator[None]:
    """Autograd inside a node: ComfyUI runs every node under inference mode. Current ComfyUI also
    has a training flag that keeps its ops off kernels without a backward pass."""
    training = getattr(model_management, "in_training", None)
    if training is not None:
        model_management.in_training = True
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        if training is not None:
            model_management.in_training = training


def check_interrupted() -> None:
    """Raise ComfyUI's interruption (reported as 'interrupted', not as an error) if the user cancelled."""
    model_management.throw_exception_if_processing_interrupted()


class Progress:
    """ComfyUI's progress bar (which also checks for cancel), with an optional preview image."""

    def __init__(self, total: int) -> None:
        self._bar = comfy.utils.ProgressBar(total)

    def update(self, done: int, total: int, preview: Image.Image | None = None) -> None:
        check_interrupted()
        self._bar.update_absolute(done, total, None if preview is None else ("JPEG", preview, 512))
