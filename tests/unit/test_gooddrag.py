"""GoodDrag's AlDD optimiser on the synthetic denoiser (reference/gooddrag.md §3.4–3.9)."""

from collections import Counter
from dataclasses import replace

import pytest
import torch
from harness.fakes import Cancelled
from harness.synthetic import IMAGE_SIZE, band_mask, change_inside_and_outside, one_thread, scene

from dragkit.core.drag import DragSpec
from dragkit.core.methods import BUDGET, REACHED, STALLED, gooddrag
from dragkit.core.methods.gooddrag import GoodDragSettings
from dragkit.core.motion import FeatureGrid, distances

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

DRAG = ((40.0, 64.0),), ((72.0, 64.0),)  # 32 image pixels to the right = 16 grid pixels
FAR_DRAG = ((20.0, 64.0),), ((108.0, 64.0),)
DRAG_TIMESTEPS = [741, 721, 701, 681, 661, 641, 621]  # gooddrag.md §3.6


def spec(drag=DRAG, mask=None):
    return DragSpec(IMAGE_SIZE, IMAGE_SIZE, *drag, mask=mask)


def test_defaults_are_the_official_ui_values():
    # gooddrag.md §4 (hyper-parameter table, UI column) and §3.6–3.9.
    settings = GoodDragSettings()
    assert settings.learning_rate == 0.02
    assert settings.drag_timesteps == 7
    assert settings.tracks_per_timestep == 10
    assert settings.steps_per_track == 3
    assert settings.feature_block == 2  # the code's index 3 = up_blocks[2] output (§3.5)
    assert settings.feature_scale == 0.5
    assert settings.patch_radius == 4
    assert settings.step == 4.0 and settings.clamp_step
    assert settings.track_radius == 12
    assert settings.reach_distance == 2.0
    assert settings.mask_weight == 0.2
    assert settings.max_unchanged_tracks == 10
    assert settings.retrack_each_timestep and not settings.track_after_update
    assert settings.motion_rule().scale == 64  # (2·r1)², not 81 (§3.7)


def test_benchmark_and_paper_presets():
    bench = GoodDragSettings.benchmark()  # bench_gooddrag.py (§4, §7.15)
    assert (bench.mask_weight, bench.max_unchanged_tracks) == (0.1, 5)
    paper = GoodDragSettings.paper()  # §8, "paper mode"
    assert (paper.feature_block, paper.feature_scale) == (3, 1.0)
    assert not paper.clamp_step and paper.motion_rule().scale is None
    assert paper.max_unchanged_tracks is None
    assert not paper.retrack_each_timestep and paper.track_after_update
    shared = (paper.learning_rate, paper.patch_radius, paper.track_radius, paper.step, paper.mask_weight)
    assert shared == (0.02, 4, 12, 4.0, 0.2)


def test_handles_reach_their_targets_and_the_loss_falls_within_every_drag_operation():
    s = scene(strength=0.75)
    reports = []
    result = gooddrag.optimise(s.denoiser, s.inversion, spec(), s.cond, on_step=lambda *report: reports.append(report))
    grid = FeatureGrid.scaled(IMAGE_SIZE, IMAGE_SIZE, 0.5)
    assert result.stop_reason == REACHED
    assert distances(grid.to_grid(result.handles), grid.to_grid(DRAG[1])).item() < 2.0
    assert reports[-1][2] == result.handles and {r[1] for r in reports} == {210}
    # Within one drag operation the handles and the reference stay fixed, so each of its J = 3
    # steps descends one objective (§9.9).
    losses = result.losses
    for first in range(0, len(losses) - 2, 3):
        assert losses[first] > losses[first + 1] > losses[first + 2]
    assert losses[-1] < losses[0]


def test_drags_at_the_first_seven_timesteps_with_one_reference_pass_each():
    s = scene(strength=0.75)
    adams = []
    unmoving = replace(GoodDragSettings(), learning_rate=0.0, max_unchanged_tracks=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim, "Adam", counting(torch.optim.Adam, adams))
        result = gooddrag.optimise(s.denoiser, s.inversion, spec(FAR_DRAG), s.cond, unmoving)
    assert s.inversion.timesteps[:7] == tuple(DRAG_TIMESTEPS)
    assert len(result.losses) == 7 * 10 * 3 and result.stop_reason == BUDGET
    # Per drag timestep: the reference pass, 30 gradient steps, the edited latent's denoising step.
    assert Counter(s.denoiser.predicted_timesteps) == {t: 1 + 30 + 1 for t in DRAG_TIMESTEPS}
    assert len(adams) == 7  # a fresh Adam at every drag timestep
    assert result.index == s.inversion.start_index + 7  # sampling continues at t = 601
    assert s.inversion.schedule.timesteps[result.index] == 601


def counting(optimiser_class, created):
    class Counted(optimiser_class):
        def __init__(self, *args, **kwargs):
            created.append(self)
            super().__init__(*args, **kwargs)

    return Counted


def test_tracking_after_the_update_costs_one_pass_per_tracking():
    s = scene(strength=0.75)
    settings = replace(
        GoodDragSettings(), learning_rate=0.0, max_unchanged_tracks=None, drag_timesteps=1, track_after_update=True
    )
    gooddrag.optimise(s.denoiser, s.inversion, spec(FAR_DRAG), s.cond, settings)
    assert len(s.denoiser.predicted_timesteps) == 1 + 30 + 10 + 1


def test_no_progress_stops_after_the_configured_number_of_unchanged_trackings():
    s = scene(strength=0.75)
    settings = replace(GoodDragSettings(), learning_rate=0.0, max_unchanged_tracks=2)
    result = gooddrag.optimise(s.denoiser, s.inversion, spec(FAR_DRAG), s.cond, settings)
    assert result.stop_reason == STALLED
    assert len(result.losses) == 2 * 3
    assert result.index == s.inversion.start_index + 1  # the timestep it stopped at is still denoised


def test_a_no_progress_stop_at_a_timesteps_last_tracking_ends_the_drag_there():
    """The official loop checks the counter before each timestep's drag (pipeline.py `good_drag`): when
    the 10th unchanged tracking is a timestep's last, the next timestep is neither re-tracked nor
    dragged, and mutual attention starts there."""
    s = scene(strength=0.75)
    settings = replace(GoodDragSettings(), learning_rate=0.0)  # nothing moves: every tracking is unchanged
    result = gooddrag.optimise(s.denoiser, s.inversion, spec(FAR_DRAG), s.cond, settings)
    assert result.stop_reason == STALLED and len(result.losses) == 10 * 3
    assert result.index == s.inversion.start_index + 1
    assert 721 not in s.denoiser.predicted_timesteps


def test_zero_length_drag_leaves_the_latent_equal_to_the_reference():
    s = scene(strength=0.75)
    result = gooddrag.optimise(s.denoiser, s.inversion, spec((((40.0, 64.0),), ((40.0, 64.0),))), s.cond)
    assert result.losses == () and result.stop_reason == REACHED
    assert result.index == s.inversion.start_index + 1
    assert torch.equal(result.latent, result.reference_latent)
    expected = s.inversion.schedule.step(s.inversion.latent, s.denoiser.predict(s.inversion.latent, 741, s.cond).eps, 741)
    assert torch.equal(result.reference_latent, expected)


def test_outside_the_mask_changes_less_than_inside_and_less_than_without_the_term():
    s = scene(strength=0.75)
    masked = spec(mask=band_mask())
    dragged = gooddrag.optimise(s.denoiser, s.inversion, masked, s.cond)
    unmasked = gooddrag.optimise(s.denoiser, s.inversion, masked, s.cond, replace(GoodDragSettings(), mask_weight=0.0))
    inside, outside = change_inside_and_outside(dragged.latent, dragged.reference_latent, band_mask())
    assert outside < inside / 5
    assert outside < change_inside_and_outside(unmasked.latent, unmasked.reference_latent, band_mask())[1] / 1.5


def test_an_exception_from_on_step_stops_the_optimisation():
    s = scene(strength=0.75)
    calls = []

    def cancel_at_fifth(iteration, total, handles):
        calls.append(iteration)
        if iteration == 5:
            raise Cancelled

    with pytest.raises(Cancelled):
        gooddrag.optimise(s.denoiser, s.inversion, spec(), s.cond, on_step=cancel_at_fifth)
    assert calls == [1, 2, 3, 4, 5]
    assert len(s.denoiser.predicted_timesteps) == 1 + 5  # the reference pass and five steps
