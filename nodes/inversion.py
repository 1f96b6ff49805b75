"""DragKit DDIM Invert: the image's latent taken back up the DDIM schedule, with its trajectory."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io, ui

from ..core.denoiser import GuidedDenoiser
from ..core.inversion import invert
from ..core.methods import inversion_presets
from ..core.schedule import ddim_schedule
from . import host
from .checks import CheckedNode, InputError, checked, require_finite, single_item
from .previews import image_tensor
from .values import DragKitInversion, InversionType

# Inversion strength per method, from each method's recipe (core/methods).
STRENGTH_PRESETS = inversion_presets()
PRESET_HELP = ", ".join(f"{label} {strength}" for label, strength in STRENGTH_PRESETS.items())


class DragKitDDIMInvert(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitDDIMInvert",
            display_name="DragKit DDIM Invert",
            category="DragKit",
            description=(
                "DDIM-inverts the image's latent to the timestep the drag starts from, keeping every "
                "intermediate latent. Use the LoRA-finetuned model when the method uses one."
            ),
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("latent", tooltip="The image's latent (VAEEncode)."),
                io.Conditioning.Input("conditioning", tooltip="The prompt (the methods default to an empty prompt)."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="DDIM steps of the whole schedule."),
                io.Combo.Input("preset", options=[*STRENGTH_PRESETS, "custom"], default="GoodDrag / DragNeXt",
                               tooltip=f"Inversion strength of the method: {PRESET_HELP}; 'custom' uses strength."),
                io.Float.Input("strength", default=0.75, min=0.0, max=1.0, step=0.01,
                               tooltip="Fraction of the schedule to invert, in (0, 1], when preset is 'custom'."),
                io.Float.Input("guidance", default=1.0, min=0.0, max=30.0, step=0.1,
                               tooltip="Classifier-free guidance during inversion; the methods use 1.0 (no negative needed)."),
                io.Conditioning.Input("negative", optional=True, tooltip="Unconditional prompt, needed only when guidance ≠ 1."),
            ],
            outputs=[InversionType.Output(display_name="inversion")],
        )

    @classmethod
    def validate_inputs(cls, steps, preset, strength, guidance) -> bool | str:
        return cls.refusal(steps=steps, preset=preset, strength=strength, guidance=guidance)

    @classmethod
    def check_values(cls, values: dict) -> None:
        steps, preset, strength = values.get("steps"), values.get("preset"), values.get("strength")
        strength = STRENGTH_PRESETS.get(preset, strength)
        if steps is None or strength is None:
            return  # linked: checked when the node runs
        if not 0 < strength <= 1:
            raise InputError(f"strength: must be in (0, 1] (the fraction of the {steps}-step schedule to invert), got {strength}")
        if round(strength * steps) < 1:
            raise InputError(f"strength: {strength} of {steps} steps inverts no step; raise strength or steps")

    @classmethod
    @checked
    def execute(cls, model, latent, conditioning, steps, preset, strength, guidance, negative=None) -> io.NodeOutput:
        strength = STRENGTH_PRESETS.get(preset, strength)
        denoiser = host.loaded_denoiser(model)
        cond = host.text_context(conditioning).to(denoiser.device)
        guided = GuidedDenoiser(denoiser, _uncond(negative, guidance, denoiser.device), guidance)
        schedule = ddim_schedule(denoiser.alphas_cumprod, steps)
        source = denoiser.to_model_latent(single_item(latent["samples"], "latent"))
        progress = host.Progress(round(strength * steps))
        inversion = invert(guided, source, cond, schedule, strength, on_step=progress.update)
        require_finite(inversion.latent, "the inverted latent")
        preview = image_tensor(denoiser.preview(inversion.latent))
        value = DragKitInversion(inversion, conditioning, guidance, model)
        return io.NodeOutput(value, ui=ui.PreviewImage(preview, cls=cls))


def _uncond(negative, guidance: float, device) -> torch.Tensor | None:
    if guidance == 1.0:
        return None
    if negative is None:
        raise ValueError(f"negative: guidance {guidance} needs a negative (unconditional) conditioning; connect one or set guidance to 1.0")
    return host.text_context(negative, "negative").to(device)
