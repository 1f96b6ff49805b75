"""Evaluation as a graph (DragKit Benchmark Sample → DragKit Metrics) and the evaluation CLI
(scripts/evaluate.py) on two live servers at once, interrupted and resumed."""

import contextlib
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import torch
from PIL import Image

from harness.comfy_inprocess import comfyui_path, in_the_current_hosts_pass_only
from harness.comfy_server import prepare_base_directory, running_server

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the checkout")
LPIPS_CHANNELS = (64, 192, 384, 256, 256)


def write_random_lpips(folder: Path) -> None:
    """Random weights in the real files' formats: torchvision's AlexNet (its features) and LPIPS's layers."""
    from torchvision.models import alexnet

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save({k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")},
               folder / "alexnet-owt-7be5be79.pth")
    generator = torch.Generator().manual_seed(1)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) for i, c in enumerate(LPIPS_CHANNELS)},
               folder / "alex.pth")


def metrics_graph(index: int, image_fidelity=True) -> dict:
    metrics = {"model": ["ckpt", 0], "vae": ["ckpt", 2], "conditioning": ["cond", 0], "source": ["sample", 0],
               "drag": ["sample", 1], "image_fidelity": image_fidelity, "dai_normalisation": "paper", "dift_block": 0}
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd15.safetensors"}},
        "text": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "cond": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["text", 0]}},
        "sample": {"class_type": "DragKitBenchmarkSample", "inputs": {
            "dataset": "drag100", "folder": "Drag100", "index": index, "width": 128}},
        "inverted": {"class_type": "ImageInvert", "inputs": {"image": ["sample", 0]}},
        "same": {"class_type": "DragKitMetrics", "inputs": {**metrics, "edited": ["sample", 0]}},
        "other": {"class_type": "DragKitMetrics", "inputs": {**metrics, "edited": ["inverted", 0]}},
    }


def test_without_lpips_weights_the_prompt_is_refused_naming_the_folder_and_the_files(client, comfy_base):
    (comfy_base / "models" / "lpips").mkdir(parents=True, exist_ok=True)
    response = client.post_prompt(metrics_graph(0))  # refused when queued, not after minutes of editing
    assert response.status_code == 400, response.text
    (error,) = {e["details"] for e in response.json()["node_errors"]["same"]["errors"] if e["details"].startswith("image_fidelity")}
    message = error.removeprefix("image_fidelity - ")
    assert message.startswith("image_fidelity:") and str(comfy_base / "models" / "lpips") in message
    assert "alexnet-owt-7be5be79.pth" in message and "alex.pth" in message and "turn image_fidelity off" in message


def test_an_unchanged_picture_scores_the_drag_itself_and_fidelity_one(client, comfy_base):
    from dragkit.core.bench import load_drag100

    write_random_lpips(comfy_base / "models" / "lpips")
    index = 3
    sample = load_drag100(DATA / "Drag100", width=128)[index]
    run = client.run(metrics_graph(index))
    assert run.status == "success", run.describe()
    same, other = (run.outputs[node]["dragkit_metrics"][0] for node in ("same", "other"))
    # DIFT finds every handle where it was: the distance is the drag's own length
    handles = [tuple(round(v) for v in h) for h in sample.drag.handles]
    assert [tuple(m) for m in same["matched"]] == handles
    expected = [math.dist(h, tuple(round(v) for v in t)) for h, t in zip(handles, sample.drag.targets)]
    assert same["distances"] == pytest.approx(expected) and same["mean_distance"] == pytest.approx(sum(expected) / len(expected))
    assert same["image_fidelity"] == pytest.approx(1, abs=1e-6) and same["image_fidelity_background"] == pytest.approx(1, abs=1e-6)
    assert other["image_fidelity"] < same["image_fidelity"] - 0.01
    assert other["image_fidelity_background"] < 1 - 1e-4  # the inverted background is a change outside the mask
    for report in (same, other):
        assert all(math.isfinite(report[f"dai_{g}"]) and report[f"dai_{g}"] >= 0 for g in (1, 5, 10, 20))
        assert report["pairs"] == sample.drag.pair_count and report["peak_memory_gib"] > 0


def test_datasets_are_listed_from_the_dataset_folder_and_nothing_else_is_read(client, comfy_base):
    options = json.dumps(client.object_info()["DragKitBenchmarkSample"]["input"]["required"]["folder"])
    assert '"Drag100", "DragBench"' in options, options
    for folder in (str(DATA / "Drag100"), "../Drag100", "Drag100/../../models", "/etc"):
        graph = metrics_graph(0, image_fidelity=False)
        graph["sample"]["inputs"]["folder"] = folder
        response = client.post_prompt(graph)
        assert response.status_code == 400, (folder, response.text)
        (details,) = {e["details"].split(" - ", 1)[1] for e in response.json()["node_errors"]["sample"]["errors"]}
        assert details.startswith(f"folder: {folder!r} is not a dataset folder in dragkit_datasets (it has Drag100, DragBench)")
        assert str(comfy_base) not in details  # the server's own folders are never shown


def test_a_sample_index_past_the_end_is_refused_with_the_count(client):
    graph = metrics_graph(100, image_fidelity=False)
    run = client.run(graph)
    assert run.status == "error"
    assert run.error["exception_message"].strip() == "index: 100 is past the last sample (99) of Drag100"


# --- the CLI ----------------------------------------------------------------------------------------

def csv_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@contextlib.contextmanager
def evaluation_servers(tmp_path_factory, count: int):
    """Fresh servers with the structure checkpoint and random LPIPS files, one thread each (two
    servers' default threads on 2 cores slow both tenfold)."""
    from harness.checkpoints import write_structure_checkpoint

    checkpoint = tmp_path_factory.mktemp("checkpoint") / "dragkit_structure_sd15.safetensors"
    write_structure_checkpoint(checkpoint)
    with contextlib.ExitStack() as stack:
        servers = []
        for name in ("comfy_a", "comfy_b")[:count]:
            base = prepare_base_directory(tmp_path_factory.mktemp(name), testing_nodes=False)
            (base / "models" / "checkpoints" / checkpoint.name).symlink_to(checkpoint)
            write_random_lpips(base / "models" / "lpips")
            servers.append(stack.enter_context(running_server(comfyui_path(), base, threads=1)))
        yield servers


@pytest.fixture
def two_servers(tmp_path_factory):
    with evaluation_servers(tmp_path_factory, 2) as servers:
        yield servers


@pytest.fixture
def one_server(tmp_path_factory):
    with evaluation_servers(tmp_path_factory, 1) as servers:
        yield servers[0]


def evaluate(output: Path, servers: list[str], *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-P", str(ROOT / "scripts" / "evaluate.py"), "--dataset", "drag100", "--samples", "3",
               "--methods", "easydrag", "--random-weights", "--fit-side", "128", "--output", str(output),
               "--servers", *servers, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))


@in_the_current_hosts_pass_only("the CLI talks to servers over HTTP only: one ComfyUI shows it (slow on 2 cores)")
def test_the_cli_fans_out_over_two_servers_resumes_after_a_kill_and_writes_each_sample_once(two_servers, tmp_path):
    output = tmp_path / "evaluation"
    servers = [server.url for server in two_servers]
    first = evaluate(output, servers)
    table = output / "per_sample.csv"
    deadline = time.monotonic() + 600
    while not csv_rows(table):
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "no edit finished in 10 minutes"
        time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    interrupted = csv_rows(table)
    assert 1 <= len(interrupted) < 3, "the kill came after every edit: the resume would not be tested"
    for url in servers:  # the kill also stopped what the servers were running for it
        deadline = time.monotonic() + 60
        while server_queue(url)["queue_running"]:
            assert time.monotonic() < deadline, f"{url} still runs the killed evaluation's edit"
            time.sleep(0.5)

    second = evaluate(output, servers)
    log, _ = second.communicate(timeout=900)
    assert second.returncode == 0, log
    assert f"3 edits (3 samples × 1 methods × 1 seeds), {len(interrupted)} already in" in log
    rows = csv_rows(table)
    assert sorted(r["sample"] for r in rows) == sorted({r["sample"] for r in rows}) and len(rows) == 3
    assert rows[:len(interrupted)] == interrupted  # nothing finished was recomputed or rewritten
    assert {r["server"] for r in rows} == set(servers)
    for row in rows:
        assert math.isfinite(float(row["mean_distance"])) and float(row["image_fidelity"]) <= 1  # random LPIPS: may be < 0
        # > 0, or unknown for an edit the killed run's server had finished (only its Metrics ran again)
        assert float(row["seconds"]) > 0 or (math.isnan(float(row["seconds"])) and row not in interrupted)
        picture = Image.open(output / "images" / row["image"])
        assert max(picture.size) == 128
        handles = json.loads(row["handles"])
        assert len(handles) == int(row["pairs"]) == len(json.loads(row["distances"]))
    summary = json.loads((output / "summary.json").read_text())
    assert summary["easydrag"]["edits"] == 3
    assert summary["easydrag"]["mean_distance"]["mean"] == pytest.approx(
        sum(d for r in rows for d in json.loads(r["distances"])) / sum(int(r["pairs"]) for r in rows))
    assert "| easydrag | 3 |" in (output / "summary.md").read_text()
    grid = Image.open(output / "grid.png")
    assert grid.height == 3 * 180  # a strip per sample: before, drag, the edit


def server_queue(url: str) -> dict:
    return requests.get(f"{url}/queue", timeout=10).json()


@in_the_current_hosts_pass_only("the CLI talks to servers over HTTP only: one ComfyUI shows it (slow on 2 cores)")
def test_the_cli_skips_a_bad_sample_with_an_error_row_and_redoes_a_row_cut_by_a_crash(one_server, tmp_path):
    """A sample with a NaN point is reported (sample, file, what) as an error row and the run goes on;
    a row cut mid-write by a crash is not counted as done: it is made again and the summary reads the rest."""
    data = tmp_path / "Drag100"
    source = ROOT.parent / "shared" / "data" / "Drag100"
    good, bad = sorted(p.parent.name for p in source.glob("*/points.json"))[:2]
    for name in (good, bad):
        shutil.copytree(source / name, data / name)
    points = json.loads((data / bad / "points.json").read_text())
    points["points"][0] = [float("nan"), 10]
    (data / bad / "points.json").write_text(json.dumps(points))  # writes NaN as JSON's NaN token
    output = tmp_path / "evaluation"
    output.mkdir()
    (output / "per_sample.csv").write_text(  # an older run crashed while writing the good sample's row
        "sample,method,seed,server,seconds,peak_memory_gib,mean_distance,image_fidelity,image_fidelity_background,"
        f"dai_1,dai_5,dai_10,dai_20,pairs,distances,handles,image,error\n{good},easydrag,0,{one_server.url},12.")
    run = evaluate(output, [one_server.url], "--data", str(data))
    log, _ = run.communicate(timeout=900)
    assert run.returncode == 0, log
    assert f"sample {bad} skipped: {bad} (" in log and "point 1 must be two finite numbers" in log, log
    rows = csv_rows(output / "per_sample.csv")
    assert sorted(r["sample"] for r in rows) == sorted([good, bad]), rows
    (made,) = [r for r in rows if r["sample"] == good]
    (skipped,) = [r for r in rows if r["sample"] == bad]
    assert made["error"] == "" and math.isfinite(float(made["mean_distance"])) and float(made["seconds"]) > 0
    assert str(data / bad) in skipped["error"] and "finite" in skipped["error"] and skipped["mean_distance"] == ""
    summary = json.loads((output / "summary.json").read_text())
    assert summary["easydrag"]["edits"] == 1 and [e["sample"] for e in summary["errors"]] == [bad]
    assert f"- {bad} / easydrag / seed 0:" in (output / "summary.md").read_text()
