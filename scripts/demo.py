"""Start ComfyUI with DragKit loaded on 127.0.0.1 (see scripts/demo.sh)."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "host"), str(ROOT / "tests")]

from comfy_server import prepare_base_directory  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--base", type=Path, default=Path.home() / ".cache" / "dragkit" / "demo",
                        help="ComfyUI base directory (models/, input/, output/, custom_nodes/)")
    args = parser.parse_args()
    base = prepare_base_directory(args.base)
    checkpoints = base / "models" / "checkpoints"
    if not any(checkpoints.glob("*.safetensors")):
        from models import write_tiny_checkpoint

        print(f"no checkpoint in {checkpoints}: writing a tiny random-weight SD 1.5-shaped one", flush=True)
        write_tiny_checkpoint(checkpoints / "tiny_sd15.safetensors")
    command = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(args.port),
               "--base-directory", str(base), "--disable-auto-launch"]
    if not _has_gpu():
        command.append("--cpu")
    print(f"ComfyUI with DragKit: http://127.0.0.1:{args.port}", flush=True)
    return subprocess.call(command, cwd=os.environ["COMFYUI_PATH"])


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
