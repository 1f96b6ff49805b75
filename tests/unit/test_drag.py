"""DragSpec: the schema v1 round trip and validation messages that name what is wrong."""

import json

import numpy as np
import pytest

from dragkit.core.drag import DragSpec, DragSpecError, Region, decode_rle, encode_rle


def spec_json(**overrides) -> str:
    data = {"version": 1, "width": 8, "height": 6, "pairs": [{"handle": [1, 2], "target": [5, 2.5]}], "mask": None, "regions": []}
    data.update(overrides)
    return json.dumps(data)


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip(seed):
    mask = np.random.default_rng(seed).random((6, 8)) > 0.5
    counts = encode_rle(mask)
    assert sum(counts) == 48
    assert np.array_equal(decode_rle(counts, 8, 6), mask)


def test_rle_starts_with_a_zero_run():
    mask = np.zeros((2, 3), bool)
    mask[0, 0] = True
    assert encode_rle(mask) == [0, 1, 5]
    assert encode_rle(np.zeros((2, 3), bool)) == [6]


def test_json_round_trip_keeps_points_mask_and_regions():
    rng = np.random.default_rng(0)
    mask, region_mask = rng.random((6, 8)) > 0.3, rng.random((6, 8)) > 0.7
    spec = DragSpec(8, 6, ((1.0, 2.0), (3.5, 4.0)), ((5.0, 2.5), (0.0, 5.0)), mask,
                    (Region(1, "rotate", region_mask, (4.0, 3.0)), Region(0, "translate", region_mask)))
    again = DragSpec.from_json(spec.to_json())
    assert again.handles == spec.handles and again.targets == spec.targets
    assert np.array_equal(again.mask, mask)
    assert [(r.pair, r.kind, r.center) for r in again.regions] == [(1, "rotate", (4.0, 3.0)), (0, "translate", None)]
    assert np.array_equal(again.regions[0].mask, region_mask)


def test_resized_scales_points_and_resamples_masks():
    """Halving a picture halves every coordinate; a block mask becomes the same block at half size."""
    mask = np.zeros((6, 8), bool)
    mask[2:6, 4:8] = True
    region_mask = np.zeros((6, 8), bool)
    region_mask[0:2, 0:4] = True
    spec = DragSpec(8, 6, ((2.0, 4.0),), ((6.0, 2.0),), mask, (Region(0, "rotate", region_mask, (4.0, 2.0)),))
    half = spec.resized(4, 3)
    assert (half.width, half.height, half.handles, half.targets) == (4, 3, ((1.0, 2.0),), ((3.0, 1.0),))
    expected = np.zeros((3, 4), bool)
    expected[1:3, 2:4] = True
    assert np.array_equal(half.mask, expected)
    assert half.regions[0].center == (2.0, 1.0) and half.regions[0].mask.sum() == 2 and half.regions[0].mask[0, :2].all()
    again = half.resized(8, 6)  # nearest up-sampling gives the original block back
    assert np.array_equal(again.mask, mask) and again.handles == spec.handles


def test_no_mask_means_whole_image_editable():
    spec = DragSpec.from_json(spec_json())
    assert spec.mask is None and spec.editable_mask().all() and spec.editable_mask().shape == (6, 8)


BAD = {
    "missing target": (spec_json(pairs=[{"handle": [1, 2]}]), "pair 1 must have both a handle and a target"),
    "no pairs": (spec_json(pairs=[]), "no handle → target pairs"),
    "x outside": (spec_json(pairs=[{"handle": [8, 2], "target": [1, 1]}]), "pair 1 handle (8, 2) lies outside the 8×6 image"),
    "y outside": (spec_json(pairs=[{"handle": [1, 2], "target": [1, -0.5]}]), "pair 1 target (1, -0.5) lies outside"),
    "nan": (spec_json(pairs=[{"handle": [1, 2], "target": [float("nan"), 1]}]), "pair 1 target must be two finite numbers"),
    "infinity": (spec_json(pairs=[{"handle": [float("inf"), 2], "target": [1, 1]}]), "pair 1 handle must be two finite numbers"),
    "string coordinate": (spec_json(pairs=[{"handle": ["1", 2], "target": [1, 1]}]), "two finite numbers"),
    "mask size": (spec_json(mask={"rle": [10, 20]}), "covers 30 pixels but the image is 8×6"),
    "empty mask": (spec_json(mask={"rle": [48]}), "the mask is empty"),
    "version": (spec_json(version=3), "unknown schema version 3"),
    "no version": (json.dumps({"width": 8, "height": 6, "pairs": []}), "unknown schema version None"),
    "size": (spec_json(width=0), "width must be a whole number of image pixels from 1 to 8192"),
    "huge side": (spec_json(width=40000, height=40000, mask={"rle": [0, 1600000000]}), "width must be a whole number"),
    "huge area": (spec_json(width=8192, height=8192, mask={"rle": [0, 8192 * 8192]}), "at most 33,554,432 are supported"),
    "too many pairs": (spec_json(pairs=[{"handle": [1, 2], "target": [5, 2]}] * 101), "there are 101 pairs; at most 100"),
    "too many runs": (spec_json(mask={"rle": [1] * 50}), "has 50 runs, more than its 48 pixels allow"),
    "nested": ("[" * 100000 + "]" * 100000, "nested too deeply"),
    "region type": (spec_json(regions=[{"pair": 0, "type": "shear", "mask": {"rle": [0, 48]}}]), "unknown type 'shear'"),
    "region pair": (spec_json(regions=[{"pair": 3, "type": "deform", "mask": {"rle": [0, 48]}}]), "refers to pair 4, but there are 1 pairs"),
    "region mask size": (spec_json(regions=[{"pair": 0, "type": "deform", "mask": {"rle": [0, 47]}}]), "region for pair 1 mask covers 47 pixels"),
    "empty region": (spec_json(regions=[{"pair": 0, "type": "deform", "mask": {"rle": [48]}}]), "region for pair 1 is empty"),
    "rotation without centre": (spec_json(regions=[{"pair": 0, "type": "rotate", "mask": {"rle": [0, 48]}}]), "has no centre"),
    "centre outside": (spec_json(regions=[{"pair": 0, "type": "rotate", "center": [9, 1], "mask": {"rle": [0, 48]}}]), "centre (9, 1) lies outside"),
    "not json": ("{oops", "not valid JSON"),
    "not an object": ("[1, 2]", "must be a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_spec_message_names_the_problem(case):
    text, expected = BAD[case]
    with pytest.raises(DragSpecError) as error:
        DragSpec.from_json(text)
    assert expected in str(error.value)


def test_unequal_pair_counts_rejected_by_constructor():
    with pytest.raises(DragSpecError, match="2 handle points but 1 targets"):
        DragSpec(8, 6, ((1.0, 1.0), (2.0, 2.0)), ((3.0, 3.0),))


def test_oversized_regions_are_refused_before_any_mask_is_decoded(monkeypatch):
    """8 regions of 20000² used to decode 3.6 GB before the duplicate check: now nothing is decoded."""
    import dragkit.core.drag as drag

    decoded = []
    monkeypatch.setattr(drag, "decode_rle", lambda *args: decoded.append(args))
    region = {"pair": 0, "type": "deform", "mask": {"rle": [0, 48]}}
    with pytest.raises(DragSpecError, match="given twice"):
        DragSpec.from_json(spec_json(regions=[region] * 8))
    assert decoded == []


def test_too_long_text_is_refused_without_parsing():
    with pytest.raises(DragSpecError, match="characters long"):
        DragSpec.from_json(" " * (drag_module().MAX_JSON_CHARS + 1))


def drag_module():
    import dragkit.core.drag as drag

    return drag


def test_points_from_other_packs_read_both_formats_and_round_trip():
    from dragkit.core.drag import points_from_text, points_to_text

    kj = '[{"x": 10, "y": 20}, {"x": 3.5, "y": 4}]'
    assert points_from_text(kj) == ((10.0, 20.0), (3.5, 4.0))
    assert points_from_text("[[10, 20], [3.5, 4]]") == points_from_text(kj)
    assert points_from_text('{"x": 1, "y": 2}') == ((1.0, 2.0),)  # one point on its own
    assert points_from_text(points_to_text(((10.0, 20.0), (3.5, 4.0)))) == ((10.0, 20.0), (3.5, 4.0))
    assert points_to_text(((10.0, 20.0),)) == '[{"x": 10, "y": 20}]'  # whole pixels as integers, as KJNodes writes


@pytest.mark.parametrize("text, words", [
    ("", "is empty"), ("  ", "is empty"), ("[1, 2", "is not JSON"), ("[]", "non-empty JSON list"),
    ('"x"', "non-empty JSON list"), ('[{"y": 2}]', "point 1 must have x and y"), ("[[1, 2, 3]]", "point 1 must be [x, y]"),
    ('[[1, "2"]]', "two finite numbers"), ("[[1, Infinity]]", "two finite numbers"), ("[[1, true]]", "two finite numbers"),
    (json.dumps([[1, 2]] * 101), "at most 100"),
])
def test_bad_point_strings_say_what_is_wrong(text, words):
    from dragkit.core.drag import points_from_text

    with pytest.raises(DragSpecError) as refused:
        points_from_text(text)
    assert words in str(refused.value), refused.value


def test_the_checked_constructor_bounds_the_pairs():
    with pytest.raises(DragSpecError, match="at most 100"):
        DragSpec(64, 64, ((1.0, 1.0),) * 101, ((2.0, 2.0),) * 101)


def test_the_whole_drag_has_a_mask_budget_checked_before_anything_is_decoded():
    """Each region alone is within bounds; together they would decode gigabytes. The refusal comes
    from the counts alone: the region masks here are not even valid run lengths."""
    from dragkit.core.drag import MAX_MASK_PIXELS

    side = 4096  # 16 Mpx, within the per-image bound
    layers = MAX_MASK_PIXELS // (side * side) + 1
    data = {"version": 1, "width": side, "height": side,
            "pairs": [{"handle": [1, 1], "target": [2, 2]} for _ in range(layers)], "mask": None,
            "regions": [{"pair": i, "type": "translate", "mask": {"rle": [1]}} for i in range(layers)]}
    with pytest.raises(DragSpecError, match=rf"the drag has {layers} masks .* at most {MAX_MASK_PIXELS:,} are accepted"):
        DragSpec.from_json(json.dumps(data))
    data["regions"] = data["regions"][:layers - 1]  # within the budget: now the run lengths are read (and refused)
    with pytest.raises(DragSpecError, match="region for pair 1"):
        DragSpec.from_json(json.dumps(data))
