"""The benchmark commands run and report what they say (timings are not asserted: benchmarks/)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.comfy_inprocess import in_the_current_hosts_pass_only

pytestmark = in_the_current_hosts_pass_only("the benchmarks' plumbing is the same on either ComfyUI")

ROOT = Path(__file__).resolve().parents[2]


def run_script(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-P", str(ROOT / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_methods_benchmark_counts_each_stage_and_sets_it_beside_the_official_code(tmp_path):
    table = tmp_path / "methods.json"
    out = run_script("methods.py", "--size", "64", "--lora-steps", "2", "--methods", "GoodDrag", "EasyDrag",
                     "--json", str(table))
    record = json.loads(table.read_text())
    stages = {e["method"]: [s["name"] for s in e["stages"]] for e in record["edits"]}
    assert stages == {"GoodDrag": ["LoRA", "inversion", "drag", "sampling", "re-sample"],
                      "EasyDrag": ["inversion", "drag", "sampling", "re-sample"]}
    for edit in record["edits"]:
        assert 0 < edit["work_without_lora"] <= edit["official_work_without_lora"], edit
        assert edit["work_without_lora"] == sum(s["work"] for s in edit["stages"] if s["name"] not in ("LoRA", "re-sample"))
        lora = [s for s in edit["stages"] if s["name"] == "LoRA"]
        assert not lora or lora[0]["forward_rows"] == 2 * 4  # two steps at batch 4
    assert "official code" in out and "30.6 s (paper, A100)" in out


def test_lora_steps_benchmark_reports_time_and_errors_per_step_count(tmp_path):
    table = tmp_path / "lora.json"
    run_script("lora_steps.py", "--model", "tiny", "--size", "64", "--steps", "0", "3", "--json", str(table))
    rows = json.loads(table.read_text())["rows"]
    assert [r["lora_steps"] for r in rows] == [0, 3]
    assert rows[0]["seconds"] < rows[1]["seconds"]  # no training at 0 steps
    assert all(r["reconstruction_error"] > 0 and r["one_step_error"] > 0 for r in rows)
    assert rows[0]["one_step_error"] != rows[1]["one_step_error"], "the LoRA did not reach the patched model"
