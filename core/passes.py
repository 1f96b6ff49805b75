"""Counting UNet passes: how much denoiser work a stage of an edit does (benchmarks and tests).

Work is counted in F, one batch-1 UNet forward, with a backward as 2 F, as anchors.md §5.1 counts
the official code: a forward of a batch of b rows is b F, a backward through it 2b F. A forward
stopped after its last needed feature stage (`features_only`) still counts as a whole one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .denoiser import Prediction


@dataclass
class Passes:
    forward_calls: int = 0
    forward_rows: int = 0
    backward_calls: int = 0
    backward_rows: int = 0

    @property
    def work(self) -> int:
        """UNet work in F: forward rows plus twice the rows gone through backward."""
        return self.forward_rows + 2 * self.backward_rows


def _backward_pass_id() -> int:
    """Which backward pass is running (PyTorch's graph-task id; private, so only where it exists)."""
    current = getattr(torch._C, "_current_graph_task_id", None)
    return current() if current is not None else 0


class CountingDenoiser:
    """A Denoiser that counts the passes it makes. A call counts a backward each time a backward
    pass reaches any of its outputs (ε or a feature tap, whichever the loss used): twice for a
    forward whose graph a second `autograd.grad` goes through again (EasyDrag's auto mask)."""

    def __init__(self, inner) -> None:
        self.inner, self.passes = inner, Passes()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, x_t, t, cond, up_features=(), features_only: bool = False) -> Prediction:
        prediction = self.inner.predict(x_t, t, cond, up_features, features_only)
        passes, rows = self.passes, x_t.shape[0]
        passes.forward_calls += 1
        passes.forward_rows += rows
        outputs = [o for o in (prediction.eps, *prediction.features.values()) if o is not None and o.requires_grad]
        seen: set[int] = set()

        def count(grad: torch.Tensor) -> torch.Tensor:
            backward = _backward_pass_id()
            if backward not in seen:
                seen.add(backward)
                passes.backward_calls += 1
                passes.backward_rows += rows
            return grad

        for output in outputs:
            output.register_hook(count)
        return prediction
