"""AdaptiveDrag's optimiser (reference/adaptivedrag.md §5, tests §10.1–10.2, 10.4) on synthetic
features and the synthetic denoiser."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from harness.synthetic import IMAGE_SIZE, band_mask, change_inside_and_outside, one_thread, scene

from dragkit.core import masks
from dragkit.core.drag import DragSpec
from dragkit.core.methods import BUDGET, REACHED, adaptivedrag
from dragkit.core.methods.adaptivedrag import (
    AdaptiveDragSettings,
    StepBudget,
    Superpixels,
    region_motion_loss,
    semantic_region,
    track_in_region,
)
from dragkit.core.masks import facing_cells as half_plane
from dragkit.core.motion import FeatureGrid, distances

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

DRAG = ((40.0, 64.0),), ((72.0, 64.0),)  # 32 image pixels to the right = 16 grid pixels


def block_labels(size=256, block=64):
    rows, cols = np.mgrid[0:size, 0:size]
    return ((rows // block) * (size // block) + cols // block + 1).astype(np.int32)


def point(row, col):
    return torch.tensor([float(row), float(col)])


# --- radii and regions (§5.2–5.3, tests 7–8) ------------------------------------------------------

def test_radii_follow_the_superpixel_size():
    cells = Superpixels(block_labels())
    grid = FeatureGrid.scaled(256, 256, 0.5)
    label = cells.label_at(grid, point(40, 70))  # image pixel (row 80, col 140): block (1, 2)
    assert label == 1 * 4 + 2 + 1
    assert cells.radii(label) == (64 // 7, 2 * 64 // 5) == (9, 25)
    smaller = Superpixels(block_labels(block=32))
    assert smaller.radii(smaller.label_at(grid, point(40, 70))) == (4, 12)  # smaller super-pixels, smaller radii


def test_label_lookup_reads_the_image_pixel_of_the_grid_point_not_a_transposed_one():
    labels = np.ones((128, 256), dtype=np.int32)
    labels[:, 128:] = 2  # right half of a wide image
    cells = Superpixels(labels)
    grid = FeatureGrid.scaled(256, 128, 0.5)
    assert cells.label_at(grid, point(10, 100)) == 2  # grid col 100 → image col 200
    assert cells.label_at(grid, point(100, 10)) == 1


def test_superpixel_on_the_grid_is_the_two_by_two_mean_at_least_a_half():
    labels = np.ones((8, 8), dtype=np.int32)
    labels[0, 0:3] = 2  # cell (0,0): 2 of 4 pixels; cell (0,1): 1 of 4
    cells = Superpixels(labels)
    on_grid = cells.on_grid(2, FeatureGrid.scaled(8, 8, 0.5), torch.device("cpu"))
    assert on_grid[0, 0] and not on_grid[0, 1] and on_grid.sum() == 1


def test_half_plane_excludes_cells_behind_the_point_and_keeps_the_point():
    plane = half_plane((20, 20), point(10, 10), point(10, 15))  # facing right
    assert plane[10, 10] and plane[10, 15] and plane[0, 10] and not plane[10, 9]


def test_semantic_region_is_the_superpixel_ahead_or_the_half_disc_when_that_is_small():
    segment = torch.zeros(64, 64, dtype=torch.bool)
    segment[20:44, 20:44] = True
    region = semantic_region(segment, point(32, 32), point(32, 50), radius=6, minimum_area=20)
    assert (region & ~segment).sum() == 0 and region[32, 32] and region[32, 43] and not region[32, 31]
    small = semantic_region(segment, point(32, 32), point(32, 50), radius=6, minimum_area=10_000)
    rows, cols = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    disc = ((rows - 32) ** 2 + (cols - 32) ** 2 <= 36) & (cols >= 32)
    assert torch.equal(small, disc)


# --- tracking (§5.5, test 9) ---------------------------------------------------------------------

def features_with_marker(at, size=32, channels=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = 0.1 * torch.randn(1, channels, size, size, generator=generator)
    marker = torch.randn(channels, generator=generator) * 5
    features[0, :, at[0], at[1]] = marker
    return features, marker


def test_tracking_follows_the_feature_within_the_region():
    features, marker = features_with_marker((16, 19))  # moved 3 cells toward a target on the right
    region = half_plane((32, 32), point(16, 16), point(16, 28))
    assert torch.equal(track_in_region(features, point(16, 16), marker, 5, region), point(16, 19))


def test_tracking_never_steps_behind_the_handle():
    features, marker = features_with_marker((16, 13))  # the best match lies behind
    region = half_plane((32, 32), point(16, 16), point(16, 28))
    tracked = track_in_region(features, point(16, 16), marker, 5, region)
    assert tracked[1] >= 16


def test_tracking_with_no_candidate_keeps_the_handle():
    features, marker = features_with_marker((16, 19))
    empty = torch.zeros(32, 32, dtype=torch.bool)
    assert torch.equal(track_in_region(features, point(16, 16), marker, 5, empty), point(16, 16))


# --- motion supervision (§5.4, test 10) ----------------------------------------------------------

def test_motion_loss_has_no_gradient_outside_the_region_and_its_step_lowers_it():
    features = torch.randn(1, 8, 32, 32, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[14:19, 16:19] = True  # part of the window, ahead of the handle
    handle, target = point(16, 16), point(16, 26)
    loss = region_motion_loss(features, handle, target, 3, region)
    (gradient,) = torch.autograd.grad(loss, features)
    touched = gradient.abs().sum(dim=(0, 1)) > 0
    shifted = torch.zeros_like(region)
    shifted[14:19, 17:20] = True  # d = (0, 1): the moving samples are the region shifted one cell right
    assert torch.equal(touched, shifted)
    stepped = (features - 0.05 * gradient).detach()
    assert region_motion_loss(stepped, handle, target, 3, region) < loss


def test_motion_loss_with_a_unit_step_right_equals_the_integer_shift():
    features = torch.randn(1, 4, 20, 20, generator=torch.Generator().manual_seed(3))
    region = torch.ones(20, 20, dtype=torch.bool)
    loss = region_motion_loss(features, point(10, 10), point(10, 15), 2, region)
    expected = 25 * (features[0, :, 8:13, 9:14] - features[0, :, 8:13, 8:13]).abs().mean()
    assert torch.allclose(loss, expected)


# --- step budget (§5.7, test 12) -----------------------------------------------------------------

def scripted_budget(mode="adaptive", initial=10, cap=13):
    settings = AdaptiveDragSettings(initial_budget=initial, max_budget=cap, budget_mode=mode)
    start, target = torch.tensor([[10.0, 10.0]]), torch.tensor([[10.0, 30.0]])
    return StepBudget(settings, distances(start, target), target - start), target


def test_budget_grows_by_the_stalls_up_to_the_cap_and_backward_moves_are_rejected():
    budget, target = scripted_budget()
    handle = torch.tensor([[10.0, 10.0]])
    for step in range(8):  # one cell forward every other step
        moved = handle + torch.tensor([[0.0, 1.0]]) * (step % 2)
        handle = budget.accept(handle, moved, target)
    assert budget.total == 10 + 3  # four stalls, capped at 13
    back = budget.accept(handle, handle - torch.tensor([[0.0, 2.0]]), target)
    assert torch.equal(back, handle), "a backward move was accepted"


def test_official_budget_is_fixed_and_accepts_every_move():
    budget, target = scripted_budget("official")
    handle = torch.tensor([[10.0, 12.0]])
    for _ in range(5):
        assert torch.equal(budget.accept(handle, handle - torch.tensor([[0.0, 1.0]]), target),
                           handle - torch.tensor([[0.0, 1.0]]))
    assert budget.total == 10


# --- the whole optimisation (§10.4) --------------------------------------------------------------

def slic_of_scene(spec, superpixels=200):
    picture = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
    picture[...] = (100, 140, 90)
    return masks.slic_segments(picture, superpixels)


def test_handles_move_toward_their_targets_and_never_backwards():
    # 50 super-pixels on this 128² picture are as wide on the feature grid as 200 on a 512² one: with
    # super-pixels only a few cells wide the region ahead of a handle at a super-pixel's far edge is a
    # sliver above the fallback area, and the handle cannot leave it (a property of the method).
    s = scene(strength=0.7)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG, mask=band_mask())
    seen = []
    settings = replace(AdaptiveDragSettings(), superpixels=50)
    result = adaptivedrag.optimise(s.denoiser, s.inversion, spec, s.cond, settings,
                                   superpixels=slic_of_scene(spec, 50),
                                   on_step=lambda step, total, handles: seen.append(handles[0][0]))
    grid = FeatureGrid.scaled(IMAGE_SIZE, IMAGE_SIZE, 0.5)
    start, end = (distances(grid.to_grid(h), grid.to_grid(DRAG[1])).item() for h in (DRAG[0], result.handles))
    assert end < 0.25 * start, result.handles
    assert all(b >= a for a, b in zip(seen, seen[1:])), seen
    inside, outside = change_inside_and_outside(result.latent, s.inversion.latent, band_mask())
    assert outside < inside


def test_a_lone_superpixel_takes_its_own_side_as_the_spacing():
    cells = Superpixels(np.ones((64, 64), dtype=np.int32))
    assert cells.radii(1) == (64 // 7, 2 * 64 // 5)


def test_a_zero_drag_changes_nothing():
    s = scene(strength=0.7)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, ((60.0, 60.0),), ((60.0, 60.0),))
    result = adaptivedrag.optimise(s.denoiser, s.inversion, spec, s.cond, superpixels=slic_of_scene(spec))
    assert result.stop_reason == REACHED and result.losses == ()
    assert torch.equal(result.latent, s.inversion.latent)


def test_official_budget_stops_after_exactly_the_initial_budget():
    s = scene(strength=0.7)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, ((10.0, 64.0),), ((120.0, 64.0),))
    settings = replace(AdaptiveDragSettings(), budget_mode="official", initial_budget=6)
    result = adaptivedrag.optimise(s.denoiser, s.inversion, spec, s.cond, settings, superpixels=slic_of_scene(spec))
    assert result.stop_reason == BUDGET and len(result.losses) == 6


def test_adaptive_budget_runs_past_the_initial_budget_when_handles_stall():
    s = scene(strength=0.7)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, ((10.0, 64.0),), ((120.0, 64.0),))
    settings = replace(AdaptiveDragSettings(), initial_budget=6, max_budget=9, learning_rate=1e-5)  # too small to move
    result = adaptivedrag.optimise(s.denoiser, s.inversion, spec, s.cond, settings, superpixels=slic_of_scene(spec))
    assert result.stop_reason == BUDGET and len(result.losses) == 9
