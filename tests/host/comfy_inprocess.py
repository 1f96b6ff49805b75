"""ComfyUI imported into the test process (CPU), for tests that need its modules but no server."""

import os
import sys
from pathlib import Path


def comfyui_path() -> Path:
    path = os.environ.get("COMFYUI_PATH")
    if not path or not (Path(path) / "main.py").is_file():
        raise RuntimeError(
            "COMFYUI_PATH does not point to a ComfyUI checkout; run the tests through `bash scripts/test.sh`, "
            "which provisions ComfyUI 0.3.75 and sets it"
        )
    return Path(path)


def import_comfy(cpu: bool = True):
    """Put ComfyUI on sys.path and (by default) force CPU before any comfy module picks a device."""
    root = str(comfyui_path())
    if root not in sys.path:
        sys.path.insert(0, root)
    import comfy.cli_args

    if "comfy.model_management" not in sys.modules:  # the device is chosen once, when that module is imported
        comfy.cli_args.args.cpu = cpu
    import comfy.model_management  # noqa: F401  (device selection happens here)

    return comfy
