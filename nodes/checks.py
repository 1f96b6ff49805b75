"""Every node checks its own widget inputs, at queue time and again when it runs.

ComfyUI skips its built-in min/max/choice checks for every input a node's `validate_inputs` reads
(and 0.3.75 never checks the choices of V3 nodes), and it passes `None` for an input that is fed by
a link, whose value only exists when the node runs. So a DragKit node declares its ranges once in
its schema, and `CheckedNode` enforces them: its `validate_inputs` refuses a bad constant with a
message that starts with the input's name, and `@checked` runs the same checks on every value,
linked ones included, before `execute` sees them.
"""

from __future__ import annotations

import functools
import math

from comfy_api.v0_0_2 import io


class InputError(ValueError):
    """A node input that cannot be used; the message starts with the input's name."""


class NonFiniteError(ValueError):
    """A node's result holds NaN or Inf: it stops the graph with a message instead of a black picture."""


def require_finite(tensor, what: str) -> None:
    """Refuse a result with NaN or Inf values, saying which result and what usually causes it."""
    if not bool(tensor.isfinite().all()):
        raise NonFiniteError(
            f"{what} has non-finite values (NaN or Inf). Usually a learning rate too high for the model's "
            "precision or a broken checkpoint: lower learning_rate, or start ComfyUI with --force-fp32 to check"
        )


def check_widget_inputs(schema: io.Schema, values: dict) -> None:
    """The schema's ranges, choices and finiteness, for every widget value present (None = linked)."""
    for spec in schema.inputs:
        value = values.get(spec.id)
        if value is None:
            continue
        if isinstance(spec, io.Combo.Input):
            if value not in spec.options:
                raise InputError(f"{spec.id}: {value!r} is not one of {', '.join(map(repr, spec.options))}")
        elif isinstance(spec, (io.Int.Input, io.Float.Input)):
            _check_number(spec, value)
        elif isinstance(spec, io.Boolean.Input) and not isinstance(value, bool):
            raise InputError(f"{spec.id}: must be true or false, got {value!r}")


def _check_number(spec, value) -> None:
    integer = isinstance(spec, io.Int.Input)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InputError(f"{spec.id}: must be {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{spec.id}: must be a finite number, got {value!r}")
    if spec.min is not None and value < spec.min:
        raise InputError(f"{spec.id}: {value} is below the minimum {spec.min}")
    if spec.max is not None and value > spec.max:
        raise InputError(f"{spec.id}: {value} is above the maximum {spec.max}")


class CheckedNode(io.ComfyNode):
    """A node whose widget inputs are checked against its schema; `check_values` adds node rules."""

    @classmethod
    def check_values(cls, values: dict) -> None:
        """Rules between inputs (e.g. end after start); values may be None for linked inputs."""

    @classmethod
    def check(cls, values: dict) -> None:
        check_widget_inputs(cls.define_schema(), values)
        cls.check_values(values)

    @classmethod
    def refusal(cls, **values) -> bool | str:
        """The body of a node's `validate_inputs`: True, or what is wrong.

        ComfyUI attaches a refusal to every input `validate_inputs` names and skips its own checks
        for exactly those, so each node names only the inputs ComfyUI cannot check itself: choices
        (0.3.75 never checks them for V3 nodes), floats (NaN passes a min/max test) and inputs that
        a rule relates to another."""
        try:
            cls.check(values)
        except InputError as exc:
            return str(exc)
        return True


def checked(execute):
    """Decorate a CheckedNode's `execute` (under @classmethod) to check the values it receives,
    linked ones included, before it runs."""

    @functools.wraps(execute)
    def run(cls, **values):
        cls.check(values)
        return execute(cls, **values)

    return run


def single_item(batch, what: str):
    """The one image (or latent) of a batch; DragKit edits one at a time and never silently picks."""
    if batch.shape[0] != 1:
        raise InputError(
            f"{what}: got a batch of {batch.shape[0]}; DragKit edits one image at a time. "
            "Pick one with ImageFromBatch or LatentFromBatch"
        )
    return batch
