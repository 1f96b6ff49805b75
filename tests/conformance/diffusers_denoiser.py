"""A test-only Denoiser on diffusers' UNet2DConditionModel, as the official GoodDrag code ran it.

It implements `core/denoiser.py`'s protocol: ε for a latent, `up_blocks[i]` outputs as feature
taps (forward hooks), and the self-attention hook (a processor that hands each self-attention's
projected q, k, v to the hook and falls back to the model's own processor when the hook declines).
ᾱ is the shipped scheduler's, computed as diffusers computes it (float32), so the DDIM scalars are
the official run's. Attention is the official run's: diffusers' classic `AttnProcessor` without a
LoRA, SDPA (`AttnProcessor2_0`) with one; the LoRA is loaded as diffusers loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from dragkit.core.denoiser import AttentionCall, AttentionHookSlot, Prediction


class DiffusersDenoiser(AttentionHookSlot):
    def __init__(self, folder: Path, lora: Path | None = None) -> None:
        from diffusers import DDIMScheduler, UNet2DConditionModel
        from diffusers.models.attention_processor import AttnProcessor

        unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
        if lora is None:
            unet.set_attn_processor(AttnProcessor())
        else:  # diffusers converts the official attn-processor LoRA keys and injects peft layers
            from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin as Loader

            state_dict, alphas = Loader.lora_state_dict(str(lora))
            Loader.load_lora_into_unet(state_dict, alphas, unet=unet)
        # Fresh storage for every weight: where a tensor sits in memory changed ε by ~1e-6 on CPU.
        for parameter in unet.parameters():
            parameter.data = parameter.data.clone()
        self.unet = unet.eval().requires_grad_(False)
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder=".")
        self._alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
        self._wrap_self_attention()

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self._alphas_cumprod

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def up_block_count(self) -> int:
        return len(self.unet.up_blocks)

    def predict(
        self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, up_features: Sequence[int] = (),
        features_only: bool = False,  # ignored: the whole UNet runs
    ) -> Prediction:
        taps: dict[int, torch.Tensor] = {}
        handles = [self.unet.up_blocks[i].register_forward_hook(_keep(taps, i)) for i in up_features]
        self._t = int(torch.as_tensor(t).flatten()[0])
        try:
            eps = self.unet(x_t, t, encoder_hidden_states=cond.expand(x_t.shape[0], -1, -1)).sample
        finally:
            for handle in handles:
                handle.remove()
        return Prediction(eps=eps, features=taps)


    def _wrap_self_attention(self) -> None:
        processors = self.unet.attn_processors  # down_blocks, up_blocks, mid_block: not execution order
        rank = {"down": 0, "mid": 1, "up": 2}
        layer = 0
        wrapped = {}
        for name, processor in sorted(processors.items(), key=lambda item: rank[item[0].split("_")[0]]):
            if name.endswith("attn1.processor"):
                wrapped[name] = _HookedSelfAttention(self, processor, layer, name.split("_")[0])
                layer += 1
            else:
                wrapped[name] = processor
        self.unet.set_attn_processor(wrapped)


def _keep(taps: dict, index: int):
    def hook(_module, _inputs, output):
        taps[index] = output

    return hook


class _HookedSelfAttention:
    """The model's own self-attention processor unless the denoiser's hook answers."""

    def __init__(self, denoiser: DiffusersDenoiser, inner, layer: int, place: str) -> None:
        self.denoiser, self.inner, self.layer, self.place = denoiser, inner, layer, place

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        hook = self.denoiser._hook
        if hook is not None:
            q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
            call = AttentionCall(layer=self.layer, place=self.place, heads=attn.heads, t=self.denoiser._t)
            out = hook(q, k, v, call)
            if out is not None:
                return attn.to_out[1](attn.to_out[0](out))
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
