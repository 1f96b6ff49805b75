"""DragKit Auto Mask: the drag's editable mask from SAM 2 and/or SLIC super-pixels (AdaptiveDrag §4)."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui
from PIL import Image

from ..core import masks
from .checks import CheckedNode, InputError, checked
from .previews import drag_points, image_tensor, masked_picture, picture_of
from .values import DragType, Sam2ModelType, drag_image

MODE_HELP = (
    "slic: super-pixels of the picture itself under the handles (no SAM 2 needed). sam2: the object SAM 2 finds "
    "under each handle. adaptivedrag: the paper's pipeline, SLIC on SAM 2's automatic masks painted as a colour "
    "map, and the official code's mask (the smallest SAM 2 mask holding the handle, cut to the side facing the "
    "target unless that keeps half of it), or the line search when SAM 2 finds none."
)
PAINTED = ("replace", "union")


class DragKitAutoMask(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitAutoMask",
            display_name="DragKit Auto Mask",
            category="DragKit",
            description="Makes the drag's editable mask automatically. " + MODE_HELP,
            inputs=[
                io.Image.Input("image", tooltip="The image the points were placed on."),
                DragType.Input("drag"),
                io.Combo.Input("mode", options=list(masks.MASK_MODES), default="slic", tooltip=MODE_HELP),
                io.Boolean.Input("include_path", default=True,
                                 tooltip="Add the way to the targets: the object swept along the drag (sam2) or the "
                                         "super-pixels the handle → target line crosses (slic, adaptivedrag). Off in "
                                         "adaptivedrag mode gives the official code's mask."),
                io.Int.Input("dilation", default=0, min=0, max=256,
                             tooltip="Grow the mask by this many pixels (the paper grows it by none)."),
                io.Int.Input("superpixels", default=masks.SLIC_SEGMENTS, min=8, max=5000,
                             tooltip="SLIC's number of segments (AdaptiveDrag: 200, compactness 10)."),
                io.Int.Input("points_per_side", default=32, min=2, max=64,
                             tooltip="adaptivedrag: SAM 2's automatic point grid (32 × 32 in the paper; fewer is faster)."),
                io.Boolean.Input("official_line_search", default=False,
                                 tooltip="Walk the released code's line (the bounding box's main diagonal, without the "
                                         "handle's own super-pixel) instead of the true handle → target segment."),
                io.Combo.Input("painted_mask", options=list(PAINTED), default="replace",
                               tooltip="A mask painted in the editor: replace it, or keep it and add the automatic one."),
                Sam2ModelType.Input("sam2_model", optional=True, tooltip="From DragKit SAM2 Loader; sam2 and "
                                    "adaptivedrag modes need it."),
            ],
            outputs=[
                DragType.Output(display_name="drag", tooltip="The drag with this editable mask."),
                io.Mask.Output(display_name="mask"),
                io.Image.Output(display_name="preview", tooltip="The image, darkened outside the mask, with the points."),
            ],
        )

    @classmethod
    def validate_inputs(cls, mode, painted_mask) -> bool | str:
        return cls.refusal(mode=mode, painted_mask=painted_mask)

    @classmethod
    @checked
    def execute(cls, image, drag, mode, include_path, dilation, superpixels, points_per_side, official_line_search,
                painted_mask, sam2_model=None) -> io.NodeOutput:
        image = drag_image(image, drag)
        if mode != "slic" and sam2_model is None:
            raise InputError(f"sam2_model: mode {mode} needs SAM 2; connect a DragKit SAM2 Loader, or choose mode slic")
        picture = picture_of(image)
        segments = _segment_masks(picture, drag, mode, points_per_side, sam2_model)
        editable = masks.drag_mask(picture, drag.handles, drag.targets, mode, include_path=include_path,
                                   superpixels=superpixels, official_line=official_line_search, dilation=dilation,
                                   **segments)
        if painted_mask == "union" and drag.mask is not None:
            editable = editable | drag.mask
        if not editable.any():
            raise InputError("mode: the automatic mask came out empty; try another mode, include_path or dilation")
        preview = drag_points(masked_picture(Image.fromarray(picture), editable), drag.handles, drag.targets, drag.handles)
        preview = image_tensor(preview)
        mask = torch.from_numpy(editable.astype(np.float32))[None]
        return io.NodeOutput(drag.with_mask(editable), mask, preview, ui=ui.PreviewImage(preview, cls=cls))


def _segment_masks(picture: np.ndarray, drag, mode: str, points_per_side: int, sam2) -> dict:
    """SAM 2's masks the mode needs."""
    if mode == "slic":
        return {}
    if mode == "adaptivedrag":
        return {"automatic_masks": sam2.automatic_masks(picture, points_per_side)}
    return {"object_masks": sam2.point_masks(picture, drag.handles)}
