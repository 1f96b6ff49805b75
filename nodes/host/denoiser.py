"""The Denoiser door: core's `Denoiser` protocol on a ComfyUI MODEL.

The user's MODEL (a ModelPatcher) is never patched: `ComfyDenoiser` works on a `clone()` and passes
its feature taps and attention hooks per call through `transformer_options`, so nothing outlives a
node, whether it returns, fails or is cancelled. `loaded_denoiser` is the one way nodes make one.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator, Sequence

import torch
from PIL import Image

import comfy.ldm.modules.attention as comfy_attention
import comfy.model_management as model_management
import latent_preview

from ...core.denoiser import AttentionCall, AttentionHookSlot, Prediction
from .models import check_supported, model_options_patch_names

_PLACES = {"input": "down", "middle": "mid", "output": "up"}


def loaded_denoiser(model, for_gradients: bool = False) -> "ComfyDenoiser":
    """A ComfyDenoiser on a clone of `model`, loaded through ComfyUI's model management; with
    `for_gradients` (call inside `runtime.gradients()`), loaded whole with ordinary parameters."""
    denoiser = ComfyDenoiser(model, for_gradients=for_gradients)
    if for_gradients:
        denoiser.load_for_gradients()
    else:
        denoiser.load()
    return denoiser


class ComfyDenoiser(AttentionHookSlot):
    """ε-prediction in the DDPM convention on a clone of a ComfyUI SD-family MODEL.

    With `for_gradients`, the clone is one whose weights are ordinary, fully loaded parameters:
    under current ComfyUI's Dynamic VRAM a MODEL streams its weights per op into cast buffers, which
    autograd and LoRA layers cannot follow, so gradient-taking nodes work on ComfyUI's non-dynamic
    delegate of the model (the same checkpoint and patches, loaded the classic way)."""

    def __init__(self, model, for_gradients: bool = False) -> None:
        check_supported(model)
        self.for_gradients = for_gradients
        self.patcher = _static_clone(model) if for_gradients else model.clone()
        unet = self.patcher.model.diffusion_model
        self._unet = unet
        self._self_attention = _self_attention_sites(unet)
        self._stage_ends = _decoder_stage_ends(unet)
        self._timestep = 0

    # --- model management ---------------------------------------------------------------------

    def load(self) -> None:
        """Load through ComfyUI's model management (evicting others as it sees fit); a gradient
        clone is loaded whole, since backward passes need every weight resident."""
        model_management.load_models_gpu([self.patcher], force_full_load=self.for_gradients)

    def load_for_gradients(self) -> None:
        """Load, then make sure no parameter is an inference tensor.

        Loader nodes run under inference mode, so the weights are inference tensors and autograd
        refuses to save them for backward even with respect to the latent alone. Cloning each one
        outside inference mode gives equal, ordinary tensors (one at a time, to keep peak memory low).
        Call inside `gradients()`, on a denoiser made `for_gradients`."""
        if not self.for_gradients:
            raise RuntimeError("load_for_gradients needs a ComfyDenoiser made with for_gradients=True")
        self.load()
        for module in self.patcher.model.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                if param.is_inference():
                    setattr(module, name, torch.nn.Parameter(param.clone(), requires_grad=False))

    @property
    def device(self) -> torch.device:
        return self.patcher.load_device

    @property
    def dtype(self) -> torch.dtype:
        return self.patcher.model.get_dtype()

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        sigmas = self.patcher.get_model_object("model_sampling").sigmas.detach().to("cpu", torch.float64)
        return 1.0 / (1.0 + sigmas**2)

    @property
    def up_block_count(self) -> int:
        return len(self._stage_ends)

    @property
    def self_attention_count(self) -> int:
        return len(self._self_attention)

    @property
    def trainable_module(self) -> torch.nn.Module:
        """The module `predict` runs, for LoRA layers that live in it while training (the clone's
        own UNet: a gradient clone is ComfyUI's non-dynamic delegate, whose weights are ordinary)."""
        return self._unet

    def fingerprint(self) -> str:
        """A restart-stable digest of the model as it computes, for on-disk caches keyed by model.

        Hashes every UNet parameter and buffer (name, dtype, shape, values) as loaded, so weight
        patches such as LoRAs are included, plus the names of the model's other patches (attention
        replacements and wrappers, which are functions and cannot be hashed by value). Call after load()."""
        digest = hashlib.sha256()
        for name, tensor in (*self._unet.named_parameters(), *self._unet.named_buffers()):
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().contiguous().view(torch.uint8).cpu().numpy().tobytes())
        digest.update(model_options_patch_names(self.patcher.model_options).encode())
        return digest.hexdigest()

    def preview(self, latent: torch.Tensor) -> Image.Image:
        """A quick RGB look at a DDPM-convention latent (ComfyUI's latent → RGB factors, no VAE)."""
        latent_format = self.patcher.model.latent_format
        previewer = latent_preview.Latent2RGBPreviewer(latent_format.latent_rgb_factors, latent_format.latent_rgb_factors_bias)
        image = previewer.decode_latent_to_preview(self.from_model_latent(latent[:1]).float())
        return image.resize((image.width * 8, image.height * 8), Image.NEAREST)

    # --- latents --------------------------------------------------------------------------------

    def to_model_latent(self, samples: torch.Tensor) -> torch.Tensor:
        """LATENT["samples"] (raw VAE latent) → the DDPM-convention latent the algorithms use."""
        return self.patcher.model.process_latent_in(samples.clone().to(self.device, torch.float32))

    def from_model_latent(self, latent: torch.Tensor) -> torch.Tensor:
        return self.patcher.model.process_latent_out(latent.detach()).to(model_management.intermediate_device())

    # --- the Denoiser protocol ------------------------------------------------------------------

    def predict(
        self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, up_features: Sequence[int] = (),
        features_only: bool = False,
    ) -> Prediction:
        base = self.patcher.model
        sampling = self.patcher.get_model_object("model_sampling")
        batch = x_t.shape[0]
        timesteps = torch.as_tensor(t, dtype=torch.float32, device=x_t.device).expand(batch)
        sigma = sampling.sigma(timesteps)
        sigma_view = sigma.view(batch, 1, 1, 1).to(x_t.dtype)
        # ComfyUI's EPS models take x = x_ddpm·sqrt(1 + σ²) and return the denoised x0 = x − σ·ε.
        x = x_t * (1.0 + sigma_view**2) ** 0.5
        context = cond.to(x_t.device, x_t.dtype)
        if context.shape[0] != batch:
            context = context.expand(batch, *context.shape[1:])
        features: dict[int, torch.Tensor] = {}
        options = self._transformer_options(up_features, features, sigma, features_only)
        self._timestep = int(timesteps[0])
        try:
            with self._last_stage_tap(up_features, features):
                denoised = self._apply_model(base, x, sigma, context, options)
        except _FeaturesTaken:
            return Prediction(eps=None, features={i: features[i] for i in up_features})
        eps = (x - denoised) / sigma_view
        return Prediction(eps=eps, features={i: features[i] for i in up_features})


    # --- internals ------------------------------------------------------------------------------

    def _apply_model(self, base, x, sigma, context, options) -> torch.Tensor:
        wrapper = self.patcher.model_options.get("model_function_wrapper")
        if wrapper is None:
            return base.apply_model(x, sigma, c_crossattn=context, transformer_options=options)
        c = {"c_crossattn": context, "transformer_options": options}
        return wrapper(base.apply_model, {"input": x, "timestep": sigma, "c": c, "cond_or_uncond": [0]})

    def _transformer_options(self, up_features: Sequence[int], features: dict, sigma: torch.Tensor, features_only: bool) -> dict:
        """The clone's own transformer options plus this call's taps and attention replacements.
        With `features_only`, on a gradient clone (loaded whole, so stopping mid-forward leaves no
        weights half-streamed), the last tap ends the UNet's forward."""
        options = dict(self.patcher.model_options.get("transformer_options", {}))
        patches = {k: list(v) for k, v in options.get("patches", {}).items()}
        replace = {k: dict(v) for k, v in options.get("patches_replace", {}).items()}
        for i in up_features:
            if not 0 <= i < len(self._stage_ends):
                raise ValueError(f"up_blocks[{i}] does not exist; this UNet has {len(self._stage_ends)} decoder stages")
        taps = {self._stage_ends[i]: i for i in up_features if self._stage_ends[i] < len(self._unet.output_blocks)}
        if taps:
            stop = features_only and self.for_gradients and len(taps) == len(set(up_features))
            patches["output_block_patch"] = patches.get("output_block_patch", []) + [_output_tap(taps, features, stop)]
        if self._hook is not None:
            attn1 = replace.setdefault("attn1", {})
            for layer, (block, place) in enumerate(self._self_attention):
                # another node's patch may be keyed (block, id, index) or, for every index, (block, id)
                previous = attn1.get(block) or attn1.get(block[:2])
                attn1[block] = self._attention_replacement(layer, place, previous)
        options.update(patches=patches, patches_replace=replace, cond_or_uncond=[0], sigmas=sigma)
        if self.for_gradients:
            options["optimized_attention_override"] = _differentiable_attention
        return options

    @contextlib.contextmanager
    def _last_stage_tap(self, up_features: Sequence[int], features: dict) -> Iterator[None]:
        """The last decoder stage has no later output-block patch point: read the input of `out`."""
        last = len(self._stage_ends) - 1
        if last not in up_features:
            yield
            return
        handle = self._unet.out.register_forward_pre_hook(lambda _m, args: features.__setitem__(last, args[0]))
        try:
            yield
        finally:
            handle.remove()

    def _attention_replacement(self, layer: int, place: str, previous):
        """DragKit's hook for one self-attention; where the hook declines, whatever was there
        before (another node's patch, or ComfyUI's attention) runs."""
        attention = comfy_attention.attention_pytorch if self.for_gradients else comfy_attention.optimized_attention

        def replacement(q, k, v, extra_options):
            heads = extra_options["n_heads"]
            out = self._hook(q, k, v, AttentionCall(layer=layer, place=place, heads=heads, t=self._timestep))
            if out is not None:
                return out
            if previous is not None:
                return previous(q, k, v, extra_options)
            return attention(q, k, v, heads, attn_precision=extra_options.get("attn_precision"))

        return replacement


def _differentiable_attention(_default, *args, **kwargs):
    """ComfyUI's attention override while gradients are taken: PyTorch's SDPA, which has a
    backward pass (the fastest attention ComfyUI picks, e.g. sage or flash kernels, may not)."""
    return comfy_attention.attention_pytorch(*args, **kwargs)


def _static_clone(model):
    """A clone whose weights are ordinary parameters: ComfyUI's non-dynamic delegate of a Dynamic
    VRAM model (ComfyUI ≥ 0.2x), a plain clone otherwise (0.3.x, CPU)."""
    if not getattr(model, "is_dynamic", lambda: False)():
        return model.clone()
    delegate = getattr(model, "get_non_dynamic_delegate", None)
    try:
        return delegate() if delegate is not None else model.clone(disable_dynamic=True)
    except Exception as exc:  # noqa: BLE001 - whatever the loader's patcher raises, the user gets what to do
        raise ValueError(
            f"model: this MODEL streams its weights (ComfyUI's Dynamic VRAM) and ComfyUI cannot make the fully loaded "
            f"copy that LoRA training and dragging need ({type(exc).__name__}: {exc}). It likely comes from a custom "
            "loader (GGUF and the like) that ComfyUI cannot reload; load the checkpoint with Load Checkpoint, or start "
            "ComfyUI with --disable-dynamic-vram") from None


class _FeaturesTaken(Exception):
    """Raised by the last output tap of a features-only call: the rest of the UNet is not needed."""


def _output_tap(taps: dict[int, int], features: dict, stop_when_taken: bool):
    def tap(h, hsp, transformer_options):
        block = transformer_options.get("block")
        if block is not None and block[1] in taps:
            features[taps[block[1]]] = h
            if stop_when_taken and len(features) == len(taps):
                raise _FeaturesTaken
        return h, hsp

    return tap


def _decoder_stage_ends(unet) -> list[int]:
    """For each decoder stage (diffusers up_blocks[i]), the output-block index just after it."""
    ends, end = [], 0
    for level in reversed(range(len(unet.channel_mult))):
        end += unet.num_res_blocks[level] + 1
        ends.append(end)
    return ends


def _self_attention_sites(unet) -> list[tuple[tuple[str, int, int], str]]:
    """Every self-attention as (ComfyUI attn1 patch key, place), in execution order."""
    from comfy.ldm.modules.attention import SpatialTransformer

    groups = [("input", list(unet.input_blocks)), ("middle", [unet.middle_block]), ("output", list(unet.output_blocks))]
    sites = []
    for name, blocks in groups:
        for block_id, block in enumerate(blocks):
            for module in block.modules():
                if isinstance(module, SpatialTransformer):
                    for index in range(len(module.transformer_blocks)):
                        sites.append(((name, block_id, index), _PLACES[name]))
    return sites


