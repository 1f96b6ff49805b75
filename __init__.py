"""DragKit: diffusion-based drag editing of real images, as ComfyUI nodes."""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes import DragKitExtension  # ComfyUI imports only when it loads the pack

    return DragKitExtension()
