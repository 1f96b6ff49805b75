"""The one door into ComfyUI internals, a room per job: `denoiser` (core's Denoiser on a
ModelPatcher), `runtime` (gradients, progress, cancel), `models` (family gate, identity, conversions,
SAM 2's patcher), `folders` (folder_paths, cache folders). Nodes use the names re-exported here."""

from .denoiser import ComfyDenoiser, loaded_denoiser
from .folders import cache_directory
from .models import (SUPPORTED_FAMILIES, check_supported, compute_device, encode_image, has_fast_bf16, load_sam2, patch_names,
                     same_model, sam2_patcher, text_context, with_lora)
from .runtime import Progress, check_interrupted, gradients

__all__ = ["ComfyDenoiser", "loaded_denoiser", "cache_directory", "SUPPORTED_FAMILIES", "check_supported", "compute_device", "encode_image", "has_fast_bf16",
           "load_sam2", "patch_names", "same_model", "sam2_patcher", "text_context", "with_lora", "Progress",
           "check_interrupted", "gradients"]
