"""GPU check: the GoodDrag pipeline on a full-size SD 1.5-shaped random-weight checkpoint in fp16,
in a real ComfyUI server on the GPU (no --cpu, so current ComfyUI's Dynamic VRAM is on), at 512².

Stage by stage (LoRA Finetune, DDIM Invert, Drag (GoodDrag), Mutual-Attention Sampler + VAEDecode),
each queued after the previous one so ComfyUI's cache keeps the earlier stages: the stage's wall
time, the peak GPU memory it allocated, and whether the results are finite. Exits non-zero if any
stage fails or gives non-finite numbers, or if the handle did not move toward its target.

`--smoke` runs the same script on the CPU with the narrow structure checkpoint at 128×64, as a
check of the script itself (CI does not run it; `bash benchmarks/gpu_check.sh --smoke`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from harness.comfy_server import ComfyClient, prepare_base_directory, running_server

def test_picture(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    blob = np.exp(-((x - 0.35 * width) ** 2 + (y - 0.5 * height) ** 2) / (0.01 * width * height))
    rgb = np.stack([0.3 + 0.6 * blob, 0.2 + 0.3 * x / width, 0.5 - 0.4 * blob], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def stages(checkpoint: str, width: int, height: int) -> list[tuple[str, dict, str]]:
    """(stage name, the nodes it adds, the node whose output ends it)."""
    handle, target = [0.35 * width, 0.5 * height], [0.5 * width, 0.5 * height]
    drag = {"version": 1, "width": width, "height": height, "mask": None, "regions": [],
            "pairs": [{"handle": handle, "target": target}]}
    base = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "cond": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "load": {"class_type": "LoadImage", "inputs": {"image": "gpu_check.png"}},
        "editor": {"class_type": "DragKitEditor", "inputs": {"image": ["load", 0], "drag_data": json.dumps(drag)}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["load", 0], "vae": ["ckpt", 2]}},
        "lora": {"class_type": "DragKitLoRAFinetune", "inputs": {
            "model": ["ckpt", 0], "conditioning": ["cond", 0], "preset": "GoodDrag", "steps": 70, "rank": 16,
            "learning_rate": 5e-4, "batch_size": 4, "seed": 0, "disk_cache": False, "latent": ["encode", 0]}},
    }
    invert = {"invert": {"class_type": "DragKitDDIMInvert", "inputs": {
        "model": ["lora", 0], "latent": ["encode", 0], "conditioning": ["cond", 0], "steps": 50,
        "preset": "GoodDrag / DragNeXt", "strength": 0.75, "guidance": 1.0}}}
    drag_node = {
        "drag": {"class_type": "DragKitGoodDrag", "inputs": {
            "model": ["lora", 0], "inversion": ["invert", 0], "drag": ["editor", 0], "mode": "code (UI)",
            "drag_timesteps": 7, "tracks_per_timestep": 10, "steps_per_track": 3, "learning_rate": 0.02,
            "mask_weight": 0.2, "feature_block": 2}},
        "edit_report": {"class_type": "DragKitTestEditReport", "inputs": {"edit": ["drag", 0]}},
    }
    sample = {
        "sampler": {"class_type": "DragKitMutualAttentionSampler", "inputs": {
            "model": ["lora", 0], "edit": ["drag", 0], "start_layer": 10, "end_layer": 15, "start_step": 0}},
        "digest": {"class_type": "DragKitTestDigest", "inputs": {"latent": ["sampler", 0]}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "gpu_check"}},
    }
    # EasyDrag on the checkpoint's own MODEL (no LoRA): invert at 0.7, drag, reference-guided sampling
    easydrag = {
        "easy_invert": {"class_type": "DragKitDDIMInvert", "inputs": {
            "model": ["ckpt", 0], "latent": ["encode", 0], "conditioning": ["cond", 0], "steps": 50,
            "preset": "EasyDrag", "strength": 0.7, "guidance": 1.0}},
        "easy_drag": {"class_type": "DragKitEasyDrag", "inputs": {
            "model": ["ckpt", 0], "inversion": ["easy_invert", 0], "drag": ["editor", 0], "mode": "code",
            "max_iterations": 50, "learning_rate": 0.01, "step": 12.0, "mask_weight": 0.1}},
        "easy_report": {"class_type": "DragKitTestEditReport", "inputs": {"edit": ["easy_drag", 0]}},
        "easy_sampler": {"class_type": "DragKitReferenceGuidedSampler", "inputs": {
            "model": ["ckpt", 0], "edit": ["easy_drag", 0], "guidance_weight": 4.0, "ref_start_step": 20,
            "reference_latent": "code: one level cleaner (L[i])"}},
        "easy_digest": {"class_type": "DragKitTestDigest", "inputs": {"latent": ["easy_sampler", 0]}},
    }
    return [("LoRA (70 steps)", base, "lora"), ("DDIM invert", invert, "invert"), ("GoodDrag", drag_node, "drag"),
            ("sampling + decode", sample, "decode"), ("EasyDrag end to end", easydrag, "easy_sampler")]


def peak_node(stage: str, source: str) -> dict:
    return {"class_type": "DragKitTestDevicePeak", "inputs": {"value": [source, 0], "stage": stage}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="CPU plumbing run on the narrow structure checkpoint")
    parser.add_argument("--base", type=Path, default=Path.home() / ".cache" / "dragkit" / "gpu_check")
    parser.add_argument("--front-end-root", type=Path, help="serve this folder as the frontend (a machine without "
                        "comfyui-frontend-package: the check needs only the API)")
    args = parser.parse_args()

    import torch

    from harness.checkpoints import SD15_UNET, STRUCTURE_UNET, write_tiny_checkpoint

    width, height = (128, 64) if args.smoke else (512, 512)
    checkpoint = "structure_sd15_clip.safetensors" if args.smoke else "sd15_shaped_clip_fp16.safetensors"
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --smoke for a CPU run of the script", file=sys.stderr)
        return 2
    base = prepare_base_directory(args.base)
    path = base / "models" / "checkpoints" / checkpoint
    if not path.exists():
        print(f"writing {path.name} (random weights, fp16)", flush=True)
        write_tiny_checkpoint(path, seed=3, unet=STRUCTURE_UNET if args.smoke else SD15_UNET, dtype=torch.float16,
                              full_clip=True)
    test_picture(width, height).save(base / "input" / "gpu_check.png")

    comfyui = Path(os.environ["COMFYUI_PATH"])
    print(f"ComfyUI {comfyui.name}, {'CPU smoke run' if args.smoke else torch.cuda.get_device_name()}, {width}×{height}")
    failures = []
    extra = ("--front-end-root", str(args.front_end_root.resolve())) if args.front_end_root else ()
    with running_server(comfyui, base, extra_args=extra, cpu=args.smoke) as server:
        client = ComfyClient(server.url)
        prompt: dict = {}
        rows = []
        for index, (stage, nodes, last) in enumerate(stages(checkpoint, width, height)):
            prompt.update(nodes)
            prompt[f"peak{index}"] = peak_node(stage, last)
            start = time.perf_counter()
            run = client.run(json.loads(json.dumps(prompt)), timeout=900)
            seconds = time.perf_counter() - start
            if run.status != "success":
                failures.append(f"{stage}: {run.describe()}")
                print(server.log()[-3000:])
                break
            (peak,) = run.outputs[f"peak{index}"]["peak"]
            rows.append((stage, seconds, peak["peak_bytes"] / 2**30, peak["dynamic_vram"]))
            failures += check_stage(stage, run.outputs)
        client.close()
        log = server.log()
    print(f"{'stage':<20}{'seconds':>9}{'peak GiB':>10}  dynamic VRAM")
    for stage, seconds, peak, dynamic in rows:
        print(f"{stage:<20}{seconds:>9.1f}{peak:>10.2f}  {dynamic}")
    print(f"{'total':<20}{sum(r[1] for r in rows):>9.1f}")
    for line in log.splitlines():
        if "dynamic" in line.lower() or "DragKit" in line:
            print("  server:", line.strip())
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("gpu_check: all stages finite")
    return 0


def check_stage(stage: str, outputs: dict) -> list[str]:
    problems = []
    for method, report_node, digest in (("GoodDrag", "edit_report", "digest"), ("EasyDrag", "easy_report", "easy_digest")):
        if report_node in outputs and method in stage:
            (report,) = outputs[report_node]["edit"]
            if not report["finite"]:
                problems.append(f"{method}: the edited latent is not finite")
            for start, end, target in zip(report["start"], report["handles"], report["targets"]):
                if not math.dist(end, target) < math.dist(start, target):
                    problems.append(f"{method}: the handle went from {start} to {end}, target {target}")
            print(f"  {method}: {report['steps']} gradient steps, stop {report['stop']}, handles {report['handles']}")
        if digest in outputs and outputs[digest]["finite"] != [True]:
            problems.append(f"{stage}: the sampled latent is not finite")
    return problems


if __name__ == "__main__":
    sys.exit(main())
