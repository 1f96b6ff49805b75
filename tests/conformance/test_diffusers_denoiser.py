"""The test-only diffusers Denoiser keeps core/denoiser.py's conventions: self-attention layers in
execution order (SD 1.5: 0–5 encoder, 6 middle, 7–15 decoder), a hook that can replace each one, and
`up_blocks[i]` taps."""

import torch
import torch.nn.functional as F

from dragkit.core.attention import MutualSelfAttention
from diffusers_denoiser import DiffusersDenoiser
from test_gooddrag_conformance import CONFORMANCE


def test_layers_taps_and_hook_follow_the_protocol():
    denoiser = DiffusersDenoiser(CONFORMANCE)
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cond = torch.zeros(1, 77, 768)
    plain = denoiser.predict(x, 741, cond, up_features=(0, 1, 2, 3))
    assert [tuple(f.shape[1:]) for f in plain.features.values()] == [(64, 4, 4), (64, 8, 8), (64, 16, 16), (32, 16, 16)]

    calls = []

    def sdpa(q, k, v, call):
        calls.append((call.layer, call.place, call.t))
        split = lambda a: a.reshape(a.shape[0], a.shape[1], call.heads, -1).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return out.transpose(1, 2).reshape(q.shape)

    with denoiser.attention_hook(sdpa):
        hooked = denoiser.predict(x, 741, cond)
    assert [c[0] for c in calls] == list(range(16))
    assert [c[1] for c in calls] == ["down"] * 6 + ["mid"] + ["up"] * 9 and {c[2] for c in calls} == {741}
    assert torch.allclose(hooked.eps, plain.eps, atol=1e-5)  # the hook's attention is the model's own

    same = torch.cat([x[:1], x[:1]])
    with denoiser.attention_hook(MutualSelfAttention(tuple(range(981, 0, -20)))):
        mutual = denoiser.predict(same, 741, cond).eps
    assert torch.allclose(mutual[1], denoiser.predict(x[:1], 741, cond).eps[0], atol=1e-5)
