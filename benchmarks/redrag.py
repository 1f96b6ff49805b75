"""Re-drag: queue an example workflow, move only its target points, queue again, as a user does.

ComfyUI's cache keeps every node whose inputs did not change (checkpoint, encodes, LoRA, inversion),
so the second run is the editor, the drag, the sampler and what follows. Prints both runs' times
node by node, which nodes the second run took from the cache, and the drag's set-up (from its start
to its first step's progress report, less one step). Run: `bash scripts/bench.sh --redrag` (CPU:
the random-weight structure checkpoint with the graph fitted, as the demo) or with
`--checkpoint /path/to/sd15.safetensors`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from harness.examples import copy_sample_images, has_gpu, provide_checkpoint, run_example
from harness.comfy_server import ComfyClient, Run, prepare_base_directory, running_server
from harness.workflow import fit_to_structure_checkpoint, nodes_of_type, workflow_to_prompt

from dragkit.core.drag import DragSpec

DRAG_NODES = ("DragKitDragDiffusion", "DragKitGoodDrag", "DragKitEasyDrag", "DragKitDragNeXt", "DragKitAdaptiveDrag")


def moved_targets(prompt: dict, shift: float) -> dict:
    """The prompt with every editor's targets `shift` px further right (kept inside the picture)."""
    moved = json.loads(json.dumps(prompt))
    for editor in nodes_of_type(moved, "DragKitEditor"):
        spec = DragSpec.from_json(editor["drag_data"])
        targets = tuple((min(x + shift, spec.width - 1.0), y) for x, y in spec.targets)
        editor["drag_data"] = DragSpec(spec.width, spec.height, spec.handles, targets, spec.mask, spec.regions).to_json()
    return moved


def drag_setup_seconds(run: Run, prompt: dict) -> float | None:
    """From the drag node's start to its first progress report, less one step's mean time."""
    for node_id, node in prompt.items():
        if node["class_type"] in DRAG_NODES and node_id in run.first_progress:
            steps = [value for node, value, _ in run.progress if node == node_id]
            whole = run.node_seconds()[node_id]
            until_first = run.first_progress[node_id] - run.started[node_id]
            per_step = (whole - until_first) / max(1, max(steps) - 1)
            return until_first - per_step
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflow", type=Path, default=ROOT / "example_workflows" / "gooddrag.json")
    parser.add_argument("--checkpoint", help="an SD 1.5 checkpoint (default: the random-weight structure checkpoint, graph fitted)")
    parser.add_argument("--fit-side", type=int, default=256, help="the fitted picture's longer side (random weights)")
    parser.add_argument("--shift", type=float, default=8.0, help="pixels each target moves for the re-drag")
    parser.add_argument("--base", type=Path, default=Path("/tmp/dragkit_redrag"))
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    base = prepare_base_directory(args.base, testing_nodes=False)
    copy_sample_images(base)
    checkpoint, fitted = provide_checkpoint(base, args.checkpoint)
    with running_server(Path(os.environ["COMFYUI_PATH"]), base, cpu=not has_gpu()) as server:
        client = ComfyClient(server.url)
        prompt = workflow_to_prompt(json.loads(args.workflow.read_text()), client.object_info())
        if fitted:
            fit_to_structure_checkpoint(prompt, checkpoint, base, args.fit_side)
        first = run_example(client, base, args.workflow, checkpoint, False, prompt=prompt)
        again = run_example(client, base, args.workflow, checkpoint, False, prompt=moved_targets(prompt, args.shift))
    names = {node_id: node["class_type"] for node_id, node in prompt.items()}
    report = {"workflow": args.workflow.name, "checkpoint": checkpoint, "random_weights": fitted,
              "first_seconds": first.seconds, "redrag_seconds": again.seconds,
              "first_nodes": {names[n]: s for n, s in first.run.node_seconds().items()},
              "redrag_nodes": {names[n]: s for n, s in again.run.node_seconds().items()},
              "redrag_cached": sorted(names[n] for n in again.run.cached),
              "drag_setup_seconds": drag_setup_seconds(again.run, prompt)}
    print(f"{args.workflow.name} on {checkpoint}{' (random weights, fitted)' if fitted else ''}")
    print(f"first run {report['first_seconds']:.1f} s, re-drag (targets moved {args.shift:g} px) {report['redrag_seconds']:.1f} s")
    for label, nodes in (("first run", report["first_nodes"]), ("re-drag", report["redrag_nodes"])):
        print(f"  {label}: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in nodes.items()))
    print(f"  re-drag took from the cache: {', '.join(report['redrag_cached'])}")
    if report["drag_setup_seconds"] is not None:
        print(f"  the drag's set-up before its first step: {report['drag_setup_seconds']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
