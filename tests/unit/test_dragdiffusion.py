"""DragDiffusion's optimiser on the synthetic denoiser (reference/dragdiffusion.md §3.4–3.7)."""

from dataclasses import replace

import pytest
import torch
from harness.fakes import Cancelled
from harness.synthetic import IMAGE_SIZE, band_mask, change_inside_and_outside, one_thread, scene

from dragkit.core.drag import DragSpec
from dragkit.core.methods import REACHED, dragdiffusion
from dragkit.core.methods.dragdiffusion import DragDiffusionSettings
from dragkit.core.motion import FeatureGrid, FeatureProbe, distances, keep_mask, motion_loss, outside_mask_loss

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

DRAG = ((40.0, 64.0),), ((72.0, 64.0),)  # 32 image pixels to the right = 16 grid pixels


def test_defaults_are_the_official_code_values():
    # dragdiffusion.md §4 (hyper-parameter table) and §3.4–3.6.
    settings = DragDiffusionSettings()
    assert settings.learning_rate == 0.01
    assert settings.max_iterations == 80
    assert settings.feature_block == 2  # unet_feature_idx = 3 over [mid, up0, up1, up2, up3]
    assert settings.feature_scale == 0.5
    assert settings.patch_radius == 1
    assert settings.step == 1.0
    assert settings.track_radius == 3
    assert settings.reach_distance == 2.0
    assert settings.mask_weight == 0.1
    assert settings.motion_rule().scale == 9  # (2·r1 + 1)² · channel-mean L1 (§3.5)
    assert not settings.sum_feature_loss
    assert DragDiffusionSettings.paper().motion_rule().scale is None  # the paper's channel-sum L1


def test_handles_reach_their_targets():
    s = scene(strength=0.7)
    reports = []
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG)
    result = dragdiffusion.optimise(s.denoiser, s.inversion, spec, s.cond, on_step=lambda *report: reports.append(report))
    grid = FeatureGrid.scaled(IMAGE_SIZE, IMAGE_SIZE, 0.5)
    assert result.stop_reason == REACHED
    assert distances(grid.to_grid(result.handles), grid.to_grid(DRAG[1])).item() < 2.0
    assert result.index == s.inversion.start_index == 15  # t = 681
    assert torch.equal(result.reference_latent, s.inversion.latent)
    assert [r[0] for r in reports] == list(range(1, len(result.losses) + 1))
    assert {r[1] for r in reports} == {80}
    assert reports[0][2] == DRAG[0]  # image pixels; the first step supervises the untracked handle


def test_each_gradient_step_lowers_the_objective_it_was_taken_on():
    s = scene(strength=0.7)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG, mask=band_mask())
    settings = DragDiffusionSettings()
    first = dragdiffusion.optimise(s.denoiser, s.inversion, spec, s.cond, replace(settings, max_iterations=1))
    # Iteration 0's objective (reference: unedited features and ẑ⁰_{t−1}), evaluated at the stepped latent.
    grid = FeatureGrid.scaled(IMAGE_SIZE, IMAGE_SIZE, 0.5)
    probe = FeatureProbe(s.denoiser, s.inversion.schedule, s.cond, settings.feature_block, grid)
    t = s.inversion.timesteps[0]
    before, after = probe(s.inversion.latent, t), probe(first.latent, t)
    handles, targets = grid.to_grid(DRAG[0]), grid.to_grid(DRAG[1])
    keep = keep_mask(band_mask(), grid, (16, 16))
    objective = motion_loss(after.features, handles, targets, settings.motion_rule(), before.features, handles)
    objective = objective + outside_mask_loss(after.previous, before.previous, keep, settings.mask_weight)
    assert objective.item() < first.losses[0]


def test_one_unet_pass_per_iteration_and_none_extra_for_the_references():
    s = scene(strength=0.7)
    result = dragdiffusion.optimise(s.denoiser, s.inversion, DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG), s.cond)
    # Every iteration makes one pass; the last one only tracks and finds the targets reached.
    assert s.denoiser.predicted_timesteps == [681] * (len(result.losses) + 1)


def test_zero_length_drag_leaves_the_latent_unchanged():
    s = scene(strength=0.7)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, ((40.0, 64.0),), ((40.0, 64.0),))
    result = dragdiffusion.optimise(s.denoiser, s.inversion, spec, s.cond)
    assert torch.equal(result.latent, s.inversion.latent)
    assert result.losses == () and result.stop_reason == REACHED


def test_outside_the_mask_changes_less_than_inside_and_less_than_without_the_term():
    s = scene(strength=0.7)
    spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG, mask=band_mask())
    masked = dragdiffusion.optimise(s.denoiser, s.inversion, spec, s.cond)
    without_term = replace(DragDiffusionSettings(), mask_weight=0.0)
    unmasked = dragdiffusion.optimise(s.denoiser, s.inversion, spec, s.cond, without_term)
    inside, outside = change_inside_and_outside(masked.latent, masked.reference_latent, band_mask())
    assert outside < inside / 5
    assert outside < change_inside_and_outside(unmasked.latent, unmasked.reference_latent, band_mask())[1] / 1.5


def test_an_exception_from_on_step_stops_the_optimisation():
    s = scene(strength=0.7)
    calls = []

    def cancel_at_third(iteration, total, handles):
        calls.append(iteration)
        if iteration == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        spec = DragSpec(IMAGE_SIZE, IMAGE_SIZE, *DRAG)
        dragdiffusion.optimise(s.denoiser, s.inversion, spec, s.cond, on_step=cancel_at_third)
    assert calls == [1, 2, 3]
    assert len(s.denoiser.predicted_timesteps) == 3
