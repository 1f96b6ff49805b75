"""DragKit Mutual-Attention Sampler: denoise the edit beside its reference, sharing keys/values."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..core.attention import MutualSelfAttention
from ..core.sampling import mutual_attention_sample
from . import host
from .checks import CheckedNode, InputError, checked
from .drag import check_edit_inputs
from .types import EditType


class DragKitMutualAttentionSampler(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitMutualAttentionSampler",
            display_name="DragKit Mutual-Attention Sampler",
            category="DragKit",
            description=(
                "Denoises [reference, edited] together with DDIM; in the chosen self-attention layers the "
                "edited branch reads the reference's keys and values, which keeps the identity of the "
                "picture. Layers count self-attentions in execution order (SD 1.5: 0–5 encoder, 6 middle, "
                "7–15 decoder; 10–15 are up_blocks[2] and [3])."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The LoRA-finetuned model (the same as the drag's)."),
                EditType.Input("edit"),
                io.Int.Input("start_layer", default=10, min=0, max=200, tooltip="First self-attention layer that shares."),
                io.Int.Input("end_layer", default=15, min=0, max=200, tooltip="Last self-attention layer that shares."),
                io.Int.Input("start_step", default=0, min=0, max=1000,
                             tooltip="Denoising step (0 = the first this sampler runs) from which the layers share."),
                io.Conditioning.Input("conditioning", optional=True,
                                      tooltip="The prompt; when not connected, the inversion's conditioning is used."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The edited latent, for VAEDecode.")],
        )

    @classmethod
    def validate_inputs(cls, start_layer, end_layer) -> bool | str:
        return cls.refusal(start_layer=start_layer, end_layer=end_layer)

    @classmethod
    def check_values(cls, values: dict) -> None:
        start, end = values.get("start_layer"), values.get("end_layer")
        if start is not None and end is not None and end < start:
            raise InputError(f"end_layer: {end} is before start_layer ({start})")

    @classmethod
    @checked
    def execute(cls, model, edit, start_layer, end_layer, start_step, conditioning=None) -> io.NodeOutput:
        check_edit_inputs(model, edit.inversion)
        if conditioning is None:
            conditioning = edit.inversion.conditioning
        denoiser = host.ComfyDenoiser(model)
        denoiser.load()
        layers = range(start_layer, end_layer + 1)
        if start_layer >= denoiser.self_attention_count:
            raise ValueError(f"start_layer: this model has {denoiser.self_attention_count} self-attention layers "
                             f"(0–{denoiser.self_attention_count - 1}); {start_layer} does not exist")
        schedule, result = edit.inversion.inversion.schedule, edit.result
        if result.index >= len(schedule.timesteps):
            return io.NodeOutput({"samples": denoiser.from_model_latent(result.latent)})
        cond = host.text_context(conditioning).to(denoiser.device)
        policy = MutualSelfAttention(schedule.timesteps, first_step=result.index + start_step, layers=layers)
        progress = host.Progress(len(schedule.timesteps) - result.index)
        latent = mutual_attention_sample(denoiser, result.reference_latent, result.latent, cond, schedule, result.index,
                                         policy, on_step=progress.update)
        return io.NodeOutput({"samples": denoiser.from_model_latent(latent)})
