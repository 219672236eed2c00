"""Nested model inputs and outputs: the tensors inside them, and the same structure
with other tensors put back (the JIT tracer only takes a flat tuple of tensors).

Understood containers: tuple (named tuples too), list, dict and dataclass instances;
anything else is a leaf. Imported only while measuring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from pytest_actbudget.results import TensorSpec


def iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside ``obj``, depth first, in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from iter_tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from iter_tensors(item)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for item in vars(obj).values():
            yield from iter_tensors(item)


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor inside ``obj``, if any."""
    return next(iter_tensors(obj), None)


def replace_tensors(obj: Any, tensors: Iterator[torch.Tensor]) -> Any:
    """``obj`` with its tensors taken, in :func:`iter_tensors` order, from ``tensors``."""
    if isinstance(obj, torch.Tensor):
        return next(tensors)
    if isinstance(obj, tuple):
        items = [replace_tensors(item, tensors) for item in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [replace_tensors(item, tensors) for item in obj]
    if isinstance(obj, dict):
        return {key: replace_tensors(item, tensors) for key, item in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {key: replace_tensors(item, tensors) for key, item in vars(obj).items()}
        return dataclasses.replace(obj, **changes)
    return obj


@contextmanager
def untraced() -> Iterator[None]:
    """Pause the JIT tracer: inside, ``tensor.shape`` gives ints, not traced size
    tensors, and nothing done here becomes a node of the traced graph."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)  # type: ignore[attr-defined]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def tensor_spec(tensor: torch.Tensor, name: str | None = None) -> TensorSpec:
    """Shape and dtype of ``tensor``; ``name`` is its forward keyword, if any."""
    return TensorSpec(shape=tuple(tensor.shape), dtype=dtype_name(tensor.dtype), name=name)


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def describe(obj: Any) -> Any:
    """A hashable description of an input for cache keys: shape, dtype, device and
    requires_grad of tensors, the structure of containers, ``repr`` of anything else."""
    if isinstance(obj, torch.Tensor):
        return ("T", tuple(obj.shape), obj.dtype, str(obj.device), obj.requires_grad)
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(describe(item) for item in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((repr(key), describe(item)) for key, item in obj.items()))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (type(obj).__qualname__, describe(vars(obj)))
    return repr(obj)
