"""Run an example workflow headless on its sample image and write the edited image and a
before / points / after figure (see scripts/run_workflow.sh)."""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from harness.examples import (RANDOM_WEIGHTS_WARNING, ExampleFailed, before_points_after, copy_sample_images,
                      describe_handles, has_gpu, provide_checkpoint, run_example)
from harness.comfy_server import ComfyClient, prepare_base_directory, running_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflow", type=Path, default=ROOT / "example_workflows" / "gooddrag.json")
    parser.add_argument("--checkpoint", help="path of an SD 1.5 checkpoint (default: $DRAGKIT_CHECKPOINT)")
    parser.add_argument("--random-weights", action="store_true",
                        help="a generated random-weight checkpoint and the graph fitted to a CPU: plumbing, not quality")
    parser.add_argument("--output", type=Path, default=Path("dragkit_result.png"))
    parser.add_argument("--base", type=Path, default=Path(os.environ.get("DRAGKIT_CACHE") or Path.home() / ".cache" / "dragkit") / "demo")
    args = parser.parse_args()
    yours = None if args.random_weights else args.checkpoint or os.environ.get("DRAGKIT_CHECKPOINT")
    if yours is None and not args.random_weights:
        print("give --checkpoint /path/to/sd15.safetensors (or DRAGKIT_CHECKPOINT), or --random-weights", file=sys.stderr)
        return 2

    base = prepare_base_directory(args.base, testing_nodes=False)
    copy_sample_images(base)
    try:
        checkpoint, fitted = provide_checkpoint(base, yours)
        with running_server(Path(os.environ["COMFYUI_PATH"]), base, cpu=not has_gpu()) as server:
            client = ComfyClient(server.url)
            progress = lambda _c, d: print(f"  {d['node']}: {d['value']}/{d['max']}", flush=True)  # noqa: E731
            result = run_example(client, base, args.workflow, checkpoint, fitted, on_progress=progress)
    except ExampleFailed as failure:
        print(f"run_workflow: {failure}", file=sys.stderr)
        return 1
    result.after.save(args.output)
    figure = args.output.with_name(f"{args.output.stem}_figure.png")
    before_points_after(result).save(figure)
    print(f"{describe_handles(result)}\nwrote {args.output} and {figure} (before / points / after)")
    if fitted:
        print(RANDOM_WEIGHTS_WARNING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
