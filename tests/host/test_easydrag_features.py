"""EasyDrag's feature map F(z) through ComfyUI (easydrag.md §4.3, §4.8, §10.7, §10.10) on the UNet
with SD 1.5's block structure: up_blocks[1] and [2] joined at the latter's size, at image size, and
the reference branch, which on the unedited latent itself changes nothing."""

import torch
import torch.nn.functional as F

from harness.checkpoints import narrow_sd15_patcher

WIDTH, HEIGHT = 512, 384  # non-square: latent 64 × 48


def test_features_are_up_blocks_1_and_2_joined_at_image_size_and_the_reference_branch_on_itself_is_neutral():
    patcher, _ = narrow_sd15_patcher(seed=2)
    from dragkit.core.attention import MutualSelfAttention
    from dragkit.core.methods.easydrag import FeatureMap
    from dragkit.nodes.host import ComfyDenoiser

    denoiser = ComfyDenoiser(patcher)
    denoiser.load()
    context = torch.randn(1, 77, 64, generator=torch.Generator().manual_seed(1))
    z = torch.randn(1, 4, HEIGHT // 8, WIDTH // 8, generator=torch.Generator().manual_seed(3))
    feature_map = FeatureMap(denoiser, context, (1, 2), (HEIGHT, WIDTH))
    with torch.no_grad():
        features = feature_map(z, 681)
        taps = denoiser.predict(z, 681, context, up_features=(1, 2)).features
        sharing = MutualSelfAttention([681], layers=None, places=("up",))
        shared = feature_map(z, 681, reference=z, hook=sharing)

    assert taps[1].shape[-2:] == (24, 32) and taps[2].shape[-2:] == (48, 64)  # 1/2 and 1 × the latent
    channels = taps[1].shape[1] + taps[2].shape[1]
    assert features.shape == (1, channels, HEIGHT, WIDTH)
    joined = torch.cat([F.interpolate(taps[1], size=(48, 64), mode="bilinear", align_corners=False), taps[2]], dim=1)
    torch.testing.assert_close(features, F.interpolate(joined, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False))
    assert sum(sharing.edited.values()) == 9  # every decoder self-attention of SD 1.5's layout
    torch.testing.assert_close(shared, features, rtol=1e-4, atol=1e-4)
