"""The denoising loops: plain DDIM, DDIM of [reference, edited] under mutual self-attention (with
AdaptiveDrag's correspondence loss, optionally), and EasyDrag's reference-guided DDIM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from .attention import MutualSelfAttention, RecordedReference
from .denoiser import AttentionHook, Denoiser
from .drag import DragSpec
from .inversion import Inversion, StepCallback
from .motion import FeatureGrid
from .schedule import DDIMSchedule


def sample(
    denoiser: Denoiser,
    latent: torch.Tensor,
    cond: torch.Tensor,
    schedule: DDIMSchedule,
    start_index: int,
    on_step: StepCallback | None = None,
    hook: AttentionHook | None = None,
    after_step: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0, no CFG) from level timesteps[start_index] to the clean latent.

    `hook`, when given, handles every self-attention of every UNet call; `after_step` may change
    each step's result (it runs with gradients allowed)."""
    if not 0 <= start_index < len(schedule.timesteps):
        raise ValueError(f"start_index must be in [0, {len(schedule.timesteps)}), got {start_index}")
    timesteps = schedule.timesteps[start_index:]
    x = latent
    with torch.no_grad(), denoiser.attention_hook(hook):
        for done, t in enumerate(timesteps, start=1):
            x = schedule.step(x, denoiser.predict(x, t, cond).eps, t)
            if after_step is not None:
                with torch.enable_grad():
                    x = after_step(x)
            if on_step is not None:
                on_step(done, len(timesteps))
    return x


def mutual_attention_sample(
    denoiser: Denoiser,
    reference_latent: torch.Tensor,
    edited_latent: torch.Tensor,
    cond: torch.Tensor,
    schedule: DDIMSchedule,
    start_index: int,
    sharing: MutualSelfAttention | RecordedReference,
    on_step: StepCallback | None = None,
    correspondence: CorrespondenceLoss | None = None,
) -> torch.Tensor:
    """The edited latent [1, 4, h, w] at level timesteps[start_index], denoised to x_0 beside its reference.

    With `correspondence`, every step's edited row then takes one step of that loss (AdaptiveDrag).

    The reference is the inverted, unedited latent, denoised again with the same model rather than
    read from the stored trajectory (dragdiffusion.md §3.8). Both go through the UNet as the batch
    [reference, edited] so that `sharing` can give the edited row the reference row's keys and values
    (a `GuidedDenoiser` doubles it into the [uncond pair, cond pair] the policy also handles).
    `sharing` is a MutualSelfAttention policy, or a RecordedReference on one: then that pass also
    records the reference's keys and values, and when an earlier call with the same reference did (a
    re-drag), the edited latent goes through the UNet alone and reads them: the same result, one row
    per step.
    """
    if reference_latent.shape != edited_latent.shape or reference_latent.shape[0] != 1:
        raise ValueError(
            "reference and edited latents must both be one latent of the same shape, got "
            f"{tuple(reference_latent.shape)} and {tuple(edited_latent.shape)}"
        )
    after_step = None if correspondence is None else correspondence.correct
    timesteps = schedule.timesteps[start_index:]
    if isinstance(sharing, RecordedReference) and sharing.has(timesteps):
        return sample(denoiser, edited_latent, cond, schedule, start_index, on_step, hook=sharing, after_step=after_step)
    batch = torch.cat([reference_latent, edited_latent])
    with _recording(sharing, timesteps):
        return sample(denoiser, batch, cond, schedule, start_index, on_step, hook=sharing, after_step=after_step)[1:]


CORRESPONDENCE_MODES = ("sce", "mse")
LatentPoint = tuple[int, int]  # (row, col) on the latent


class CorrespondenceLoss:
    """AdaptiveDrag's CLoss as the specification makes it work (adaptivedrag.md §6.4): after each
    sampling step, for each pair, the patch of the unedited latent z_src around the ORIGINAL handle
    and the patch of the edited branch around the target, as tokens of latent channels, aligned by
    offset (both windows clipped to the latent, to the offsets inside both). `sce`: the symmetric
    cross-entropy of their cosine similarities over `temperature` (the paper, CLIP-style); `mse`:
    100 · MSE (the code's formula, which in the code never reaches the latent). The edited row then
    takes one Adam step from fresh state, x ← x − lr · g / (|g| + 1e-8): only the target patches
    move, each entry by at most lr; the reference row is never changed. `losses` records each
    step's value before its update."""

    def __init__(self, source: torch.Tensor, handles: Sequence[LatentPoint], targets: Sequence[LatentPoint],
                 mode: str = "sce", radius: int = 5, temperature: float = 0.07, learning_rate: float = 0.01) -> None:
        if mode not in CORRESPONDENCE_MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(CORRESPONDENCE_MODES)}")
        self.source, self.handles, self.targets = source, tuple(handles), tuple(targets)
        self.mode, self.radius, self.temperature, self.learning_rate = mode, radius, temperature, learning_rate
        self.losses: list[float] = []

    @classmethod
    def for_drag(cls, source: torch.Tensor, spec: DragSpec, **options) -> CorrespondenceLoss:
        """The loss for a drag's pairs on `source`'s latent cells, in the code's geometry: points at
        half the image size, then // 4 to the latent."""
        height, width = source.shape[-2:]
        grid = FeatureGrid.scaled(spec.width, spec.height, 0.5)
        handles, targets = ([(min(int(r) // 4, height - 1), min(int(c) // 4, width - 1)) for r, c in grid.to_grid(points).tolist()]
                            for points in (spec.handles, spec.targets))
        return cls(source, handles, targets, **options)

    def patches(self, edited: torch.Tensor, handle: LatentPoint, target: LatentPoint) -> tuple[torch.Tensor, torch.Tensor]:
        """[tokens, channels] of z_src around the handle and of `edited` around the target."""
        height, width = edited.shape[-2:]
        (hr, hc), (tr, tc), r = handle, target, self.radius
        top, bottom = max(-r, -hr, -tr), min(r, height - 1 - hr, height - 1 - tr)
        left, right = max(-r, -hc, -tc), min(r, width - 1 - hc, width - 1 - tc)
        source = self.source[0, :, hr + top:hr + bottom + 1, hc + left:hc + right + 1].detach().clone().float()
        moved = edited[0, :, tr + top:tr + bottom + 1, tc + left:tc + right + 1]
        return source.flatten(1).T, moved.flatten(1).T

    def loss(self, edited: torch.Tensor) -> torch.Tensor:
        total = edited.new_zeros((), dtype=torch.float32)
        for handle, target in zip(self.handles, self.targets):
            a, b = self.patches(edited, handle, target)
            if self.mode == "mse":
                total = total + 100 * F.mse_loss(b.float(), a)
                continue
            logits = F.normalize(a, dim=1) @ F.normalize(b.float(), dim=1).T / self.temperature
            labels = torch.arange(len(a), device=a.device)
            total = total + 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
        return total

    def correct(self, batch: torch.Tensor) -> torch.Tensor:
        """[reference, edited] (or [edited] alone) after a step → the same with the edited row moved
        down the loss."""
        edited = batch[-1:].detach().clone().float().requires_grad_(True)
        loss = self.loss(edited)
        (gradient,) = torch.autograd.grad(loss, edited)
        self.losses.append(float(loss.detach()))
        stepped = edited.detach() - self.learning_rate * gradient / (gradient.abs() + 1e-8)
        return torch.cat([batch[:-1], stepped.to(batch.dtype)])


def reference_guided_sample(
    denoiser: Denoiser,
    edited_latent: torch.Tensor,
    inversion: Inversion,
    cond: torch.Tensor,
    start_index: int,
    sharing: MutualSelfAttention | RecordedReference,
    weight: float = 4.0,
    reference_from: int = 20,
    timestep_consistent: bool = False,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """EasyDrag's sampling (easydrag.md §4.9): DDIM of the edited latent [1, 4, h, w] from level
    schedule.timesteps[start_index]; in the last `reference_from` steps (ascending index i below it)
    ε = ε_plain + w·(ε_ref − ε_plain), where ε_ref comes from the pair [reference, edited] under
    `sharing`, the reference being the STORED inversion latent L[i] (the code's, one level cleaner)
    or L[i+1] (the same level). w = 1 is plain mutual self-attention on stored latents.

    One plain pass per step, plus one pair pass on guided steps (the code's second, identical
    plain pass when the negative prompt equals the prompt is not made). With a RecordedReference as
    `sharing` the pair pass also records the stored latent's keys and values;
    when an earlier call did (a re-drag of the same inversion), the edited latent alone reads them."""
    schedule = inversion.schedule
    timesteps = schedule.timesteps[start_index:]
    guided_steps = set(guided_timesteps(schedule.timesteps, start_index, reference_from))
    x = edited_latent
    with torch.no_grad():
        for done, t in enumerate(timesteps, start=1):
            eps = denoiser.predict(x, t, cond).eps
            if t in guided_steps:
                i = len(schedule.timesteps) - start_index - done  # ascending DDIM index of level t
                reference = inversion.trajectory[i + 1 if timestep_consistent else i]
                guided = _reference_guided_eps(denoiser, reference, x, t, cond, sharing)
                eps = eps + weight * (guided - eps)
            x = schedule.step(x, eps, t)
            if on_step is not None:
                on_step(done, len(timesteps))
    return x


def guided_timesteps(timesteps: Sequence[int], start_index: int, reference_from: int) -> Sequence[int]:
    """The steps from timesteps[start_index] on whose ascending DDIM index is below `reference_from`."""
    return timesteps[max(start_index, len(timesteps) - reference_from):]


def _reference_guided_eps(denoiser: Denoiser, reference: torch.Tensor, x: torch.Tensor, t: int, cond: torch.Tensor,
                          sharing: MutualSelfAttention | RecordedReference) -> torch.Tensor:
    """ε of the edited row x whose shared self-attention reads the reference's keys and values."""
    with denoiser.attention_hook(sharing):
        if isinstance(sharing, RecordedReference) and sharing.has([t]):
            return denoiser.predict(x, t, cond).eps
        with _recording(sharing, [t]):
            return denoiser.predict(torch.cat([reference, x]), t, cond).eps[1:]


def _recording(sharing: MutualSelfAttention | RecordedReference, timesteps: Sequence[int]):
    """A recording pass when `sharing` records, else nothing (a plain policy keeps nothing)."""
    return sharing.recording_pass(timesteps) if isinstance(sharing, RecordedReference) else nullcontext()
