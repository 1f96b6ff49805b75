"""One edit per method, stage by stage, as the benchmark times and counts it.

Each method runs at its defaults (DDIM 50, the code's inversion strength and LoRA steps, its
sampler) on any core `Denoiser`: ComfyUI's for the benchmark, the synthetic one for the pass-count
test. Nothing here imports ComfyUI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from dragkit.core.attention import MutualSelfAttention, RecordedReference
from dragkit.core.drag import DragSpec
from dragkit.core.inversion import invert
from dragkit.core.lora import LoraSettings, train_lora
from dragkit.core.masks import adaptive_segments
from dragkit.core.memory import peak_memory_gib, reset_peak_memory
from dragkit.core.methods import adaptivedrag, dragdiffusion, dragnext, easydrag, gooddrag
from dragkit.core.passes import CountingDenoiser, Passes
from dragkit.core.sampling import CorrespondenceLoss, mutual_attention_sample, reference_guided_sample
from dragkit.core.schedule import ddim_schedule

METHODS = ("DragDiffusion", "GoodDrag", "EasyDrag", "DragNeXt", "AdaptiveDrag")
STAGES = ("LoRA", "inversion", "drag", "sampling")
REDRAG_SAMPLING = "re-sample"  # the sampling of a re-drag, which is not part of one edit's work


@dataclass(frozen=True)
class Method:
    strength: float  # the code's inversion strength (of 50 DDIM steps)
    lora_steps: int  # the code's LoRA steps (0: none)


DEFAULTS = {
    "DragDiffusion": Method(0.7, 80),
    "GoodDrag": Method(0.75, 70),
    "EasyDrag": Method(0.7, 0),
    "DragNeXt": Method(0.75, 70),
    "AdaptiveDrag": Method(0.8, 80),
}


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    passes: Passes
    peak_gib: float


@dataclass(frozen=True)
class Edit:
    method: str
    stages: tuple[Stage, ...]
    gradient_steps: int | None  # None: stopped after LoRA
    stop_reason: str | None

    def work(self, without_lora: bool = True) -> int:
        """F of one edit (LoRA excluded unless asked for)."""
        counted = STAGES[1:] if without_lora else STAGES
        return sum(s.passes.work for s in self.stages if s.name in counted)


SETTINGS = {"DragDiffusion": dragdiffusion.DragDiffusionSettings, "GoodDrag": gooddrag.GoodDragSettings,
            "EasyDrag": easydrag.EasyDragSettings, "DragNeXt": dragnext.DragNeXtSettings,
            "AdaptiveDrag": adaptivedrag.AdaptiveDragSettings}


def settings_for(name: str, up_block_count: int, easydrag_plain: bool = False):
    """The method's default settings; a UNet with one decoder stage (the tiny test checkpoint)
    takes every feature from up_blocks[0]."""
    options = {}
    if up_block_count == 1:
        options = {"feature_blocks": (0,)} if name == "EasyDrag" else {"feature_block": 0}
    if name == "EasyDrag":
        options["reuse_reference_pass"] = not easydrag_plain
    return SETTINGS[name](**options)


def superpixels_for(spec: DragSpec, seed: int = 0) -> np.ndarray:
    """AdaptiveDrag's SLIC labels of a smooth random picture of the drag's size (no SAM 2)."""
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    picture = torch.nn.functional.interpolate(coarse, size=(spec.height, spec.width), mode="bilinear")
    return adaptive_segments((picture[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), None)


def decoder_layers(denoiser) -> range:
    """The methods' mutual-attention layers 10–15 (SD 1.5's decoder); a UNet with one decoder
    stage has only its last two."""
    if denoiser.up_block_count == 1:
        return range(max(0, denoiser.self_attention_count - 2), denoiser.self_attention_count)
    return range(10, 16)


def run_edit(name: str, denoiser, latent: torch.Tensor, spec: DragSpec, cond: torch.Tensor, *,
             lora_steps: int | None = None, lora_micro_batch: int = 0, stop_after: str = "sampling",
             easydrag_plain: bool = False) -> Edit:
    """LoRA (when the method trains one and `lora_steps` is not 0; None: the method's steps),
    inversion, drag and sampling. Call it with gradients enabled (ComfyUI: inside host.gradients())."""
    method = DEFAULTS[name]
    counting = CountingDenoiser(denoiser)
    stages: list[Stage] = []

    def timed(stage: str, fn):
        counting.passes = Passes()
        reset_peak_memory()
        start = time.perf_counter()
        value = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stages.append(Stage(stage, time.perf_counter() - start, counting.passes, peak_memory_gib()))
        return value

    steps = method.lora_steps if lora_steps is None else min(lora_steps, method.lora_steps)
    if steps:
        lora = LoraSettings(steps=steps, micro_batch_size=lora_micro_batch)
        timed("LoRA", lambda: train_lora(counting, latent, cond, lora))
    if stop_after == "LoRA":
        return Edit(name, tuple(stages), None, None)
    schedule = ddim_schedule(denoiser.alphas_cumprod, 50)
    inversion = timed("inversion", lambda: invert(counting, latent, cond, schedule, method.strength))
    settings = settings_for(name, denoiser.up_block_count, easydrag_plain)
    optimise = {"DragDiffusion": dragdiffusion.optimise, "GoodDrag": gooddrag.optimise, "EasyDrag": easydrag.optimise,
                "DragNeXt": dragnext.optimise,
                "AdaptiveDrag": lambda *a: adaptivedrag.optimise(*a, superpixels=superpixels_for(spec))}[name]
    result = timed("drag", lambda: optimise(counting, inversion, spec, cond, settings))
    if name == "EasyDrag":
        recorded = RecordedReference(MutualSelfAttention(schedule.timesteps, layers=None, places=("up",)))
        sampling = lambda: reference_guided_sample(counting, result.latent, inversion, cond, result.index,  # noqa: E731
                                                   recorded)
    else:
        recorded = RecordedReference(MutualSelfAttention(schedule.timesteps, first_step=result.index,
                                                         layers=decoder_layers(denoiser)))
        correspondence = CorrespondenceLoss.for_drag(inversion.latent, spec) if name == "AdaptiveDrag" else None
        sampling = lambda: mutual_attention_sample(counting, result.reference_latent, result.latent, cond,  # noqa: E731
                                                   schedule, result.index, recorded,
                                                   correspondence=correspondence)
    timed("sampling", sampling)  # as the sampler nodes: the reference branch recorded, then the edit
    timed(REDRAG_SAMPLING, sampling)  # a re-drag's sampling reads that recording
    return Edit(name, tuple(stages), len(result.losses), result.stop_reason)

