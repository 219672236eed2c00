"""A per-session cache of Profiles, so that checking the same model twice costs one trace.

The key describes everything the numbers depend on, without keeping the model or
its tensors alive: the model's class, its structure with hyperparameters (``repr``
and every module's own attributes, see :func:`attribute_key`), parameter and buffer
names, shapes, dtypes and ``requires_grad``, every module's training flag, the
inputs' shapes/dtypes/devices (non-tensor arguments by ``repr``), forward kwargs and
the counting convention. Importing this module does not import torch.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_actbudget.results import Profile

if TYPE_CHECKING:
    from torch import nn

# Attribute values that describe a hyperparameter (stride, eps, a flag, a name...).
_PLAIN = (bool, int, float, complex, str, bytes, type(None))
# Tensors and arrays up to this many elements are keyed by value (a scale factor held
# as a tensor); larger ones by shape and dtype (their values do not change FLOPs).
_SMALL = 16
# How deep attribute values are followed (containers, objects' attributes, closures);
# deeper values and reference cycles are keyed by their type only.
_DEPTH = 6


class MeasureCache:
    """Profiles by :func:`cache_key`; one per pytest session (or per caller)."""

    def __init__(self) -> None:
        self._profiles: dict[Hashable, Profile] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Profile | None:
        profile = self._profiles.get(key)
        if profile is None:
            self.misses += 1
        else:
            self.hits += 1
        return profile

    def put(self, key: Hashable, profile: Profile) -> None:
        self._profiles[key] = profile

    def clear(self) -> None:
        self._profiles.clear()

    def __len__(self) -> int:
        return len(self._profiles)


def cache_key(
    model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any], counting: str
) -> Hashable:
    """The cache key of one measurement (see the module docstring)."""
    from pytest_actbudget.measure.inputs import describe

    model_type = type(model)
    modules = tuple(
        (path, type(module).__qualname__, _module_attributes(module))
        for path, module in model.named_modules()
    )
    parameters = tuple(
        (name, tuple(p.shape), p.dtype, str(p.device), p.requires_grad)
        for name, p in model.named_parameters()
    )
    buffers = tuple(
        (name, tuple(b.shape), b.dtype, str(b.device)) for name, b in model.named_buffers()
    )
    return (
        f"{model_type.__module__}.{model_type.__qualname__}",
        repr(model),
        modules,
        parameters,
        buffers,
        describe(tuple(inputs)),
        describe(dict(kwargs)),
        counting,
    )


def _module_attributes(module: Any) -> tuple[tuple[str, Hashable], ...]:
    """Every attribute of a module that ``nn.Module`` itself does not set (parameters,
    buffers, submodules and hooks are keyed elsewhere): hyperparameters, the training
    flag and whatever else the forward may read (lists, dicts, configs...)."""
    internal = _module_internals()
    return tuple(
        (name, attribute_key(value))
        for name, value in vars(module).items()
        if name == "training" or name not in internal
    )


@functools.cache
def _module_internals() -> frozenset[str]:
    from torch import nn

    return frozenset(vars(nn.Module()))


def attribute_key(value: Any, depth: int = _DEPTH, path: frozenset[int] = frozenset()) -> Hashable:
    """A hashable key of an attribute value that differs whenever the value could make
    the forward differ: plain values by type and value, containers recursively, small
    tensors and arrays by value, large ones by shape and dtype, functions by name and
    closure, other objects by type and attributes. Never keeps the value alive."""
    if isinstance(value, _PLAIN):
        return (type(value).__name__, value)
    if depth == 0 or id(value) in path:
        return ("...", type(value).__qualname__)
    path = path | {id(value)}

    def key(item: Any) -> Hashable:
        return attribute_key(item, depth - 1, path)

    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, (tuple, list)):
        return (kind, tuple(key(item) for item in value))
    if isinstance(value, (set, frozenset)):
        return (kind, frozenset(key(item) for item in value))
    if isinstance(value, Mapping):
        return (kind, tuple((key(k), key(v)) for k, v in value.items()))
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return _array_key(kind, value)
    if isinstance(value, functools.partial):
        return (kind, key(value.func), key(value.args), key(value.keywords))
    if isinstance(value, types.MethodType):
        # Not the bound object: that is usually the module itself, keyed already.
        return (kind, key(value.__func__))
    if isinstance(value, types.FunctionType):
        cells = tuple(key(cell.cell_contents) for cell in value.__closure__ or ())
        return (kind, value.__module__, value.__qualname__, cells, key(value.__defaults__))
    if isinstance(value, (type, types.BuiltinFunctionType, types.ModuleType)):
        name = getattr(value, "__qualname__", getattr(value, "__name__", None))
        return (kind, getattr(value, "__module__", None), name)
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        if _module_internals().issubset(attributes):
            # An nn.Module kept outside the module tree (in a plain list or dict).
            return (kind, _module_attributes(value), repr(value))
        return (kind, key(attributes))
    text = repr(value)
    # A default repr names the object's address: a fresh object would always miss.
    return (kind, None if " at 0x" in text else text)


def _array_key(kind: str, value: Any) -> Hashable:
    from torch import nn

    shape = tuple(int(size) for size in value.shape)
    spec = (kind, shape, str(value.dtype), str(getattr(value, "device", "")))
    size = 1
    for dim in shape:
        size *= dim
    if size > _SMALL or isinstance(value, nn.Parameter) or getattr(value, "is_meta", False):
        # Weights are keyed by shape like every parameter: their values change no count.
        return spec
    return (*spec, repr(value.tolist()))
