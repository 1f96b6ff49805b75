"""Super-pixels and masks for the auto mask and AdaptiveDrag (reference/adaptivedrag.md §4, tests §10.1)."""

import numpy as np
import pytest

from dragkit.core import masks


def textured_scene(size=512, seed=0):
    """A red disc (centre (180, 256) at 512², radius 90) on a wavy grey-green texture with mild noise
    (strong per-pixel noise makes SLIC's connectivity step merge nearly everything), and the disc."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] * (512 / size)
    disc = (cols - 180) ** 2 + (rows - 256) ** 2 <= 90**2
    wave = 20 * np.sin(cols / 23.0) * np.cos(rows / 31.0)
    background = np.stack([100 + wave, 140 - wave, 90 + wave / 2], axis=-1) + 3 * rng.standard_normal((size, size, 3))
    image = np.where(disc[..., None], np.array([220, 30, 40]), background)
    return np.clip(image, 0, 255).astype(np.uint8), disc


def flat_regions(size=512):
    """A piecewise-constant colour map: three flat regions (left, top right, bottom right)."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[:, : size // 3] = (200, 40, 40)
    image[: size // 2, size // 3:] = (40, 200, 40)
    image[size // 2:, size // 3:] = (40, 40, 200)
    regions = np.zeros((size, size), dtype=int)
    regions[: size // 2, size // 3:] = 1
    regions[size // 2:, size // 3:] = 2
    return image, regions


# --- SLIC (§10.1 items 1–3) -----------------------------------------------------------------------

def test_slic_labels_are_contiguous_from_one_with_the_expected_size():
    image, _ = textured_scene()
    segments = masks.slic_segments(image)
    labels = np.unique(segments)
    assert labels[0] == 1 and np.array_equal(labels, np.arange(1, len(labels) + 1))
    assert 100 <= len(labels) <= 260
    assert 900 <= segments.size / len(labels) <= 1700  # mean area about 1300 ± 400 px


def test_no_superpixel_straddles_a_flat_region_boundary():
    image, regions = flat_regions()
    segments = masks.slic_segments(image)
    straddling = [label for label in np.unique(segments) if len(np.unique(regions[segments == label])) > 1]
    assert straddling == []


def test_the_handle_superpixel_lies_inside_the_object_on_a_colour_map():
    _, disc = textured_scene()
    colour = masks.colour_map([disc], *disc.shape)
    segments = masks.slic_segments(colour)
    handle = (180.0, 256.0)
    cell = masks.segment_at(segments, handle)
    assert cell[256, 180] and (cell & ~disc).sum() == 0


def test_colour_map_paints_smaller_masks_over_larger_ones_on_white():
    big = np.zeros((40, 40), dtype=bool)
    big[5:35, 5:35] = True
    small = np.zeros_like(big)
    small[15:25, 15:25] = True
    colour = masks.colour_map([small, big], 40, 40)
    assert (colour[0, 0] == 255).all()  # no mask: white
    assert not np.array_equal(colour[20, 20], colour[8, 8])  # the small mask is on top of the big one
    assert np.array_equal(colour, masks.colour_map([big, small], 40, 40))  # order given does not matter


# --- line mask (§10.1 item 4) ----------------------------------------------------------------------

def grid_segments(size=256, block=32):
    rows, cols = np.mgrid[0:size, 0:size]
    return (rows // block) * (size // block) + cols // block + 1


def crossed_labels(segments, handle, target):
    """Every label a dense rasterisation of the segment touches (10 samples per pixel)."""
    count = int(np.hypot(target[0] - handle[0], target[1] - handle[1]) * 10) + 2
    xs = np.linspace(handle[0], target[0], count)
    ys = np.linspace(handle[1], target[1], count)
    return set(segments[np.clip(np.rint(ys).astype(int), 0, 255), np.clip(np.rint(xs).astype(int), 0, 255)].tolist())


@pytest.mark.parametrize("handle,target", [((20, 200), (230, 30)),  # up-right: the anti-diagonal
                                           ((40, 100), (220, 100)),  # horizontal
                                           ((200, 40), (255, 250)),  # down-left end at the last column
                                           ((100, 100), (101, 101))])
def test_line_mask_holds_both_ends_and_every_crossed_superpixel(handle, target):
    segments = grid_segments()
    mask = masks.line_mask(segments, [handle], [target])
    labels = set(np.unique(segments[mask]).tolist())
    assert crossed_labels(segments, handle, target) <= labels
    assert mask[masks.segment_at(segments, handle)].all() and mask[masks.segment_at(segments, target)].all()
    assert labels <= crossed_labels(segments, handle, target) | {int(segments[masks.clamp_point(target, 256, 256)])}


def test_official_line_search_walks_the_bounding_box_diagonal():
    segments = grid_segments()
    handle, target = (20.0, 200.0), (230.0, 30.0)  # up-right
    official = masks.line_mask(segments, [handle], [target], official=True)
    top_left = masks.segment_at(segments, (20.0, 30.0))
    assert official[top_left].all()  # (min row, min col) corner, off the true segment
    assert not (official & masks.segment_at(segments, handle)).any()  # and the handle's own cell is missing
    assert not masks.line_mask(segments, [handle], [target])[top_left].any()


def test_official_line_search_takes_two_samples_for_a_horizontal_drag():
    samples = masks.official_line_pixels((40.0, 100.0), (220.0, 100.0), 256, 256)
    assert len(samples) == 2


def test_points_on_the_last_pixel_are_clamped_into_the_image():
    assert masks.clamp_point((512.0, 511.6), 512, 512) == (511, 511)


# --- SAM handle mask and half-plane (§10.1 items 5–6) -----------------------------------------------

def nested_masks(size=100):
    big = np.zeros((size, size), dtype=bool)
    big[10:90, 10:90] = True
    small = np.zeros_like(big)
    small[40:60, 20:80] = True
    return big, small


def test_handle_mask_uses_the_smallest_mask_and_keeps_it_whole_when_the_cut_keeps_half():
    big, small = nested_masks()
    mask = masks.handle_object_mask([big, small], [(50.0, 50.0)], [(90.0, 50.0)], 100, 100)
    assert np.array_equal(mask, small)  # handle at the centre: the cut keeps ≥ 50 %


def test_handle_mask_keeps_only_the_cut_when_it_is_under_half():
    big, small = nested_masks()
    handle, target = (70.0, 50.0), (95.0, 50.0)  # near the right end of the small mask, dragged right
    mask = masks.handle_object_mask([big, small], [handle], [target], 100, 100)
    assert mask.sum() < small.sum() / 2
    assert np.array_equal(mask, small & masks.half_plane(100, 100, handle, target))


def test_handle_mask_is_a_union_over_handles_and_empty_when_no_mask_holds_a_handle():
    big, small = nested_masks()
    assert not masks.handle_object_mask([small], [(5.0, 5.0)], [(9.0, 5.0)], 100, 100).any()
    union = masks.handle_object_mask([big, small], [(50.0, 50.0), (15.0, 15.0)], [(60.0, 50.0), (25.0, 15.0)], 100, 100)
    assert union[small].all() and union[15, 15]


def test_half_plane_includes_the_point_the_boundary_and_points_ahead_only():
    plane = masks.half_plane(21, 21, (10.0, 10.0), (15.0, 10.0))  # facing right
    assert plane[10, 10] and plane[10, 14] and plane[0, 10] and plane[20, 10]  # itself, ahead, 90° boundary
    assert not plane[10, 9]


def test_adaptivedrag_mode_falls_back_to_the_line_mask_when_sam_finds_nothing():
    image, _ = textured_scene(256)
    handle, target = [(90.0, 128.0)], [(150.0, 128.0)]
    empty = masks.drag_mask(image, handle, target, "adaptivedrag", automatic_masks=[], include_path=False)
    segments = masks.slic_segments(masks.colour_map([], 256, 256))
    assert np.array_equal(empty, masks.line_mask(segments, handle, target))


# --- the auto mask's modes ------------------------------------------------------------------------

def test_slic_mode_covers_the_object_under_the_handle_and_the_way_to_the_target_but_not_far_background():
    image, disc = textured_scene()
    handle, target = (180.0, 256.0), (330.0, 256.0)
    mask = masks.drag_mask(image, [handle], [target], "slic")
    assert mask[256, 180] and mask[256, 330]
    assert all(mask[256, x] for x in range(180, 331))  # the path
    far = np.zeros_like(disc)
    far[:100, :] = True
    far[:, 450:] = True
    assert not (mask & far).any()
    without_path = masks.drag_mask(image, [handle], [target], "slic", include_path=False)
    assert without_path.sum() < mask.sum() and not without_path[256, 330]


def test_sam2_mode_sweeps_the_object_along_the_drag():
    image, disc = textured_scene(256)
    swept = masks.drag_mask(image, [(90.0, 128.0)], [(130.0, 128.0)], "sam2", object_masks=[disc])
    shifted = np.roll(disc, 40, axis=1)
    assert swept[disc].all() and swept[shifted].all()
    alone = masks.drag_mask(image, [(90.0, 128.0)], [(130.0, 128.0)], "sam2", object_masks=[disc],
                            include_path=False)
    assert np.array_equal(alone, disc)


def test_dilation_grows_by_a_disc_of_the_radius():
    mask = np.zeros((50, 50), dtype=bool)
    mask[25, 25] = True
    grown = masks.dilate(mask, 5)
    assert grown.sum() == sum(1 for r in range(-5, 6) for c in range(-5, 6) if r * r + c * c <= 25)
    assert np.array_equal(masks.dilate(mask, 0), mask)
