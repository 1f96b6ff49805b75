import math

import pytest
import torch

from dragkit.core.inversion import invert
from dragkit.core.sampling import sample
from dragkit.core.schedule import ddim_schedule
from harness.fakes import Cancelled, FakeDenoiser, cancel, sd15_alphas_cumprod

STEPS = 50


@pytest.fixture(scope="module")
def schedule():
    return ddim_schedule(sd15_alphas_cumprod(), STEPS)


@pytest.fixture
def latent():
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def cond():
    return torch.randn(1, 3, 8, generator=torch.Generator().manual_seed(2))


def test_sd15_schedule_has_timesteps_981_down_to_1_in_strides_of_20(schedule):
    assert schedule.timesteps == tuple(range(981, 0, -20))


@pytest.mark.parametrize("strength, start_timestep", [(0.7, 681), (0.75, 741), (0.8, 781)])
def test_inversion_runs_round_strength_times_steps_and_ends_at_the_papers_timestep(
    schedule, latent, cond, strength, start_timestep
):
    denoiser = FakeDenoiser()
    inversion = invert(denoiser, latent, cond, schedule, strength)
    inverted_steps = round(strength * STEPS)

    assert inversion.timesteps[0] == start_timestep
    assert inversion.timesteps == schedule.timesteps[inversion.start_index :]
    assert len(inversion.timesteps) == inverted_steps
    # ε is evaluated at each destination level, from the lowest timestep up to the start one.
    assert denoiser.predicted_timesteps == list(range(1, start_timestep + 1, 20))


@pytest.mark.parametrize("strength", [0.7, 1.0])
def test_invert_then_sample_reconstructs_the_latent_when_eps_ignores_x(schedule, latent, cond, strength):
    denoiser = FakeDenoiser(depends_on_x=False)
    inversion = invert(denoiser, latent, cond, schedule, strength)
    reconstruction = sample(denoiser, inversion.latent, cond, schedule, inversion.start_index)

    assert not torch.allclose(inversion.latent, latent, atol=0.1)  # the inversion did move it
    torch.testing.assert_close(reconstruction, latent, rtol=0, atol=1e-4)


def test_trajectory_runs_from_the_source_up_to_the_inverted_latent_aligned_with_timesteps(
    schedule, latent, cond
):
    denoiser = FakeDenoiser(depends_on_x=False)
    inversion = invert(denoiser, latent, cond, schedule, 0.7)

    assert len(inversion.trajectory) == len(inversion.timesteps) + 1
    assert inversion.trajectory[0] is inversion.source is latent
    assert inversion.trajectory[-1] is inversion.latent is inversion.latent_at(0)
    # With an x-independent ε one DDIM step down from the level of timesteps[j] lands exactly on
    # the trajectory's entry for the next lower level, which is the source after the last step.
    levels_below = [inversion.latent_at(j) for j in range(1, len(inversion.timesteps))] + [latent]
    for j, t in enumerate(inversion.timesteps):
        stepped = schedule.step(inversion.latent_at(j), denoiser.eps_of_t(t, latent.shape), t)
        torch.testing.assert_close(stepped, levels_below[j], rtol=0, atol=1e-5)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.01, math.nan])
def test_strength_outside_0_to_1_is_rejected(schedule, latent, cond, strength):
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        invert(FakeDenoiser(), latent, cond, schedule, strength)


def test_strength_too_small_to_invert_a_step_is_rejected(schedule, latent, cond):
    with pytest.raises(ValueError, match="inverts no step"):
        invert(FakeDenoiser(), latent, cond, schedule, 0.005)


@pytest.mark.parametrize("steps", [0, -3])
def test_fewer_than_one_step_is_rejected(steps):
    with pytest.raises(ValueError, match="steps must be at least 1"):
        ddim_schedule(sd15_alphas_cumprod(), steps)


def test_on_step_reports_each_step_done(schedule, latent, cond):
    reports = []
    invert(FakeDenoiser(), latent, cond, schedule, 0.1, on_step=lambda done, total: reports.append((done, total)))

    assert reports == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_an_exception_from_on_step_aborts_the_inversion(schedule, latent, cond):
    denoiser = FakeDenoiser()
    with pytest.raises(Cancelled):
        invert(denoiser, latent, cond, schedule, 0.7, on_step=cancel)
    assert len(denoiser.predicted_timesteps) == 1


@pytest.mark.parametrize("damage, words", [
    (lambda a: a.index_fill(0, torch.tensor([500]), float("nan")), "non-finite values (first at t = 500)"),
    (lambda a: torch.cat([a[:10], a[10:11], a[10:]]), "not decreasing (first at t = 11)"),
    (lambda a: a * 2, "leaves (0, 1]"),
    (lambda a: a[:1], "has 1 values"),
])
def test_a_broken_noise_schedule_is_refused_naming_the_model(damage, words):
    with pytest.raises(ValueError) as refused:
        ddim_schedule(damage(sd15_alphas_cumprod()), 50)
    assert str(refused.value).startswith("model: its noise schedule") and words in str(refused.value), refused.value
