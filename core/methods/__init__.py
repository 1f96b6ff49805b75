"""Drag methods: one module per paper, each with a frozen `...Settings`, `optimise() -> DragResult`
and its pipeline `RECIPE` (core/methods/recipe.py). `METHODS` is the one list of methods the nodes'
presets, the demo, the benchmark and the evaluation CLI read."""

from __future__ import annotations

# The methods' result type lives with the shared mechanics; it is imported from here too.
from ..motion import DragResult as DragResult

# Why a drag stopped: every handle within the reach distance of its target, GoodDrag's
# no-progress rule, or the iteration budget / drag timesteps ran out.
REACHED, STALLED, BUDGET = "reached", "stalled", "budget"

# After the constants the method modules import from here.
from . import adaptivedrag, dragdiffusion, dragnext, easydrag, gooddrag  # noqa: E402
from .recipe import InversionPreset, Recipe  # noqa: E402

METHODS: tuple[Recipe, ...] = (dragdiffusion.RECIPE, gooddrag.RECIPE, easydrag.RECIPE, dragnext.RECIPE,
                               adaptivedrag.RECIPE)
BY_NAME = {recipe.name: recipe for recipe in METHODS}
BY_KEY = {recipe.key: recipe for recipe in METHODS}
BY_NODE = {recipe.node_id: recipe for recipe in METHODS}


def lora_presets() -> dict[str, int]:
    """The LoRA node's presets: each method that trains one, by name, with its steps."""
    return {recipe.name: recipe.lora_steps for recipe in METHODS if recipe.lora_steps}


def inversion_presets() -> dict[str, float]:
    """The DDIM Invert node's presets (methods that share one, e.g. GoodDrag and DragNeXt, share its label)."""
    return {preset.label: preset.strength for recipe in METHODS for preset in recipe.inversion_presets}


def recipe_of(name: str) -> Recipe:
    """The recipe by name, key or drag node id."""
    recipe = BY_NAME.get(name) or BY_KEY.get(name) or BY_NODE.get(name)
    if recipe is None:
        raise ValueError(f"no drag method {name!r}; the methods are {', '.join(r.name for r in METHODS)}")
    return recipe
