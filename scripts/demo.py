"""Start ComfyUI with DragKit loaded on 127.0.0.1 (see scripts/demo.sh)."""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "host"), str(ROOT / "tests")]

from comfy_server import prepare_base_directory  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8188)
    cache = Path(os.environ.get("DRAGKIT_CACHE") or Path.home() / ".cache" / "dragkit")
    parser.add_argument("--base", type=Path, default=cache / "demo",
                        help="ComfyUI base directory (models/, input/, output/, custom_nodes/); default $DRAGKIT_CACHE/demo")
    args = parser.parse_args()
    base = prepare_base_directory(args.base, testing_nodes=False)
    checkpoints = base / "models" / "checkpoints"
    if not any(checkpoints.glob("*.safetensors")):
        from models import write_tiny_checkpoint

        print(f"no checkpoint in {checkpoints}: writing a tiny random-weight SD 1.5-shaped one", flush=True)
        write_tiny_checkpoint(checkpoints / "tiny_sd15.safetensors", full_clip=True)
    command = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(args.port),
               "--base-directory", str(base), "--disable-auto-launch"]
    if not _has_gpu():
        command.append("--cpu")
    print(f"ComfyUI with DragKit: http://127.0.0.1:{args.port}", flush=True)
    server = subprocess.Popen(command, cwd=os.environ["COMFYUI_PATH"])
    # ComfyUI stops with the demo, whether it is stopped by Ctrl-C or by a kill (SIGTERM, SIGHUP)
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda number, _frame: sys.exit(128 + number))
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
