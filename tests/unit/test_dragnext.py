"""DragNeXt's Latent Region Optimization and PBSI on the synthetic denoiser (reference/dragnext.md
§1.3, §2, §3; tests §8.6 and 8.8–8.15)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from harness.synthetic import IMAGE_SIZE, change_inside_and_outside, one_thread, scene
from test_gooddrag import counting

from dragkit.core.drag import DragSpec, Region
from dragkit.core.methods import BUDGET, REACHED, dragnext
from dragkit.core.methods.dragnext import DragNeXtSettings, region_loss
from dragkit.core.motion import FeatureGrid, FeatureProbe, keep_mask, outside_mask_loss
from dragkit.core.regions import RegionMotion

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

HANDLE, TARGET = (48.0, 64.0), (72.0, 64.0)  # 24 image pixels right = 12 grid pixels
PBSI_TIMESTEPS = [741, 721, 701, 681, 661]  # §3.3


def square(x0, y0, side=16):
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def region_spec(kind="translate", handle=HANDLE, target=TARGET, center=None, mask=None):
    return DragSpec(IMAGE_SIZE, IMAGE_SIZE, (handle,), (target,), mask=mask,
                    regions=(Region(0, kind, square(40, 56), center),))


def test_defaults_follow_the_spec_and_code_parity_adds_the_point_phase():
    d = DragNeXtSettings()  # §4, §9
    assert (d.learning_rate, d.iterations, d.pbsi_timesteps, d.ramp_timesteps) == (0.02, 10, 5, 3)
    assert (d.feature_block, d.feature_scale, d.feature_weight, d.mask_weight, d.angle_step) == (2, 0.5, 10.0, 0.2, 2.0)
    assert d.eta_mode == "code" and d.point_timesteps == 0 and not d.mask_term_per_region
    code = DragNeXtSettings.code()
    assert code.point_timesteps == 3 and code.mask_term_per_region
    points = code.point_settings()  # §3.5: r1 4, r2 12, β 4, 3 steps a track, 10 tracks, at lr 0.02 and λ 0.2
    assert (points.patch_radius, points.track_radius, points.step, points.steps_per_track) == (4, 12, 4.0, 3)
    assert (points.tracks_per_timestep, points.learning_rate, points.mask_weight) == (10, 0.02, 0.2)


def test_the_code_schedule_ramps_to_one_over_three_timesteps_and_holds():
    s = DragNeXtSettings()
    etas = [s.eta(i, k) for i in range(5) for k in range(10)]
    assert etas == sorted(etas)
    assert etas[0] == pytest.approx(1 / 30)
    assert s.eta(2, 9) == 1.0 and set(etas[30:]) == {1.0} and s.eta(2, 8) < 1.0


def test_the_paper_schedule_is_eq_5_as_printed_and_final_is_the_ablation():
    paper = replace(DragNeXtSettings(), eta_mode="paper")
    assert paper.eta(0, 9) == pytest.approx(0.15)  # t = 38, k = 9 (§8.6)
    assert paper.eta(4, 9) == pytest.approx(49 / 60)  # never reaches the target (§1.3)
    assert replace(DragNeXtSettings(), eta_mode="final").eta(0, 0) == 1.0


def test_the_region_term_sees_only_the_target_pixels_and_their_sources():
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(1, 6, 20, 30, generator=generator)
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[4:9, 5:12] = True
    warp = RegionMotion("translate", mask, (6.0, 8.0), (9.0, 20.0)).warp_at(1.0)
    features = reference.clone()
    flat = features[0].flatten(1)
    flat[:, warp.target] = reference[0].flatten(1)[:, warp.source]
    assert region_loss(features, reference, warp, 10.0) == 0  # F1 equals the warped F0 on ρ (§8.8)
    elsewhere = features.clone()
    elsewhere[..., 15:, :] += 5  # F1 outside ρ
    changed_reference = reference.clone()
    changed_reference[..., 15:, :] -= 5  # F0 outside ϑ
    assert region_loss(elsewhere, changed_reference, warp, 10.0) == 0
    features[0, 0, 8, 18] += 1.0  # a target pixel: ρ is rows 7–11, columns 17–23
    assert region_loss(features, reference, warp, 10.0) == pytest.approx(10.0 / (6 * warp.target.numel()))


def test_the_mask_term_is_zero_on_the_reference_and_has_no_gradient_inside_the_editable_area():
    mask = square(40, 40, 48)
    keep = keep_mask(mask, FeatureGrid.scaled(IMAGE_SIZE, IMAGE_SIZE, 0.5), (16, 16))
    reference = torch.randn(1, 4, 16, 16)
    z = reference.clone().requires_grad_(True)
    assert outside_mask_loss(z, reference, keep, 0.2) == 0
    moved = (reference + 1).requires_grad_(True)
    outside_mask_loss(moved, reference, keep, 0.2).backward()
    assert (moved.grad[..., 5:11, 5:11] == 0).all() and moved.grad.abs().sum() > 0  # §8.9


def test_the_region_gradient_stays_within_the_receptive_field_of_the_target():
    """§8.10: the synthetic features are a 3×3 convolution of the latent, resized to the grid."""
    s = scene(strength=0.75)
    grid = FeatureGrid.scaled(IMAGE_SIZE, IMAGE_SIZE, 0.5)
    probe = FeatureProbe(s.denoiser, s.inversion.schedule, s.cond, 2, grid)
    mask = torch.zeros(grid.size, dtype=torch.bool)
    mask[28:36, 20:28] = True
    warp = RegionMotion("translate", mask, (32.0, 24.0), (32.0, 40.0)).warp_at(1.0)
    z = s.inversion.latent.detach().clone().requires_grad_(True)
    t = s.inversion.timesteps[0]
    with torch.no_grad():
        reference = probe(s.inversion.latent, t).features
    region_loss(probe(z, t).features, reference + 0.1, warp, 10.0).backward()
    target = warp.target_mask(grid.size).float()[None, None]
    # grid → latent (4 grid pixels a latent pixel, bilinear reach one more), then the 3×3 kernel
    reach = F.max_pool2d(F.max_pool2d(target, 4), 5, stride=1, padding=2)[0, 0] > 0
    gradient = z.grad[0].abs().sum(dim=0)
    assert (gradient[~reach] == 0).all() and (gradient[reach] > 0).any()


def test_the_objective_falls_within_a_timestep():
    s = scene(strength=0.75)
    settings = replace(DragNeXtSettings(), eta_mode="final", pbsi_timesteps=1)  # a fixed target (§8.11)
    result = dragnext.optimise(s.denoiser, s.inversion, region_spec(), s.cond, settings)
    assert len(result.losses) == 10
    assert result.losses[-1] < 0.9 * result.losses[0]


def test_pbsi_runs_at_the_five_timesteps_with_a_fresh_adam_each_and_sampling_goes_on_at_641():
    s = scene(strength=0.75)
    adams = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim, "Adam", counting(torch.optim.Adam, adams))
        result = dragnext.optimise(s.denoiser, s.inversion, region_spec(), s.cond)
    assert list(s.inversion.timesteps[:5]) == PBSI_TIMESTEPS  # the inversion ends at 741 (§8.13)
    assert len(adams) == 5
    # a reference pass, K = 10 passes with gradients and the denoising pass per timestep; at 741
    # η·12 px is 0.4 and 0.8 px at k = 0, 1: truncated to no shift, those iterations are skipped
    expected = [741] * 10 + [t for t in PBSI_TIMESTEPS[1:] for t in [t] * 12]
    assert s.denoiser.predicted_timesteps == expected
    assert s.inversion.schedule.timesteps[result.index] == 641  # mutual attention from here (§3.4)
    assert result.stop_reason == REACHED and len(result.losses) == 48


def test_each_timestep_starts_with_an_empty_optimiser_state():
    s = scene(strength=0.75)
    states = []

    class Recording(torch.optim.Adam):
        def step(self, closure=None):
            states.append(len(self.state))
            return super().step(closure)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim, "Adam", Recording)
        dragnext.optimise(s.denoiser, s.inversion, region_spec(), s.cond, replace(DragNeXtSettings(), eta_mode="final"))
    assert [states[i] for i in range(0, 50, 10)] == [0] * 5  # §8.12
    assert all(state == 1 for i, state in enumerate(states) if i % 10)


def test_a_zero_drag_changes_nothing():
    s = scene(strength=0.75)
    spec = region_spec(target=HANDLE)  # every offset is zero: every iteration is skipped (§8.14)
    result = dragnext.optimise(s.denoiser, s.inversion, spec, s.cond)
    assert result.losses == ()
    assert torch.equal(result.latent, result.reference_latent)


def test_the_handle_region_moves_to_its_target_in_feature_space():
    s = scene(strength=0.75)
    reports = []
    result = dragnext.optimise(s.denoiser, s.inversion, region_spec(), s.cond,
                               on_step=lambda *report, **extra: reports.append((report, extra)))
    (error,) = result.region_errors
    assert error.pair == 1 and error.after < 0.5 * error.before
    assert result.handles[0] == pytest.approx(TARGET)
    assert [r[0][1] for r in reports] == [50] * 50
    assert reports[0][1]["regions"].sum() == 0  # nothing to move yet at η = 1/30
    first, last = reports[2][1]["regions"], reports[-1][1]["regions"]  # the previewed target region moves
    assert first.nonzero()[:, 1].float().mean() < last.nonzero()[:, 1].float().mean()


@pytest.mark.parametrize("kind, center", [("rotate", (48.0, 48.0)), ("deform", None)])
def test_rotations_and_deformations_run_and_lower_the_region_error(kind, center):
    s = scene(strength=0.75)
    # rotate: the handle is below the centre and the target right of it, a quarter turn
    spec = region_spec(kind, target=(64.0, 48.0) if kind == "rotate" else TARGET, center=center)
    result = dragnext.optimise(s.denoiser, s.inversion, spec, s.cond)
    (error,) = result.region_errors
    assert error.pair == 1 and error.after < error.before
    assert torch.isfinite(result.latent).all()


def test_with_a_strong_mask_term_the_latent_outside_the_editable_area_stays_put():
    s = scene(strength=0.75)
    editable = square(32, 48, 56)  # around the region and its target
    spec = region_spec(mask=editable)
    strong = replace(DragNeXtSettings(), mask_weight=1e3)
    result = dragnext.optimise(s.denoiser, s.inversion, spec, s.cond, strong)
    inside, outside = change_inside_and_outside(result.latent, result.reference_latent, editable)
    assert outside < 0.2 * inside  # §8.15


def test_the_paper_schedule_stops_short_and_says_so():
    s = scene(strength=0.75)
    result = dragnext.optimise(s.denoiser, s.inversion, region_spec(), s.cond,
                               replace(DragNeXtSettings(), eta_mode="paper"))
    assert result.stop_reason == BUDGET
    assert result.handles[0][0] < TARGET[0]


def test_code_parity_runs_the_point_phase_first():
    s = scene(strength=0.75)
    result = dragnext.optimise(s.denoiser, s.inversion, region_spec(), s.cond, DragNeXtSettings.code())
    assert len(result.losses) > 50  # GoodDrag steps at the first three timesteps, then the 50 region steps
    assert torch.isfinite(result.latent).all()
