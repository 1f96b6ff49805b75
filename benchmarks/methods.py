"""Per-stage cost of each drag method on a random-weight SD 1.5-shaped checkpoint.

For LoRA, inversion, drag and sampling: wall time, UNet forward calls and latent rows, rows gone
through backward, UNet work in F (a batch-1 forward; backward 2 F) and peak memory (CUDA max
allocated, or the process's peak RSS on the CPU). Per method, our work per edit beside the official
code's for the same number of gradient steps, and the authors' published times (harness/anchors.py).
`--model tiny` (default): one decoder stage, on the CPU. `--model structure`: the demo's checkpoint
(SD 1.5's layout at CPU size), on the CPU. `--model sd15`: SD 1.5's full UNet in fp16, on a GPU
(`--size 512`). `--json FILE` writes every figure. The row `re-sample` is a re-drag's sampling, which
reads the reference branch the first sampling recorded (not counted in the edit's total). Run:
`bash scripts/bench.sh`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from harness.anchors import OFFICIAL
from harness.checkpoints import gradient_denoiser, load_model
from harness.edit_stages import METHODS, STAGES, Edit, run_edit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--lora-steps", type=int, default=0, help="override the method's LoRA steps (0: 80 / 70)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--lora-micro-batch", type=int, default=-1,
                        help="images per LoRA pass (0: the whole batch of 4); default as the node: 1 on the CPU, 0 on a GPU")
    parser.add_argument("--stop-after", choices=["LoRA", "sampling"], default="sampling",
                        help="LoRA: time only the LoRA stage (its memory at a large --size without the drag's minutes)")
    parser.add_argument("--model", choices=["tiny", "structure", "sd15"], default="tiny",
                        help="tiny: one decoder stage, fp32, CPU; structure: the demo's checkpoint (SD 1.5's layout, "
                             "320 channels on every level), CPU; sd15: SD 1.5's full UNet in fp16 on the GPU")
    parser.add_argument("--easydrag-plain", action="store_true",
                        help="EasyDrag passes the unedited row beside the edited one at every step, as the code does")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args()

    gpu = args.model == "sd15"
    if gpu and not torch.cuda.is_available():
        print("methods.py: --model sd15 needs a CUDA device", file=sys.stderr)
        return 2
    denoiser = gradient_denoiser(load_model(args.model))  # imports ComfyUI
    from dragkit.core.drag import DragSpec
    from dragkit.core.lora import micro_batch_size_for
    from dragkit.nodes import host

    s = args.size
    device = denoiser.device
    latent = torch.nn.functional.interpolate(torch.randn(1, 4, 4, 4), size=(s // 8, s // 8), mode="bilinear").to(device)
    spec = DragSpec(s, s, ((s * 0.3, s * 0.5),), ((s * 0.6, s * 0.5),))
    cond = torch.zeros(1, 77, 768, device=device)
    where = torch.cuda.get_device_name() if gpu else f"{torch.get_num_threads()} CPU threads"
    title = f"{args.model} SD 1.5-shaped checkpoint ({denoiser.dtype}), {s}×{s} image ({s // 8}×{s // 8} latent), {where}"
    print(title)
    memory = "peak GiB" if gpu else "peak RSS GiB"
    print(f"{'method':<14}{'stage':<11}{'seconds':>9}{'fwd calls':>11}{'fwd rows':>10}{'bwd rows':>10}{'work F':>8}{memory:>14}")
    micro = args.lora_micro_batch if args.lora_micro_batch >= 0 else micro_batch_size_for(device)
    edits = []
    for name in args.methods:
        with host.gradients():
            edit = run_edit(name, denoiser, latent, spec, cond, lora_steps=args.lora_steps or None,
                            lora_micro_batch=micro, stop_after=args.stop_after, easydrag_plain=args.easydrag_plain)
        edits.append(edit)
        for stage in edit.stages:
            p = stage.passes
            print(f"{name:<14}{stage.name:<11}{stage.seconds:>9.2f}{p.forward_calls:>11}{p.forward_rows:>10}"
                  f"{p.backward_rows:>10}{p.work:>8}{stage.peak_gib:>14.2f}")
        seconds = sum(st.seconds for st in edit.stages if st.name in STAGES)
        print(f"{name:<14}{'total':<11}{seconds:>9.2f}   {summary(edit)}")
    print("\nOfficial code (reference/anchors.md; F per edit for the same gradient steps) and published figures:")
    for edit in edits:
        official = OFFICIAL[edit.method]
        print(f"  {edit.method:<14}{official.published}" + (f"; {official.note}" if official.note else ""))
    if args.json:
        record = {"title": title, "model": args.model, "size": s, "device": where, "dtype": str(denoiser.dtype),
                  "edits": [as_json(edit) for edit in edits]}
        args.json.write_text(json.dumps(record, indent=1))
        print(f"wrote {args.json}")
    return 0


def summary(edit: Edit) -> str:
    if edit.gradient_steps is None:
        return "stopped after LoRA"
    official = OFFICIAL[edit.method]
    return (f"stop: {edit.stop_reason}, {edit.gradient_steps} gradient steps; work without LoRA {edit.work()} F, "
            f"official code {official.work(edit.gradient_steps)} F")


def as_json(edit: Edit) -> dict:
    official = OFFICIAL[edit.method]
    stages = [dict(name=st.name, seconds=st.seconds, peak_gib=st.peak_gib, work=st.passes.work, **asdict(st.passes))
              for st in edit.stages]
    ours = None if edit.gradient_steps is None else edit.work()
    theirs = None if edit.gradient_steps is None else official.work(edit.gradient_steps)
    return {"method": edit.method, "stop_reason": edit.stop_reason, "gradient_steps": edit.gradient_steps,
            "stages": stages, "work_without_lora": ours, "official_work_without_lora": theirs,
            "official": asdict(official)}


if __name__ == "__main__":
    sys.exit(main())
