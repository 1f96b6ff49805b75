"""Random-weight models in real shapes, generated at test time (no weights can be downloaded)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch

from harness.comfy_inprocess import import_comfy

# The tiny checkpoint's UNet: SD 1.5 widths (320 channels, 768 context) so ComfyUI detects it as
# SD 1.5, at one level of depth to stay small (28 M parameters).
TINY_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1], channel_mult=[1],
    transformer_depth=[1], transformer_depth_output=[1, 1], transformer_depth_middle=1, context_dim=768,
    num_heads=8, use_linear_in_transformer=False, use_spatial_transformer=True, legacy=False,
)

# SD 1.5's full block structure (4 levels, 2 res blocks each, attention on the first three
# levels, 8 heads), narrow: for tests that check what a layer index means.
NARROW_SD15_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=32, num_res_blocks=[2, 2, 2, 2],
    channel_mult=[1, 2, 4, 4], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1, context_dim=64,
    num_heads=8, num_head_channels=-1, use_linear_in_transformer=False, use_spatial_transformer=True, legacy=False,
    adm_in_channels=None, use_temporal_attention=False, use_temporal_resblock=False, use_checkpoint=False,
)

# The same structure as diffusers describes it (SD 1.5's config, narrowed).
NARROW_SD15_DIFFUSERS = dict(
    sample_size=32, in_channels=4, out_channels=4, block_out_channels=(32, 64, 128, 128), layers_per_block=2,
    cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
)


def randomise(state_dict: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Finite random values for every tensor, scaled so activations neither vanish nor explode.

    ComfyUI builds layers without initialisation, so an untouched state dict is garbage memory."""
    out = {}
    for key, value in state_dict.items():
        if value.ndim >= 2:
            fan_in = math.prod(value.shape[1:])
            out[key] = torch.randn(value.shape, generator=generator) / math.sqrt(fan_in)
        elif key.endswith("weight"):  # norm scales
            out[key] = 1 + 0.1 * torch.randn(value.shape, generator=generator)
        else:
            out[key] = 0.02 * torch.randn(value.shape, generator=generator)
    return out


def unet_state_dict(config: dict, seed: int) -> dict[str, torch.Tensor]:
    comfy = import_comfy()
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import comfy.ops

    with torch.device("meta"):
        unet = UNetModel(**config, operations=comfy.ops.disable_weight_init, dtype=torch.float32)
    shapes = {k: torch.empty(v.shape) for k, v in unet.state_dict().items()}
    return randomise(shapes, torch.Generator().manual_seed(seed))


# SD 1.5's whole block layout (4 levels, 2 res blocks each, attention on levels 0–2: 16
# self-attentions, 4 decoder stages) at 320 channels on every level: ComfyUI detects it as SD 1.5,
# the methods' default layer indices exist in it, and a CPU runs it (about 100 M parameters).
STRUCTURE_UNET = dict(
    NARROW_SD15_UNET, model_channels=320, channel_mult=[1, 1, 1, 1], context_dim=768, num_heads=8, num_head_channels=-1,
)


# SD 1.5's UNet at full size (860 M parameters; benchmarks/gpu_check.py).
SD15_UNET = dict(NARROW_SD15_UNET, model_channels=320, context_dim=768)


def clip_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """SD 1.5's CLIP text model (123 M parameters) with finite random weights, checkpoint-keyed."""
    import_comfy()
    import comfy.sd1_clip

    with torch.device("meta"):
        clip = comfy.sd1_clip.SDClipModel(device="meta")
    shapes = {k: torch.empty(v.shape) for k, v in clip.state_dict().items() if k.startswith("transformer.text_model.")}
    return {f"cond_stage_model.{k}": v for k, v in randomise(shapes, torch.Generator().manual_seed(seed + 2)).items()}


def write_tiny_checkpoint(path: Path, seed: int = 0, unet: dict = TINY_UNET, dtype: torch.dtype = torch.float32,
                          full_clip: bool = False) -> Path:
    """An SD 1.5-detectable checkpoint: a UNet (tiny by default), TAESD-shaped VAE, and one CLIP key
    (recipe: reference/comfyui.md App. A), or with `full_clip` the whole text model with random
    weights, so that CLIPTextEncode gives a finite embedding and works under Dynamic VRAM too
    (missing weights stay on the meta device there)."""
    import_comfy()
    from comfy.taesd.taesd import TAESD
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed + 1)
    sd = {f"model.diffusion_model.{k}": v.to(dtype) for k, v in unet_state_dict(unet, seed).items()}
    for key, value in TAESD(latent_channels=4).state_dict().items():
        if key == "vae_scale":
            value = torch.ones_like(value)
        elif value.ndim > 1:
            value = torch.randn(value.shape, generator=generator) * 0.05
        else:
            value = torch.zeros_like(value)
        sd[f"first_stage_model.{key}"] = value
    sd["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = torch.ones(768)
    if full_clip:
        sd.update({k: v.to(dtype) for k, v in clip_state_dict(seed).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def write_structure_checkpoint(path: Path) -> Path:
    """SD 1.5's block layout at CPU size (STRUCTURE_UNET, fp16 as SD 1.5 files are) with a whole
    random CLIP: every node of the example workflows runs on it, at their methods' layer indices."""
    return write_tiny_checkpoint(path, seed=11, unet=STRUCTURE_UNET, dtype=torch.float16, full_clip=True)


def tiny_sam2_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """SAM 2.1 Hiera tiny, built from Meta's package config, with random weights."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    return build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", apply_postprocessing=False).state_dict()


def write_tiny_sam2(path: Path, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tiny_sam2_state(seed).items()}, str(path))
    return path


def narrow_sd15_patcher(seed: int = 0, dtype: torch.dtype = torch.float32, unet: dict = NARROW_SD15_UNET):
    """A ComfyUI MODEL (ModelPatcher) with SD 1.5's block structure and narrow random weights
    (or `unet`'s widths, e.g. STRUCTURE_UNET), stored and computed in `dtype` (as ComfyUI runs SD 1.5
    in fp16 on GPUs).

    Returns the patcher and the LDM-keyed UNet state dict it was loaded from."""
    import_comfy()
    import comfy.model_patcher
    import comfy.supported_models

    unet_sd = unet_state_dict(unet, seed)
    config = comfy.supported_models.SD15(dict(unet))
    config.set_inference_dtype(dtype, None)
    model = config.get_model({})
    model.diffusion_model.load_state_dict({k: v.to(dtype) for k, v in unet_sd.items()})
    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu), unet_sd


def diffusers_twin(unet_sd: dict[str, torch.Tensor]):
    """diffusers' UNet2DConditionModel with the same weights, converted by diffusers' own converter."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    unet = UNet2DConditionModel(**NARROW_SD15_DIFFUSERS)
    checkpoint = {f"model.diffusion_model.{k}": v for k, v in unet_sd.items()}
    converted = convert_ldm_unet_checkpoint(checkpoint, dict(unet.config))
    unet.load_state_dict(converted, strict=True)
    return unet.eval()


def load_model(kind: str, checkpoint: Path | None = None):
    """ComfyUI's MODEL of `checkpoint`, or of a generated random-weight one: `tiny`, `structure` or
    `sd15` (SD 1.5's full UNet in fp16, on the GPU); ComfyUI is imported here, on the CPU unless
    `sd15` or a checkpoint of yours with a GPU present."""
    import_comfy(cpu=kind != "sd15" and not (checkpoint and torch.cuda.is_available()))
    import comfy.sd

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = checkpoint or write_generated(kind, Path(folder) / "sd15_shaped.safetensors")
        with torch.inference_mode():
            model, *_ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=False, output_clip=False)
    return model


def write_generated(kind: str, path: Path) -> Path:
    if kind == "sd15":
        return write_tiny_checkpoint(path, seed=3, unet=SD15_UNET, dtype=torch.float16)
    return write_structure_checkpoint(path) if kind == "structure" else write_tiny_checkpoint(path)


def gradient_denoiser(model):
    """DragKit's denoiser on `model`, loaded for gradients as the drag nodes load it."""
    from dragkit.nodes import host

    with host.gradients():
        return host.loaded_denoiser(model, for_gradients=True)
