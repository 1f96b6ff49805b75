"""Per-image LoRA fine-tuning (dragdiffusion.md §3.2, gooddrag.md §3.2), trained with peft.

LoRA sits on to_q, to_k, to_v and to_out.0 of every attention module (self and cross) of the UNet,
initialised as diffusers' LoRALinearLayer (down ~ N(0, 1/r²), up = 0, no alpha scaling), trained
with the DDPM noise-prediction loss at random timesteps and AdamW. The adapters and optimiser
state are float32 while the UNet runs in its own dtype. peft's layers live in the UNet
only while training runs: whatever happens, the original modules are put back before returning.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .denoiser import Denoiser

# Module names of the attention projections, in ComfyUI's LDM UNet and in diffusers alike.
LORA_TARGETS = r".*\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"

# The steps per method are in each method's recipe (core/methods).


def micro_batch_size_for(device) -> int:
    """On the CPU one image of the batch at a time (the same update): a quarter of the memory at the
    default batch of 4, where RAM, not time, is what runs out; elsewhere the whole batch (0)."""
    return 1 if torch.device(device).type == "cpu" else 0


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    steps: int = 80
    learning_rate: float = 5e-4
    batch_size: int = 4
    micro_batch_size: int = 0  # images per forward/backward pass (gradients accumulated); 0 = the whole batch
    weight_decay: float = 1e-2  # AdamW defaults the papers' code keeps
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    seed: int = 0


# on_step(done, total, loss): progress, previews and cancel (whatever it raises stops training).
LoraStepCallback = Callable[[int, int, float], None]


@dataclass(frozen=True)
class LoraResult:
    weights: dict[str, torch.Tensor]  # "<module>.lora_down.weight" / "<module>.lora_up.weight"
    losses: tuple[float, ...]


def train_lora(
    denoiser: Denoiser,
    latent: torch.Tensor,
    cond: torch.Tensor,
    settings: LoraSettings,
    on_step: LoraStepCallback | None = None,
) -> LoraResult:
    """Fit a LoRA on the denoiser's `trainable_module` (the module its `predict` runs) to the clean
    DDPM-scaled `latent` [1, 4, h, w].

    Needs autograd enabled. The LoRA weights and AdamW's state are float32 whatever the UNet's
    dtype (in fp16, AdamW's ε rounds to 0 and the first update, 0/0, is NaN); an fp16 UNet's
    backward runs under a dynamic loss scale so that small gradients do not flush to zero. The
    weights come back keyed by `unet`'s module names, on the CPU; non-finite losses or weights
    raise `LoraTrainingError`."""
    unet = denoiser.trainable_module
    generator = torch.Generator().manual_seed(settings.seed)
    alphas = denoiser.alphas_cumprod.to(torch.float32)
    x0 = latent.detach().to(denoiser.device, torch.float32).expand(settings.batch_size, -1, -1, -1)
    scaler = torch.amp.GradScaler(torch.device(denoiser.device).type, enabled=denoiser.dtype == torch.float16)
    losses = []
    with lora_layers(unet, settings.rank, settings.seed) as layers:
        params = [p for layer in layers.values() for p in _adapter_weights(layer)]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, betas=settings.betas,
                                      weight_decay=settings.weight_decay, eps=settings.adam_eps)
        for step in range(settings.steps):
            noise = torch.randn(x0.shape, generator=generator).to(x0.device)
            t = torch.randint(0, len(alphas), (settings.batch_size,), generator=generator)
            a = alphas[t].view(-1, 1, 1, 1).to(x0.device)
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
            optimizer.zero_grad(set_to_none=True)
            loss = _accumulate_gradients(denoiser, x_t, t.to(x0.device), noise, cond, settings, scaler)
            if not torch.isfinite(loss):
                raise LoraTrainingError(f"the training loss became {loss.item()} at step {step + 1} ({_dtype_hint(denoiser)})")
            scaler.step(optimizer)  # skips a step whose (scaled) gradients overflowed
            scaler.update()
            losses.append(loss.item())
            if on_step is not None:
                on_step(step + 1, settings.steps, losses[-1])
        weights = {}
        for name, layer in layers.items():
            down, up = _adapter_weights(layer)
            weights[f"{name}.lora_down.weight"] = down.detach().cpu().clone()
            weights[f"{name}.lora_up.weight"] = up.detach().cpu().clone()
    check_finite(weights, f"after {settings.steps} steps ({_dtype_hint(denoiser)})")
    return LoraResult(weights=weights, losses=tuple(losses))


def _accumulate_gradients(denoiser: Denoiser, x_t, t, noise, cond, settings: LoraSettings, scaler) -> torch.Tensor:
    """The batch's mean noise-prediction loss, its gradients accumulated over micro-batches: the
    same update as one pass over the whole batch, with a micro-batch's activations in memory."""
    size = settings.micro_batch_size or settings.batch_size
    total = torch.zeros((), device=x_t.device)
    for part in range(0, settings.batch_size, size):
        rows = slice(part, part + size)
        eps = denoiser.predict(x_t[rows], t[rows], cond).eps.float()
        loss = F.mse_loss(eps, noise[rows]) * (eps.shape[0] / settings.batch_size)
        scaler.scale(loss).backward()
        total += loss.detach()
    return total


class LoraTrainingError(RuntimeError):
    """Training produced numbers that cannot be used; the LoRA is not output or cached."""


def check_finite(weights: dict[str, torch.Tensor], when: str) -> None:
    bad = [name for name, tensor in weights.items() if not torch.isfinite(tensor).all()]
    if bad:
        raise LoraTrainingError(f"the LoRA has non-finite values in {len(bad)} tensors (e.g. {bad[0]}) {when}")


def _dtype_hint(denoiser: Denoiser) -> str:
    return f"UNet dtype {str(denoiser.dtype).removeprefix('torch.')}; try a lower learning rate or a float32/bf16 model"


@contextlib.contextmanager
def lora_layers(unet: torch.nn.Module, rank: int, seed: int) -> Iterator[dict[str, torch.nn.Module]]:
    """peft LoRA layers on every attention projection of `unet`, removed again on exit.

    Yields {module name: peft layer}. On exit the original modules, every parameter's
    requires_grad flag and the module's attributes are restored, so `unet` is exactly as it was."""
    from peft import LoraConfig, inject_adapter_in_model

    originals = {name: m for name, m in unet.named_modules() if re.fullmatch(LORA_TARGETS, name)}
    if not originals:
        raise ValueError("the model has no attention projections (to_q/to_k/to_v/to_out.0) to put a LoRA on")
    requires_grad = {p: p.requires_grad for p in unet.parameters()}
    attributes = set(vars(unet))  # peft also leaves bookkeeping (peft_config) on the model
    # diffusers' LoRALinearLayer: gaussian down (std 1/r), zero up, scale lora_alpha / r = 1.
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS, lora_dropout=0.0)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            inject_adapter_in_model(config, unet)
        layers = {name: unet.get_submodule(name) for name in originals}
        for layer in layers.values():  # trainable weights: float32, beside the base weight
            for weight in _adapter_weights(layer):
                weight.data = weight.data.to(layer.base_layer.weight.device, torch.float32)
        yield layers
    finally:
        for name, module in originals.items():
            parent_name, _, child = name.rpartition(".")
            setattr(unet.get_submodule(parent_name), child, module)
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)
        for name in set(vars(unet)) - attributes:
            delattr(unet, name)


def _adapter_weights(layer: torch.nn.Module) -> tuple[torch.nn.Parameter, torch.nn.Parameter]:
    return layer.lora_A["default"].weight, layer.lora_B["default"].weight
