"""A small synthetic denoiser for the core unit tests, implementing `core.denoiser.Denoiser`.

`FakeDenoiser` has SD 1.5's ᾱ and its self-attention layout: 16 self-attention layers in execution
order (0–5 "down", 6 "mid", 7–15 "up"), each a plain multi-head self-attention over the latent's
pixels, with residual connections. Feature tap i (`up_blocks[i]`) is the hidden state after the
last attention layer of that decoder stage (SD 1.5's up_blocks[0] has none: its tap follows the
mid layer). ε is a fixed function of t, plus the network's read-out when `depends_on_x`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dragkit.core.denoiser import AttentionCall, AttentionHook, AttentionHookSlot, Prediction

SD15_LAYER_PLACES = ("down",) * 6 + ("mid",) + ("up",) * 9
UP_BLOCK_LAST_LAYER = (6, 9, 12, 15)  # the self-attention layer each up_blocks[i] tap follows


def sd15_alphas_cumprod() -> torch.Tensor:
    """ᾱ of SD 1.5's scaled-linear betas (0.00085 to 0.012 over 1000 steps), float64."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(Q·Kᵀ/√d)·V per head, written out, in the [B, tokens, heads·dim] layout."""
    batch, tokens, width = q.shape
    dim = width // heads
    q, k, v = (x.reshape(x.shape[0], -1, heads, dim).transpose(1, 2) for x in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / dim**0.5, dim=-1)
    return (weights @ v).transpose(1, 2).reshape(batch, tokens, width)


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, height·width, C] → [B, C, height, width]."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


class CpuDenoiser:
    """What every test denoiser shares: SD 1.5's ᾱ, on the CPU, in float32 unless told otherwise."""

    _dtype = torch.float32

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return sd15_alphas_cumprod()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype


class FakeDenoiser(AttentionHookSlot, CpuDenoiser):
    def __init__(
        self,
        *,
        depends_on_x: bool = True,
        channels: int = 4,
        hidden_size: int = 8,
        heads: int = 2,
        cond_dim: int = 8,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> None:
        generator = torch.Generator().manual_seed(seed)

        def weight(rows: int, cols: int) -> torch.Tensor:
            return (torch.randn(rows, cols, generator=generator, dtype=torch.float64) / rows**0.5).to(dtype)

        self.depends_on_x = depends_on_x
        self.heads = heads
        self.embed = weight(channels, hidden_size)
        self.cond_embed = weight(cond_dim, hidden_size)
        # (to_q, to_k, to_v, to_out) of each self-attention layer
        self.attention_weights = [tuple(weight(hidden_size, hidden_size) for _ in range(4)) for _ in SD15_LAYER_PLACES]
        self.read_out = weight(hidden_size, channels)
        self._dtype = dtype
        self.predicted_timesteps: list[int | torch.Tensor] = []  # t of every predict() call, as given, in order

    @property
    def up_block_count(self) -> int:
        return len(UP_BLOCK_LAST_LAYER)

    @property
    def active_hook(self) -> AttentionHook | None:
        return self._hook


    def eps_of_t(self, t: int | torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The part of ε that depends on t only (one t, or one per row): a smooth pattern over the
        latent's elements."""
        frequencies = torch.linspace(0.5, 1.5, shape[1:].numel(), dtype=self._dtype).reshape(shape[1:])
        row_t = torch.as_tensor(t, dtype=self._dtype).reshape(-1, *[1] * len(shape[1:]))
        return torch.sin(frequencies * row_t / 50).expand(shape)

    def predict(
        self, x_t: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, up_features: Sequence[int] = (),
        features_only: bool = False,
    ) -> Prediction:
        self.predicted_timesteps.append(t)
        height, width = x_t.shape[-2:]
        hidden = x_t.flatten(2).transpose(1, 2) @ self.embed + (cond.mean(dim=1) @ self.cond_embed)[:, None]
        first_row_t = int(torch.as_tensor(t).flatten()[0])
        taps = {}
        for layer, projections in enumerate(self.attention_weights):
            call = AttentionCall(layer=layer, place=SD15_LAYER_PLACES[layer], heads=self.heads, t=first_row_t)
            hidden = hidden + self._self_attention(hidden, projections, call)
            if layer in UP_BLOCK_LAST_LAYER:
                taps[UP_BLOCK_LAST_LAYER.index(layer)] = tokens_to_map(hidden, height, width)
            if features_only and up_features and set(up_features) <= taps.keys():
                return Prediction(eps=None, features={i: taps[i] for i in up_features})  # as a UNet stopped early
        eps = self.eps_of_t(t, x_t.shape)
        if self.depends_on_x:
            eps = eps + tokens_to_map(F.layer_norm(hidden, hidden.shape[-1:]) @ self.read_out, height, width)
        return Prediction(eps=eps, features={i: taps[i] for i in up_features})

    def _self_attention(
        self, hidden: torch.Tensor, projections: tuple[torch.Tensor, ...], call: AttentionCall
    ) -> torch.Tensor:
        to_q, to_k, to_v, to_out = projections
        normed = F.layer_norm(hidden, hidden.shape[-1:])  # pre-norm, as in SD's transformer blocks
        q, k, v = normed @ to_q, normed @ to_k, normed @ to_v
        out = self._hook(q, k, v, call) if self._hook is not None else None
        if out is None:
            out = plain_attention(q, k, v, self.heads)
        return out @ to_out


class Cancelled(Exception):
    """Raised by `cancel`, as a node's progress callback raises when the user cancels."""


def cancel(done: int, total: int) -> None:
    """An on_step(done, total) callback that cancels at the first step it sees."""
    raise Cancelled
