"""EasyDrag's optimiser (reference/easydrag.md §4.3–4.8, tests of §10) on stub features and the
synthetic denoiser."""

from dataclasses import replace

import pytest
import torch
from harness.synthetic import IMAGE_SIZE, band_mask, change_inside_and_outside, one_thread, scene

from dragkit.core.drag import DragSpec
from dragkit.core.methods import REACHED, easydrag
from dragkit.core.methods.easydrag import (
    EasyDragSettings,
    auto_keep,
    background_loss,
    next_points,
    point_loss,
    track,
)

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

DRAG = ((40.0, 64.0),), ((72.0, 64.0),)  # 32 image pixels to the right


def grid_points(*points):
    return torch.tensor(points, dtype=torch.float32)


# --- next point (§4.4, §10.3) -------------------------------------------------------------------


def test_next_point_jumps_k_pixels_along_the_line_then_snaps_to_the_target():
    targets = grid_points((0, 40), (30, 40), (10, 10), (5, 5))
    handles = grid_points((0, 0), (0, 0), (10, 27), (5, 5))
    nexts = next_points(handles, targets, step=12, snap_distance=18)
    # 40 px away: 12 px along; (30, 40) is 50 away: round(12·(0.6, 0.8)) = (7, 10); 17 px away: snap; on target: itself.
    assert nexts.tolist() == [[0, 12], [7, 10], [10, 10], [5, 5]]
    assert torch.isfinite(nexts).all()


def test_the_paper_snaps_at_k_not_18():
    handles, targets = grid_points((0, 0)), grid_points((0, 15))
    assert next_points(handles, targets, 12, EasyDragSettings().snap_distance).tolist() == [[0, 15]]
    assert next_points(handles, targets, 12, EasyDragSettings.paper().snap_distance).tolist() == [[0, 12]]


# --- tracking (§4.5, §10.4) ---------------------------------------------------------------------


def features_with(vectors: dict) -> torch.Tensor:
    """A [1, 3, 4, 4] map of unit-ish vectors (1, 0, 0) except where given."""
    features = torch.zeros(1, 3, 4, 4)
    features[0, 0] = 1
    for (row, col), vector in vectors.items():
        features[0, :, row, col] = torch.tensor(vector, dtype=torch.float32)
    return features


@pytest.mark.parametrize("there, moves", [
    ((0.0, 1.0, 0.0), True),  # cosine 1 with the anchor, against the handle's 0.71
    ((1.0, 1.0, 0.0), False),  # equal: no move (strict)
    ((0.0, 0.0, 1.0), False),  # less similar
])
def test_a_handle_jumps_only_to_a_strictly_more_similar_point(there, moves):
    anchor = torch.tensor([[0.0, 1.0, 0.0]])
    handle, nxt = grid_points((0, 0)), grid_points((0, 3))
    features = features_with({(0, 0): (1.0, 1.0, 0.0), (0, 3): there})
    assert track(features, handle, nxt, anchor).tolist() == (nxt if moves else handle).tolist()


# --- losses (§4.4, §4.7, §10.5) -----------------------------------------------------------------


def test_point_loss_is_half_for_identical_one_for_opposite_and_down_weighted_on_target():
    anchors = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    features = features_with({(0, 1): (-1.0, 0.0, 0.0)}).requires_grad_(True)
    handles, targets = grid_points((0, 0), (2, 2)), grid_points((0, 1), (3, 3))
    same = point_loss(features, handles, grid_points((0, 0), (2, 2)), targets, anchors[:1].expand(2, 3), 0.1)
    assert same.item() == pytest.approx(0.5 + 0.5)
    opposite = point_loss(features, handles[:1], grid_points((0, 1)), targets[:1], anchors[:1], 0.1)
    assert opposite.item() == pytest.approx(1.0)
    on_target = point_loss(features, targets[:1], grid_points((0, 1)), targets[:1], anchors[:1], 0.1)
    assert on_target.item() == pytest.approx(0.1)
    anchors.requires_grad_(True)
    between = features_with({(0, 1): (1.0, 1.0, 0.0)}).requires_grad_(True)  # not at cosine ±1, where its slope is 0
    point_loss(between, handles[:1], grid_points((0, 1)), targets[:1], anchors[:1], 0.1).backward()
    features = between
    assert features.grad.abs().sum() > 0 and anchors.grad is None  # F⁰ is a constant


def test_background_term_averages_over_the_kept_pixels_only():
    original = features_with({})
    features = features_with({(0, 0): (-1.0, 0.0, 0.0)})
    keep = torch.zeros(1, 1, 4, 4)
    keep[0, 0, 1:, :] = 1  # the changed pixel (0, 0) is editable
    assert background_loss(features, original, keep, 0.1).item() == pytest.approx(0.1 / 2)
    keep[0, 0, 0, 0] = 1  # now 1 of 13 kept pixels is opposite: S = (11/13 + 1)/2
    assert background_loss(features, original, keep, 0.1).item() == pytest.approx(0.1 / (1 + (11 / 13 + 1) / 2))
    assert background_loss(features, original, torch.zeros(1, 1, 4, 4), 0.1).item() == 0


# --- automatic mask (§4.6, §10.6) ---------------------------------------------------------------


def test_auto_mask_thresholds_the_normalised_absolute_channel_mean_and_upsamples():
    gradient = torch.zeros(1, 4, 2, 2)
    gradient[0, :, 0, 0] = 1.0  # mean 1: the maximum
    gradient[0, :, 0, 1] = torch.tensor([1.0, -1.0, 1.0, -1.0])  # large entries, mean 0: kept
    gradient[0, :, 1, 0] = -0.5  # |mean| 0.5 > 100/255: editable
    gradient[0, :, 1, 1] = 0.3  # 0.3 < 0.392: kept
    keep = auto_keep(gradient, (4, 4), 100 / 255)
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(keep[0, 0], expected)
    assert torch.equal(auto_keep(torch.ones(1, 4, 2, 2), (4, 4), 100 / 255), torch.ones(1, 1, 4, 4))  # constant: keep all


# --- the loop (§4.8, §10.10) --------------------------------------------------------------------


def test_handles_reach_their_targets_and_the_loss_falls():
    s = scene(strength=0.7)
    reports = []
    settings = replace(EasyDragSettings(), max_iterations=100)  # the synthetic scene moves slower than SD
    result = easydrag.optimise(s.denoiser, s.inversion, DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG), s.cond, settings,
                               on_step=lambda *report: reports.append(report))
    assert result.stop_reason == REACHED and result.handles == DRAG[1]
    assert result.index == s.inversion.start_index == 15  # t = 681
    assert sum(result.losses[-5:]) < sum(result.losses[:5])
    assert [r[0] for r in reports] == list(range(1, len(result.losses) + 1))
    xs = [r[2][0][0] for r in reports]
    assert xs == sorted(xs) and set(xs) <= {40.0, 52.0, 64.0, 72.0}  # jumps of K = 12, then the snap


def test_a_zero_length_drag_changes_nothing():
    s = scene(strength=0.7)
    result = easydrag.optimise(s.denoiser, s.inversion, DragSpec(IMAGE_SIZE, IMAGE_SIZE, DRAG[0], DRAG[0]), s.cond)
    assert result.stop_reason == REACHED and result.losses == ()
    assert torch.equal(result.latent, s.inversion.latent)


def test_the_plain_path_runs_the_unedited_latent_beside_the_edited_one_and_the_default_runs_it_once(monkeypatch):
    s = scene(strength=0.7)
    batches = []
    predict = s.denoiser.predict
    monkeypatch.setattr(s.denoiser, "predict", lambda x, *a, **k: batches.append(x.shape[0]) or predict(x, *a, **k))
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG)
    plain = replace(EasyDragSettings(), max_iterations=3, reuse_reference_pass=False)
    easydrag.optimise(s.denoiser, s.inversion, spec, s.cond, plain)
    assert batches == [1, 2, 2, 2]  # F⁰ alone, then [z⁰, z] per iteration, as the code
    for settings in (replace(plain, reuse_reference_pass=True), replace(EasyDragSettings.paper(), max_iterations=3)):
        batches.clear()
        easydrag.optimise(s.denoiser, s.inversion, spec, s.cond, settings)
        assert batches == [1, 1, 1, 1]  # F⁰ (recording z⁰'s keys and values), then z alone


def test_the_auto_mask_is_rebuilt_when_a_handle_moves_and_a_painted_mask_replaces_it(monkeypatch):
    s = scene(strength=0.7)
    built = []
    original = easydrag.auto_keep
    monkeypatch.setattr(easydrag, "auto_keep", lambda *a: built.append(a[0].clone()) or original(*a))
    reports = []
    settings = replace(EasyDragSettings(), max_iterations=100)
    result = easydrag.optimise(s.denoiser, s.inversion, DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG), s.cond, settings,
                               on_step=lambda *report: reports.append(report[2][0]))
    moves = sum(1 for before, after in zip(reports, reports[1:]) if before != after)
    assert len(built) == 1 + moves  # at the start and after each jump
    # The first mask: the neighbourhood of the first next point (row 64, col 52), where the point loss pulls.
    editable = (original(built[0], (IMAGE_SIZE, IMAGE_SIZE), 100 / 255)[0, 0] == 0).nonzero().float()
    assert len(editable) > 0
    assert ((editable - torch.tensor([64.0, 52.0])).abs().amax(dim=1) <= 24).all()

    built.clear()
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG, mask=band_mask())
    result = easydrag.optimise(s.denoiser, s.inversion, spec, s.cond, replace(settings, max_iterations=30))
    assert built == []
    inside, outside = change_inside_and_outside(result.latent, s.inversion.latent, band_mask())
    assert inside > outside


@pytest.mark.parametrize("step, snap", [(1.0, 18.0), (256.0, 18.0), (256.0, 256.0)])  # the node's range ends
def test_every_allowed_step_keeps_the_next_point_between_handle_and_target(step, snap):
    """A step longer than the way left (up to the node's maximum) lands on the target, never past it:
    on a small picture the point past it would leave the image."""
    handles = torch.tensor([[2.0, 60.0], [10.0, 10.0]])
    targets = torch.tensor([[2.0, 63.0], [40.0, 10.0]])  # near the edge of a 64-wide picture
    nexts = next_points(handles, targets, step, snap)
    for handle, target, point in zip(handles, targets, nexts):
        low, high = torch.minimum(handle, target), torch.maximum(handle, target)
        assert ((point >= low) & (point <= high)).all(), (step, snap, point)


def test_the_largest_step_runs_on_a_small_picture():
    s = scene(strength=0.7)
    settings = replace(EasyDragSettings(), max_iterations=5, step=256.0)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, ((100.0, 64.0),), ((126.0, 64.0),))  # 26 px from the right edge
    result = easydrag.optimise(s.denoiser, s.inversion, spec, s.cond, settings)
    assert all(0 <= x < IMAGE_SIZE and 0 <= y < IMAGE_SIZE for x, y in result.handles)
    assert torch.isfinite(result.latent).all()
