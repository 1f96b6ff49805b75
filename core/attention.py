"""Mutual self-attention: MasaCtrl's K/V sharing, which DragDiffusion calls reference-latent-control.

The batch is [reference, edited] without CFG, or [uncond reference, uncond edited, cond reference,
cond edited] with it (`GuidedDenoiser`'s layout): consecutive [reference, edited] row pairs. In the
chosen self-attention layers the queries of both rows of a pair attend to the keys and values of
the pair's reference row. The reference row therefore gets its ordinary self-attention and is
unchanged; the edited row reads the reference's content wherever its queries match
(dragdiffusion.md §3.8, gooddrag.md §3.10).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from .denoiser import AttentionCall
from .families import DEFAULT_FAMILY

# SD 1.5 self-attention layers 10–15 are those of up_blocks[2] (32×32 for a 64×64 latent) and
# up_blocks[3] (64×64). They are the layers the papers' code edits; up_blocks[1] (7–9) is left alone.
SD15_LAST_DECODER_LAYERS = frozenset(DEFAULT_FAMILY.sharing_range)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, tokens, heads·dim] → [B, heads, tokens, dim]."""
    batch, tokens, width = x.shape
    return x.reshape(batch, tokens, heads, width // heads).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention in the [B, tokens, heads·dim] layout (queries may be longer than keys)."""
    batch, tokens, width = q.shape
    out = F.scaled_dot_product_attention(_split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads))
    return out.transpose(1, 2).reshape(batch, tokens, width)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention of each [reference, edited] row pair's queries over the keys and values of its
    reference row, in the [B, tokens, heads·dim] layout."""
    batch, tokens, width = q.shape
    if batch % 2:
        raise ValueError(f"mutual self-attention needs [reference, edited] row pairs, got a batch of {batch}")
    # Laying a pair's queries end to end along the token axis lets a single attention over the
    # reference row's keys and values serve both rows.
    out = attend(q.reshape(batch // 2, 2 * tokens, width), k[0::2], v[0::2], heads)
    return out.reshape(batch, tokens, width)


class MutualSelfAttention:
    """An attention hook that shares each pair's reference keys and values in chosen layers and steps.

    A step is an index into the schedule's `timesteps` (0 is the noisiest). Each call carries its
    timestep, so the policy works out the step itself and works in any loop over those timesteps,
    including one that switches it on part-way. Layers are chosen by number, or, with `layers=None`,
    by place: every self-attention in `places` (EasyDrag shares the whole decoder, "up", whatever
    its depth). Layers and steps that are not chosen return None, which means default attention.
    `edited` counts the edited calls per (step, layer).
    """

    def __init__(
        self,
        timesteps: Sequence[int],
        first_step: int = 0,
        layers: Iterable[int] | None = SD15_LAST_DECODER_LAYERS,
        places: Iterable[str] = ("down", "mid", "up"),
    ) -> None:
        self.layers = None if layers is None else frozenset(layers)
        self.places = frozenset(places)
        self.first_step = first_step
        self._step_of_timestep = {t: step for step, t in enumerate(timesteps)}
        self.edited: Counter[tuple[int, int]] = Counter()

    def step_of(self, t: int) -> int:
        try:
            return self._step_of_timestep[int(t)]
        except KeyError:
            raise ValueError(f"timestep {t} is not in this policy's schedule {tuple(self._step_of_timestep)}") from None

    def chooses(self, call: AttentionCall) -> bool:
        """Whether this self-attention shares the reference's keys and values."""
        chosen = call.place in self.places and (self.layers is None or call.layer in self.layers)
        return chosen and self.step_of(call.t) >= self.first_step

    def selection(self) -> tuple:
        """What the policy chooses, comparable between policies."""
        layers = None if self.layers is None else tuple(sorted(self.layers))
        return layers, tuple(sorted(self.places)), self.first_step, tuple(self._step_of_timestep)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, call: AttentionCall) -> torch.Tensor | None:
        if not self.chooses(call):
            return None
        self.edited[self.step_of(call.t), call.layer] += 1
        return reference_attention(q, k, v, call.heads)


class RecordedReference:
    """Mutual self-attention whose reference keys and values are kept for later passes. A reference
    that does not depend on the edit (EasyDrag's unedited latent at its one timestep; the reference
    branch of mutual-attention sampling, the same for every re-drag of one inversion) is recorded,
    where `policy` shares, keyed by (timestep, layer), during a pass made in `recording_pass`: a
    batch [reference, edited] gets the pair attention, a reference alone its ordinary
    self-attention. Afterwards each pass of the edited row alone reads the recording: half the UNet
    rows, the same result up to the batch's rounding. `store` is where the recording is kept (e.g.
    the CPU, to hold no GPU memory between runs)."""

    def __init__(self, policy: MutualSelfAttention, store: torch.device | str | None = None) -> None:
        self.policy = policy
        self.store = store
        self.recorded: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.recording = False
        self._timesteps: set[int] = set()  # those whose recording pass finished

    def has(self, timesteps: Iterable[int]) -> bool:
        """Whether passes at all these timesteps were recorded to the end."""
        return {int(t) for t in timesteps} <= self._timesteps

    @contextmanager
    def recording_pass(self, timesteps: Iterable[int]) -> Iterator[None]:
        """Record during the passes made inside; `timesteps` count as recorded only if they finish."""
        self.recording = True
        try:
            yield
        finally:
            self.recording = False
        self._timesteps.update(int(t) for t in timesteps)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, call: AttentionCall) -> torch.Tensor | None:
        if not self.policy.chooses(call):
            return None
        key = (int(call.t), call.layer)
        if self.recording:
            self.recorded[key] = (k[:1].detach().to(self.store), v[:1].detach().to(self.store))
            if q.shape[0] == 1:
                return attend(q, k, v, call.heads)
            self.policy.edited[self.policy.step_of(call.t), call.layer] += 1
            return reference_attention(q, k, v, call.heads)
        try:
            k, v = (x.to(q.device, q.dtype) for x in self.recorded[key])
        except KeyError:
            raise RuntimeError(f"self-attention layer {call.layer} at t = {call.t} was not recorded in the reference pass") from None
        self.policy.edited[self.policy.step_of(call.t), call.layer] += 1
        return attend(q, k, v, call.heads)


class LatestRecording:
    """The latest RecordedReference of one inversion, for re-drags: kept with what it was recorded
    from (a key of the sampling's settings, the text context, the reference latent), so that `get`
    gives it back only for a sampling with the same reference branch. One at a time: a `put` replaces
    the previous recording (they are large)."""

    def __init__(self) -> None:
        self._kept: tuple[tuple, torch.Tensor, torch.Tensor, RecordedReference] | None = None

    def get(self, key: tuple, cond: torch.Tensor, reference_latent: torch.Tensor) -> RecordedReference | None:
        if self._kept is None:
            return None
        kept_key, kept_cond, kept_latent, recorded = self._kept
        same = kept_key == key and torch.equal(kept_cond, cond) and torch.equal(kept_latent, reference_latent)
        return recorded if same else None

    def put(self, key: tuple, cond: torch.Tensor, reference_latent: torch.Tensor, recorded: RecordedReference) -> None:
        self._kept = (key, cond, reference_latent, recorded)
