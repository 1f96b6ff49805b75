"""DragKit's own socket types (namespaced; never renamed, workflows store them)."""

from comfy_api.v0_0_2 import io

DragType = io.Custom("DRAGKIT_DRAG")
InversionType = io.Custom("DRAGKIT_INVERSION")
EditType = io.Custom("DRAGKIT_EDIT")


def inversion_conditioning_input():
    """The optional prompt of the drag and sampler nodes, which default to the inversion's."""
    return io.Conditioning.Input("conditioning", optional=True,
                                 tooltip="The prompt; when not connected, the inversion's conditioning is used.")
