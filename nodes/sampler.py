"""The samplers that finish a drag: Mutual-Attention (denoise the edit beside its reference,
sharing keys/values), CLoss (AdaptiveDrag) and Reference-Guided (EasyDrag)."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..core.attention import MutualSelfAttention, RecordedReference
from ..core.families import DEFAULT_FAMILY
from ..core.sampling import (CORRESPONDENCE_MODES, CorrespondenceLoss, guided_timesteps, mutual_attention_sample,
                             reference_guided_sample)
from . import host
from .checks import CheckedNode, InputError, checked, require_finite
from .values import EditType, check_edit_inputs, inversion_conditioning_input

SAMPLING_KEY = "dragkit_sampling"  # the executed message's key with the sampling's figures (tests and tools read it)


class DragKitMutualAttentionSampler(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitMutualAttentionSampler",
            display_name="DragKit Mutual-Attention Sampler",
            category="DragKit",
            description=(
                "Denoises the edited latent beside its reference with DDIM; in the chosen self-attention layers "
                "the edited branch reads the reference's keys and values, which keeps the identity of the "
                "picture. The reference branch is denoised once and recorded; a re-drag of the same inversion "
                "denoises only the edited latent. Layers count self-attentions in execution order (SD 1.5: 0–5 "
                "encoder, 6 middle, 7–15 decoder; 10–15 are up_blocks[2] and [3])."
            ),
            inputs=[*mutual_attention_inputs(), inversion_conditioning_input()],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The edited latent, for VAEDecode.")],
        )

    @classmethod
    def validate_inputs(cls, start_layer, end_layer) -> bool | str:
        return cls.refusal(start_layer=start_layer, end_layer=end_layer)

    @classmethod
    def check_values(cls, values: dict) -> None:
        check_layer_range(values)

    @classmethod
    @checked
    def execute(cls, model, edit, start_layer, end_layer, start_step, conditioning=None) -> io.NodeOutput:
        return sample_with_mutual_attention(model, edit, start_layer, end_layer, start_step, conditioning)


def sample_with_mutual_attention(model, edit, start_layer, end_layer, start_step, conditioning,
                                 correspondence: CorrespondenceLoss | None = None) -> io.NodeOutput:
    denoiser, cond = prepare_sampling(model, edit, conditioning)
    if start_layer >= denoiser.self_attention_count:
        raise ValueError(f"start_layer: this model has {denoiser.self_attention_count} self-attention layers "
                         f"(0–{denoiser.self_attention_count - 1}); {start_layer} does not exist")
    schedule, result = edit.inversion.inversion.schedule, edit.result
    policy = MutualSelfAttention(schedule.timesteps, first_step=result.index + start_step,
                                 layers=range(start_layer, end_layer + 1))
    recorded = recorded_reference(edit, model, policy, cond, denoiser.device)
    return run_sampling(denoiser, edit, lambda on_step: mutual_attention_sample(
        denoiser, result.reference_latent, result.latent, cond, schedule, result.index, recorded,
        on_step=on_step, correspondence=correspondence),
        reused=recorded.has(schedule.timesteps[result.index:]))


def recorded_reference(edit, model, policy: MutualSelfAttention, cond: torch.Tensor, device: torch.device,
                       reference: tuple = ("denoised",)) -> RecordedReference:
    """The reference branch's keys and values for this sampling: those an earlier run recorded from
    the same inversion (so the same weights: see check_edit_inputs), model patches (e.g. another
    node's attention patch added since), prompt, reference latent, start and layers (a re-drag: only
    the edited latent then goes through the UNet), else a new recorder, kept as the inversion's
    latest (on the CPU when the model runs elsewhere, so no GPU memory is held between runs).
    `reference` names the kind of branch (the unedited latent denoised again, or the stored
    inversion latents)."""
    result, recordings = edit.result, edit.inversion.recordings
    key = (reference, result.index, policy.selection(), host.patch_names(model))
    recorded = recordings.get(key, cond, result.reference_latent)
    if recorded is None:
        recorded = RecordedReference(policy, store=None if device.type == "cpu" else "cpu")
        recordings.put(key, cond, result.reference_latent, recorded)
    return recorded


def mutual_attention_inputs() -> list:
    return [
        io.Model.Input("model", tooltip="The LoRA-finetuned model (the same as the drag's)."),
        EditType.Input("edit"),
        io.Int.Input("start_layer", default=DEFAULT_FAMILY.sharing_layers[0], min=0, max=200,
                     tooltip="First self-attention layer that shares."),
        io.Int.Input("end_layer", default=DEFAULT_FAMILY.sharing_layers[1], min=0, max=200,
                     tooltip="Last self-attention layer that shares."),
        io.Int.Input("start_step", default=0, min=0, max=1000,
                     tooltip="Denoising step (0 = the first this sampler runs) from which the layers share."),
    ]


def check_layer_range(values: dict) -> None:
    start, end = values.get("start_layer"), values.get("end_layer")
    if start is not None and end is not None and end < start:
        raise InputError(f"end_layer: {end} is before start_layer ({start})")


class DragKitCLossSampler(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitCLossSampler",
            display_name="DragKit CLoss Sampler",
            category="DragKit",
            description=(
                "AdaptiveDrag's correspondence sampling: the Mutual-Attention Sampler, and after every step the "
                "edited latent's patch around each TARGET is pulled toward the unedited latent's patch around the "
                "ORIGINAL handle (one Adam step of the loss, at most learning_rate per entry). sce: the paper's "
                "symmetric cross-entropy of cosine similarities; mse: 100·MSE, the released code's formula (whose "
                "update never reaches the latent there, so 'off' reproduces the code). Works after any drag node."
            ),
            inputs=[
                *mutual_attention_inputs(),
                io.Combo.Input("closs", options=[*CORRESPONDENCE_MODES, "off"], default="sce"),
                io.Float.Input("learning_rate", default=0.01, min=0.0, max=1.0, step=0.001,
                               tooltip="Adam's step on the edited latent per sampling step."),
                io.Float.Input("temperature", default=0.07, min=0.001, max=10.0, step=0.001,
                               tooltip="τ of the cosine logits (CLIP's initial value)."),
                io.Int.Input("patch_radius", default=5, min=0, max=32, tooltip="Latent pixels: 11 × 11 patches."),
                inversion_conditioning_input(),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The edited latent, for VAEDecode.")],
        )

    @classmethod
    def validate_inputs(cls, start_layer, end_layer, closs, learning_rate, temperature) -> bool | str:
        return cls.refusal(start_layer=start_layer, end_layer=end_layer, closs=closs, learning_rate=learning_rate,
                           temperature=temperature)

    @classmethod
    def check_values(cls, values: dict) -> None:
        check_layer_range(values)

    @classmethod
    @checked
    def execute(cls, model, edit, start_layer, end_layer, start_step, closs, learning_rate, temperature, patch_radius,
                conditioning=None) -> io.NodeOutput:
        correspondence = None
        if closs != "off":
            inversion = edit.inversion.inversion
            correspondence = CorrespondenceLoss.for_drag(inversion.latent, edit.spec, mode=closs, radius=patch_radius,
                                                         temperature=temperature, learning_rate=learning_rate)
        with host.gradients():  # each correction takes a gradient of the loss (never through the UNet)
            output = sample_with_mutual_attention(model, edit, start_layer, end_layer, start_step, conditioning,
                                                  correspondence)
        if correspondence is None or not correspondence.losses:
            return output
        losses = correspondence.losses
        summary = f"CLoss ({closs}) over {len(losses)} steps: {losses[0]:.4f} → {losses[-1]:.4f}"
        (figures,) = output.ui[SAMPLING_KEY]
        return io.NodeOutput(*output.args, ui={"text": [summary, *output.ui["text"]],
                                               SAMPLING_KEY: [{**figures, "closs": closs, "closs_losses": list(losses)}]})


def prepare_sampling(model, edit, conditioning):
    """What every sampler node does first: the edit must come from this model; the prompt defaults
    to the inversion's. Returns the loaded denoiser and the text context."""
    check_edit_inputs(model, edit.inversion)
    denoiser = host.loaded_denoiser(model)
    return denoiser, edit.inversion.context(conditioning).to(denoiser.device)


def run_sampling(denoiser, edit, sample, reused: bool) -> io.NodeOutput:
    """`sample(on_step)` from the edit's schedule position to the clean latent, with progress; an edit
    with no step left (GoodDrag dragged to the end) is returned as it is. The node's text says
    whether the reference branch came from an earlier run's recording (`reused`)."""
    steps = len(edit.inversion.inversion.schedule.timesteps) - edit.result.index
    if steps <= 0:
        return io.NodeOutput({"samples": denoiser.from_model_latent(edit.result.latent)})
    latent = sample(host.Progress(steps).update)
    require_finite(latent, "the sampled latent")
    text = ("reference branch: read from an earlier run's recording (re-drag), only the edit denoised" if reused
            else "reference branch: denoised beside the edit and recorded for re-drags")
    figures = {"steps": steps, "reference": "read" if reused else "recorded"}
    return io.NodeOutput({"samples": denoiser.from_model_latent(latent)}, ui={"text": [text], SAMPLING_KEY: [figures]})


REFERENCE_LATENTS = {"code: one level cleaner (L[i])": False, "same level (L[i+1])": True}


class DragKitReferenceGuidedSampler(CheckedNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DragKitReferenceGuidedSampler",
            display_name="DragKit Reference-Guided Sampler",
            category="DragKit",
            description=(
                "EasyDrag's sampling: DDIM from the edited latent; in the last steps the edited latent's decoder "
                "self-attention reads the keys and values of the STORED inversion latents, and the prediction "
                "is pushed that way: ε = ε_plain + w·(ε_ref − ε_plain). w = 1 is plain mutual attention."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model the inversion was made with."),
                EditType.Input("edit"),
                io.Float.Input("guidance_weight", default=4.0, min=0.0, max=20.0, step=0.1,
                               tooltip="w; the paper finds 3–5 good, larger oversaturates."),
                io.Int.Input("ref_start_step", default=20, min=0, max=1000,
                             tooltip="Guidance in the steps whose DDIM index (ascending, 0 = cleanest) is below this: "
                                     "the last 20 of a 50-step schedule."),
                io.Combo.Input("reference_latent", options=list(REFERENCE_LATENTS), default=next(iter(REFERENCE_LATENTS)),
                               tooltip="Which stored latent guides the step at level t: the official code's, one "
                                       "inversion step cleaner, or the one at the same level."),
                inversion_conditioning_input(),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The edited latent, for VAEDecode.")],
        )

    @classmethod
    def validate_inputs(cls, guidance_weight, reference_latent) -> bool | str:
        return cls.refusal(guidance_weight=guidance_weight, reference_latent=reference_latent)

    @classmethod
    @checked
    def execute(cls, model, edit, guidance_weight, ref_start_step, reference_latent, conditioning=None) -> io.NodeOutput:
        denoiser, cond = prepare_sampling(model, edit, conditioning)
        inversion, result = edit.inversion.inversion, edit.result
        policy = MutualSelfAttention(inversion.schedule.timesteps, layers=None, places=("up",))  # the whole decoder
        consistent = REFERENCE_LATENTS[reference_latent]
        recorded = recorded_reference(edit, model, policy, cond, denoiser.device, reference=("stored", consistent))
        return run_sampling(denoiser, edit, lambda on_step: reference_guided_sample(
            denoiser, result.latent, inversion, cond, result.index, recorded, guidance_weight, ref_start_step,
            consistent, on_step=on_step),
            reused=recorded.has(guided_timesteps(inversion.schedule.timesteps, result.index, ref_start_step)))


SAMPLER_NODES = [DragKitMutualAttentionSampler, DragKitReferenceGuidedSampler, DragKitCLossSampler]
