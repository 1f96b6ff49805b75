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


def in_the_current_hosts_pass_only(why: str):
    """A pytest mark: run in the current ComfyUI's pass of scripts/test.sh only (when it was
    provisioned), skipped with `why` in the 0.3.75 pass; for slow checks one host shows enough."""
    import pytest

    current = os.environ.get("DRAGKIT_CURRENT_COMFYUI") or os.environ.get("COMFYUI_PATH")
    return pytest.mark.skipif(current != os.environ.get("COMFYUI_PATH"), reason=why)


def with_the_full_checks_only(why: str):
    """A pytest mark: run only with DRAGKIT_FULL=1 (CI's .ci/run sets it for these), else skipped with `why`."""
    import pytest

    return pytest.mark.skipif(os.environ.get("DRAGKIT_FULL") != "1", reason=f"{why}; DRAGKIT_FULL=1 runs it")
