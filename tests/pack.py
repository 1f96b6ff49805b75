"""Import DragKit as the package `dragkit`, as ComfyUI would load it.

The repository root is never put on sys.path: its `nodes/` would shadow ComfyUI's `nodes` module."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def register_pack() -> None:
    if "dragkit" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location("dragkit", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["dragkit"] = module
    spec.loader.exec_module(module)
