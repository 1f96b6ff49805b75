"""AdaptiveDrag's correspondence loss during sampling (reference/adaptivedrag.md §6.4, test 16)."""

import pytest
import torch
from harness.fakes import FakeDenoiser, sd15_alphas_cumprod

from dragkit.core.attention import MutualSelfAttention
from dragkit.core.sampling import CorrespondenceLoss, mutual_attention_sample
from dragkit.core.schedule import ddim_schedule

HANDLE, TARGET = (6, 5), (6, 10)  # latent (row, col)


def latents(seed=0, size=16):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, size, size, generator=generator), torch.randn(1, 4, size, size, generator=generator)


def with_target_patch_copied(source, edited, handle=HANDLE, target=TARGET, r=5):
    """`edited` with the patch around the target replaced by the source's patch around the handle."""
    copy = edited.clone()
    (hr, hc), (tr, tc) = handle, target
    top, bottom = max(-r, -hr, -tr), min(r, 15 - hr, 15 - tr)
    left, right = max(-r, -hc, -tc), min(r, 15 - hc, 15 - tc)
    copy[0, :, tr + top:tr + bottom + 1, tc + left:tc + right + 1] = source[0, :, hr + top:hr + bottom + 1,
                                                                             hc + left:hc + right + 1]
    return copy


@pytest.mark.parametrize("mode", ["sce", "mse"])
def test_matching_patches_score_lower_than_shuffled_ones(mode):
    source, edited = latents()
    loss = CorrespondenceLoss(source, [HANDLE], [TARGET], mode)
    matched = with_target_patch_copied(source, edited)
    shuffled = matched.clone()
    shuffled[0, :, 1:12, 5:16] = matched[0, :, 1:12, 5:16].flip(-1)
    assert loss.loss(matched) < loss.loss(shuffled)
    assert loss.loss(matched) < loss.loss(edited)


def diagonal_cosine(loss, edited):
    a, b = loss.patches(edited, HANDLE, TARGET)
    return torch.nn.functional.cosine_similarity(a, b, dim=1).mean()


def test_one_update_raises_the_patches_cosine_and_moves_only_the_edited_target_patch_by_at_most_lr():
    source, edited = latents(1)
    reference = torch.randn_like(edited)
    loss = CorrespondenceLoss(source, [HANDLE], [TARGET], learning_rate=0.01)
    batch = torch.cat([reference, edited])
    corrected = loss.correct(batch)
    assert torch.equal(corrected[0], reference[0]), "the reference branch changed"
    change = (corrected[1] - edited[0]).abs()
    assert change.max() <= 0.01 + 1e-7
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[1:12, 5:16] = False  # the target patch, clipped at the right border
    assert change[:, outside].max() == 0 and change[:, ~outside].max() > 0
    assert diagonal_cosine(loss, corrected[1:]) > diagonal_cosine(loss, edited)
    assert len(loss.losses) == 1


@pytest.mark.parametrize("handle,target", [((0, 0), (15, 15)), ((15, 0), (0, 15)), ((3, 14), (12, 1))])
def test_patches_at_the_borders_are_cut_to_the_offsets_inside_both(handle, target):
    source, edited = latents(2)
    loss = CorrespondenceLoss(source, [handle], [target])
    a, b = loss.patches(edited, handle, target)
    assert a.shape == b.shape and a.shape[1] == 4 and len(a) >= 1
    assert torch.isfinite(loss.loss(edited))
    loss.correct(torch.cat([source, edited]))


def test_the_sampler_with_the_loss_differs_from_plain_mutual_attention_and_the_loss_falls():
    denoiser = FakeDenoiser(dtype=torch.float32)
    schedule = ddim_schedule(sd15_alphas_cumprod(), 50)
    source, edited = latents(3)
    policy = MutualSelfAttention(schedule.timesteps, first_step=15, layers=range(0, 2))
    plain = mutual_attention_sample(denoiser, source, edited, torch.zeros(1, 3, 8), schedule, 15, policy)
    loss = CorrespondenceLoss(source, [HANDLE], [TARGET])
    pulled = mutual_attention_sample(denoiser, source, edited, torch.zeros(1, 3, 8), schedule, 15, policy,
                                     correspondence=loss)
    assert not torch.allclose(plain, pulled)
    assert len(loss.losses) == 35
    assert loss.losses[-1] < loss.losses[0]


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        CorrespondenceLoss(torch.zeros(1, 4, 8, 8), [(0, 0)], [(1, 1)], mode="official_noop")
