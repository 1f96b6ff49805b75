"""README command 1, as a new user runs it: `bash scripts/demo.sh` without a checkpoint runs the
GoodDrag example on the generated random-weight structure checkpoint (fitted to a CPU) and writes
the edited picture, the before / points / after figure and a report; here at a 128-px picture and
stopping after the run (`--run-only`), where a user's demo goes on serving ComfyUI."""

import json
import os
import subprocess

import numpy as np
from PIL import Image

from harness.comfy_inprocess import in_the_current_hosts_pass_only
from harness.comfy_server import ROOT, free_port

pytestmark = in_the_current_hosts_pass_only("scripts/demo.sh runs the current ComfyUI; it is tested in that host's pass")


def test_the_demo_runs_the_gooddrag_example_and_writes_the_edit_and_its_figure(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DRAGKIT_CHECKPOINT"}
    demo = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--run-only", "--fit-side", "128", "--base", str(tmp_path),
         "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "RANDOM" in demo.stdout and "NOT the quality" in demo.stdout  # said loudly, before and after
    out = tmp_path / "output" / "dragkit_demo"
    report = json.loads((out / "result.json").read_text())
    assert report["random_weights"] and report["nearer"] == [True]
    assert report["server_peak_memory_gb"] < 8
    edited = np.asarray(Image.open(out / "edited.png"), dtype=np.float32)
    assert edited.shape == (128, 128, 3) and edited.std() > 1  # the fitted lion_0 is 128×128
    figure = Image.open(out / "figure.png")
    assert figure.height > 256 and figure.width > 3 * 256  # before, points and after, side by side
    assert not (ROOT / "example_workflows" / "images" / "lion_0_128x128.png").exists()  # the fitted copy went to input/
    assert (tmp_path / "input" / "lion_0_128x128.png").exists()
