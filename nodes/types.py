"""DragKit's own socket types (namespaced; never renamed, workflows store them)."""

from comfy_api.v0_0_2 import io

DragType = io.Custom("DRAGKIT_DRAG")
InversionType = io.Custom("DRAGKIT_INVERSION")
EditType = io.Custom("DRAGKIT_EDIT")
