"""Metrics on synthetic data: MD's matching and distance, DIFT's ensemble, IF's LPIPS (and the lpips
package's own model as the reference), DAI's worked examples (gooddrag.md §9 item 13)."""

import math

import pytest
import torch
import torch.nn.functional as F

from dragkit.core.metrics import (Lpips, alexnet_lpips, dift_features, drag_accuracy_index, image_fidelity,
                                  matched_points, point_distances, upsampled_rows)
from harness.synthetic import SyntheticDenoiser


def texture(channels=16, height=40, width=48, seed=0) -> torch.Tensor:
    return torch.randn(channels, height, width, generator=torch.Generator().manual_seed(seed))


# --- Mean Distance ---------------------------------------------------------------------------------

def test_a_picture_shifted_exactly_onto_the_targets_has_distance_zero_and_it_grows_with_the_error():
    source = texture()
    dx, dy = 7, -4
    edited = torch.roll(source, shifts=(dy, dx), dims=(1, 2))  # content moved by (dx, dy)
    handles = [(10, 12), (30, 25), (20.4, 30.6)]
    matched = matched_points(source, edited, handles, size=(40, 48))
    assert matched == [(17, 8), (37, 21), (27, 27)]
    moved = [(x + dx, y + dy) for x, y in handles]
    assert point_distances(matched, moved, (40, 48)) == [0, 0, 0]
    for error in (1, 3, 6):
        off = [(x + error, y) for x, y in moved]
        assert point_distances(matched, off, (40, 48)) == [error] * 3


def test_low_resolution_features_are_upsampled_exactly_as_interpolate_does_band_by_band():
    features = texture(channels=5, height=6, width=9)
    whole = F.interpolate(features[None], size=(50, 70), mode="bilinear")[0]
    for rows in (range(0, 50), range(0, 1), range(17, 31), range(49, 50)):
        assert torch.allclose(upsampled_rows(features, (50, 70), rows), whole[:, rows.start:rows.stop], atol=1e-5)
    # banded matching finds what matching on the whole upsampled map finds
    handles = [(3, 4), (66, 41), (35, 25)]
    edited = texture(channels=5, height=6, width=9, seed=1)
    big = F.interpolate(edited[None], size=(50, 70), mode="bilinear")[0]
    for (x, y), (mx, my) in zip(handles, matched_points(features, edited, handles, (50, 70), band=7)):
        cos = F.cosine_similarity(whole[:, y, x].view(-1, 1, 1), big, dim=0)
        assert cos.flatten().argmax().item() == my * 70 + mx


def test_dift_averages_eight_noised_copies_at_t_261_and_is_repeatable():
    denoiser = SyntheticDenoiser()
    latent = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    first = dift_features(denoiser, latent, torch.zeros(1, 77, 8))
    assert denoiser.predicted_timesteps == [261]
    assert torch.equal(first, dift_features(denoiser, latent, torch.zeros(1, 77, 8)))  # seed 42 each time
    noise = torch.randn((8, 4, 16, 16), generator=torch.Generator().manual_seed(42))
    alpha = denoiser.alphas_cumprod[261].item()
    expected = denoiser.features(math.sqrt(alpha) * latent + math.sqrt(1 - alpha) * noise, 1).mean(0)
    assert torch.allclose(first, expected, atol=1e-6)
    assert first.shape == (16, 8, 8)  # up_blocks[1]: half the latent's size in the synthetic UNet


def test_dift_on_the_synthetic_unet_finds_a_moved_latent_block():
    denoiser = SyntheticDenoiser()
    latent = 3 * torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    moved = torch.roll(latent, shifts=(0, 2), dims=(2, 3))  # 2 latent cells = 16 pixels right
    cond = torch.zeros(1, 77, 8)
    source, edited = dift_features(denoiser, latent, cond), dift_features(denoiser, moved, cond)
    handles = [(40, 40), (64, 72)]
    matched = matched_points(source, edited, handles, (128, 128))
    distances = point_distances(matched, [(x + 16, y) for x, y in handles], (128, 128))
    assert max(distances) <= 4, matched  # within half a feature cell of the true move
    assert min(point_distances(matched, handles, (128, 128))) >= 12  # not where the content was


# --- Image Fidelity --------------------------------------------------------------------------------

def standin_lpips(seed=0) -> Lpips:
    generator = torch.Generator().manual_seed(seed)
    stages = [torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU()),
              torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU())]
    for stage in stages:
        torch.nn.init.normal_(stage[0].weight, generator=generator)
    return Lpips(stages, [torch.rand(8, generator=generator), torch.rand(8, generator=generator)]).eval()


def picture(seed=0, size=(64, 80)) -> torch.Tensor:
    return torch.rand(*size, 3, generator=torch.Generator().manual_seed(seed))


def test_identical_pictures_have_fidelity_one_and_a_change_lowers_it():
    lpips = standin_lpips()
    source = picture()
    assert image_fidelity(lpips, source, source.clone()) == pytest.approx(1.0, abs=1e-6)
    slightly, much = ((source + s * (picture(1) - 0.5)).clamp(0, 1) for s in (0.1, 0.8))
    assert 1 > image_fidelity(lpips, source, slightly) > image_fidelity(lpips, source, much)


def test_background_fidelity_ignores_the_editable_region_and_the_edit_is_resized_to_the_source():
    lpips = standin_lpips()
    source = picture()
    editable = torch.zeros(64, 80, dtype=torch.bool)
    editable[10:40, 20:60] = True
    edited = torch.where(editable[..., None], picture(2), source)
    assert image_fidelity(lpips, source, edited) < 0.999
    assert image_fidelity(lpips, source, edited, editable) == pytest.approx(1.0, abs=1e-6)
    bigger = F.interpolate(source.permute(2, 0, 1)[None], size=(128, 160), mode="nearest")[0].permute(1, 2, 0)
    assert image_fidelity(lpips, source, bigger) > 0.9  # compared at the source's size, not refused


def test_alexnet_lpips_built_from_weight_files_matches_the_lpips_package():
    import lpips  # tests/requirements.txt: the reference implementation, with its packaged v0.1 layers

    reference = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    slices = [reference.net.slice1, reference.net.slice2, reference.net.slice3, reference.net.slice4, reference.net.slice5]
    alexnet = {f"features.{name}": value for s in slices for name, value in s.state_dict().items()}
    linear = {k: v for k, v in reference.state_dict().items() if k.startswith("lin") and not k.startswith("lins")}
    ours = alexnet_lpips(alexnet, linear)
    a, b = (picture(seed, (96, 96)).permute(2, 0, 1)[None] * 2 - 1 for seed in (3, 4))
    with torch.no_grad():
        expected = reference(a, b).item()
    assert expected > 0
    assert ours(a, b).item() == pytest.approx(expected, rel=1e-5)


# --- DAI -------------------------------------------------------------------------------------------

def test_dai_is_zero_for_a_perfect_move_and_grows_with_the_error():
    source = picture(size=(60, 60))
    moved = torch.roll(source, shifts=(3, 5), dims=(0, 1))  # content moved 5 right, 3 down
    handles, targets = [(20, 20), (30, 25)], [(25, 23), (35, 28)]
    for gamma in (1, 5, 10, 20):
        assert drag_accuracy_index(source, moved, handles, targets, gamma) == pytest.approx(0, abs=1e-12)
    errors = [drag_accuracy_index(source, moved, handles, [(x + e, y) for x, y in targets], 5) for e in (1, 3)]
    assert 0 < errors[0] and 0 < errors[1]


def test_dai_constant_offset_gives_three_c_squared_paper_and_divided_by_pairs_code():
    c = 0.1
    source = torch.full((50, 50, 3), 0.4)
    edited = source + c
    handles, targets = [(10, 10), (30, 30), (25, 12)], [(12, 10), (28, 33), (25, 12)]
    for gamma in (1, 5, 10, 20):  # γ = 20 reaches past the border: the offsets inside count
        assert drag_accuracy_index(source, edited, handles, targets, gamma) == pytest.approx(3 * c * c)
        assert drag_accuracy_index(source, edited, handles, targets, gamma, "code") == pytest.approx(3 * c * c / 3)


def test_dai_patch_is_two_gamma_plus_one_wide():
    source = torch.zeros(40, 40, 3)
    edited = source.clone()
    edited[20, 20 + 6] = 1.0  # a pixel just outside γ = 5 of the target (20, 20)
    assert drag_accuracy_index(source, edited, [(20, 20)], [(20, 20)], 5) == 0
    assert drag_accuracy_index(source, edited, [(20, 20)], [(20, 20)], 6) == pytest.approx(3 / 13**2)
