"""Points in and out of other packs: DragKit Points to Drag (coordinate strings, as KJNodes'
PointsEditor writes them, → DRAGKIT_DRAG) and DragKit Drag to Points (the drag's handles and targets
as such strings, e.g. for SAM-style point nodes)."""

from __future__ import annotations

import numpy as np
import torch
from comfy_api.v0_0_2 import io

from ..core.drag import DragSpec, DragSpecError, check_picture_size, points_from_text, points_to_text
from .checks import CheckedNode, InputError, checked, single_item
from .values import DragType, editable_mask_input

FORMAT_HELP = 'A JSON list of points in image pixels: KJNodes\' [{"x": 10, "y": 20}, …] or [[10, 20], …].'


def parse_points(text: str, what: str):
    try:
        return points_from_text(text)
    except DragSpecError as exc:
        raise InputError(f"{what}: {exc}") from None


class DragKitPointsToDrag(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitPointsToDrag",
            display_name="DragKit Points to Drag",
            category="DragKit",
            description="A drag from coordinate strings made by other nodes (e.g. KJNodes' Points Editor): the i-th "
                        "handle is dragged to the i-th target. " + FORMAT_HELP,
            inputs=[
                io.Image.Input("image", tooltip="The picture the points belong to (its size bounds them)."),
                io.String.Input("handles", multiline=True, default="", tooltip="Handle points. " + FORMAT_HELP),
                io.String.Input("targets", multiline=True, default="", tooltip="Target points, one per handle. " + FORMAT_HELP),
                io.Mask.Input("mask", optional=True, tooltip="Editable region (the whole picture when not connected)."),
            ],
            outputs=[
                DragType.Output(display_name="drag"),
                io.Mask.Output(display_name="mask", tooltip="The editable region (all ones without a mask)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, handles, targets) -> bool | str:
        return cls.refusal(handles=handles, targets=targets)

    @classmethod
    def check_values(cls, values: dict) -> None:
        parsed = {name: parse_points(values[name], name) for name in ("handles", "targets") if values.get(name) is not None}
        if len(parsed) == 2 and len(parsed["handles"]) != len(parsed["targets"]):
            raise InputError(f"targets: {len(parsed['targets'])} targets for {len(parsed['handles'])} handles; "
                             "give one target per handle, in the same order")

    @classmethod
    @checked
    def execute(cls, image: torch.Tensor, handles: str, targets: str, mask: torch.Tensor | None = None) -> io.NodeOutput:
        image = single_item(image, "image")
        height, width = image.shape[1], image.shape[2]
        try:
            check_picture_size(width, height)
        except DragSpecError as exc:
            raise InputError(f"image: {exc}") from None
        editable = None if mask is None else editable_mask_input(mask, width, height)
        try:
            spec = DragSpec(width, height, parse_points(handles, "handles"), parse_points(targets, "targets"), editable)
        except DragSpecError as exc:  # a point outside the picture, or an empty mask: name the input it came from
            text = str(exc)
            what = "mask" if text.startswith("the mask") else "targets" if " target " in text else "handles"
            raise InputError(f"{what}: {text}") from None
        return io.NodeOutput(spec, torch.from_numpy(spec.editable_mask().astype(np.float32))[None])


class DragKitDragToPoints(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitDragToPoints",
            display_name="DragKit Drag to Points",
            category="DragKit",
            description='The drag\'s handles and targets as coordinate strings ([{"x": …, "y": …}, …], image pixels), '
                        "for nodes that take points (e.g. SAM-style point prompts).",
            inputs=[DragType.Input("drag")],
            outputs=[
                io.String.Output(display_name="handles"),
                io.String.Output(display_name="targets"),
                io.Int.Output(display_name="width"),
                io.Int.Output(display_name="height"),
            ],
        )

    @classmethod
    def execute(cls, drag: DragSpec) -> io.NodeOutput:
        return io.NodeOutput(points_to_text(drag.handles), points_to_text(drag.targets), drag.width, drag.height)


POINT_NODES = [DragKitPointsToDrag, DragKitDragToPoints]
