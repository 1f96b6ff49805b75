"""The denoiser as the drag algorithms see it.

Conventions, the same as the papers' diffusers code so that their hyper-parameters carry over:
- latents are in the DDPM convention: the VAE latent times the model's scale factor (0.18215 for
  SD 1.5), noised as x_t = sqrt(ᾱ_t)·x_0 + sqrt(1 − ᾱ_t)·ε;
- t is an integer training timestep (0 … len(alphas_cumprod) − 1);
- the model predicts ε;
- feature taps are named by diffusers' `up_blocks[i]`: tap i is the output of decoder stage i
  (upsampler included), i = 0 … number of stages − 1 (SD 1.5: 0 → 1280×8×8 … 3 → 320×64×64 for a
  64×64 latent);
- self-attention layers are numbered in execution order over the whole UNet, counting only
  self-attention (SD 1.5: 0–5 encoder, 6 middle, 7–15 decoder; MasaCtrl's "layer 10" is the first
  self-attention of `up_blocks[2]`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch


@dataclass(frozen=True)
class Prediction:
    eps: torch.Tensor | None  # None only when asked for features only and the UNet stopped early
    features: dict[int, torch.Tensor]  # up-block index → feature map [B, C, h, w]


@dataclass(frozen=True)
class AttentionCall:
    """One self-attention evaluation inside the UNet, as seen by an attention hook."""

    layer: int  # self-attention index in execution order (see module docstring)
    place: str  # "down" | "mid" | "up"
    heads: int
    t: int  # the timestep this UNet call runs at (of the first batch row when rows differ)


# hook(q, k, v, call) -> attention output [B, tokens, heads·dim] or None for the default attention.
# q, k, v are [B, tokens, heads·dim], already projected (and LoRA-adapted) by the model.
AttentionHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, AttentionCall], "torch.Tensor | None"]


class Denoiser(Protocol):
    """An ε-prediction UNet with SD-standard feature taps and a self-attention hook."""

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """ᾱ_t for every training timestep, float64, on the CPU."""

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def up_block_count(self) -> int:
        """How many decoder stages (`up_blocks`) the UNet has (SD 1.5: 4)."""

    @property
    def trainable_module(self) -> torch.nn.Module:
        """The module `predict` runs, for adapters trained into it (LoRA); only denoisers made for
        gradients need one."""

    def predict(
        self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, up_features: Sequence[int] = (),
        features_only: bool = False,
    ) -> Prediction:
        """ε at timestep t (one for all rows, or one per row as a [B] tensor) for latents x_t
        [B, 4, h, w] and text context cond [1 or B, tokens, dim].

        With `features_only` the caller needs the taps alone: a denoiser may then stop the UNet
        after the last tapped decoder stage (forward and backward skip the rest) and return eps None.
        Differentiable with respect to x_t when called with gradients enabled."""

    def attention_hook(self, hook: AttentionHook | None) -> AbstractContextManager[None]:
        """While the context is open, every self-attention of the UNet goes through `hook`."""


class AttentionHookSlot:
    """A denoiser's `attention_hook`: one hook at a time in `_hook`, the previous one back on exit."""

    _hook: AttentionHook | None = None

    @contextmanager
    def attention_hook(self, hook: AttentionHook | None) -> Iterator[None]:
        previous, self._hook = self._hook, hook
        try:
            yield
        finally:
            self._hook = previous


class GuidedDenoiser:
    """Classifier-free guidance around a Denoiser: ε = ε_u + g·(ε_c − ε_u).

    The unconditional and conditional rows go through the UNet as one batch. Feature taps are those
    of the conditional rows."""

    def __init__(self, denoiser: Denoiser, uncond: torch.Tensor, scale: float) -> None:
        self.inner, self.uncond, self.scale = denoiser, uncond, scale

    def __getattr__(self, name: str):  # alphas_cumprod, device, dtype, up_block_count, attention_hook
        return getattr(self.inner, name)

    def predict(
        self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, up_features: Sequence[int] = (),
        features_only: bool = False,
    ) -> Prediction:
        if self.scale == 1.0:
            return self.inner.predict(x_t, t, cond, up_features, features_only)
        batch = x_t.shape[0]
        contexts = torch.cat([self.uncond.expand(batch, -1, -1), cond.expand(batch, -1, -1)])
        timesteps = torch.cat([t, t]) if isinstance(t, torch.Tensor) and t.ndim else t
        both = self.inner.predict(torch.cat([x_t, x_t]), timesteps, contexts, up_features)
        eps_u, eps_c = both.eps.chunk(2)
        return Prediction(eps=eps_u + self.scale * (eps_c - eps_u), features={i: f[batch:] for i, f in both.features.items()})
