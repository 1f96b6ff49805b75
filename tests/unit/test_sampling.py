import pytest
import torch

from dragkit.core.attention import MutualSelfAttention, RecordedReference
from dragkit.core.denoiser import GuidedDenoiser
from dragkit.core.sampling import mutual_attention_sample, reference_guided_sample, sample
from dragkit.core.schedule import ddim_schedule
from harness.fakes import Cancelled, FakeDenoiser, cancel, sd15_alphas_cumprod

START_INDEX = 15  # strength 0.7 of 50 steps: t = 681


@pytest.fixture(scope="module")
def schedule():
    return ddim_schedule(sd15_alphas_cumprod(), 50)


# float64 throughout, so that equalities between differently batched runs hold to tight tolerances.
@pytest.fixture
def denoiser():
    return FakeDenoiser(dtype=torch.float64)


@pytest.fixture
def latents():
    """A reference and an edited latent, each [1, 4, 8, 8]."""
    return torch.randn(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64).unbind()


@pytest.fixture
def cond():
    return torch.randn(1, 3, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


def test_sample_denoises_through_the_timesteps_from_the_start_index_down(denoiser, schedule, latents, cond):
    sample(denoiser, latents[0], cond, schedule, START_INDEX)

    assert denoiser.predicted_timesteps == list(range(681, 0, -20))


@pytest.mark.parametrize("start_index", [-1, 50])
def test_sample_rejects_a_start_index_outside_the_schedule(denoiser, schedule, latents, cond, start_index):
    with pytest.raises(ValueError, match=r"start_index must be in \[0, 50\)"):
        sample(denoiser, latents[0], cond, schedule, start_index)


def test_mutual_attention_with_identical_branches_equals_plain_sampling(denoiser, schedule, latents, cond):
    latent = latents[0]

    shared = mutual_attention_sample(
        denoiser, latent, latent, cond, schedule, START_INDEX, MutualSelfAttention(schedule.timesteps)
    )

    torch.testing.assert_close(shared, sample(denoiser, latent, cond, schedule, START_INDEX))


def test_under_cfg_identical_branches_equal_plain_guided_sampling(denoiser, schedule, latents, cond):
    uncond = torch.randn(1, 3, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    guided = GuidedDenoiser(denoiser, uncond, scale=3.0)
    latent = latents[0]

    shared = mutual_attention_sample(
        guided, latent, latent, cond, schedule, START_INDEX, MutualSelfAttention(schedule.timesteps)
    )

    torch.testing.assert_close(shared, sample(guided, latent, cond, schedule, START_INDEX))


def test_a_policy_that_edits_no_layer_returns_the_edited_branch_denoised_on_its_own(
    denoiser, schedule, latents, cond
):
    reference, edited = latents
    policy = MutualSelfAttention(schedule.timesteps, layers=())

    result = mutual_attention_sample(denoiser, reference, edited, cond, schedule, START_INDEX, policy)

    torch.testing.assert_close(result, sample(denoiser, edited, cond, schedule, START_INDEX))


def test_mutual_attention_changes_the_edited_branch_when_branches_differ(denoiser, schedule, latents, cond):
    reference, edited = latents

    shared = mutual_attention_sample(
        denoiser, reference, edited, cond, schedule, START_INDEX, MutualSelfAttention(schedule.timesteps)
    )

    assert shared.shape == edited.shape
    assert not torch.allclose(shared, sample(denoiser, edited, cond, schedule, START_INDEX), atol=1e-3)


def test_mutual_attention_touches_only_the_chosen_layers_at_the_chosen_steps_once_per_step(
    denoiser, schedule, latents, cond
):
    policy = MutualSelfAttention(schedule.timesteps, first_step=START_INDEX + 7, layers=[10, 13, 15])

    mutual_attention_sample(denoiser, *latents, cond, schedule, START_INDEX, policy)

    steps = range(START_INDEX + 7, len(schedule.timesteps))
    assert policy.edited == {(step, layer): 1 for step in steps for layer in (10, 13, 15)}


def test_a_recorded_reference_gives_the_pair_result_and_a_second_edit_passes_the_edited_row_alone(
    denoiser, schedule, latents, cond
):
    reference, edited = latents
    policy = MutualSelfAttention(schedule.timesteps, first_step=START_INDEX + 3, layers=[10, 13, 15])
    pair = mutual_attention_sample(denoiser, reference, edited, cond, schedule, START_INDEX, policy)
    recorded = RecordedReference(MutualSelfAttention(schedule.timesteps, first_step=START_INDEX + 3, layers=[10, 13, 15]))
    progress = []

    first = mutual_attention_sample(denoiser, reference, edited, cond, schedule, START_INDEX, recorded,
                                    on_step=lambda *report: progress.append(report))
    steps = len(schedule.timesteps) - START_INDEX
    assert progress == [(done, steps) for done in range(1, steps + 1)]
    assert torch.equal(first, pair)  # the first run is the pair batch, recording as it goes
    assert len(recorded.recorded) == (steps - 3) * 3  # keys and values where the policy shares, only

    other = edited.flip(-1)  # a re-drag: another edited latent, the same reference
    denoiser.predicted_timesteps.clear()
    again = mutual_attention_sample(denoiser, reference, other, cond, schedule, START_INDEX, recorded)
    assert len(denoiser.predicted_timesteps) == steps  # the edited row's passes only
    expected = mutual_attention_sample(denoiser, reference, other, cond, schedule, START_INDEX, policy)
    torch.testing.assert_close(again, expected, rtol=1e-12, atol=1e-12)


def test_mutual_attention_rejects_latents_that_are_not_one_latent_each(denoiser, schedule, latents, cond):
    reference, edited = latents
    with pytest.raises(ValueError, match="must both be one latent of the same shape"):
        mutual_attention_sample(
            denoiser, reference.expand(2, -1, -1, -1), edited.expand(2, -1, -1, -1), cond,
            schedule, START_INDEX, MutualSelfAttention(schedule.timesteps),
        )


def test_sample_reports_each_step_done(denoiser, schedule, latents, cond):
    reports = []
    sample(denoiser, latents[0], cond, schedule, 45, on_step=lambda done, total: reports.append((done, total)))

    assert reports == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_an_exception_from_on_step_aborts_sampling_and_removes_the_hook(denoiser, schedule, latents, cond):
    with pytest.raises(Cancelled):
        mutual_attention_sample(
            denoiser, *latents, cond, schedule, START_INDEX, MutualSelfAttention(schedule.timesteps), on_step=cancel
        )

    assert len(denoiser.predicted_timesteps) == 1
    assert denoiser.active_hook is None


# --- EasyDrag's reference-guided sampling (easydrag.md §4.9, §10.9) ----------------------------


def decoder_sharing(schedule):
    return MutualSelfAttention(schedule.timesteps, layers=None, places=("up",))


@pytest.fixture
def stored(schedule, latents, cond):
    """An inversion by a denoiser whose ε ignores x, so that DDIM retraces it exactly downward."""
    from dragkit.core.inversion import invert

    return invert(FakeDenoiser(depends_on_x=False, dtype=torch.float64), latents[0], cond, schedule, 0.7)


def test_guidance_weight_zero_is_plain_sampling_and_four_is_not(denoiser, schedule, latents, cond, stored):
    plain = sample(denoiser, latents[1], cond, schedule, START_INDEX)
    out = reference_guided_sample(denoiser, latents[1], stored, cond, START_INDEX, decoder_sharing(schedule), weight=0.0)
    torch.testing.assert_close(out, plain)
    out = reference_guided_sample(denoiser, latents[1], stored, cond, START_INDEX, decoder_sharing(schedule), weight=4.0)
    assert (out - plain).abs().max() > 1e-3


def test_weight_one_on_same_level_latents_is_mutual_attention_with_the_stored_reference(schedule, latents, cond, stored):
    """With ε independent of x, re-denoising the reference retraces the stored inversion, so the
    two samplers see the same reference rows."""
    denoiser = FakeDenoiser(depends_on_x=False, dtype=torch.float64)
    policy = decoder_sharing(schedule)
    guided = reference_guided_sample(denoiser, latents[1], stored, cond, START_INDEX, policy, weight=1.0,
                                     reference_from=50, timestep_consistent=True)
    shared = mutual_attention_sample(denoiser, stored.latent, latents[1], cond, schedule, START_INDEX, decoder_sharing(schedule))
    torch.testing.assert_close(guided, shared)


def test_identical_branches_leave_the_result_unchanged(schedule, cond, stored):
    denoiser = FakeDenoiser(depends_on_x=False, dtype=torch.float64)
    out = reference_guided_sample(denoiser, stored.latent, stored, cond, START_INDEX, decoder_sharing(schedule),
                                  weight=4.0, reference_from=50, timestep_consistent=True)
    torch.testing.assert_close(out, sample(denoiser, stored.latent, cond, schedule, START_INDEX))


@pytest.mark.parametrize("consistent", [False, True])
def test_guided_steps_are_the_last_ones_and_read_the_chosen_stored_latent(denoiser, schedule, latents, cond, stored, consistent, monkeypatch):
    calls = []
    predict = denoiser.predict
    monkeypatch.setattr(denoiser, "predict", lambda x, t, *a, **k: calls.append((t, x)) or predict(x, t, *a, **k))
    reference_guided_sample(denoiser, latents[1], stored, cond, START_INDEX, decoder_sharing(schedule), reference_from=20,
                            timestep_consistent=consistent)
    pairs = [(t, x) for t, x in calls if x.shape[0] == 2]
    assert len(calls) == 35 + 20  # one plain pass per step, one pair pass on the last 20
    assert [t for t, _ in pairs] == list(range(381, 0, -20))  # ascending index i < 20
    for t, x in pairs:
        i = (t - 1) // 20
        torch.testing.assert_close(x[:1], stored.trajectory[i + 1 if consistent else i])
        assert (stored.latent_at(stored.timesteps.index(t)) is stored.trajectory[i + 1])  # L[i+1] is at level t


@pytest.mark.parametrize("consistent", [False, True])
def test_reference_guidance_from_a_recording_gives_the_pair_result_and_a_redrag_skips_the_stored_latents(
    denoiser, schedule, latents, cond, stored, consistent
):
    options = dict(reference_from=20, timestep_consistent=consistent)
    recorded = RecordedReference(decoder_sharing(schedule))
    rows = []
    predict = denoiser.predict
    denoiser.predict = lambda x, *a, **k: rows.append(x.shape[0]) or predict(x, *a, **k)
    for edited in (latents[1], latents[1].flip(-1)):  # an edit, then a re-drag of the same inversion
        pair = reference_guided_sample(denoiser, edited, stored, cond, START_INDEX, decoder_sharing(schedule), **options)
        rows.clear()
        out = reference_guided_sample(denoiser, edited, stored, cond, START_INDEX, recorded,
                                      **options)
        torch.testing.assert_close(out, pair, rtol=1e-12, atol=1e-12)
        # 35 plain passes and 20 guided ones; the first run's guided passes carry the stored latent too
        assert len(rows) == 35 + 20 and sum(rows) == 35 + 20 + (20 if edited is latents[1] else 0)
