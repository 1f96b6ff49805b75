"""DragKit LoRA Finetune: the per-image LoRA the drag methods start from."""

from __future__ import annotations

import logging

import torch
from comfy_api.v0_0_2 import io

from ..core import lora_cache
from ..core.lora import LoraResult, LoraSettings, micro_batch_size_for, train_lora
from ..core.methods import lora_presets
from . import host
from .checks import CheckedNode, checked, single_item
from .previews import loss_curve

LORA_STEPS = lora_presets()  # training steps per method, from each method's recipe (core/methods)
PRESETS = [*LORA_STEPS, "custom"]
PRESET_HELP = ", ".join(f"{name} {steps}" for name, steps in LORA_STEPS.items())
PREVIEW_EVERY = 5  # steps between loss-curve previews
LORA_KEY = "dragkit_lora"  # the executed message's key with the training's figures (tests and tools read it)
LORA_PREFIX = "diffusion_model."  # ComfyUI's generic LoRA key layout: diffusion_model.<module>.lora_up.weight


class DragKitLoRAFinetune(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitLoRAFinetune",
            display_name="DragKit LoRA Finetune",
            category="DragKit",
            description=(
                "Fits a small LoRA to this one image so the model reproduces it faithfully while dragging "
                "(DragDiffusion / GoodDrag). Outputs the model with the LoRA applied and the LoRA itself "
                "(save it with Save LoRA Weights). Connect either a LATENT or an IMAGE with its VAE."
            ),
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("conditioning", tooltip="The prompt; the methods default to an empty prompt."),
                io.Combo.Input("preset", options=PRESETS, default="GoodDrag",
                               tooltip=f"Training steps of the method: {PRESET_HELP}; 'custom' uses steps."),
                io.Int.Input("steps", default=70, min=1, max=10000, tooltip="Training steps when preset is 'custom'."),
                io.Int.Input("rank", default=16, min=1, max=256),
                io.Float.Input("learning_rate", default=5e-4, min=1e-7, max=1.0, step=1e-5),
                io.Int.Input("batch_size", default=4, min=1, max=64),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1),
                io.Boolean.Input("disk_cache", default=False,
                                 tooltip="Also keep the LoRA on disk (user/dragkit/lora_cache), keyed by image, prompt, "
                                         "model and settings, so a restart does not retrain."),
                io.Latent.Input("latent", optional=True, tooltip="The image's latent (VAEEncode)."),
                io.Image.Input("image", optional=True, tooltip="The image, when no latent is connected (needs vae)."),
                io.Vae.Input("vae", optional=True, tooltip="Encodes image when no latent is connected."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The input model with the LoRA applied (a patched clone)."),
                io.Custom("LORA_MODEL").Output(display_name="lora", tooltip="The LoRA weights, ComfyUI's LORA_MODEL."),
            ],
        )

    @classmethod
    def validate_inputs(cls, preset, learning_rate) -> bool | str:
        return cls.refusal(preset=preset, learning_rate=learning_rate)

    @classmethod
    @checked
    def execute(cls, model, conditioning, preset, steps, rank, learning_rate, batch_size, seed, disk_cache,
                latent=None, image=None, vae=None) -> io.NodeOutput:
        samples = _source_latent(latent, image, vae)
        with host.gradients():
            denoiser = host.loaded_denoiser(model, for_gradients=True)
            settings = LoraSettings(rank=rank, steps=LORA_STEPS.get(preset, steps), learning_rate=learning_rate,
                                    batch_size=batch_size, seed=seed, micro_batch_size=micro_batch_size_for(denoiser.device))
            x0 = denoiser.to_model_latent(samples)
            cond = host.text_context(conditioning).to(denoiser.device)
            cache = None
            if disk_cache:
                cache = lora_cache.entry_path(host.cache_directory("lora_cache"), denoiser.fingerprint(), x0, cond, settings)
            result = (lora_cache.load(cache) if cache is not None else None) or _train(denoiser, x0, cond, settings)
        if cache is not None and not cache.exists():
            lora_cache.save(cache, result)
        lora = {LORA_PREFIX + k: v for k, v in result.weights.items()}
        summary = f"LoRA: {settings.steps} steps, loss {result.losses[0]:.4f} → {result.losses[-1]:.4f}"
        figures = {"steps": settings.steps, "losses": list(result.losses)}
        return io.NodeOutput(host.with_lora(model, lora), lora, ui={"text": [summary], LORA_KEY: [figures]})


def _source_latent(latent, image, vae) -> torch.Tensor:
    if latent is not None:
        return single_item(latent["samples"], "latent")
    if image is not None and vae is not None:
        return host.encode_image(vae, single_item(image, "image"))
    raise ValueError("latent: connect the image's LATENT (VAEEncode), or both image and vae, so there is something to train on")


def _train(denoiser, x0, cond, settings: LoraSettings) -> LoraResult:
    progress = host.Progress(settings.steps)
    losses: list[float] = []

    def on_step(done: int, total: int, loss: float) -> None:
        losses.append(loss)
        preview = loss_curve(losses, total) if done % PREVIEW_EVERY == 0 or done == total else None
        progress.update(done, total, preview)

    result = train_lora(denoiser, x0, cond, settings, on_step)
    logging.info("DragKit LoRA: %d steps, loss %.4f → %.4f", settings.steps, result.losses[0], result.losses[-1])
    return result
