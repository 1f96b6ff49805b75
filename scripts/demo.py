"""The demo (see scripts/demo.sh): ComfyUI with DragKit on 127.0.0.1, the example workflows in its
template browser, and the GoodDrag example run headless on its sample picture first, writing the
edited picture and a before / points / after figure."""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from harness.examples import (RANDOM_WEIGHTS_WARNING, ExampleFailed, before_points_after, copy_sample_images,
                      describe_handles, has_gpu, provide_checkpoint, run_example)
from harness.comfy_server import ComfyClient, ComfyServer, prepare_base_directory
from dragkit.core.memory import peak_rss_gib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8188)
    cache = Path(os.environ.get("DRAGKIT_CACHE") or Path.home() / ".cache" / "dragkit")
    parser.add_argument("--base", type=Path, default=cache / "demo",
                        help="ComfyUI base directory (models/, input/, output/, custom_nodes/); default $DRAGKIT_CACHE/demo")
    parser.add_argument("--workflow", type=Path, default=ROOT / "example_workflows" / "gooddrag.json")
    parser.add_argument("--run-only", action="store_true", help="run the workflow, write the pictures and stop")
    parser.add_argument("--fit-side", type=int, default=256,
                        help="without DRAGKIT_CHECKPOINT: the picture's longest side on the random-weight run")
    parser.add_argument("--serve-only", action="store_true", help="serve ComfyUI without the headless run first")
    args = parser.parse_args()
    base = prepare_base_directory(args.base, testing_nodes=False)
    copy_sample_images(base)
    try:
        checkpoint, fitted = provide_checkpoint(base, os.environ.get("DRAGKIT_CHECKPOINT"))
    except ExampleFailed as failure:
        print(f"demo: {failure}", file=sys.stderr)
        return 2
    # ComfyUI stops with the demo, whether it is stopped by Ctrl-C or by a kill (SIGTERM, SIGHUP)
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda number, _frame: sys.exit(128 + number))
    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), base, cpu=not has_gpu(), port=args.port)
    try:
        print(f"starting ComfyUI (log: {server.log_path}) …", flush=True)
        server.wait_ready()
        status = 0 if args.serve_only else headless_run(server, base, args.workflow, checkpoint, fitted, args.fit_side)
        if args.run_only:
            return status
        print(f"\nComfyUI with DragKit: {server.url}  (Ctrl-C stops it)\n"
              "the example workflows: Workflow menu → Browse Templates → dragkit", flush=True)
        return server.process.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


def headless_run(server: ComfyServer, base: Path, workflow: Path, checkpoint: str, fitted: bool, fit_side: int) -> int:
    """Run `workflow`, write <base>/output/dragkit_demo/{edited,figure}.png and result.json; 0 when
    the edit is usable (finite, not flat, every handle nearer its target), else 1 with the reason."""
    if fitted:
        print(RANDOM_WEIGHTS_WARNING, flush=True)
    print(f"running {workflow.name} with {checkpoint} …", flush=True)
    shown = {}

    def progress(_client, data):
        node = data["node"]
        if shown.get(node, -1) < data["value"] * 10 // data["max"]:  # every tenth of each node's bar
            shown[node] = data["value"] * 10 // data["max"]
            print(f"  node {node}: {data['value']}/{data['max']}", flush=True)

    client = ComfyClient(server.url)
    try:
        result = run_example(client, base, workflow, checkpoint, fitted, on_progress=progress, fit_side=fit_side)
    except ExampleFailed as failure:
        print(f"demo: the run failed: {failure}", file=sys.stderr)
        return 1
    finally:
        client.close()
    out = base / "output" / "dragkit_demo"
    out.mkdir(parents=True, exist_ok=True)
    result.after.save(out / "edited.png")
    before_points_after(result).save(out / "figure.png")
    peak = peak_rss_gib(server.process.pid)
    peak = None if peak is None else round(peak, 2)
    (out / "result.json").write_text(json.dumps({
        "workflow": workflow.name, "checkpoint": checkpoint, "random_weights": fitted, "seconds": round(result.seconds, 1),
        "server_peak_memory_gb": peak, "handles": result.handles, "nearer": result.nearer()}, indent=1))
    print(f"done in {result.seconds:.0f} s (ComfyUI's peak memory {peak} GB)\n{describe_handles(result)}\n"
          f"wrote {out / 'edited.png'} and {out / 'figure.png'} (before / points / after)", flush=True)
    if fitted:
        print(RANDOM_WEIGHTS_WARNING, flush=True)
    if not all(result.nearer()):
        print("demo: a handle did not move toward its target (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
