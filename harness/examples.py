"""Running a shipped example workflow headless on its sample picture: the checkpoint (yours, or the
random-weight structure checkpoint with the graph fitted to a CPU), the run, the checks a user would
make (finite, not constant, handles nearer their targets) and the before / points / after figure.
Used by scripts/demo.py, scripts/run_workflow.py, the evaluation CLI, the re-drag benchmark and the browser tests."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from harness.comfy_server import Run
from harness.workflow import fit_to_structure_checkpoint, nodes_of_type, workflow_to_prompt

ROOT = Path(__file__).resolve().parents[1]

STRUCTURE_CHECKPOINT = "dragkit_structure_sd15.safetensors"
RANDOM_WEIGHTS_WARNING = """
!!! No DRAGKIT_CHECKPOINT: this run uses a generated checkpoint with SD 1.5's layout and RANDOM
!!! weights, and the graph is shrunk to fit a CPU (small picture, short budgets). Its picture shows
!!! that the plumbing works end to end, NOT the quality of a drag edit. For a real edit:
!!!   DRAGKIT_CHECKPOINT=/path/to/v1-5-pruned-emaonly.safetensors bash scripts/demo.sh
"""


class ExampleFailed(RuntimeError):
    """The workflow did not give a usable edit; the message says what and where."""


@dataclass
class ExampleResult:
    before: Image.Image  # the picture the drag was placed on (the fitted copy on the CPU fit)
    after: Image.Image
    handles: list[dict]  # per pair: start, final, target (image pixels of `before`)
    seconds: float
    run: Run  # what ComfyUI ran and cached, with each node's times

    def nearer(self) -> list[bool]:
        return [math.dist(h["final"], h["target"]) < math.dist(h["start"], h["target"]) for h in self.handles]


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def copy_sample_images(base: Path) -> None:
    for image in (ROOT / "example_workflows" / "images").iterdir():
        shutil.copy(image, base / "input" / image.name)


def provide_checkpoint(base: Path, yours: str | None) -> tuple[str, bool]:
    """The checkpoint's name in <base>/models/checkpoints and whether the graph must be fitted to
    the random structure checkpoint (no checkpoint of yours given)."""
    checkpoints = base / "models" / "checkpoints"
    if yours:
        source = Path(yours).expanduser().resolve()
        if not source.is_file():
            raise ExampleFailed(f"DRAGKIT_CHECKPOINT={yours}: no such file; give the path of an SD 1.5 .safetensors")
        link = checkpoints / source.name
        if not link.exists():
            link.symlink_to(source)
        return source.name, False
    path = checkpoints / STRUCTURE_CHECKPOINT
    if not path.exists():
        from harness.checkpoints import write_structure_checkpoint

        print(f"writing the random-weight structure checkpoint {path} …", flush=True)
        write_structure_checkpoint(path)
    return STRUCTURE_CHECKPOINT, True


def run_example(client, base: Path, workflow: Path, checkpoint: str, fitted: bool, on_progress=None,
                prompt: dict | None = None, fit_side: int = 256) -> ExampleResult:
    """Queue the workflow (or its API `prompt`, e.g. the frontend's) with `checkpoint`, fitted to a
    CPU (pictures of at most `fit_side` px) when `fitted`; the edit, checked: not flat, with the
    drag node's handle report. (Non-finite values stop the run in the DragKit node that meets them.)"""
    if prompt is None:
        prompt = workflow_to_prompt(json.loads(workflow.read_text()), client.object_info())
    if fitted:
        fit_to_structure_checkpoint(prompt, checkpoint, base, fit_side)
    else:
        for inputs in nodes_of_type(prompt, "CheckpointLoaderSimple"):
            inputs["ckpt_name"] = checkpoint
    started = time.monotonic()
    run = client.run(prompt, on_progress=on_progress, timeout=3600)
    if run.status != "success":
        raise ExampleFailed(f"{workflow.name} did not finish ({run.status}): {run.describe()}")
    editor = nodes_of_type(prompt, "DragKitEditor")[0]
    before = Image.open(base / "input" / prompt[editor["image"][0]]["inputs"]["image"]).convert("RGB")
    saved = [image for output in run.outputs.values() for image in output.get("images", []) if image["type"] == "output"]
    if not saved:
        raise ExampleFailed(f"{workflow.name} saved no image")
    after = Image.open(base / "output" / saved[-1]["subfolder"] / saved[-1]["filename"]).convert("RGB")
    if np.asarray(after).std() == 0:
        raise ExampleFailed(f"{workflow.name}: the saved image is one flat colour {np.asarray(after)[0, 0].tolist()}")
    handles = [h for output in run.outputs.values() for h in output.get("dragkit_handles", [])]
    if not handles:
        raise ExampleFailed(f"{workflow.name}: no drag node reported its handles")
    return ExampleResult(before, after, handles, time.monotonic() - started, run)


def before_points_after(result: ExampleResult, height: int = 256) -> Image.Image:
    """Three panels: the picture, the drag on it (start red, target blue, final handle green), the edit."""
    return side_by_side([captioned(result.before, "before", height),
                         captioned(with_points(result.before, result.handles), "start red, target blue, end green", height),
                         captioned(result.after, "after", height)])


def captioned(picture: Image.Image, caption: str, height: int) -> Image.Image:
    """`picture` scaled to `height`, with a margin and a caption line above it."""
    shown = picture.resize((round(picture.width * height / picture.height), height), Image.LANCZOS)
    panel = Image.new("RGB", (shown.width + 6, height + 20), (255, 255, 255))
    panel.paste(shown, (3, 18))
    ImageDraw.Draw(panel).text((3, 3), caption, fill=(0, 0, 0))
    return panel


def side_by_side(pictures: list[Image.Image]) -> Image.Image:
    strip = Image.new("RGB", (sum(p.width for p in pictures), max(p.height for p in pictures)), (255, 255, 255))
    x = 0
    for picture in pictures:
        strip.paste(picture, (x, 0))
        x += picture.width
    return strip


def one_above_another(pictures: list[Image.Image]) -> Image.Image:
    column = Image.new("RGB", (max(p.width for p in pictures), sum(p.height for p in pictures)), (255, 255, 255))
    y = 0
    for picture in pictures:
        column.paste(picture, (0, y))
        y += picture.height
    return column


def with_points(picture: Image.Image, handles: list[dict]) -> Image.Image:
    shown = picture.copy()
    draw = ImageDraw.Draw(shown)
    radius = max(2, picture.width // 64)
    for pair in handles:
        start, final, target = (tuple(pair[k]) for k in ("start", "final", "target"))
        draw.line([start, target], fill=(255, 255, 255), width=max(1, radius // 2))
        for (x, y), colour in ((start, (230, 40, 40)), (target, (40, 90, 240)), (final, (40, 200, 70))):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(0, 0, 0))
    return shown


def describe_handles(result: ExampleResult) -> str:
    return "\n".join(
        f"  pair {i + 1}: handle ({h['start'][0]:.0f}, {h['start'][1]:.0f}) → ({h['final'][0]:.0f}, {h['final'][1]:.0f}), "
        f"target ({h['target'][0]:.0f}, {h['target'][1]:.0f}): distance {math.dist(h['start'], h['target']):.1f} → "
        f"{math.dist(h['final'], h['target']):.1f} px"
        for i, h in enumerate(result.handles))
