"""Run an example workflow headless on its sample image and write the edited image (see scripts/run_workflow.sh)."""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "host"), str(ROOT / "tests")]

from comfy_server import ComfyClient, prepare_base_directory, running_server  # noqa: E402
from workflow import fit_to_tiny_checkpoint, nodes_of_type, workflow_to_prompt  # noqa: E402

TINY = "tiny_sd15.safetensors"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflow", type=Path, default=ROOT / "workflows" / "gooddrag.json")
    parser.add_argument("--checkpoint", help="an SD 1.5 checkpoint in <base>/models/checkpoints (default: the workflow's)")
    parser.add_argument("--tiny", action="store_true", help="smoke run on a generated random-weight checkpoint (noise out)")
    parser.add_argument("--output", type=Path, default=Path("dragkit_result.png"))
    parser.add_argument("--base", type=Path, default=Path(os.environ.get("DRAGKIT_CACHE") or Path.home() / ".cache" / "dragkit") / "demo")
    args = parser.parse_args()

    base = prepare_base_directory(args.base, testing_nodes=False)
    for image in (ROOT / "workflows" / "images").iterdir():
        shutil.copy(image, base / "input" / image.name)
    checkpoints = base / "models" / "checkpoints"
    if args.tiny and not (checkpoints / TINY).exists():
        from models import write_tiny_checkpoint

        write_tiny_checkpoint(checkpoints / TINY)

    with running_server(Path(os.environ["COMFYUI_PATH"]), base, cpu=not _has_gpu()) as server:
        client = ComfyClient(server.url)
        prompt = workflow_to_prompt(json.loads(args.workflow.read_text()), client.object_info())
        if args.tiny:
            fit_to_tiny_checkpoint(prompt, TINY)
        elif args.checkpoint:
            for inputs in nodes_of_type(prompt, "CheckpointLoaderSimple"):
                inputs["ckpt_name"] = args.checkpoint
        wanted = nodes_of_type(prompt, "CheckpointLoaderSimple")[0]["ckpt_name"]
        if not (checkpoints / wanted).exists():
            print(f"{wanted} is not in {checkpoints}: put an SD 1.5 checkpoint there (or pass --tiny)", file=sys.stderr)
            return 2
        run = client.run(prompt, on_progress=lambda _c, d: print(f"  {d['node']}: {d['value']}/{d['max']}", flush=True))
        if run.status != "success":
            print(f"the workflow did not finish: {run.describe()}", file=sys.stderr)
            return 1
        saved = [image for output in run.outputs.values() for image in output.get("images", []) if image["type"] == "output"]
        shutil.copy(base / "output" / saved[-1]["subfolder"] / saved[-1]["filename"], args.output)
        print(f"wrote {args.output}")
        return 0


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
