"""Per-stage cost of each drag method on a random-weight SD 1.5-shaped checkpoint.

For LoRA, inversion, drag and sampling: wall time, UNet forward passes (calls and latent rows),
backward passes and peak memory (CUDA max allocated, or the process's peak RSS on the CPU).
`--model tiny` (default): one decoder stage, on the CPU. `--model structure`: the demo's checkpoint
(SD 1.5's layout at CPU size), on the CPU. `--model sd15`: SD 1.5's full UNet in fp16
with each method's default settings, on a GPU (`--size 512`). Run: `bash scripts/bench.sh`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "host"), str(ROOT / "tests")]

from pack import register_pack  # noqa: E402
from comfy_inprocess import import_comfy  # noqa: E402
from models import SD15_UNET, write_structure_checkpoint, write_tiny_checkpoint  # noqa: E402

register_pack()
from dragkit.core.memory import peak_memory_gib, reset_peak_memory  # noqa: E402


@dataclass
class Passes:
    forward_calls: int = 0
    forward_rows: int = 0
    backward: int = 0


class CountingDenoiser:
    """A Denoiser that counts the UNet passes it makes (backward: once per call whose outputs get a gradient)."""

    def __init__(self, inner) -> None:
        self.inner, self.passes = inner, Passes()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, x_t, t, cond, up_features=()):
        prediction = self.inner.predict(x_t, t, cond, up_features)
        self.passes.forward_calls += 1
        self.passes.forward_rows += x_t.shape[0]
        outputs = [o for o in (prediction.eps, *prediction.features.values()) if o.requires_grad]
        if outputs:
            fired = []

            def count(grad):
                if not fired:
                    fired.append(True)
                    self.passes.backward += 1
                return grad

            for output in outputs:
                output.register_hook(count)
        return prediction


def timed(denoiser: CountingDenoiser, stage: str, rows: list, fn):
    denoiser.passes = Passes()
    reset_peak_memory()
    start = time.perf_counter()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    p = denoiser.passes
    rows.append((stage, seconds, p.forward_calls, p.forward_rows, p.backward, peak_memory_gib()))
    return value


def run_method(name: str, denoiser, latent, spec, cond, args) -> list:
    from dragkit.core.attention import MutualSelfAttention
    from dragkit.core.inversion import invert
    from dragkit.core.lora import LoraSettings, micro_batch_size_for, train_lora
    from dragkit.core.methods import dragdiffusion, easydrag, gooddrag
    from dragkit.core.sampling import mutual_attention_sample, reference_guided_sample
    from dragkit.core.schedule import ddim_schedule
    from dragkit.nodes import host

    # The tiny UNet has one decoder stage: there every method's features come from up_blocks[0].
    tiny = args.model == "tiny"
    method = {"DragDiffusion": (dragdiffusion.optimise, dragdiffusion.DragDiffusionSettings(
                  **({"feature_block": 0} if tiny else {})), 0.7, 80),
              "GoodDrag": (gooddrag.optimise, gooddrag.GoodDragSettings(**({"feature_block": 0} if tiny else {})), 0.75, 70),
              "EasyDrag": (easydrag.optimise, easydrag.EasyDragSettings(**({"feature_blocks": (0,)} if tiny else {})),
                           0.7, 0)}[name]
    optimise, settings, strength, lora_steps = method
    counting = CountingDenoiser(denoiser)
    rows: list = []
    with host.gradients():
        if lora_steps:  # EasyDrag trains no LoRA
            micro = args.lora_micro_batch if args.lora_micro_batch >= 0 else micro_batch_size_for(denoiser.device)
            lora = LoraSettings(steps=args.lora_steps or lora_steps, micro_batch_size=micro)
            timed(counting, "LoRA", rows, lambda: train_lora(denoiser.unet, counting, latent, cond, lora))
        if args.stop_after == "LoRA":
            return rows, None
        schedule = ddim_schedule(denoiser.alphas_cumprod, 50)
        inversion = timed(counting, "inversion", rows, lambda: invert(counting, latent, cond, schedule, strength))
        result = timed(counting, "drag", rows, lambda: optimise(counting, inversion, spec, cond, settings))
    if name == "EasyDrag":
        policy = MutualSelfAttention(schedule.timesteps, layers=None, places=("up",))
        timed(counting, "sampling", rows, lambda: reference_guided_sample(
            counting, result.latent, inversion, cond, result.index, policy))
        return rows, result
    # the methods' layers 10–15 (SD 1.5's decoder); the tiny UNet's decoder has only its last two
    layers = range(max(0, denoiser.self_attention_count - 2), denoiser.self_attention_count) if tiny else range(10, 16)
    policy = MutualSelfAttention(schedule.timesteps, first_step=result.index, layers=layers)
    timed(counting, "sampling", rows, lambda: mutual_attention_sample(
        counting, result.reference_latent, result.latent, cond, schedule, result.index, policy))
    return rows, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--lora-steps", type=int, default=0, help="override the method's LoRA steps (0: 80 / 70)")
    parser.add_argument("--methods", nargs="+", default=["DragDiffusion", "GoodDrag", "EasyDrag"])
    parser.add_argument("--lora-micro-batch", type=int, default=-1,
                        help="images per LoRA pass (0: the whole batch of 4); default as the node: 1 on the CPU, 0 on a GPU")
    parser.add_argument("--stop-after", choices=["LoRA", "sampling"], default="sampling",
                        help="LoRA: time only the LoRA stage (its memory at a large --size without the drag's minutes)")
    parser.add_argument("--model", choices=["tiny", "structure", "sd15"], default="tiny",
                        help="tiny: one decoder stage, fp32, CPU; structure: the demo's checkpoint (SD 1.5's layout, "
                             "320 channels on every level), CPU; sd15: SD 1.5's full UNet in fp16 on the GPU")
    args = parser.parse_args()

    gpu = args.model == "sd15"
    if gpu and not torch.cuda.is_available():
        print("methods.py: --model sd15 needs a CUDA device", file=sys.stderr)
        return 2
    import_comfy(cpu=not gpu)
    import comfy.sd

    from dragkit.core.drag import DragSpec
    from dragkit.nodes import host

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sd15_shaped.safetensors"
        if gpu:
            write_tiny_checkpoint(path, seed=3, unet=SD15_UNET, dtype=torch.float16)
        elif args.model == "structure":
            write_structure_checkpoint(path)
        else:
            write_tiny_checkpoint(path)
        with torch.inference_mode():
            model, *_ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=False, output_clip=False)
    denoiser = host.ComfyDenoiser(model, for_gradients=True)
    with host.gradients():
        denoiser.load_for_gradients()
    s = args.size
    device = denoiser.device
    latent = torch.nn.functional.interpolate(torch.randn(1, 4, 4, 4), size=(s // 8, s // 8), mode="bilinear").to(device)
    spec = DragSpec(s, s, ((s * 0.3, s * 0.5),), ((s * 0.6, s * 0.5),))
    cond = torch.zeros(1, 77, 768, device=device)
    where = torch.cuda.get_device_name() if gpu else f"{torch.get_num_threads()} CPU threads"
    print(f"{args.model} SD 1.5-shaped checkpoint ({denoiser.dtype}), {s}×{s} image ({s // 8}×{s // 8} latent), {where}")
    memory = "peak GiB" if gpu else "peak RSS GiB"
    print(f"{'method':<14}{'stage':<11}{'seconds':>9}{'fwd calls':>11}{'fwd rows':>10}{'backward':>10}{memory:>14}")
    for name in args.methods:
        rows, result = run_method(name, denoiser, latent, spec, cond, args)
        for stage, seconds, calls, batch_rows, backward, peak in rows:
            print(f"{name:<14}{stage:<11}{seconds:>9.2f}{calls:>11}{batch_rows:>10}{backward:>10}{peak:>14.2f}")
        stop = f"stop: {result.stop_reason}, {len(result.losses)} gradient steps" if result else "stopped after LoRA"
        print(f"{name:<14}{'total':<11}{sum(r[1] for r in rows):>9.2f}   {stop}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
