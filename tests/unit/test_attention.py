import pytest
import torch

from dragkit.core.attention import SD15_LAST_DECODER_LAYERS, MutualSelfAttention, RecordedReference
from dragkit.core.denoiser import AttentionCall
from harness.fakes import FakeDenoiser, plain_attention

HEADS = 2
TIMESTEPS = tuple(range(981, 0, -20))


def projections(batch, tokens=16, width=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, tokens, width, generator=generator) for _ in range(3))


def call(layer, step):
    return AttentionCall(layer=layer, place="up", heads=HEADS, t=TIMESTEPS[step])


def test_default_layers_are_the_self_attention_of_sd15_up_blocks_2_and_3():
    assert MutualSelfAttention(TIMESTEPS).layers == {10, 11, 12, 13, 14, 15} == SD15_LAST_DECODER_LAYERS


def test_identical_branches_get_plain_attention():
    q, k, v = (x.expand(2, -1, -1) for x in projections(batch=1))

    out = MutualSelfAttention(TIMESTEPS)(q, k, v, call(layer=10, step=0))

    torch.testing.assert_close(out, plain_attention(q, k, v, HEADS))


@pytest.mark.parametrize("batch", [2, 4])  # [reference, edited]; with CFG [uncond pair, cond pair]
def test_each_edited_row_attends_to_its_reference_rows_keys_and_values_and_reference_rows_are_unchanged(batch):
    q, k, v = projections(batch)

    out = MutualSelfAttention(TIMESTEPS)(q, k, v, call(layer=13, step=4))

    for reference_row in range(0, batch, 2):
        ref, edit = slice(reference_row, reference_row + 1), slice(reference_row + 1, reference_row + 2)
        torch.testing.assert_close(out[ref], plain_attention(q[ref], k[ref], v[ref], HEADS))
        torch.testing.assert_close(out[edit], plain_attention(q[edit], k[ref], v[ref], HEADS))
        assert not torch.allclose(out[edit], plain_attention(q[edit], k[edit], v[edit], HEADS), atol=1e-3)


def test_a_batch_that_is_not_made_of_row_pairs_is_rejected():
    q, k, v = projections(batch=3)
    with pytest.raises(ValueError, match=r"needs \[reference, edited\] row pairs, got a batch of 3"):
        MutualSelfAttention(TIMESTEPS)(q, k, v, call(layer=10, step=0))


def test_layers_and_steps_not_chosen_get_default_attention_and_are_not_counted():
    policy = MutualSelfAttention(TIMESTEPS, first_step=3, layers=[10, 12])
    q, k, v = projections(batch=2)

    results = {(step, layer): policy(q, k, v, call(layer, step)) for step in range(6) for layer in range(16)}

    edited = {key for key, out in results.items() if out is not None}
    chosen = {(step, layer) for step in range(3, 6) for layer in (10, 12)}
    assert edited == chosen
    assert policy.edited == {key: 1 for key in chosen}


def test_a_timestep_outside_the_schedule_is_rejected():
    q, k, v = projections(batch=2)
    with pytest.raises(ValueError, match="timestep 680 is not in this policy's schedule"):
        MutualSelfAttention(TIMESTEPS)(q, k, v, AttentionCall(layer=10, place="up", heads=HEADS, t=680))


def test_inside_the_unet_the_reference_rows_prediction_is_unchanged_and_the_edited_rows_is_not():
    denoiser = FakeDenoiser()
    generator = torch.Generator().manual_seed(3)
    reference, edited = torch.randn(2, 1, 4, 8, 8, generator=generator)
    cond = torch.randn(1, 3, 8, generator=generator)
    t = TIMESTEPS[15]

    with denoiser.attention_hook(MutualSelfAttention(TIMESTEPS)):
        shared = denoiser.predict(torch.cat([reference, edited]), t, cond).eps
    alone = denoiser.predict(torch.cat([reference, edited]), t, cond).eps

    torch.testing.assert_close(shared[:1], alone[:1])
    assert not torch.allclose(shared[1:], alone[1:], atol=1e-3)


def test_layers_can_be_chosen_by_place_whatever_the_depth():
    """EasyDrag shares every decoder self-attention: layers=None with places ("up",)."""
    q, k, v = projections(batch=2)
    policy = MutualSelfAttention(TIMESTEPS, layers=None, places=("up",))
    for layer, place in ((2, "down"), (6, "mid")):
        assert policy(q, k, v, AttentionCall(layer=layer, place=place, heads=HEADS, t=TIMESTEPS[0])) is None
    for layer in (7, 15, 40):
        assert policy(q, k, v, AttentionCall(layer=layer, place="up", heads=HEADS, t=TIMESTEPS[0])) is not None
    assert sorted(policy.edited) == [(0, 7), (0, 15), (0, 40)]


def test_recorded_reference_keys_and_values_give_the_edited_rows_pair_attention():
    q, k, v = projections(batch=2)
    up = AttentionCall(layer=12, place="up", heads=HEADS, t=TIMESTEPS[0])
    pair = MutualSelfAttention(TIMESTEPS, layers=None, places=("up",))(q, k, v, up)
    recorded = RecordedReference(MutualSelfAttention(TIMESTEPS, layers=None, places=("up",)))

    with recorded.recording_pass([TIMESTEPS[0]]):
        reference = recorded(q[:1], k[:1], v[:1], up)  # the reference row alone gets ordinary attention
    assert recorded.has([TIMESTEPS[0]]) and not recorded.has([TIMESTEPS[1]])
    edited = recorded(q[1:], k[1:], v[1:], up)  # its own keys and values are not read

    torch.testing.assert_close(reference, pair[:1])
    torch.testing.assert_close(edited, pair[1:])
    assert recorded(q[1:], k[1:], v[1:], AttentionCall(layer=3, place="down", heads=HEADS, t=TIMESTEPS[0])) is None
    with pytest.raises(RuntimeError, match="layer 13 at t = 981 was not recorded"):
        recorded(q[1:], k[1:], v[1:], AttentionCall(layer=13, place="up", heads=HEADS, t=TIMESTEPS[0]))


def test_inside_the_unet_the_edited_row_alone_after_a_recorded_reference_pass_equals_the_pair_pass():
    denoiser = FakeDenoiser()
    generator = torch.Generator().manual_seed(4)
    reference, edited = torch.randn(2, 1, 4, 8, 8, generator=generator)
    cond = torch.randn(1, 3, 8, generator=generator)
    t, taps = TIMESTEPS[15], (1, 2)

    with denoiser.attention_hook(MutualSelfAttention(TIMESTEPS, layers=None, places=("up",))):
        pair = denoiser.predict(torch.cat([reference, edited]), t, cond, taps).features
    recorded = RecordedReference(MutualSelfAttention(TIMESTEPS, layers=None, places=("up",)))
    with denoiser.attention_hook(recorded):
        with recorded.recording_pass([t]):
            denoiser.predict(reference, t, cond, taps, features_only=True)
        alone = denoiser.predict(edited, t, cond, taps, features_only=True)

    assert alone.eps is None  # stopped after up_blocks[2]: up_blocks[3]'s layers were never needed
    assert sorted(layer for _, layer in recorded.recorded) == list(range(7, 13))
    for tap in taps:
        torch.testing.assert_close(alone.features[tap], pair[tap][1:])


def test_a_recording_pass_of_the_pair_gives_the_pair_attention_and_records_the_reference_row():
    q, k, v = projections(batch=2)
    up = AttentionCall(layer=12, place="up", heads=HEADS, t=TIMESTEPS[0])
    pair = MutualSelfAttention(TIMESTEPS, layers=None, places=("up",))(q, k, v, up)
    recorded = RecordedReference(MutualSelfAttention(TIMESTEPS, layers=None, places=("up",)))
    with pytest.raises(KeyError), recorded.recording_pass([TIMESTEPS[0]]):
        torch.testing.assert_close(recorded(q, k, v, up), pair)
        raise KeyError("cancelled")  # a pass that does not finish is not counted as recorded
    assert not recorded.has([TIMESTEPS[0]])
    with recorded.recording_pass([TIMESTEPS[0]]):
        torch.testing.assert_close(recorded(q, k, v, up), pair)
    torch.testing.assert_close(recorded(q[1:], k[1:], v[1:], up), pair[1:])
