"""The values that travel between DragKit nodes, their socket types, and the checks between them.

Node files hand each other only these (and ComfyUI's own types); no node file imports another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..core import sam2_model
from ..core.attention import LatestRecording
from ..core.drag import DragSpec
from ..core.families import DEFAULT_FAMILY
from ..core.inversion import Inversion
from ..core.methods import DragResult
from . import host
from .checks import InputError, single_item

# DragKit's own socket types (namespaced; never renamed: workflows store them).
DragType = io.Custom("DRAGKIT_DRAG")
InversionType = io.Custom("DRAGKIT_INVERSION")
EditType = io.Custom("DRAGKIT_EDIT")
Sam2ModelType = io.Custom("DRAGKIT_SAM2_MODEL")


def inversion_conditioning_input():
    """The optional prompt of the drag and sampler nodes, which default to the inversion's."""
    return io.Conditioning.Input("conditioning", optional=True,
                                 tooltip="The prompt; when not connected, the inversion's conditioning is used.")


@dataclass(frozen=True, eq=False)
class DragKitInversion:
    """The DRAGKIT_INVERSION value: core's inversion plus the conditioning it was made with."""

    inversion: Inversion  # inverted latent, trajectory, timesteps, schedule, source (DDPM-scaled)
    conditioning: list  # the CONDITIONING used (ComfyUI's format)
    guidance: float
    model: object  # the MODEL it was made with: drags and samplers must use the same one
    # The samplers' reference branch, recorded for re-drags of this inversion.
    recordings: LatestRecording = field(default_factory=LatestRecording, repr=False)

    def context(self, conditioning: list | None) -> torch.Tensor:
        """The text context of `conditioning`, or of the inversion's own when None."""
        return host.text_context(self.conditioning if conditioning is None else conditioning)


@dataclass(frozen=True, eq=False)
class DragKitEdit:
    """The DRAGKIT_EDIT value: the optimised latent and where in the schedule sampling goes on."""

    result: DragResult  # edited + reference latent at schedule.timesteps[index], final handles
    inversion: DragKitInversion
    spec: DragSpec


@dataclass(frozen=True, eq=False)
class Sam2Model:
    """The DRAGKIT_SAM2_MODEL value: the model under a ModelPatcher, what it is, and its compute dtype."""

    patcher: object
    variant: sam2_model.Sam2Variant
    dtype: torch.dtype

    def load(self) -> torch.nn.Module:
        return host.load_sam2(self.patcher)

    def automatic_masks(self, picture: np.ndarray, points_per_side: int) -> list[np.ndarray]:
        """SAM 2's automatic masks, with progress and cancel between its decoder batches."""
        model = self.load()
        total = sam2_model.automatic_batches(points_per_side)
        progress, done = host.Progress(total), [0]

        def on_batch() -> None:
            done[0] += 1
            progress.update(done[0], total)

        return sam2_model.automatic_masks(model, picture, points_per_side, self.dtype, on_batch)

    def point_masks(self, picture: np.ndarray, points) -> list[np.ndarray]:
        """The object SAM 2 finds under each point."""
        progress = host.Progress(1)
        masks = sam2_model.point_masks(self.load(), picture, points, self.dtype)
        progress.update(1, 1)
        return masks


def handle_report(drag: DragSpec, final) -> list[dict]:
    """Per pair: where the handle started, where it ended and its target (image pixels)."""
    return [{"start": list(start), "final": [float(v) for v in end], "target": list(target)}
            for start, end, target in zip(drag.handles, final, drag.targets)]


def check_edit_inputs(model, inversion: DragKitInversion, drag: DragSpec | None = None) -> None:
    """The drag, the inversion and the model must belong together; say which two do not."""
    if not host.same_model(inversion.model, model):
        raise InputError(
            "model: this is not the model the inversion was made with (DragKit DDIM Invert's model input); "
            "connect the same MODEL (usually the LoRA Finetune output) to the invert, drag and sampler nodes"
        )
    if drag is None:
        return
    scale = DEFAULT_FAMILY.latent_scale
    latent_height, latent_width = inversion.inversion.latent.shape[-2:]
    if (drag.width // scale, drag.height // scale) != (latent_width, latent_height):
        raise InputError(
            f"drag: the points were placed on a {drag.width}×{drag.height} image, but the inversion is of a "
            f"{latent_width * scale}×{latent_height * scale} image; feed the Editor and the "
            "VAEEncode before the inversion the same image"
        )


def drag_image(image: torch.Tensor, drag: DragSpec) -> torch.Tensor:
    """The one image of the batch, which must be the one the drag was placed on."""
    image = single_item(image, "image")
    height, width = image.shape[1], image.shape[2]
    if (drag.width, drag.height) != (width, height):
        raise InputError(f"image: it is {width}×{height} but the drag was placed on a {drag.width}×{drag.height} "
                         "image; connect the image the editor shows")
    return image


def editable_mask_input(mask: torch.Tensor, width: int, height: int) -> np.ndarray:
    """A MASK input as the drag's editable region (bool H × W): one mask, of the picture's size."""
    mask = single_item(mask.reshape(-1, *mask.shape[-2:]), "mask")[0]
    if tuple(mask.shape) != (height, width):
        raise InputError(
            f"mask: the mask input is {mask.shape[1]}×{mask.shape[0]} but the image is {width}×{height}; "
            "masks must have the image's size"
        )
    return mask.cpu().numpy() > 0.5
