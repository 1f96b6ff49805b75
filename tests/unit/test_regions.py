"""DragNeXt's region geometry (reference/dragnext.md §1, tests §8.1–8.5 and 8.7)."""

import math
import random

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import rotate

from dragkit.core.drag import DragSpec, DragSpecError, Region
from dragkit.core.motion import FeatureGrid
from dragkit.core.regions import (
    RegionMotion,
    check_regions,
    component_masks,
    region_motions,
    rotate_point,
    signed_angle,
)


def rotation(mask, center, handle, target, angle_step=2.0):
    return RegionMotion("rotate", mask, handle, target, center, angle_step)


def test_the_worked_example_turns_a_quarter_counter_clockwise():
    # c = (100, 100), h = (150, 100), g = (100, 50) in (x, y): g is straight up from c (§8.1).
    c, h, g = (100.0, 100.0), (100.0, 150.0), (50.0, 100.0)  # (row, col)
    assert signed_angle(c, h, g) == pytest.approx(90.0)
    motion = rotation(torch.ones(200, 200, dtype=torch.bool), c, h, g)
    assert motion.handle_at(1.0) == pytest.approx(g)
    assert motion.handle_at(0.0) == pytest.approx(h)


def test_the_rotated_handle_lies_on_the_ray_to_the_target_at_its_own_radius():
    rng = random.Random(3)
    for _ in range(200):
        c, h, g = ((rng.uniform(0, 100), rng.uniform(0, 100)) for _ in range(3))
        if math.dist(c, h) < 1e-3 or math.dist(c, g) < 1e-3:
            continue
        turned = rotate_point(h, c, signed_angle(c, h, g))
        radius = math.dist(c, h)
        unit = ((g[0] - c[0]) / math.dist(c, g), (g[1] - c[1]) / math.dist(c, g))
        assert turned == pytest.approx((c[0] + radius * unit[0], c[1] + radius * unit[1]), abs=1e-5)


def test_the_angle_never_wraps_the_long_way_round():
    c = (50.0, 50.0)
    behind = (50.0, 10.0)  # straight left of c: on the ±180° seam
    just_above, just_below = (49.0, 10.0), (51.0, 10.0)  # rows grow downward
    assert 0 < signed_angle(c, behind, just_below) < 3  # below-left is further counter-clockwise
    assert -3 < signed_angle(c, behind, just_above) < 0
    assert -3 < signed_angle(c, just_below, behind) < 0


def test_the_progressive_angle_is_rounded_to_two_degrees():
    motion = rotation(torch.ones(64, 64, dtype=torch.bool), (32.0, 32.0), (32.0, 52.0), (12.0, 32.0))  # +90°
    # 2 · round(η · 90 / 2), Python's (and torch's) round: half to even, so 4.5 → 4
    assert [motion.angle_at(eta) for eta in (0.0, 0.1, 0.33, 0.35, 1.0)] == [0.0, 8.0, 30.0, 32.0, 90.0]


def corner_centre(c):
    """torchvision (and so the code) puts pixel i's centre at i + ½ and takes the centre point as
    given: in index coordinates it turns about c − ½."""
    return c[0] - 0.5, c[1] - 0.5


def test_a_one_hot_map_rotates_to_the_analytic_point_as_torchvision_does():
    rows, cols = 60, 80
    rng = random.Random(5)
    for _ in range(20):
        c = (rng.randrange(10, 50), rng.randrange(10, 70))
        p = (rng.randrange(rows), rng.randrange(cols))
        degrees = 2 * rng.randrange(-90, 90)
        mask = torch.zeros(rows, cols, dtype=torch.bool)
        mask[p] = True
        warp = rotation(mask, c, (0.0, 0.0), (0.0, 0.0))._rotated(degrees)
        expected = rotate_point(p, corner_centre(c), degrees)
        for index in warp.target.tolist():
            assert math.dist(divmod(index, cols), expected) <= 1.0 + 1e-9  # §8.2: within a pixel


def test_the_rotation_warp_is_torchvisions_nearest_rotation_pixel_for_pixel():
    """The released code rotates the mask and F0 ⊙ mask with torchvision's rotate (§1.2)."""
    rng = random.Random(7)
    generator = torch.Generator().manual_seed(7)
    for _ in range(10):
        rows, cols = rng.randrange(20, 60), rng.randrange(20, 60)
        mask = torch.rand(rows, cols, generator=generator) > 0.3
        c = (rng.randrange(rows), rng.randrange(cols))
        degrees = 2 * rng.randrange(-90, 91)
        warp = rotation(mask, c, (0.0, 0.0), (0.0, 0.0))._rotated(degrees)
        labels = (torch.arange(rows * cols, dtype=torch.float32) + 1).reshape(1, 1, rows, cols) * mask
        theirs = rotate(labels, degrees, center=[c[1], c[0]])[0, 0]
        ours = torch.zeros(rows * cols)
        ours[warp.target] = warp.source.float() + 1
        assert torch.equal(ours.reshape(rows, cols), theirs)


def test_translation_is_pixel_exact_drops_what_leaves_the_grid_and_skips_under_a_pixel():
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[5:9, 10:15] = True
    motion = RegionMotion("translate", mask, (6.0, 12.0), (9.0, 32.0))  # 3 down, 20 right
    half = motion.warp_at(0.5)  # trunc(1.5, 10) = (1, 10)
    moved = torch.zeros(20, 30, dtype=torch.bool)
    moved[6:10, 20:25] = True
    assert torch.equal(half.target_mask((20, 30)), moved) and half.target.numel() == mask.sum()
    assert torch.equal(half.target - half.source, torch.full_like(half.source, 1 * 30 + 10))
    assert motion.warp_at(1.0).target.numel() == 0  # (3, 20): columns 30–34 are off the 30-wide grid
    step = motion.warp_at(0.05)  # trunc(0.15, 1.0) = (0, 1): one pixel is a term
    assert torch.equal(step.target - step.source, torch.ones_like(step.source))
    assert RegionMotion("deform", mask, (6.0, 12.0), (6.4, 12.9)).warp_at(1.0) is None  # (0, 0): no term


def test_a_partly_shifted_out_region_keeps_only_what_stays_on_the_grid():
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[5:9, 10:15] = True
    warp = RegionMotion("translate", mask, (6.0, 12.0), (6.0, 30.0)).warp_at(1.0)  # 18 right: columns 28–32
    assert torch.equal(warp.target_mask((20, 30)).nonzero()[:, 1].unique(), torch.tensor([28, 29]))
    assert warp.target.numel() == 4 * 2


@pytest.mark.parametrize("kind", ["translate", "rotate"])
def test_the_gathered_source_of_each_target_pixel_is_its_pre_image(kind):
    """§8.5: F0 holds each pixel's own (row, col); gathering it through the warp gives Π⁻¹(p)."""
    rows, cols = 40, 50
    coords = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")).float()[None]
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    mask[10:25, 12:30] = True
    if kind == "translate":
        motion = RegionMotion("translate", mask, (15.0, 20.0), (22.5, 33.7))
        warp = motion.warp_at(0.8)  # ω = (6.0, 10.96) → (6, 10)
    else:
        motion = rotation(mask, (20.0, 20.0), (20.0, 30.0), (10.0, 20.0))
        warp = motion.warp_at(0.5)  # 45°
    gathered = coords[0].flatten(1)[:, warp.source].T
    targets = torch.stack([warp.target // cols, warp.target % cols], dim=1).float()
    if kind == "translate":
        assert torch.equal(gathered, targets - torch.tensor([6.0, 10.0]))
    else:
        for (row, col), got in zip(targets.tolist(), gathered.tolist()):
            assert math.dist(got, rotate_point((row, col), corner_centre((20.0, 20.0)), -45.0)) <= 1.0


def test_each_handle_gets_the_component_it_lies_in_and_a_stray_handle_is_named():
    mask = np.zeros((40, 60), dtype=bool)
    mask[5:15, 5:15] = True
    mask[20:35, 30:55] = True
    mask[25:28, 40:43] = False  # a hole: filled, as an external contour
    left, right = component_masks(mask, [(10, 10), (50, 30)])
    assert left.sum() == 100 and not left[20:, :].any()
    assert right[26, 41] and right.sum() == 15 * 25
    with pytest.raises(ValueError, match=r"handle 2 \(58, 2\) lies outside every region"):
        component_masks(mask, [(10, 10), (58, 2)])


def spec_with(region, pairs=(((20.0, 20.0), (40.0, 20.0)),)):
    handles, targets = zip(*pairs)
    return DragSpec(64, 48, handles, targets, regions=(region,) if region else ())


def test_a_pair_without_a_region_moves_a_disc_around_its_handle():
    grid = FeatureGrid.scaled(64, 48, 0.5)
    (motion,) = region_motions(spec_with(None), grid, fallback_radius=3)
    assert motion.kind == "translate" and motion.handle == (10.0, 10.0) and motion.target == (10.0, 20.0)
    assert motion.mask.sum() == 29 and motion.mask[10, 10] and not motion.mask[10, 14]  # r = 3: 29 pixels


def test_regions_too_thin_for_the_grid_or_sent_off_the_image_are_refused_by_pair():
    grid = FeatureGrid.scaled(64, 48, 0.5)
    thin = np.zeros((48, 64), dtype=bool)
    thin[:, 21] = True  # odd columns vanish at half size
    with pytest.raises(DragSpecError, match="region for pair 1 is too thin"):
        check_regions(spec_with(Region(0, "translate", thin)), grid)
    corner = np.zeros((48, 64), dtype=bool)
    corner[40:48, 56:64] = True  # far from the handle: sent 20 px right it leaves the image
    with pytest.raises(DragSpecError, match="region for pair 1: moved to its target it would leave the image"):
        check_regions(spec_with(Region(0, "deform", corner)), grid)
    around = np.zeros((48, 64), dtype=bool)
    around[16:24, 16:24] = True
    check_regions(spec_with(Region(0, "rotate", around, (30.0, 30.0))), grid)  # fine


@pytest.mark.parametrize("target", [(3, 3), (3, 40), (40, 3), (-30, 3), (3, -31), (33, 33), (0, 20), (-2, 0)])
def test_the_cheap_landing_check_agrees_with_the_warp(target):
    """Queue-time feasibility without building the warp: the same verdict as the warp's own pixels."""
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[2:6, 4:9] = True
    motion = RegionMotion("translate", mask, (3, 3), target)
    warp = motion.warp_at(1.0)
    assert motion.lands_on_grid(1.0) == (warp is None or warp.target.numel() > 0)


def full_grid_rotation(motion, degrees):
    """The rotation warp computed over every pixel of the grid (the definition _rotated restricts)."""
    rows, cols = motion.size
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    y = torch.arange(rows, dtype=torch.float64)[:, None] + 0.5 - motion.center[0]
    x = torch.arange(cols, dtype=torch.float64)[None, :] + 0.5 - motion.center[1]
    sr = torch.round(motion.center[0] + x * sin + y * cos - 0.5).long()
    sc = torch.round(motion.center[1] + x * cos - y * sin - 0.5).long()
    inside = (sr >= 0) & (sr < rows) & (sc >= 0) & (sc < cols) & motion.mask[sr.clamp(0, rows - 1), sc.clamp(0, cols - 1)]
    tr, tc = inside.nonzero(as_tuple=True)
    return sr[tr, tc] * cols + sc[tr, tc], tr * cols + tc


@pytest.mark.parametrize("seed", range(12))
def test_the_rotation_restricted_to_where_the_region_can_land_is_the_whole_grid_warp(seed):
    rng = random.Random(seed)
    rows, cols = rng.randint(12, 48), rng.randint(12, 48)
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    top, left = rng.randrange(rows - 4), rng.randrange(cols - 4)
    mask[top:top + rng.randint(1, 10), left:left + rng.randint(1, 10)] = True
    center = (rng.uniform(-5, rows + 5), rng.uniform(-5, cols + 5))
    motion = RegionMotion("rotate", mask, (top, left), (top + 3, left + 5), center)
    for degrees in (2.0, -37.0, 90.0, 178.0, rng.uniform(-180, 180)):
        warp = motion._rotated(degrees)
        source, target = full_grid_rotation(motion, degrees)
        assert torch.equal(warp.source, source) and torch.equal(warp.target, target), (seed, degrees)
