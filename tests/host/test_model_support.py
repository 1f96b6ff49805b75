"""Which models DragKit takes, what it computes on them, and other nodes' patches left working."""

import math

import pytest
import torch

from harness.checkpoints import NARROW_SD15_UNET, narrow_sd15_patcher


def patcher_of(family: str, model_type=None, **unet_overrides):
    """A real ComfyUI MODEL of `family` (a supported_models class) with a narrow UNet on the meta device."""
    narrow_sd15_patcher()  # imports ComfyUI (CPU)
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models

    config = getattr(comfy.supported_models, family)({**NARROW_SD15_UNET, **unet_overrides})
    config.unet_config.update(num_heads=8, num_head_channels=-1)  # SD 2.x/XL set 64-channel heads
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, device=torch.device("meta"))
    if model_type is not None:
        model.model_sampling = comfy.model_base.model_sampling(config, model_type)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


@pytest.mark.parametrize("family, overrides", [
    ("SDXL", dict(context_dim=2048, adm_in_channels=2816, use_linear_in_transformer=True)),
    ("SD21UnclipL", dict(context_dim=1024, adm_in_channels=1536, use_linear_in_transformer=True)),
])
def test_unsupported_families_are_refused_up_front(family, overrides):
    """SDXL used to fail mid-LoRA with 'must specify y'; now the first DragKit call names the family."""
    patcher = patcher_of(family, **overrides)
    from dragkit.nodes import host

    with pytest.raises(ValueError, match=f"model: DragKit supports SD 1.x and SD 2.x .*this model is {family}"):
        host.ComfyDenoiser(patcher)


def test_v_prediction_models_give_the_same_eps_as_the_v_formula():
    """ComfyUI converts a v-prediction UNet's output to x0; the ε DragKit derives from it must be
    √ᾱ·v + √(1−ᾱ)·x_t, computed here straight from the UNet's raw output."""
    import comfy.model_base

    patcher, unet_sd = narrow_sd15_patcher(seed=5)
    v_patcher = patcher_of("SD20", comfy.model_base.ModelType.V_PREDICTION, use_linear_in_transformer=False)
    v_patcher.model.diffusion_model.to_empty(device="cpu").load_state_dict(unet_sd)
    from dragkit.nodes.host import ComfyDenoiser

    denoiser = ComfyDenoiser(v_patcher)
    denoiser.load()
    generator = torch.Generator().manual_seed(2)
    x_t, context = torch.randn(1, 4, 16, 16, generator=generator), torch.randn(1, 77, 64, generator=generator)
    for t in (101, 501, 901):
        alpha = float(denoiser.alphas_cumprod[t])
        with torch.no_grad():
            v = v_patcher.model.diffusion_model(x_t, torch.tensor([float(t)]), context=context)
            eps = denoiser.predict(x_t, t, context).eps
        expected = math.sqrt(alpha) * v + math.sqrt(1 - alpha) * x_t
        assert torch.allclose(eps, expected, atol=1e-4), (t, (eps - expected).abs().max())


def test_other_attention_patches_keep_working_where_dragkit_declines():
    """A PAG/SAG-style attn1 patch on a layer DragKit's policy leaves alone used to be overwritten."""
    from dragkit.core.attention import MutualSelfAttention

    patcher, _ = narrow_sd15_patcher(seed=1)
    calls = []

    def other_patch(q, k, v, extra_options):
        calls.append(extra_options["block"])
        return v  # attention that ignores the keys: its effect shows in the output

    patcher.set_model_attn1_replace(other_patch, "input", 1)
    from dragkit.nodes.host import ComfyDenoiser

    denoiser = ComfyDenoiser(patcher)
    denoiser.load()
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    context = torch.zeros(1, 77, 64)
    policy = MutualSelfAttention([981], first_step=0, layers=range(10, 16))
    with torch.no_grad(), denoiser.attention_hook(policy):
        denoiser.predict(x, 981, context)
    assert calls == [("input", 1)]
    assert policy.edited[0, 10] == 1  # DragKit's own layers were handled by DragKit


def test_a_dynamic_model_comfyui_cannot_reload_is_refused_with_what_to_do(tiny_model):
    """A Dynamic VRAM MODEL from a custom loader (GGUF and the like) has no recipe to reload it fully
    loaded: ComfyUI's own delegate raises, and the gradient-taking nodes say what to do instead."""
    from dragkit.nodes import host

    model = tiny_model.clone()
    model.is_dynamic = lambda: True  # as under Dynamic VRAM on a GPU
    model.cached_patcher_init = None  # what a custom loader leaves
    with pytest.raises(ValueError) as refused:
        host.loaded_denoiser(model, for_gradients=True)
    message = str(refused.value)
    assert message.startswith("model: this MODEL streams its weights") and "Load Checkpoint" in message, message
    host.loaded_denoiser(tiny_model.clone(), for_gradients=False)  # sampling nodes never need the delegate
