"""A method's pipeline recipe: what runs around its optimiser (the LoRA steps, the inversion
strength, the sampler and its layers, the features it taps). Each method file declares its
`RECIPE` beside its settings; `core/methods/__init__.py` lists them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ..families import DEFAULT_FAMILY, ModelFamily

# The sampler a method's edit goes on with (the sampler nodes' ids).
MUTUAL_ATTENTION = "DragKitMutualAttentionSampler"
REFERENCE_GUIDED = "DragKitReferenceGuidedSampler"
CLOSS = "DragKitCLossSampler"


@dataclass(frozen=True)
class InversionPreset:
    label: str  # the DDIM Invert node's preset name (stored in workflows: never renamed)
    strength: float  # fraction of the DDIM schedule inverted


@dataclass(frozen=True)
class Recipe:
    name: str  # display name, also the LoRA node's preset name
    key: str  # lower-case name: example_workflows/<key>.json, the evaluation CLI's --methods
    node_id: str  # the drag node (never renamed)
    settings: type  # the method's frozen settings dataclass
    optimise: Callable
    lora_steps: int  # the code's LoRA steps; 0: the method runs on the checkpoint's own MODEL
    inversion: InversionPreset  # the default (the paper's where it differs from the code)
    sampler: str
    feature_tap: str = "motion"  # the family's tap role the method's features come from
    feature_field: str = "feature_block"  # the settings field that holds it
    code_inversion: InversionPreset | None = None  # the released code's strength, where it differs

    @property
    def official_strength(self) -> float:
        """The released code's inversion strength (what the benchmark's official count runs)."""
        return (self.code_inversion or self.inversion).strength

    @property
    def inversion_presets(self) -> tuple[InversionPreset, ...]:
        return (self.inversion,) if self.code_inversion is None else (self.inversion, self.code_inversion)

    def feature_default(self, family: ModelFamily = DEFAULT_FAMILY):
        """The settings value of the method's feature tap on `family`."""
        tap = family.tap(self.feature_tap)
        return tap if self.feature_field == "feature_blocks" else family.block(self.feature_tap)

    def settings_for(self, family: ModelFamily = DEFAULT_FAMILY, **overrides):
        """The method's default settings with the family's feature tap, then `overrides`."""
        return replace(self.settings(), **{self.feature_field: self.feature_default(family), **overrides})

    def sharing_layers(self, family: ModelFamily = DEFAULT_FAMILY) -> range | None:
        """The self-attention layers its sampler shares (None: the whole decoder, EasyDrag's)."""
        return None if self.sampler == REFERENCE_GUIDED else family.sharing_range
