"""An entry's ``input:`` and ``mode:``: what a budget was recorded with.

``input:`` lists the shape and dtype of every tensor input, in one flow line that
``--actbudget-update`` rewrites in place and ``actbudget profile --name`` builds
inputs from:

    input: [64, 3, 28, 28]                               # one float32 tensor
    input: [[4, 3, 64, 64], {shape: [4], dtype: int64}]  # positional inputs
    input: {0: [4, 3, 64, 64], mask: {shape: [4, 64], dtype: bool}}  # with keywords

A tensor is ``[dims]`` (float32) or ``{shape: [dims], dtype: NAME}``; in the mapping
form a key is a position (0, 1, ...) or the forward's keyword name. ``mode:`` is
``train`` or ``eval``: the root module's training flag. Pure text, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..results import TensorSpec
from .safe_yaml import yaml_key

#: dtypes an ``input:`` (and the CLI's ``--dtype``) may name, float32 first.
DTYPES: tuple[str, ...] = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
)
MODES: tuple[str, ...] = ("train", "eval")
_DEFAULT_DTYPE = "float32"


def reproducible(inputs: Sequence[TensorSpec], plain: bool) -> tuple[TensorSpec, ...] | None:
    """The inputs ``input:`` can record: every one a plain tensor (``plain``, not nested
    in a container, no non-tensor argument) of a dtype it can name; else None."""
    if not plain or not inputs or any(spec.dtype not in DTYPES for spec in inputs):
        return None
    return tuple(inputs)


def input_text(inputs: Sequence[TensorSpec]) -> str:
    """The flow text of ``input:``: the short form for one float32 positional tensor,
    a list for positional inputs, a mapping of positions and keywords otherwise."""
    if len(inputs) == 1 and inputs[0].name is None and _short(inputs[0]):
        return _dims(inputs[0].shape)
    if all(spec.name is None for spec in inputs):
        return "[" + ", ".join(_tensor_text(spec) for spec in inputs) + "]"
    items = []
    position = 0
    for spec in inputs:
        if spec.name is None:
            key, position = str(position), position + 1
        else:
            key = yaml_key(spec.name)
        items.append(f"{key}: {_tensor_text(spec)}")
    return "{" + ", ".join(items) + "}"


def _short(spec: TensorSpec) -> bool:
    return spec.dtype == _DEFAULT_DTYPE and bool(spec.shape)


def _dims(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def _tensor_text(spec: TensorSpec) -> str:
    if _short(spec):
        return _dims(spec.shape)
    return f"{{shape: {_dims(spec.shape)}, dtype: {spec.dtype}}}"
