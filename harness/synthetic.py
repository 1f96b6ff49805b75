"""A synthetic denoiser for the drag-optimiser tests, implementing `core.denoiser.Denoiser`.

Feature tap i (`up_blocks[i]`) is a fixed random 3×3 convolution of the latent resized bilinearly
to that tap's size (SD 1.5's up_blocks sit at 1/4, 1/2, 1 and 1 times the latent size). A
convolution commutes with translation, so content moved in the latent moves in the features too,
which is what drag optimisation relies on. ε is a fixed, mild 1×1 channel mix of x_t, so the DDIM
steps (inversion, ẑ_{t−1}) are linear and well behaved. Every `predict` call is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dragkit.core.denoiser import AttentionHook, Prediction
from dragkit.core.inversion import Inversion, invert
from dragkit.core.schedule import ddim_schedule
from harness.fakes import CpuDenoiser

TAP_SCALES = (0.25, 0.5, 1.0, 1.0)
TAP_CHANNELS = (16, 16, 16, 8)


class SyntheticDenoiser(CpuDenoiser):
    def __init__(self, *, channels: int = 4, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.kernels = [torch.randn(c, channels, 3, 3, generator=generator) / 3 for c in TAP_CHANNELS]
        self.mix = torch.eye(channels) + 0.1 * torch.randn(channels, channels, generator=generator)
        self.predicted_timesteps: list[int] = []  # t of every predict() call, in order

    @property
    def up_block_count(self) -> int:
        return len(TAP_SCALES)

    def attention_hook(self, hook: AttentionHook | None) -> nullcontext:
        return nullcontext()  # no attention layers to hook

    def features(self, x: torch.Tensor, tap: int) -> torch.Tensor:
        height, width = x.shape[-2:]
        size = (max(1, int(height * TAP_SCALES[tap])), max(1, int(width * TAP_SCALES[tap])))
        resized = x if size == (height, width) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.conv2d(resized, self.kernels[tap], padding=1)

    def predict(
        self, x_t: torch.Tensor, t: int, cond: torch.Tensor, up_features: Sequence[int] = (), features_only: bool = False
    ) -> Prediction:
        self.predicted_timesteps.append(t)
        eps = 0.5 * torch.einsum("oc,bchw->bohw", self.mix, x_t)
        return Prediction(eps=eps, features={i: self.features(x_t, i) for i in up_features})


IMAGE_SIZE = 128  # pixels; the latent is 16×16 and the half-size feature grid 64×64


@pytest.fixture
def one_thread():
    """Run on one CPU thread: these tensors are tiny, and on a busy 2-core machine every OpenMP
    barrier of a multi-threaded op can wait a whole scheduler time slice (runs ~50× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True, eq=False)
class Scene:
    denoiser: SyntheticDenoiser
    inversion: Inversion
    cond: torch.Tensor


def scene(strength: float, seed: int = 1, size: int = IMAGE_SIZE) -> Scene:
    """A random latent of a `size`² picture (16×16 by default) inverted over the 50-step SD 1.5
    schedule; call counts start at zero.

    The amplitude 0.25 keeps the drag within the papers' learning rates and iteration budgets:
    everything here is linear in the latent, so its scale plays the part of the step size."""
    denoiser = SyntheticDenoiser()
    source = 0.25 * torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    cond = torch.zeros(1, 1, 8)
    inversion = invert(denoiser, source, cond, ddim_schedule(denoiser.alphas_cumprod, 50), strength)
    denoiser.predicted_timesteps.clear()
    return Scene(denoiser, inversion, cond)


def band_mask() -> np.ndarray:
    """An editable vertical band 16 pixels wide around the drag path (latent columns 7–8)."""
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    mask[24:104, 56:72] = True
    return mask


def change_inside_and_outside(latent: torch.Tensor, reference: torch.Tensor, mask: np.ndarray) -> tuple[float, float]:
    """Mean |latent − reference| over the latent pixels inside and outside the (nearest-resized) mask."""
    resized = torch.nn.functional.interpolate(torch.from_numpy(mask).float()[None, None], size=latent.shape[-2:])
    editable = resized[0, 0].bool()
    change = (latent - reference).abs()[0].mean(dim=0)
    return change[editable].mean().item(), change[~editable].mean().item()
