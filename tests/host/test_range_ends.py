"""Every declared range of every drag node is safe on the smallest picture DragKit accepts: each numeric
input at its minimum and at its maximum (the others at their defaults) runs the method to finite numbers
with every handle on the picture. The ranges are read from the nodes' own schemas (in-process ComfyUI);
the methods run on the synthetic denoiser, with a drag near the picture's corners.

Counts (iterations, budgets, timesteps) are taken at their minimum and at a dozen: their maxima only
take longer, every step is the same step."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from harness.comfy_inprocess import import_comfy, in_the_current_hosts_pass_only
from harness.synthetic import one_thread, scene

# The methods run on the synthetic denoiser: one ComfyUI's schemas show it (the ranges are the same on both).
pytestmark = [in_the_current_hosts_pass_only("core on the synthetic denoiser; the schemas are the same on both"),
              pytest.mark.usefixtures(one_thread.__name__)]

COUNTS = {"max_iterations", "drag_timesteps", "tracks_per_timestep", "steps_per_track", "initial_budget", "max_budget",
          "pbsi_timesteps", "iterations"}
COUNT_CAP = 12


def range_ends() -> list[tuple[str, str, float]]:
    import_comfy()
    from comfy_api.v0_0_2 import io

    from dragkit.core.methods import recipe_of
    from dragkit.nodes.drag import DRAG_NODES

    cases = []
    for node in DRAG_NODES:
        schema = node.define_schema()
        names = {f.name for f in fields(recipe_of(schema.node_id).settings)}
        for spec in schema.inputs:
            if isinstance(spec, (io.Int.Input, io.Float.Input)) and spec.id in names:
                high = min(spec.max, COUNT_CAP) if spec.id in COUNTS else spec.max
                cases += [(schema.node_id, spec.id, spec.min), (schema.node_id, spec.id, high)]
    return cases


SIDE = 64  # the smallest picture DragKit accepts (core.drag.MIN_SIDE)
CORNER_DRAG = (((6.0, 5.0), (57.0, 60.0)), ((60.0, 58.0), (2.0, 3.0)))  # two pairs, corner to corner


@pytest.mark.parametrize("node_id, name, value", range_ends(), ids=lambda v: str(v))
def test_every_range_end_runs_on_the_smallest_picture(node_id, name, value):
    from dragkit.core.drag import MIN_SIDE, DragSpec
    from dragkit.core.masks import adaptive_segments
    from dragkit.core.methods import adaptivedrag, recipe_of

    assert SIDE == MIN_SIDE
    recipe = recipe_of(node_id)
    settings = replace(recipe.settings(), **{name: value})
    if name == "initial_budget" and settings.max_budget < value:
        settings = replace(settings, max_budget=value)  # the node refuses max_budget below it
    if name == "max_budget" and settings.initial_budget > value:
        settings = replace(settings, initial_budget=value)
    s = scene(strength=recipe.inversion.strength, size=SIDE)
    handles, targets = zip(*CORNER_DRAG)
    spec = DragSpec(SIDE, SIDE, handles, targets)
    optimise = recipe.optimise
    if recipe is adaptivedrag.RECIPE:
        picture = (np.random.default_rng(0).random((SIDE, SIDE, 3)) * 255).astype(np.uint8)
        segments = adaptive_segments(picture, None, settings.superpixels)
        optimise = lambda *a: adaptivedrag.optimise(*a, superpixels=segments)  # noqa: E731
    with torch.enable_grad():
        result = optimise(s.denoiser, s.inversion, spec, s.cond, settings)
    assert torch.isfinite(result.latent).all() and all(np.isfinite(result.losses))
    assert all(0 <= x < SIDE and 0 <= y < SIDE for x, y in result.handles), result.handles
