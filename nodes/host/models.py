"""Model identity and conversions: which families DragKit runs, whether two MODELs compute the same,
ComfyUI values → tensors (text context, VAE encode, LoRA patches), and SAM 2 under a ModelPatcher."""

from __future__ import annotations

import torch

import comfy.model_management as model_management
import comfy.model_patcher
import comfy.sd


def model_options_patch_names(model_options: dict) -> str:
    """The keys of a model's non-weight patches, as a stable string."""
    options = model_options.get("transformer_options", {})
    names = {kind: sorted(map(str, entries)) for kind, entries in options.get("patches_replace", {}).items()}
    names.update({kind: len(entries) for kind, entries in options.get("patches", {}).items()})
    names["wrappers"] = sorted(k for k in model_options if "wrapper" in k or "cfg" in k)
    return repr(sorted(names.items()))


SUPPORTED_FAMILIES = "SD 1.x and SD 2.x (ε- or v-prediction)"


def check_supported(model) -> None:
    """Refuse, before any work, a MODEL that is not an SD 1.x / 2.x UNet without extra inputs."""
    import comfy.supported_models as families

    config = getattr(getattr(model, "model", None), "model_config", None)
    name = type(config).__name__ if config is not None else type(getattr(model, "model", model)).__name__
    plain_sd = isinstance(config, (families.SD15, families.SD20)) and not getattr(model.model, "adm_channels", 0)
    if not plain_sd:
        raise ValueError(
            f"model: DragKit supports {SUPPORTED_FAMILIES} checkpoints; this model is {name}. "
            "Load an SD 1.5 (or SD 2.x) checkpoint for the DragKit nodes"
        )


def same_model(a, b) -> bool:
    """Whether two MODELs compute the same (the same weights and weight patches)."""
    return a is b or a.clone_has_same_weights(b)


def patch_names(model) -> str:
    """A MODEL's non-weight patches (attention replacements, wrappers) by name: with `same_model`,
    whether two MODELs compute the same."""
    return model_options_patch_names(model.model_options)


def text_context(conditioning: list, what: str = "conditioning") -> torch.Tensor:
    """The text embedding of a CONDITIONING: its first entry's cross-attention context (area,
    mask, ControlNet and further entries are not used inside DragKit's own UNet calls)."""
    if not conditioning:
        raise ValueError(f"{what}: the conditioning is empty; connect a CLIPTextEncode output")
    context = conditioning[0][0]
    if not torch.isfinite(context).all():
        raise ValueError(f"{what}: the text embedding has non-finite values; check the CLIP model and prompt")
    return context.clone()


def encode_image(vae, image: torch.Tensor) -> torch.Tensor:
    """IMAGE [B, H, W, C] → the raw VAE latent, as VAEEncode would give it."""
    return vae.encode(image[:, :, :, :3])


def with_lora(model, lora: dict[str, torch.Tensor]):
    """A clone of `model` with a LORA_MODEL applied through ComfyUI's patch mechanism."""
    patched, _ = comfy.sd.load_lora_for_models(model, None, lora, 1.0, 0)
    return patched




class Sam2Holder(torch.nn.Module):
    """SAM 2 inside a plain module: ModelPatcher records the device on the model it manages, and
    SAM 2's own `device` is a read-only property."""

    def __init__(self, sam: torch.nn.Module) -> None:
        super().__init__()
        self.sam = sam


def sam2_patcher(sam: torch.nn.Module):
    """SAM 2 under a ModelPatcher on ComfyUI's compute device, so ComfyUI offloads and evicts it
    like any model."""
    patcher_class = getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
    return patcher_class(Sam2Holder(sam), load_device=compute_device(), offload_device=model_management.unet_offload_device())


def load_sam2(patcher) -> torch.nn.Module:
    """The SAM 2 module on ComfyUI's compute device (ComfyUI frees room for it first)."""
    model_management.load_models_gpu([patcher])
    return patcher.model.sam


def compute_device() -> torch.device:
    return model_management.get_torch_device()


def has_fast_bf16(device: torch.device) -> bool:
    return device.type == "cuda" and model_management.should_use_bf16(device)
