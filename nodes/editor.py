"""DragKit Editor: the user's handle → target pairs, editable mask and regions, as DRAGKIT_DRAG."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.v0_0_2 import io, ui

from ..core.drag import DragSpec, DragSpecError, check_picture_size
from ..core.methods import dragnext
from .checks import CheckedNode, InputError, checked, single_item
from .values import DragType, editable_mask_input

EDITOR_IMAGE_KEY = "dragkit_image"  # the executed message's key the widget reads (web/dragkit_editor.js)
DRAG_DATA_HELP = (
    "The drag as JSON (schema v1, image pixels). The editor widget writes it: click a handle then its "
    "target, paint the editable mask, mark DragNeXt regions. See the README for the schema."
)


def parse_drag_data(drag_data: str) -> DragSpec:
    """The drag a `drag_data` string describes; errors name the input (drag_data) and the problem."""
    try:
        if not isinstance(drag_data, str) or not drag_data.strip():
            raise DragSpecError("there are no handle → target pairs yet; place at least one pair in the editor")
        spec = DragSpec.from_json(drag_data)
        check_picture_size(spec.width, spec.height)
        dragnext.check_drag(spec)  # a region must survive DragNeXt's feature grid
        return spec
    except DragSpecError as exc:
        raise InputError(f"drag_data: {exc}") from None


class DragKitEditor(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitEditor",
            display_name="DragKit Editor",
            category="DragKit",
            description="Handle → target points, the editable mask and DragNeXt regions for a drag edit.",
            inputs=[
                io.Image.Input("image", tooltip="The image the points are placed on."),
                io.String.Input("drag_data", multiline=True, default="", tooltip=DRAG_DATA_HELP),
                io.Mask.Input("mask", optional=True, tooltip="Editable region; replaces the painted mask when connected."),
            ],
            outputs=[
                DragType.Output(display_name="drag"),
                io.Mask.Output(display_name="mask", tooltip="The editable region (all ones when none was painted)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, drag_data) -> bool | str:
        return cls.refusal(drag_data=drag_data)

    @classmethod
    def check_values(cls, values: dict) -> None:
        if values.get("drag_data") is not None:  # None: fed by a link, parsed when the node runs
            parse_drag_data(values["drag_data"])

    @classmethod
    @checked
    def execute(cls, image: torch.Tensor, drag_data: str, mask: torch.Tensor | None = None) -> io.NodeOutput:
        spec = parse_drag_data(drag_data)
        image = single_item(image, "image")
        height, width = image.shape[1], image.shape[2]
        if (spec.width, spec.height) != (width, height):
            raise InputError(
                f"drag_data: the points were placed on a {spec.width}×{spec.height} image but the image input is "
                f"{width}×{height}; open the editor on this image and place the points again"
            )
        if mask is not None:
            spec = spec.with_mask(editable_mask_input(mask, width, height))
        editable = torch.from_numpy(spec.editable_mask().astype(np.float32))[None]
        # The picture goes to the editor widget under its own key: as "images", newer frontends
        # would also show it as the node's preview, below the editor that already shows it.
        preview = ui.PreviewImage(image, cls=cls).as_dict()["images"]
        return io.NodeOutput(spec, editable, ui={EDITOR_IMAGE_KEY: preview})
