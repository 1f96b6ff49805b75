"""EasyDrag's latent optimisation (reference/easydrag.md §4.3–4.8): no LoRA, no mask needed.

Adam on the inverted latent z_t at one timestep. Features: decoder stages up_blocks[1] and [2],
joined at the latter's size and upsampled to the image (1920 channels on SD 1.5). Each iteration:
one UNet pass in which the edited latent's decoder self-attention reads the unedited latent's
keys and values (the code's reference branch: the code passes [z_t⁰, z] as a batch; here the
unedited row's keys and values, which never change, are recorded once and the edited row runs
alone, see `reuse_reference_pass`), stopped after the last feature stage since ε is not used;
the binary tracking rule (a handle jumps to its next point p** only when p** looks more like the
ORIGINAL handle feature than the handle does); stop once every handle sits on its target; the stable motion loss Σ w_i / (1 + S_i), with
S_i the cosine similarity of F(p**_i) and F⁰(p⁰_i) mapped to [0, 1]; the background term on the
cosine similarity of F and F⁰ outside the editable mask, which is the user's, or (none painted)
built from the point loss's gradient whenever a handle moves; one Adam step.

All lengths are image pixels: the features are at image resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..families import DEFAULT_FAMILY
from ..attention import MutualSelfAttention, RecordedReference
from ..denoiser import Denoiser
from ..drag import DragSpec
from ..inversion import Inversion
from ..motion import DragStepCallback, FeatureGrid, StepLog, feature_vectors, gradient_step
from .recipe import REFERENCE_GUIDED, InversionPreset, Recipe
from . import BUDGET, REACHED, DragResult


@dataclass(frozen=True)
class EasyDragSettings:
    """The official code's values (easydrag.md §5); lengths in image pixels."""

    learning_rate: float = 0.01  # Adam on z_t (§4.8)
    max_iterations: int = 50  # n_pix_step (§4.5)
    feature_blocks: tuple[int, ...] = DEFAULT_FAMILY.tap("easydrag")  # SD 1.5: diffusers up_blocks[1] + [2] (§4.3)
    step: float = 12.0  # K: the next point lies K pixels along the line to the target (§4.4)
    snap_distance: float = 18.0  # code: closer than this, the next point is the target; paper: K (§4.4)
    reached_weight: float = 0.1  # code: a handle on its target weighs 0.1 in the point loss; paper: 1 (§4.4)
    mask_weight: float = 0.1  # λ, as λ / (1 + S) (§4.7)
    auto_mask_threshold: float = 100 / 255  # on the min–max normalised |channel-mean gradient| (§4.6)
    reference_branch: bool = True  # code's training_reference: decoder K/V of the unedited latent (§4.8)
    # Record the unedited latent's keys and values once and pass the edited row alone (half the UNet
    # rows); False passes both rows at every step, as the code does (the plain path, for tests).
    reuse_reference_pass: bool = True

    @classmethod
    def paper(cls) -> EasyDragSettings:
        """The paper read literally: snap at K, every handle weighs 1, no reference branch in the
        optimisation (the paper describes reference guidance for sampling only)."""
        return replace(cls(), snap_distance=cls.step, reached_weight=1.0, reference_branch=False)


def next_points(handles: torch.Tensor, targets: torch.Tensor, step: float, snap_distance: float) -> torch.Tensor:
    """p** = q when ‖q − p*‖ < snap_distance, else round(p* + step · unit(q − p*)) (Algorithm 1), and
    never past q: a step longer than the way left lands on the target (else it could leave the image)."""
    gap = targets - handles
    distance = gap.norm(dim=1, keepdim=True)
    jump = torch.round(handles + step * gap / distance.clamp(min=1e-12))
    return torch.where((distance < snap_distance) | (distance <= step), targets, jump)


def similarity(vectors: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(cos + 1) / 2 over channels, in [0, 1]: the S of the paper's bounded cosine loss."""
    return (F.cosine_similarity(vectors, anchors, dim=-1) + 1) / 2


def track(features: torch.Tensor, handles: torch.Tensor, nexts: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """The binary rule: a handle jumps to its next point when that point is strictly more similar
    to the original handle feature; at most one jump per iteration."""
    here = F.cosine_similarity(feature_vectors(features, handles), anchors, dim=-1)
    there = F.cosine_similarity(feature_vectors(features, nexts), anchors, dim=-1)
    return torch.where((there > here)[:, None], nexts, handles)


def point_loss(features: torch.Tensor, handles, nexts, targets, anchors, reached_weight: float) -> torch.Tensor:
    """Σ_i w_i / (1 + S_i(F(p**_i), F⁰(p⁰_i))), w_i = reached_weight for handles on their targets."""
    weights = torch.where((handles == targets).all(dim=1), reached_weight, 1.0).to(features.dtype)
    return (weights / (1 + similarity(feature_vectors(features, nexts), anchors.detach()))).sum()


def background_loss(features: torch.Tensor, original: torch.Tensor, keep: torch.Tensor, weight: float) -> torch.Tensor:
    """λ / (1 + S) with S the mean cosine similarity of F and F⁰ over the kept pixels (none: 0)."""
    kept = keep[0, 0] > 0
    if not kept.any():
        return features.new_zeros(())
    cosine = F.cosine_similarity(features[0][:, kept], original[0][:, kept].detach(), dim=0)
    return weight / (1 + (cosine.mean() + 1) / 2)


def auto_keep(gradient: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """1 − M at feature size [1, 1, H, W]: M marks where the min–max normalised |channel mean| of
    the point loss's latent gradient exceeds the threshold. A constant gradient marks nothing, so
    everything is kept (the code's NaN comparison gives the same)."""
    magnitude = gradient.mean(dim=1, keepdim=True).abs()
    low, high = magnitude.min(), magnitude.max()
    if not high > low:
        return torch.ones(1, 1, *size, device=gradient.device)
    editable = ((magnitude - low) / (high - low) > threshold).float()
    return 1 - F.interpolate(editable, size=size, mode="nearest")


def user_keep(spec: DragSpec, device) -> torch.Tensor:
    """1 − M at image size from the painted mask."""
    return 1 - torch.from_numpy(spec.editable_mask()).float().to(device)[None, None]


@dataclass(frozen=True, eq=False)
class FeatureMap:
    """EasyDrag's F(z): the chosen decoder stages, joined at the last one's size, at image size."""

    denoiser: Denoiser
    cond: torch.Tensor
    blocks: tuple[int, ...]
    size: tuple[int, int]  # image rows, cols

    def __call__(self, z: torch.Tensor, t: int, reference: torch.Tensor | None = None, hook=None) -> torch.Tensor:
        batch = z if reference is None else torch.cat([reference, z])
        with self.denoiser.attention_hook(hook):
            taps = self.denoiser.predict(batch, t, self.cond, up_features=self.blocks, features_only=True).features
        maps = [taps[block][-1:].float() for block in self.blocks]  # the edited row
        joined = torch.cat([F.interpolate(m, size=maps[-1].shape[-2:], mode="bilinear", align_corners=False) for m in maps], 1)
        return F.interpolate(joined, size=self.size, mode="bilinear", align_corners=False)


def _reference_branch(feature_map: FeatureMap, start: torch.Tensor, t: int, settings: EasyDragSettings):
    """F(z) for the optimisation steps, and F⁰ = F(z_t⁰). With the reference branch every decoder
    self-attention of the edited row reads the unedited row's keys and values; the pass that gives
    F⁰ records them when they are reused."""
    if not settings.reference_branch:
        with torch.no_grad():
            original = feature_map(start, t)
        return (lambda z: feature_map(z, t)), original
    sharing = MutualSelfAttention([t], layers=None, places=("up",))
    if settings.reuse_reference_pass:
        recorded = RecordedReference(sharing)
        with torch.no_grad(), recorded.recording_pass([t]):
            original = feature_map(start, t, hook=recorded)
        return (lambda z: feature_map(z, t, hook=recorded)), original
    with torch.no_grad():
        original = feature_map(start, t)
    return (lambda z: feature_map(z, t, start, sharing)), original


def optimise(
    denoiser: Denoiser,
    inversion: Inversion,
    spec: DragSpec,
    cond: torch.Tensor,
    settings: EasyDragSettings = EasyDragSettings(),
    on_step: DragStepCallback | None = None,
) -> DragResult:
    """Optimise the inverted latent at schedule.timesteps[inversion.start_index]; sampling continues there.

    Call it outside inference mode: it builds an autograd graph through the denoiser."""
    index = inversion.start_index
    t = inversion.schedule.timesteps[index]
    start = inversion.latent.detach().float()
    grid = FeatureGrid.scaled(spec.width, spec.height, 1.0)  # image pixels
    feature_map = FeatureMap(denoiser, cond, settings.feature_blocks, grid.size)
    handles, targets = grid.to_grid(spec.handles, start.device), grid.to_grid(spec.targets, start.device)
    edited_pass, original = _reference_branch(feature_map, start, t, settings)
    anchors = feature_vectors(original, handles)
    keep = None if spec.mask is None else user_keep(spec, start.device)
    log = StepLog(settings.max_iterations, grid, on_step)

    with torch.enable_grad():
        z = start.clone().requires_grad_(True)
        adam = torch.optim.Adam([z], lr=settings.learning_rate)
        nexts = next_points(handles, targets, settings.step, settings.snap_distance)
        stop_reason = BUDGET
        for iteration in range(settings.max_iterations):
            features = edited_pass(z)
            tracked = track(features.detach(), handles, nexts, anchors)
            moved = iteration == 0 or not torch.equal(tracked, handles)
            handles = tracked
            if bool(((targets - handles).norm(dim=1) < 1).all()):
                stop_reason = REACHED
                break
            nexts = next_points(handles, targets, settings.step, settings.snap_distance)
            points = point_loss(features, handles, nexts, targets, anchors, settings.reached_weight)
            if moved and spec.mask is None:
                (gradient,) = torch.autograd.grad(points, z, retain_graph=True)
                keep = auto_keep(gradient, grid.size, settings.auto_mask_threshold)
            loss = points + background_loss(features, original, keep, settings.mask_weight)
            gradient_step(adam, loss)
            log.record(loss, handles)

    return log.result(z, inversion.latent, index, handles, stop_reason)


# easydrag.md §3 (no LoRA; the 35th of 50 steps, t = 681), §4.9 (reference-guided sampling)
RECIPE = Recipe(
    name="EasyDrag",
    key="easydrag",
    node_id="DragKitEasyDrag",
    settings=EasyDragSettings,
    optimise=optimise,
    lora_steps=0,
    inversion=InversionPreset("EasyDrag", 0.7),
    sampler=REFERENCE_GUIDED,
    feature_tap="easydrag",
    feature_field="feature_blocks",
)
