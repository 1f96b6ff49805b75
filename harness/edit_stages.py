"""One edit per method, stage by stage, as the benchmark times and counts it.

Each method runs at its recipe's defaults (core/methods: DDIM 50, the code's inversion strength and LoRA
steps, its sampler) on any core `Denoiser`: ComfyUI's for the benchmark, the synthetic one for the pass-count
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
from dragkit.core.methods import METHODS as RECIPES
from dragkit.core.methods import adaptivedrag, recipe_of
from dragkit.core.methods.recipe import CLOSS, REFERENCE_GUIDED
from dragkit.core.passes import CountingDenoiser, Passes
from dragkit.core.sampling import CorrespondenceLoss, mutual_attention_sample, reference_guided_sample
from dragkit.core.schedule import ddim_schedule

METHODS = tuple(recipe.name for recipe in RECIPES)
STAGES = ("LoRA", "inversion", "drag", "sampling")
REDRAG_SAMPLING = "re-sample"  # the sampling of a re-drag, which is not part of one edit's work


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


def settings_for(name: str, up_block_count: int, easydrag_plain: bool = False):
    """The method's default settings; a UNet with one decoder stage (the tiny test checkpoint)
    takes every feature from up_blocks[0]."""
    recipe = recipe_of(name)
    options = {}
    if up_block_count == 1:
        options[recipe.feature_field] = (0,) if recipe.feature_field == "feature_blocks" else 0
    if recipe.sampler == REFERENCE_GUIDED:
        options["reuse_reference_pass"] = not easydrag_plain
    return recipe.settings_for(**options)


def superpixels_for(spec: DragSpec, seed: int = 0) -> np.ndarray:
    """AdaptiveDrag's SLIC labels of a smooth random picture of the drag's size (no SAM 2)."""
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    picture = torch.nn.functional.interpolate(coarse, size=(spec.height, spec.width), mode="bilinear")
    return adaptive_segments((picture[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), None)


def sharing_layers(recipe, denoiser) -> range | None:
    """The method's mutual-attention layers (SD 1.5's decoder layers 10–15); a UNet with one decoder
    stage has only its last two."""
    layers = recipe.sharing_layers()
    if layers is not None and denoiser.up_block_count == 1:
        return range(max(0, denoiser.self_attention_count - 2), denoiser.self_attention_count)
    return layers


def run_edit(name: str, denoiser, latent: torch.Tensor, spec: DragSpec, cond: torch.Tensor, *,
             lora_steps: int | None = None, lora_micro_batch: int = 0, stop_after: str = "sampling",
             easydrag_plain: bool = False) -> Edit:
    """LoRA (when the method trains one and `lora_steps` is not 0; None: the method's steps),
    inversion, drag and sampling. Call it with gradients enabled (ComfyUI: inside host.gradients())."""
    recipe = recipe_of(name)
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

    steps = recipe.lora_steps if lora_steps is None else min(lora_steps, recipe.lora_steps)
    if steps:
        lora = LoraSettings(steps=steps, micro_batch_size=lora_micro_batch)
        timed("LoRA", lambda: train_lora(counting, latent, cond, lora))
    if stop_after == "LoRA":
        return Edit(name, tuple(stages), None, None)
    schedule = ddim_schedule(denoiser.alphas_cumprod, 50)
    # the released code's strength: the official count the benchmark compares with runs it
    inversion = timed("inversion", lambda: invert(counting, latent, cond, schedule, recipe.official_strength))
    settings = settings_for(name, denoiser.up_block_count, easydrag_plain)
    optimise = recipe.optimise
    if recipe is adaptivedrag.RECIPE:
        optimise = lambda *a: adaptivedrag.optimise(*a, superpixels=superpixels_for(spec))  # noqa: E731
    result = timed("drag", lambda: optimise(counting, inversion, spec, cond, settings))
    layers = sharing_layers(recipe, denoiser)
    if recipe.sampler == REFERENCE_GUIDED:
        recorded = RecordedReference(MutualSelfAttention(schedule.timesteps, layers=None, places=("up",)))
        sampling = lambda: reference_guided_sample(counting, result.latent, inversion, cond, result.index,  # noqa: E731
                                                   recorded)
    else:
        recorded = RecordedReference(MutualSelfAttention(schedule.timesteps, first_step=result.index, layers=layers))
        correspondence = CorrespondenceLoss.for_drag(inversion.latent, spec) if recipe.sampler == CLOSS else None
        sampling = lambda: mutual_attention_sample(counting, result.reference_latent, result.latent, cond,  # noqa: E731
                                                   schedule, result.index, recorded,
                                                   correspondence=correspondence)
    timed("sampling", sampling)  # as the sampler nodes: the reference branch recorded, then the edit
    timed(REDRAG_SAMPLING, sampling)  # a re-drag's sampling reads that recording
    return Edit(name, tuple(stages), len(result.losses), result.stop_reason)

