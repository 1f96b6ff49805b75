"""Drag-editing metrics: Mean Distance (DragBench), Image Fidelity (1 − LPIPS) and DAI (Drag100).

Pictures are float tensors [H, W, 3] in [0, 1] (ComfyUI's IMAGE rows). As the official scripts do,
an edited picture is resized (bilinear) to the source's size before any metric. Points are (x, y)
image pixels of the source, rounded to whole pixels as the scripts' integer points are.

- Mean Distance: DIFT features (the noised latent at t = 261, `up_blocks[1]`'s output, averaged
  over an ensemble of 8 noise draws from seed 42) of source and edit, upsampled bilinearly to the
  picture; each handle's source feature is matched by cosine similarity over the whole edit, and
  the distance from that match to the target is measured in pixels. The official script uses
  SD 2.1 for DIFT; here it is the model the edit was made with (any SD 1.x-shaped UNet).
- Image Fidelity: 1 − LPIPS(AlexNet, v0.1) at 224 × 224 in [−1, 1], over the whole picture and,
  as `background`, with the editable region copied from the source so only changes outside it count.
- DAI (GoodDrag Eq. 10): the mean over pairs of the squared difference between the source's
  (2γ+1)² patch at the handle and the edit's patch at the target, summed over RGB and divided by
  the patch size. `normalisation="code"` divides by the number of pairs once more, as the released
  script does. Near a border only the offsets inside both pictures count (the mean over them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .denoiser import Denoiser
from .families import DEFAULT_FAMILY

Point = tuple[float, float]
DIFT_TIMESTEP = 261
DIFT_BLOCK = DEFAULT_FAMILY.block("dift")
DIFT_ENSEMBLE = 8
DIFT_SEED = 42
DAI_GAMMAS = (1, 5, 10, 20)
LPIPS_SIZE = 224


def to_source_size(edited: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    if edited.shape == source.shape:
        return edited
    resized = F.interpolate(edited.permute(2, 0, 1)[None], size=source.shape[:2], mode="bilinear", antialias=True)
    return resized[0].permute(1, 2, 0).clamp(0, 1)


def _pixel(point: Point, width: int, height: int) -> tuple[int, int]:
    x, y = (round(v) for v in point)
    return min(max(x, 0), width - 1), min(max(y, 0), height - 1)


# --- Mean Distance -------------------------------------------------------------------------------

def dift_features(denoiser: Denoiser, latent: torch.Tensor, cond: torch.Tensor, t: int = DIFT_TIMESTEP,
                  block: int = DIFT_BLOCK, ensemble: int = DIFT_ENSEMBLE, seed: int = DIFT_SEED) -> torch.Tensor:
    """The DIFT feature map [C, h, w] of a model latent [1, 4, h, w] (DDPM convention, see denoiser)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((ensemble, *latent.shape[1:]), generator=generator).to(latent.device, latent.dtype)
    alpha = denoiser.alphas_cumprod[t].item()
    x_t = math.sqrt(alpha) * latent + math.sqrt(1 - alpha) * noise
    with torch.no_grad():
        features = denoiser.predict(x_t, t, cond, up_features=(block,)).features[block]
    return features.float().mean(0)


def upsampled_rows(features: torch.Tensor, size: tuple[int, int], rows: range) -> torch.Tensor:
    """Rows `rows` of `F.interpolate(features, size, mode="bilinear")` [C, len(rows), W], without the
    whole upsampled map in memory (1280 channels at 512² would be 1.3 GB)."""
    channels, h, w = features.shape
    height, width = size

    def normalised(pixels: torch.Tensor, out: int, inp: int) -> torch.Tensor:
        source = ((pixels + 0.5) * inp / out - 0.5).clamp(min=0)  # interpolate's align_corners=False
        return (2 * source + 1) / inp - 1  # grid_sample's align_corners=False

    ys = normalised(torch.tensor(list(rows), dtype=torch.float64), height, h)
    xs = normalised(torch.arange(width, dtype=torch.float64), width, w)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).to(features)
    return F.grid_sample(features[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0]


def matched_points(source_features: torch.Tensor, edited_features: torch.Tensor, handles: Sequence[Point],
                   size: tuple[int, int], band: int = 64) -> list[tuple[int, int]]:
    """For each handle, the pixel (x, y) of the edit whose upsampled feature is most like the
    source's at the handle (cosine similarity, whole picture, first maximum in row-major order)."""
    height, width = size
    queries = []
    for point in handles:
        x, y = _pixel(point, width, height)
        queries.append(upsampled_rows(source_features, size, range(y, y + 1))[:, 0, x])
    queries = F.normalize(torch.stack(queries), dim=1)  # [P, C]
    best = torch.full((len(handles),), -math.inf)
    where = torch.zeros(len(handles), dtype=torch.long)
    for top in range(0, height, band):
        rows = range(top, min(top + band, height))
        edited = F.normalize(upsampled_rows(edited_features, size, rows).flatten(1), dim=0)  # [C, n]
        similarity = (queries @ edited).cpu()  # [P, n]
        value, index = similarity.max(dim=1)
        better = value > best  # strictly: an equal later maximum does not replace the first
        best = torch.where(better, value, best)
        where = torch.where(better, index + top * width, where)
    return [(int(i) % width, int(i) // width) for i in where]


def point_distances(matched: Sequence[tuple[int, int]], targets: Sequence[Point], size: tuple[int, int]) -> list[float]:
    height, width = size
    return [math.dist(m, _pixel(t, width, height)) for m, t in zip(matched, targets)]


# --- Image Fidelity ------------------------------------------------------------------------------

class Lpips(torch.nn.Module):
    """LPIPS v0.1: unit-normalised feature differences of a backbone's stages, weighted per channel
    by 1×1 layers (no bias), averaged over space, summed over stages. Input in [−1, 1]."""

    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)

    def __init__(self, stages: Sequence[torch.nn.Module], channel_weights: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.stages = torch.nn.ModuleList(stages)
        self.channel_weights = [w.reshape(1, -1, 1, 1).float() for w in channel_weights]
        self.register_buffer("shift", torch.tensor(self.SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(self.SCALE).view(1, 3, 1, 1))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = (a - self.shift) / self.scale, (b - self.shift) / self.scale
        total = torch.zeros(a.shape[0], device=a.device)
        for stage, weight in zip(self.stages, self.channel_weights):
            a, b = stage(a), stage(b)
            difference = (_unit(a) - _unit(b)) ** 2
            total = total + (difference * weight.to(difference)).sum(1).mean((1, 2))
        return total


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


def alexnet_lpips(alexnet_state: dict[str, torch.Tensor], lpips_state: dict[str, torch.Tensor]) -> Lpips:
    """LPIPS with AlexNet from torchvision's AlexNet weights (`features.*`) and LPIPS's linear
    layers (`lin0.model.1.weight` … `lin4`, the lpips package's `weights/v0.1/alex.pth`)."""
    from torchvision.models import alexnet

    features = alexnet(weights=None).features
    given = {k.removeprefix("features."): v for k, v in alexnet_state.items() if k.startswith("features.")}
    _check_shapes("AlexNet", given, {k: tuple(v.shape) for k, v in features.state_dict().items()})
    features.load_state_dict(given)
    cuts = (0, 2, 5, 8, 10, 12)  # after relu1 … relu5, as LPIPS taps AlexNet
    stages = [features[cuts[i]:cuts[i + 1]] for i in range(5)]
    channels = (64, 192, 384, 256, 256)  # what each tapped stage gives
    _check_shapes("LPIPS", lpips_state, {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(channels)})
    weights = [lpips_state[f"lin{i}.model.1.weight"] for i in range(5)]
    return Lpips(stages, weights).eval()


def _check_shapes(what: str, state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> None:
    """Refuse weights of another network before anything is loaded, naming the first misfit."""
    for key, shape in expected.items():
        if key not in state or tuple(state[key].shape) != shape:
            got = "missing" if key not in state else f"{tuple(state[key].shape)}"
            raise ValueError(f"the {what} weights do not fit: {key} is {got}, expected {shape}")


def image_fidelity(lpips: Lpips, source: torch.Tensor, edited: torch.Tensor, editable: torch.Tensor | None = None) -> float:
    """1 − LPIPS of the edit (resized to the source) against the source; with `editable` (bool
    [H, W]) that region is taken from the source first, so only the background is compared."""
    edited = to_source_size(edited, source)
    if editable is not None:
        edited = torch.where(editable[..., None].to(edited.device), source, edited)
    a, b = (F.interpolate(p.permute(2, 0, 1)[None] * 2 - 1, size=(LPIPS_SIZE, LPIPS_SIZE), mode="bilinear")
            for p in (source, edited))
    with torch.no_grad():
        return 1.0 - lpips(a, b).item()


# --- DAI -----------------------------------------------------------------------------------------

def drag_accuracy_index(source: torch.Tensor, edited: torch.Tensor, handles: Sequence[Point], targets: Sequence[Point],
                        gamma: int, normalisation: str = "paper") -> float:
    if normalisation not in ("paper", "code"):
        raise ValueError(f"normalisation must be 'paper' or 'code', not {normalisation!r}")
    edited = to_source_size(edited, source)
    height, width = source.shape[:2]
    total = 0.0
    for handle, target in zip(handles, targets):
        total += _patch_error(source, edited, _pixel(handle, width, height), _pixel(target, width, height), gamma)
    dai = total / len(handles)
    return dai / len(handles) if normalisation == "code" else dai


def _patch_error(source: torch.Tensor, edited: torch.Tensor, p: tuple[int, int], q: tuple[int, int], gamma: int) -> float:
    """Σ over RGB of the squared patch difference, per patch offset (the mean over offsets inside both)."""
    height, width = source.shape[:2]

    def span(a: int, b: int, size: int) -> tuple[int, int]:  # offsets d with a+d and b+d inside
        return max(-gamma, -a, -b), min(gamma, size - 1 - a, size - 1 - b)

    (dx0, dx1), (dy0, dy1) = span(p[0], q[0], width), span(p[1], q[1], height)
    a = source[p[1] + dy0:p[1] + dy1 + 1, p[0] + dx0:p[0] + dx1 + 1]
    b = edited[q[1] + dy0:q[1] + dy1 + 1, q[0] + dx0:q[0] + dx1 + 1]
    return ((a.double() - b.double()) ** 2).sum().item() / (a.shape[0] * a.shape[1])
