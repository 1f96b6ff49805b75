"""Drag methods: one module per paper, each with a frozen `...Settings` and `optimise() -> DragResult`."""

from __future__ import annotations

# The methods' result type lives with the shared mechanics; it is imported from here too.
from ..motion import DragResult as DragResult

# Why a drag stopped: every handle within the reach distance of its target, GoodDrag's
# no-progress rule, or the iteration budget / drag timesteps ran out.
REACHED, STALLED, BUDGET = "reached", "stalled", "budget"
