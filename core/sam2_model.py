"""SAM 2 for DragKit's masks, through Meta's `sam2` package (imported lazily: it is optional).

Weights come from a file the user placed (no downloads): Meta's `.pt` (read with
`weights_only=True`, so a pickle that would run code is refused) or a converted `.safetensors`
with the same keys. The variant (tiny / small / base+ / large, SAM 2.0 / 2.1) is read off the
weights and the matching config of the installed package is built.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .weights import WeightsFileError, read_state_dict

INSTALL_HINT = ('install it into ComfyUI\'s Python with `SAM2_BUILD_CUDA=0 pip install --no-build-isolation "sam2>=1.0"` '
                "and restart ComfyUI (see the README); Auto Mask's slic mode and AdaptiveDrag without SAM 2 need no sam2")


def sam2_installed() -> bool:
    """Whether Meta's sam2 package can be imported (an optional install; nothing is imported here)."""
    import importlib.util

    return importlib.util.find_spec("sam2") is not None

# (patch-embedding width, Hiera blocks) → size, from the package's configs
_SIZES = {(96, 12): "tiny", (96, 16): "small", (112, 24): "base_plus", (144, 48): "large"}
_CONFIG_LETTER = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
_PATCH_EMBED = "image_encoder.trunk.patch_embed.proj.weight"

# SAM2AutomaticMaskGenerator as the AdaptiveDrag code runs it: the package's defaults (§4.2 step 1)
# The points SAM 2 decodes per batch: each point's masks are decoded on their own, so the batch size
# changes nothing but how often cancel is checked (64 points took 12–22 s on one CPU thread).
POINTS_PER_BATCH = 8
AUTOMATIC_SETTINGS = dict(pred_iou_thresh=0.8, stability_score_thresh=0.95,
                          stability_score_offset=1.0, mask_threshold=0.0, box_nms_thresh=0.7, crop_n_layers=0,
                          min_mask_region_area=0, multimask_output=True, use_m2m=False, output_mode="binary_mask")


class Sam2Error(ValueError):
    """SAM 2 cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Sam2Variant:
    size: str  # tiny | small | base_plus | large
    version: str  # 2.0 | 2.1

    @property
    def config(self) -> str:
        folder = "sam2" if self.version == "2.0" else "sam2.1"
        return f"configs/{folder}/{folder}_hiera_{_CONFIG_LETTER[self.size]}.yaml"

    @property
    def name(self) -> str:
        return f"SAM {self.version} Hiera {self.size.replace('_plus', '+')}"


WEIGHTS_REMEDY = ("Expected Meta's SAM 2 checkpoint (e.g. sam2.1_hiera_base_plus.pt, from the facebookresearch/sam2 "
                  "release page or its Hugging Face repositories) or a .safetensors conversion of it")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a `.safetensors` or `.pt` file (Meta's checkpoints keep it under "model")."""
    try:
        return read_state_dict(path, WEIGHTS_REMEDY)
    except WeightsFileError as exc:
        raise Sam2Error(str(exc)) from None


def detect_variant(state: dict[str, torch.Tensor]) -> Sam2Variant:
    if _PATCH_EMBED not in state:
        raise Sam2Error("not SAM 2 image-model weights (no image_encoder.trunk.patch_embed); SAM 1 and SAM 3 files "
                        "do not fit")
    blocks = {key.split(".")[3] for key in state if key.startswith("image_encoder.trunk.blocks.")}
    shape = (state[_PATCH_EMBED].shape[0], len(blocks))
    if shape not in _SIZES:
        raise Sam2Error(f"unknown SAM 2 variant (patch embedding {shape[0]} wide, {shape[1]} blocks)")
    return Sam2Variant(_SIZES[shape], "2.1" if "no_obj_embed_spatial" in state else "2.0")


def build_model(state: dict[str, torch.Tensor]) -> tuple[torch.nn.Module, Sam2Variant]:
    """The SAM 2 model the weights describe, in float32 on the CPU, in eval mode."""
    variant = detect_variant(state)
    try:
        from sam2.build_sam import build_sam2
    except ImportError:
        raise Sam2Error(f"the sam2 package is not installed; {INSTALL_HINT}") from None
    model = build_sam2(variant.config, None, device="cpu", mode="eval", apply_postprocessing=False)
    expected = model.state_dict()
    wrong = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise Sam2Error(f"the weights do not fit {variant.name}: {len(wrong)} tensors have other shapes (e.g. {wrong[0]}: "
                        f"{tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}). {WEIGHTS_REMEDY}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise Sam2Error(f"the weights do not fit {variant.name}: missing {sorted(missing)[:3]}, "
                        f"unexpected {sorted(unexpected)[:3]}")
    return model.float().eval(), variant


def _autocast(model: torch.nn.Module, dtype: torch.dtype):
    """Float32 weights, computation in `dtype` (Meta runs SAM 2 so: bf16 autocast on CUDA)."""
    device = next(model.parameters()).device
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def automatic_batches(points_per_side: int) -> int:
    """How many decoder batches the automatic generator runs (one progress step each)."""
    return math.ceil(points_per_side**2 / POINTS_PER_BATCH)


def automatic_masks(model: torch.nn.Module, image: np.ndarray, points_per_side: int = 32,
                    dtype: torch.dtype = torch.float32, on_batch: Callable[[], None] | None = None,
                    points_per_batch: int = POINTS_PER_BATCH) -> list[np.ndarray]:
    """SAM 2's automatic masks of an H × W × 3 uint8 image (bool H × W each). `on_batch` runs after
    each decoder batch: it may raise to cancel."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    class Generator(SAM2AutomaticMaskGenerator):
        def _process_batch(self, *args, **kwargs):
            data = super()._process_batch(*args, **kwargs)
            if on_batch is not None:
                on_batch()
            return data

    generator = Generator(model, points_per_side=points_per_side, points_per_batch=points_per_batch, **AUTOMATIC_SETTINGS)
    with torch.inference_mode(), _autocast(model, dtype):
        records = generator.generate(image)
    return [np.asarray(r["segmentation"], dtype=bool) for r in records]


def point_masks(model: torch.nn.Module, image: np.ndarray, points: Sequence[tuple[float, float]],
                dtype: torch.dtype = torch.float32) -> list[np.ndarray]:
    """For each point (x, y) the object under it: SAM 2 prompted with that one positive point, the
    best-scored of its three masks."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(model)
    out = []
    with torch.inference_mode(), _autocast(model, dtype):
        predictor.set_image(image)
        for x, y in points:
            masks, scores, _ = predictor.predict(point_coords=np.array([[x, y]], dtype=np.float32),
                                                 point_labels=np.array([1]), multimask_output=True)
            out.append(np.asarray(masks[int(np.argmax(scores))]) > 0)
    return out
