"""What our layer indices mean: ComfyUI's UNet seen through nodes/host/ equals diffusers' UNet.

The papers' code addresses layers by diffusers names (`up_blocks[i]` outputs, the n-th
self-attention). A UNet with SD 1.5's full block structure (narrow, random weights) is loaded into
ComfyUI and, converted by diffusers' own converter, into UNet2DConditionModel; both must agree on ε,
on every up-block tap and on which self-attention a layer number addresses.
"""

import pytest
import torch

from harness.checkpoints import diffusers_twin, narrow_sd15_patcher


@pytest.fixture(scope="module")
def twins():
    patcher, unet_sd = narrow_sd15_patcher(seed=3)
    from dragkit.nodes.host import ComfyDenoiser

    denoiser = ComfyDenoiser(patcher)
    denoiser.load()
    return denoiser, diffusers_twin(unet_sd)


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(7)
    return torch.randn(2, 4, 16, 16, generator=generator), torch.randn(1, 77, 64, generator=generator)


def diffusers_self_attentions(unet):
    """diffusers' attn1 modules in execution order (encoder, middle, decoder)."""
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    found = [(name, m) for name, m in unet.named_modules() if name.endswith("attn1")]
    return [m for _, m in sorted(found, key=lambda item: order[item[0].split(".")[0]])]


@pytest.mark.parametrize("t", [1, 481, 981])
def test_eps_and_every_up_block_tap_match_diffusers(twins, inputs, t):
    denoiser, twin = twins
    x, cond = inputs
    taps = {}
    hooks = [block.register_forward_hook(lambda _m, _a, out, i=i: taps.__setitem__(i, out)) for i, block in enumerate(twin.up_blocks)]
    try:
        with torch.no_grad():
            ours = denoiser.predict(x, t, cond, up_features=range(4))
            reference = twin(x, t, encoder_hidden_states=cond.expand(2, -1, -1)).sample
    finally:
        for hook in hooks:
            hook.remove()
    assert denoiser.up_block_count == len(twin.up_blocks) == 4
    torch.testing.assert_close(ours.eps, reference, rtol=1e-4, atol=1e-4)
    for i in range(4):
        assert ours.features[i].shape == taps[i].shape, f"up_blocks[{i}]"
        torch.testing.assert_close(ours.features[i], taps[i], rtol=1e-4, atol=1e-4, msg=f"up_blocks[{i}]")


def test_taps_differ_between_stages(twins, inputs):
    """Guards the comparison above against a tap that always returns the same tensor."""
    denoiser, _ = twins
    x, cond = inputs
    with torch.no_grad():
        features = denoiser.predict(x, 500, cond, up_features=(1, 2)).features
    assert features[1].shape != features[2].shape


@pytest.mark.parametrize("layer", [0, 6, 10, 15])
def test_self_attention_layer_numbers_address_the_same_layer_as_diffusers(twins, inputs, layer):
    """Silencing self-attention `layer` through our hook equals silencing diffusers' layer-th attn1."""
    denoiser, twin = twins
    x, cond = inputs
    calls = []

    def silence(q, k, v, call):
        calls.append((call.layer, call.place))
        return torch.zeros_like(q) if call.layer == layer else None

    attn1 = diffusers_self_attentions(twin)
    assert len(attn1) == 16
    hook = attn1[layer].to_out[0].register_forward_pre_hook(lambda _m, args: (torch.zeros_like(args[0]),))
    try:
        with torch.no_grad(), denoiser.attention_hook(silence):
            ours = denoiser.predict(x, 500, cond).eps
        with torch.no_grad():
            reference = twin(x, 500, encoder_hidden_states=cond.expand(2, -1, -1)).sample
            plain = denoiser.predict(x, 500, cond).eps
    finally:
        hook.remove()
    assert [c[0] for c in calls] == list(range(16))
    assert [c[1] for c in calls] == ["down"] * 6 + ["mid"] + ["up"] * 9
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ours, plain, atol=1e-4), "silencing the layer must change ε"


def test_hook_returning_none_keeps_default_attention(twins, inputs):
    denoiser, _ = twins
    x, cond = inputs
    with torch.no_grad():
        plain = denoiser.predict(x, 300, cond).eps
        with denoiser.attention_hook(lambda q, k, v, call: None):
            hooked = denoiser.predict(x, 300, cond).eps
    torch.testing.assert_close(hooked, plain, rtol=1e-5, atol=1e-5)
