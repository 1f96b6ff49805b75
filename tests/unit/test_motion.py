"""core.motion: grids, bilinear patches, motion-supervision losses, tracking, mask term, stops."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness.synthetic import one_thread

from dragkit.core.motion import (
    FeatureGrid,
    MotionRule,
    count_stalls,
    feature_vectors,
    keep_mask,
    motion_loss,
    motion_steps,
    outside_mask_loss,
    patch_inside,
    reached,
    sample_patches,
    track_points,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

DRAGDIFFUSION_RULE = MotionRule(radius=1, step=1.0, clamp_step=False, skip_below=2.0, scale=9.0)
GOODDRAG_RULE = MotionRule(radius=4, step=4.0, clamp_step=True, skip_below=2.0, scale=64.0)


def random_features(channels=6, size=(20, 24), seed=0):
    return torch.randn(1, channels, *size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def points(*rows_cols):
    return torch.tensor(rows_cols, dtype=torch.float64)


def grid_sample_patches(features, centres, radius):
    """Independent bilinear sampler: grid_sample, align_corners=True (pixel i at coordinate i), border padding."""
    height, width = features.shape[-2:]
    offsets = torch.arange(-radius, radius + 1, dtype=features.dtype)
    rows = centres[:, 0, None, None] + offsets[None, :, None]
    cols = centres[:, 1, None, None] + offsets[None, None, :]
    rows, cols = torch.broadcast_tensors(rows, cols)
    grid = torch.stack([2 * cols / (width - 1) - 1, 2 * rows / (height - 1) - 1], dim=-1)  # (x, y) order
    n, size = len(centres), 2 * radius + 1
    grid = grid.reshape(1, n * size, size, 2)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return sampled.reshape(features.shape[1], n, size, size).transpose(0, 1)


# --- coordinates --------------------------------------------------------------------------------


def test_image_points_map_to_half_size_grid_as_in_the_spec():
    # gooddrag.md §9.3 / §2: (147, 67) → (34, 74), (410, 88) → (44, 205), (202, 46) → (23, 101); half to even.
    grid = FeatureGrid.scaled(512, 512, 0.5)
    assert grid.size == (256, 256)
    mapped = grid.to_grid([(147, 67), (410, 88), (202, 46)])
    assert mapped.tolist() == [[34, 74], [44, 205], [23, 101]]
    assert grid.to_image(mapped) == ((148.0, 68.0), (410.0, 88.0), (202.0, 46.0))


def test_grid_truncates_odd_sizes_and_keeps_points_on_the_map():
    grid = FeatureGrid.scaled(512, 341, 0.5)  # the UI's free height: int(0.5 · 341) = 170
    assert grid.size == (170, 256)
    assert grid.to_grid([(511.9, 340.9)]).tolist() == [[169, 255]]


# --- bilinear patches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "centre",
    [(7.0, 9.0), (7.25, 9.5), (3.7, 12.1), (0.0, 0.0), (0.4, 22.6), (19.0, 23.0), (-0.5, 10.3), (18.6, 23.9)],
    ids=["integer", "quarter-half", "fractional", "corner", "near-border", "far-corner", "off-top", "off-corner"],
)
def test_bilinear_patches_equal_grid_sample_with_align_corners(centre):
    features = random_features()
    centres = points(centre, (10.5, 11.75))
    for radius in (0, 1, 4):
        expected = grid_sample_patches(features, centres, radius)
        assert torch.allclose(sample_patches(features, centres, radius), expected, atol=1e-12)


def test_patch_at_an_integer_centre_is_a_plain_crop():
    features = random_features()
    patch = sample_patches(features, points((8, 11)), 4)
    assert patch.shape == (1, 6, 9, 9)
    assert torch.equal(patch[0], features[0, :, 4:13, 7:16])


def test_patch_on_a_ramp_is_the_ramp_at_every_sub_pixel_position():
    rows, cols = torch.meshgrid(torch.arange(20.0), torch.arange(24.0), indexing="ij")
    ramp = (0.3 * rows - 1.7 * cols)[None, None].double()
    centre = points((6.3, 10.85))
    offsets = torch.arange(-2, 3, dtype=torch.float64)
    expected = 0.3 * (6.3 + offsets)[:, None] - 1.7 * (10.85 + offsets)[None, :]
    assert torch.allclose(sample_patches(ramp, centre, 2)[0, 0], expected, atol=1e-12)


def test_patch_gradient_reaches_only_its_bilinear_support():
    features = random_features().requires_grad_(True)
    sample_patches(features, points((8.5, 11.25)), 1).sum().backward()
    support = features.grad[0, 0] != 0
    assert support.sum() == 16  # (2r + 2)² for r = 1
    assert support[7:11, 10:14].all()


def test_patch_inside_marks_positions_off_the_map():
    inside = patch_inside(points((0.0, 22.5)), 1, (20, 24))
    expected = torch.tensor([[False, False, False], [True, True, False], [True, True, False]])
    assert torch.equal(inside[0], expected)


# --- motion supervision -------------------------------------------------------------------------


def test_step_is_min_of_beta_and_distance_when_clamped_else_beta():
    handles, targets = points((10, 10), (10, 10)), points((10, 13), (10, 20))  # distances 3 and 10
    assert motion_steps(handles, targets, GOODDRAG_RULE).tolist() == [[0, 3], [0, 4]]
    fixed = MotionRule(radius=4, step=4.0, clamp_step=False, skip_below=2.0, scale=64.0)
    assert motion_steps(handles, targets, fixed).tolist() == [[0, 4], [0, 4]]


def test_dragdiffusion_loss_is_the_patch_sum_of_channel_mean_differences():
    features = random_features().requires_grad_(True)
    loss = motion_loss(features, points((10, 10)), points((10, 20)), DRAGDIFFUSION_RULE)  # d = (0, 1)
    f = features.detach()[0]
    expected = (f[:, 9:12, 10:13] - f[:, 9:12, 9:12]).abs().mean(dim=0).sum()
    assert torch.allclose(loss, expected)
    loss.backward()
    # The reference patch (cols 9–11) is detached: column 9, which only it covers, gets no gradient.
    assert (features.grad[0, :, :, 9] == 0).all()
    assert (features.grad[0, :, 9:12, 12] != 0).all()


def test_dragdiffusion_loss_at_a_diagonal_step_matches_an_independent_sampler():
    features = random_features()
    handle, target = points((6, 7)), points((12, 15))  # d = (0.6, 0.8)
    loss = motion_loss(features, handle, target, DRAGDIFFUSION_RULE)
    moved = grid_sample_patches(features, points((6.6, 7.8)), 1)
    assert torch.allclose(loss, 9 * (moved - features[:, :, 5:8, 6:9]).abs().mean())


def test_paper_normalisation_sums_over_channels_and_patch():
    features = random_features()
    handle, target = points((10, 10)), points((10, 20))
    scaled = motion_loss(features, handle, target, DRAGDIFFUSION_RULE)
    summed = motion_loss(features, handle, target, MotionRule(1, 1.0, False, 2.0, scale=None))
    assert torch.allclose(summed, scaled * features.shape[1])


def test_pairs_within_the_skip_distance_contribute_nothing():
    features = random_features()
    far = motion_loss(features, points((10, 10)), points((10, 20)), GOODDRAG_RULE)
    both = motion_loss(features, points((10, 10), (5, 5)), points((10, 20), (6, 6)), GOODDRAG_RULE)
    assert torch.equal(both, far)
    assert motion_loss(features, points((5, 5)), points((6.5, 5)), GOODDRAG_RULE) == 0


def test_patch_term_at_the_border_counts_only_on_map_offsets():
    # DragDiffusion clips the window to the map: at row 0 only rows 0–1 of the 3×3 patch count.
    features = random_features()
    loss = motion_loss(features, points((0, 5)), points((0, 15)), DRAGDIFFUSION_RULE)
    f = features[0]
    assert torch.allclose(loss, 9 * (f[:, 0:2, 5:8] - f[:, 0:2, 4:7]).abs().mean())


def test_information_preserving_loss_is_zero_when_content_moved_by_the_step():
    original = random_features(size=(32, 32))
    current = torch.roll(original, shifts=4, dims=-1)  # everything moved 4 columns toward the target
    handle, target = points((16, 10)), points((16, 22))  # step min(4, 12) = 4 columns
    loss = motion_loss(current, handle, target, GOODDRAG_RULE, reference=original, reference_handles=handle)
    assert loss == 0
    # The same features with DragDiffusion's reference (current features at the handle) do not match.
    assert motion_loss(current, handle, target, GOODDRAG_RULE) > 0


def test_information_preserving_reference_is_fixed_and_gets_no_gradient():
    original = random_features(size=(32, 32)).requires_grad_(True)
    current = random_features(size=(32, 32), seed=1).requires_grad_(True)
    start, target = points((16, 10)), points((16, 26))
    losses = [
        motion_loss(current, handle, target, GOODDRAG_RULE, reference=original, reference_handles=start)
        for handle in (start, points((16, 14)))
    ]
    sum(losses).backward()
    assert original.grad is None and current.grad is not None
    # Moved handle, same reference: the loss is the moved patch against the original patch at p⁰.
    moved = sample_patches(current.detach(), points((16, 18)), 4)
    assert torch.allclose(losses[1], 64 * (moved[0] - original.detach()[0, :, 12:21, 6:15]).abs().mean())


# --- outside-mask term --------------------------------------------------------------------------


def test_keep_mask_is_the_complement_resized_nearest_to_grid_then_latent():
    editable = np.zeros((128, 128), dtype=bool)
    editable[32:64, 40:72] = True
    keep = keep_mask(editable, FeatureGrid.scaled(128, 128, 0.5), (16, 16))
    expected = torch.ones(16, 16)
    expected[4:8, 5:9] = 0
    assert torch.equal(keep[0, 0], expected)


def test_outside_mask_term_is_a_weighted_l1_sum_and_leaves_the_editable_region_free():
    keep = torch.ones(1, 1, 4, 4)
    keep[..., 1:3, 1:3] = 0
    reference = torch.randn(1, 4, 4, 4)
    latent = torch.randn(1, 4, 4, 4, requires_grad=True)
    loss = outside_mask_loss(latent, reference, keep, 0.2)
    assert torch.allclose(loss, 0.2 * ((latent - reference).abs() * keep).sum())
    loss.backward()
    assert (latent.grad[..., 1:3, 1:3] == 0).all()
    assert torch.allclose(latent.grad.abs()[..., 0, :], torch.full((1, 4, 4), 0.2))
    assert outside_mask_loss(latent, reference, torch.zeros_like(keep), 0.2) == 0


# --- tracking and stopping ----------------------------------------------------------------------


@pytest.mark.parametrize("shift", [(0, 0), (3, -2), (-12, 12), (12, 7)])
def test_tracking_finds_a_shifted_pattern_exactly(shift):
    original = random_features(channels=16, size=(64, 64))
    moved = torch.roll(original, shifts=shift, dims=(-2, -1))
    start = points((30, 33))
    found = track_points(moved, start, feature_vectors(original, start), radius=12)
    assert found.tolist() == [[30 + shift[0], 33 + shift[1]]]


@pytest.mark.parametrize(
    "start, shift",
    [((2, 30), (-2, 1)), ((0, 0), (0, 0)), ((5, 3), (-5, -3)), ((60, 61), (3, 2))],
    ids=["to-top-right-corner", "at-corner", "to-top-left-corner", "to-bottom-right-corner"],
)
def test_tracking_finds_a_shifted_pattern_at_the_border(start, shift):
    # Shift without wrap-around: the uncovered band is fresh noise, so the only exact match is the moved one.
    original = random_features(channels=16, size=(64, 64))
    moved = random_features(channels=16, size=(64, 64), seed=5)
    dy, dx = shift
    moved[..., max(dy, 0) : 64 + min(dy, 0), max(dx, 0) : 64 + min(dx, 0)] = original[
        ..., max(-dy, 0) : 64 + min(-dy, 0), max(-dx, 0) : 64 + min(-dx, 0)
    ]
    handle = points(start)
    found = track_points(moved, handle, feature_vectors(original, handle), radius=12)
    assert found.tolist() == [[start[0] + dy, start[1] + dx]]


def test_tracking_ties_go_to_the_first_position_of_the_clipped_window():
    flat = torch.zeros(1, 4, 16, 16)
    found = track_points(flat, points((8, 9), (1, 2)), torch.zeros(2, 4), radius=3)
    assert found.tolist() == [[5, 6], [0, 0]]


def test_tracking_compares_l1_summed_over_channels():
    # Candidates (1, 1) and (1.9, 0): L1 prefers the second (1.9 < 2), L2 the first (√2 < 1.9).
    features = torch.tensor([[1.0, 1.9, 3.0], [1.0, 0.0, 3.0]])[None, :, None, :]
    assert track_points(features, points((0, 2)), torch.zeros(1, 2), radius=2).tolist() == [[0, 1]]


def test_reached_needs_every_pair_closer_than_the_radius():
    targets = points((10, 10), (20, 20))
    assert reached(points((11, 11), (20, 21.9)), targets, 2.0)
    assert not reached(points((11, 11), (20, 22)), targets, 2.0)


def test_stall_counter_grows_while_handles_stay_and_resets_when_they_move():
    here, there = points((3, 4)), points((3, 5))
    count = count_stalls(0, here, here.clone())
    count = count_stalls(count, here, here.clone())
    assert count == 2
    assert count_stalls(count, here, there) == 0
