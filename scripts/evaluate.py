"""Evaluate drag methods on DragBench or Drag100 through ComfyUI's own /prompt queue.

Each (sample, method, seed) is the method's example workflow (example_workflows/<method>.json) with the
sample's picture (uploaded to the server), drag and prompt, and a DragKit Metrics node on the
result. Jobs fan out over the given ComfyUI servers (one job per server at a time). Every finished
job is one CSV row, written whole (core/results.py); a rerun with the same --output skips what is
there (a row cut by a crash is detected and made again), so an interrupted evaluation resumes. A
sample that cannot be evaluated (unreadable files, a point off the picture, NaN) is reported with
its file and what is wrong, kept as an error row, and the run goes on. At the end: summary.md / summary.json (per method: mean ± std over
seeds of the dataset means; seconds per edit; peak memory) and grid.png (before / points / after).

    bash scripts/evaluate.sh --dataset drag100 --methods gooddrag easydrag --servers http://gpu1:8188 http://gpu2:8188 --checkpoint v1-5-pruned-emaonly.safetensors
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import queue
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
import websocket
from PIL import Image

from dragkit.core.bench import BenchmarkDataError, load_sample, sample_folders, sample_name
from dragkit.core.results import ResultsTable
from dragkit.core.methods import METHODS as RECIPES
from harness.comfy_server import ComfyClient, ComfyServer, PromptRefused, prepare_base_directory
from harness.examples import (ExampleFailed, captioned, has_gpu, one_above_another, provide_checkpoint, side_by_side,
                              with_points)
from harness.workflow import RANDOM_SAM2, apply_structure_budgets, fitted_size, workflow_to_prompt

ROOT = Path(__file__).resolve().parents[1]
METHODS = tuple(recipe.key for recipe in RECIPES)  # each runs its example workflow, example_workflows/<key>.json
METRIC_COLUMNS = ("mean_distance", "image_fidelity", "image_fidelity_background", "dai_1", "dai_5", "dai_10", "dai_20")
COLUMNS = ("sample", "method", "seed", "server", "seconds", "peak_memory_gib", *METRIC_COLUMNS,
           "pairs", "distances", "handles", "image", "error")


@dataclass(frozen=True)
class Job:
    sample: object  # core.bench.BenchmarkSample (fitted)
    method: str
    seed: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.sample.name, self.method, str(self.seed)

    @property
    def image_name(self) -> str:
        return f"{self.method}/{self.sample.name.replace('/', '__')}_seed{self.seed}.png"


def main() -> int:
    args = parse_args()
    folders = sample_folders(args.dataset, args.data)[args.first:args.first + args.samples if args.samples else None]
    samples, unreadable = load_samples(folders, args)
    out = args.output
    (out / "images").mkdir(parents=True, exist_ok=True)
    table = ResultsTable(out / "per_sample.csv", COLUMNS)
    done = {(r["sample"], r["method"], r["seed"]) for r in table.rows()}
    for name, problem in unreadable:  # reported and kept as error rows; the run goes on without them
        print(f"evaluate: sample {name} skipped: {problem}", flush=True)
        for seed in args.seeds:
            for method in args.methods:
                if (name, method, str(seed)) not in done:
                    table.append(error_row(name, method, seed, problem))
    jobs = [Job(s, m, seed) for seed in args.seeds for m in args.methods for s in samples]
    todo = [job for job in jobs if job.key not in done]
    print(f"evaluate: {len(jobs)} edits ({len(samples)} samples × {len(args.methods)} methods × {len(args.seeds)} seeds), "
          f"{len(jobs) - len(todo)} already in {table}", flush=True)
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, lambda number, _frame: sys.exit(128 + number))
    local = None
    try:
        servers = args.servers
        if not servers:
            local, checkpoint = start_local_server(args)
            servers = [local.url]
        else:
            checkpoint = args.checkpoint
        failures = run_jobs(todo, servers, checkpoint, args, table, out)
    finally:
        if local is not None:
            local.stop()
    rows = table.rows()
    write_summary(rows, args, out)
    write_grid(rows, samples, args.methods, out)
    print(f"evaluate: {out / 'summary.md'}, {out / 'grid.png'}" + (f"; {failures} edits not done (see above; rerun to retry)" if failures else ""))
    return 1 if failures else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("drag100", "dragbench"), default="drag100")
    parser.add_argument("--data", type=Path, help="the dataset's folder (default ../shared/data/Drag100 or DragBench)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["gooddrag", "dragdiffusion", "easydrag"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--samples", type=int, default=0, help="how many samples (0: all)")
    parser.add_argument("--first", type=int, default=0, help="the first sample's index")
    parser.add_argument("--servers", nargs="*", default=[], help="ComfyUI URLs (default: start one here)")
    parser.add_argument("--checkpoint", help="the SD 1.5 checkpoint's name on the servers (a local server: DRAGKIT_CHECKPOINT)")
    parser.add_argument("--random-weights", action="store_true",
                        help="the random structure checkpoint with CPU budgets (plumbing, not quality)")
    parser.add_argument("--fit-side", type=int, default=0, help="scale each picture to this longest side (multiple of 8)")
    parser.add_argument("--no-image-fidelity", action="store_true", help="skip IF (no LPIPS weights in models/lpips)")
    parser.add_argument("--dai-normalisation", choices=("paper", "code"), default="paper")
    parser.add_argument("--output", type=Path, help="default $DRAGKIT_CACHE/evaluation/<dataset>")
    args = parser.parse_args()
    data_folder = {"drag100": "Drag100", "dragbench": "DragBench"}[args.dataset]
    args.data = args.data or ROOT.parent / "shared" / "data" / data_folder
    cache = Path(os.environ.get("DRAGKIT_CACHE") or Path.home() / ".cache" / "dragkit")
    args.output = args.output or cache / "evaluation" / args.dataset
    if args.servers and not (args.checkpoint or args.random_weights):
        parser.error("with --servers, name the checkpoint on them (--checkpoint NAME) or use --random-weights")
    if args.random_weights:
        from harness.examples import STRUCTURE_CHECKPOINT

        args.checkpoint = STRUCTURE_CHECKPOINT
        args.fit_side = args.fit_side or 256
    return args


def load_samples(folders: list[Path], args) -> tuple[list, list[tuple[str, str]]]:
    """The readable samples (fitted to --fit-side), and (name, what is wrong) for the others."""
    samples, unreadable = [], []
    for folder in folders:
        try:
            sample = load_sample(args.dataset, folder)
            samples.append(fitted(sample, args.fit_side) if args.fit_side else sample)
        except (BenchmarkDataError, ValueError) as problem:
            unreadable.append((sample_name(args.dataset, folder), str(problem)))
    return samples, unreadable


def error_row(sample: str, method: str, seed: int, problem: str) -> dict:
    return {"sample": sample, "method": method, "seed": seed, "error": problem}


def fitted(sample, side: int):
    """The sample scaled so its longer side is `side` (sides multiples of 8), drag scaled with it."""
    from dragkit.core.bench import BenchmarkSample

    height, width = sample.image.shape[:2]
    size = fitted_size(width, height, side)
    image = np.asarray(Image.fromarray(sample.image).resize(size, Image.LANCZOS))
    return BenchmarkSample(sample.name, image, sample.drag.resized(*size), sample.prompt)


def start_local_server(args) -> tuple[ComfyServer, str]:
    cache = Path(os.environ.get("DRAGKIT_CACHE") or Path.home() / ".cache" / "dragkit")
    base = prepare_base_directory(cache / "demo", testing_nodes=False)
    checkpoint, random = provide_checkpoint(base, None if args.random_weights else os.environ.get("DRAGKIT_CHECKPOINT"))
    if random:
        args.random_weights, args.fit_side = True, args.fit_side or 256
        sam2 = base / "models" / "sam2" / RANDOM_SAM2
        if "adaptivedrag" in args.methods and not sam2.exists():
            from harness.checkpoints import write_tiny_sam2

            write_tiny_sam2(sam2)
    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), base, cpu=not has_gpu())
    print(f"starting ComfyUI (log: {server.log_path}) …", flush=True)
    server.wait_ready()
    return server, checkpoint


# --- running ---------------------------------------------------------------------------------------

def run_jobs(jobs: list[Job], servers: list[str], checkpoint: str, args, table: ResultsTable, out: Path) -> int:
    from tqdm import tqdm

    pending: queue.Queue = queue.Queue()
    for job in jobs:
        pending.put(job)
    lock = threading.Lock()
    written = [0]
    bar = tqdm(total=len(jobs), unit="edit", desc="evaluate")

    def work(url: str) -> None:
        try:
            client = ComfyClient(url)
            info = client.object_info()
        except (OSError, requests.RequestException, websocket.WebSocketException) as error:
            bar.write(f"evaluate: cannot reach {url}: {error}")
            return
        try:
            check_server(url, info, checkpoint, args)
            while True:
                try:
                    job = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    row = run_job(client, info, job, checkpoint, args, out)
                except PromptRefused as refusal:  # the same for every job: stop, say why
                    with lock:
                        bar.write(f"evaluate: {url} refused the prompt: {refusal}")
                    _drain(pending)
                    return
                except (ExampleFailed, requests.RequestException) as failure:  # the server's: retried on a rerun
                    with lock:
                        bar.write(f"evaluate: {job.sample.name} / {job.method} / seed {job.seed} on {url}: {failure}")
                except Exception as problem:  # noqa: BLE001 - this sample's: an error row, the run goes on
                    with lock:
                        bar.write(f"evaluate: {job.sample.name} / {job.method} / seed {job.seed}: skipped: {problem!r}")
                        table.append(error_row(job.sample.name, job.method, job.seed, f"{type(problem).__name__}: {problem}"))
                        bar.update(1)
                else:
                    with lock:
                        table.append(row)
                        written[0] += 1
                        bar.update(1)
        except ExampleFailed as failure:
            with lock:
                bar.write(f"evaluate: {url}: {failure}")
        finally:
            client.close()

    workers = [threading.Thread(target=work, args=(url,), daemon=True) for url in servers]
    for worker in workers:
        worker.start()
    try:
        while any(worker.is_alive() for worker in workers):
            time.sleep(0.2)
    except BaseException:  # Ctrl-C or a kill: stop what the servers are running for us
        for url in servers:
            try:
                requests.post(f"{url}/interrupt", timeout=5)
            except requests.RequestException:
                pass
        raise
    finally:
        bar.close()
    return len(jobs) - written[0]  # failed, refused or never started


def _drain(pending: queue.Queue) -> None:
    while True:
        try:
            pending.get_nowait()
        except queue.Empty:
            return


def check_server(url: str, info: dict, checkpoint: str, args) -> None:
    if "DragKitMetrics" not in info:
        raise ExampleFailed("DragKit is not loaded there (no DragKitMetrics node)")
    names = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    if checkpoint not in names:
        raise ExampleFailed(f"no checkpoint {checkpoint!r} in its models/checkpoints (it has {names})")


def run_job(client: ComfyClient, info: dict, job: Job, checkpoint: str, args, out: Path) -> dict:
    prompt = workflow_to_prompt(json.loads((ROOT / "example_workflows" / f"{job.method}.json").read_text()), info)
    uploaded = upload(client.url, job.sample.image, f"dragkit_eval_{job.sample.name.replace('/', '__')}.png")
    if args.random_weights:
        apply_structure_budgets(prompt, checkpoint)
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = checkpoint
        elif kind == "LoadImage":
            inputs["image"] = uploaded
        elif kind == "DragKitEditor":
            inputs["drag_data"] = job.sample.drag.to_json()
        elif kind == "CLIPTextEncode":
            inputs["text"] = job.sample.prompt
        for name in ("seed", "noise_seed"):
            if name in inputs and not isinstance(inputs[name], list):
                inputs[name] = job.seed
    add_metrics(prompt, args)
    run = client.run(prompt, timeout=6 * 3600, whole=True)
    if run.status != "success":
        raise ExampleFailed(f"{run.status}: {run.describe()}")
    reports = [o["dragkit_metrics"][0] for o in run.outputs.values() if "dragkit_metrics" in o]
    if not reports:
        raise ExampleFailed("the Metrics node gave no report")
    report = reports[0]
    handles = report.get("handles", [])
    saved = [i for o in run.outputs.values() for i in o.get("images", []) if i["type"] == "output"]
    if not saved:
        raise ExampleFailed("the workflow saved no image")
    picture = requests.get(f"{client.url}/view", params=saved[-1], timeout=60)
    picture.raise_for_status()
    (out / "images" / job.image_name).parent.mkdir(parents=True, exist_ok=True)
    (out / "images" / job.image_name).write_bytes(picture.content)
    # The edit, without the metrics. Unknown (NaN, left out of the means) when the server had the
    # whole edit in its cache already: a request interrupted in its Metrics node computed it.
    seconds = run.started["dragkit_metrics"] - min(run.started.values()) if len(run.started) > 1 else math.nan
    return {"sample": job.sample.name, "method": job.method, "seed": job.seed, "server": client.url,
            "seconds": round(seconds, 2), "peak_memory_gib": report["peak_memory_gib"],
            **{c: report.get(c, "") for c in METRIC_COLUMNS}, "pairs": report["pairs"],
            "distances": json.dumps(report["distances"]), "handles": json.dumps(handles), "image": job.image_name}


def upload(url: str, image: np.ndarray, name: str) -> str:
    data = io.BytesIO()
    Image.fromarray(image).save(data, format="PNG")
    response = requests.post(f"{url}/upload/image", files={"image": (name, data.getvalue(), "image/png")},
                             data={"overwrite": "true"}, timeout=60)
    response.raise_for_status()
    answer = response.json()
    return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]


def add_metrics(prompt: dict, args) -> None:
    """A DragKit Metrics node on the saved picture, with the loader's own MODEL (no LoRA) for DIFT."""
    def node_id(kind: str) -> str:
        return next(i for i, n in prompt.items() if n["class_type"] == kind)

    ckpt, editor = node_id("CheckpointLoaderSimple"), node_id("DragKitEditor")
    save = prompt[node_id("SaveImage")]["inputs"]
    prompt["dragkit_metrics"] = {"class_type": "DragKitMetrics", "inputs": {
        "model": [ckpt, 0], "vae": [ckpt, 2], "conditioning": [node_id("CLIPTextEncode"), 0],
        "source": list(prompt[editor]["inputs"]["image"]), "edited": list(save["images"]), "drag": [editor, 0],
        "image_fidelity": not args.no_image_fidelity, "dai_normalisation": args.dai_normalisation, "dift_block": 1,
        "edit": next(n["inputs"]["edit"] for n in prompt.values() if isinstance(n["inputs"].get("edit"), list))}}


# --- results ---------------------------------------------------------------------------------------

def summarise(rows: list[dict], methods: list[str]) -> dict:
    """Per method: each seed's dataset figures (MD pooled over all pairs, as DragBench's; the others
    the mean over samples), then their mean and std over seeds; seconds per edit; the peak memory."""
    summary = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method and not r.get("error")]
        if not mine:
            continue
        per_seed = {}
        for seed in sorted({r["seed"] for r in mine}):
            seeded = [r for r in mine if r["seed"] == seed]
            figures = {"mean_distance": _mean([d for r in seeded for d in json.loads(r["distances"])])}
            for column in METRIC_COLUMNS[1:]:
                figures[column] = _mean([float(r[column]) for r in seeded if r[column] != ""])
            per_seed[seed] = figures
        summary[method] = {
            "edits": len(mine), "seeds": len(per_seed),
            **{c: {"mean": _mean([f[c] for f in per_seed.values()]), "std": _std([f[c] for f in per_seed.values()])}
               for c in METRIC_COLUMNS},
            "seconds_per_edit": _mean([float(r["seconds"]) for r in mine]),
            "peak_memory_gib": max(float(r["peak_memory_gib"]) for r in mine),
        }
    return summary


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def _std(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def write_summary(rows: list[dict], args, out: Path) -> None:
    summary = summarise(rows, args.methods)
    summary["errors"] = [{k: r[k] for k in ("sample", "method", "seed", "error")} for r in rows if r.get("error")]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    heads = ["method", "edits", "MD ↓ (px)", "IF ↑", "IF background ↑", "DAI γ=1 ↓", "DAI γ=5", "DAI γ=10", "DAI γ=20",
             "s / edit", "peak GiB"]
    lines = [f"{args.dataset}, {args.checkpoint or 'DRAGKIT_CHECKPOINT'}"
             + (" (random weights: plumbing, not quality)" if args.random_weights else "")
             + f", DAI normalisation {args.dai_normalisation}; mean ± std over seeds", "",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for method, s in summary.items():
        if method == "errors":
            continue
        cells = [method, str(s["edits"])] + [f"{s[c]['mean']:.4g} ± {s[c]['std']:.2g}" for c in METRIC_COLUMNS]
        lines.append("| " + " | ".join(cells + [f"{s['seconds_per_edit']:.1f}", f"{s['peak_memory_gib']:.2f}"]) + " |")
    if summary["errors"]:
        lines += ["", f"{len(summary['errors'])} edit(s) not evaluated (error rows in per_sample.csv):"]
        lines += [f"- {e['sample']} / {e['method']} / seed {e['seed']}: {e['error']}" for e in summary["errors"]]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def write_grid(rows: list[dict], samples: list, methods: list[str], out: Path, at_most: int = 8) -> None:
    """Per sample (the first `at_most` with results): before, the drag (start red, target blue, the
    first method's final handle green) and each method's edit (first seed)."""
    strips = []
    for sample in samples:
        edits = {}
        for row in rows:  # the first row of each method: its first seed
            if row["sample"] == sample.name and row["method"] in methods and not row.get("error"):
                edits.setdefault(row["method"], row)
        edits = {m: edits[m] for m in methods if m in edits}
        if not edits:
            continue
        before = Image.fromarray(sample.image)
        first = next(iter(edits.values()))
        pictures = [(before, sample.name), (with_points(before, json.loads(first["handles"])), "drag")]
        pictures += [(Image.open(out / "images" / row["image"]).convert("RGB"), method) for method, row in edits.items()]
        strips.append(side_by_side([captioned(p, caption[:40], 160) for p, caption in pictures]))
        if len(strips) == at_most:
            break
    if strips:
        one_above_another(strips).save(out / "grid.png")


if __name__ == "__main__":
    sys.exit(main())
