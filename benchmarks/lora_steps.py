"""Fewer LoRA steps, measured: time against how well the LoRA-patched model reconstructs the image
through inversion (the reason DragDiffusion-style methods train a LoRA at all).

For each step count: train DragKit's LoRA (the node's recipe, batch 4) on one latent, patch the
MODEL with it as the LoRA node does, DDIM-invert at strength 0.75 of 50 steps (GoodDrag's and
DragNeXt's), denoise back with plain DDIM and report the relative reconstruction error
‖x̂₀ − x₀‖² / ‖x₀‖² of the latent; beside it the one-step error at the first drag timestep (t = 741):
x̂₀ from x_t = √ᾱ·x₀ + √(1−ᾱ)·ε over 8 fixed noise draws, what the LoRA's ε loss trains.
Run: `bash scripts/bench.sh lora-steps [--steps 0 10 20 35 70]` (CPU: the random-weight structure
checkpoint; `--checkpoint` an SD 1.5 file of yours, where the figures mean something).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from harness.checkpoints import gradient_denoiser, load_model


def reconstruction_error(denoiser, latent: torch.Tensor, cond: torch.Tensor, strength: float) -> float:
    from dragkit.core.inversion import invert
    from dragkit.core.sampling import sample
    from dragkit.core.schedule import ddim_schedule

    schedule = ddim_schedule(denoiser.alphas_cumprod, 50)
    with torch.no_grad():
        inversion = invert(denoiser, latent, cond, schedule, strength)
        back = sample(denoiser, inversion.latent, cond, schedule, inversion.start_index)
    return float(((back.float() - latent) ** 2).sum() / (latent**2).sum())


def denoising_error(denoiser, latent: torch.Tensor, cond: torch.Tensor, t: int = 741, draws: int = 8) -> float:
    alpha = float(denoiser.alphas_cumprod[t])
    noise = torch.randn(draws, *latent.shape[1:], generator=torch.Generator().manual_seed(0)).to(latent.device)
    x_t = alpha**0.5 * latent + (1 - alpha) ** 0.5 * noise
    with torch.no_grad():
        eps = denoiser.predict(x_t.to(denoiser.dtype), t, cond).eps.float()
    x0 = (x_t - (1 - alpha) ** 0.5 * eps) / alpha**0.5
    return float(((x0 - latent) ** 2).sum() / (latent**2).sum() / draws)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 10, 20, 35, 50, 70])
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--strength", type=float, default=0.75)
    parser.add_argument("--model", choices=["tiny", "structure", "sd15"], default="structure")
    parser.add_argument("--checkpoint", type=Path, help="an SD 1.5 checkpoint of yours instead of --model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    model = load_model(args.model, args.checkpoint)  # imports ComfyUI
    from dragkit.core.lora import LoraSettings, micro_batch_size_for, train_lora
    from dragkit.nodes import host
    from dragkit.nodes.lora import LORA_PREFIX

    trainer = gradient_denoiser(model)
    s, device = args.size, trainer.device
    generator = torch.Generator().manual_seed(7)
    latent = torch.nn.functional.interpolate(torch.randn(1, 4, 6, 6, generator=generator), size=(s // 8, s // 8),
                                             mode="bicubic").to(device)
    cond = torch.zeros(1, 77, 768, device=device)
    print(f"{args.checkpoint or args.model} checkpoint, {s}×{s}, inversion strength {args.strength} of 50 DDIM steps")
    print(f"{'LoRA steps':>10}{'seconds':>9}{'reconstruction error':>22}{'one-step error t=741':>22}")
    rows = []
    for steps in args.steps:
        start = time.perf_counter()
        if steps:
            with host.gradients():
                settings = LoraSettings(steps=steps, micro_batch_size=micro_batch_size_for(device))
                weights = train_lora(trainer, latent, cond, settings).weights
            patched = host.with_lora(model, {LORA_PREFIX + k: v for k, v in weights.items()})
        else:
            patched = model
        seconds = time.perf_counter() - start
        denoiser = host.ComfyDenoiser(patched)
        denoiser.load()
        error = reconstruction_error(denoiser, latent, cond, args.strength)
        one_step = denoising_error(denoiser, latent, cond)
        rows.append({"lora_steps": steps, "seconds": seconds, "reconstruction_error": error, "one_step_error": one_step})
        print(f"{steps:>10}{seconds:>9.1f}{error:>22.4f}{one_step:>22.4f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.checkpoint or args.model), "size": s, "strength": args.strength, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
