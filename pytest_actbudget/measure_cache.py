"""A per-session cache of Profiles, so that checking the same model twice costs one trace.

The key describes everything the numbers depend on, without keeping the model or
its tensors alive: the model's class, its structure with hyperparameters (``repr``
and every module's plain attributes), parameter and buffer names, shapes, dtypes and
``requires_grad``, every module's training flag, the inputs' shapes/dtypes/devices
(non-tensor arguments by ``repr``), forward kwargs and the counting convention.
Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_actbudget.results import Profile

if TYPE_CHECKING:
    from torch import nn

# Attribute values that describe a hyperparameter (stride, eps, a flag, a name...).
_PLAIN = (bool, int, float, str, type(None))


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
    from pytest_actbudget.measure_inputs import describe

    model_type = type(model)
    modules = tuple(
        (path, type(module).__qualname__, _plain_attributes(module))
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


def _plain_attributes(module: Any) -> tuple[tuple[str, Any], ...]:
    """A module's public plain attributes (hyperparameters and the training flag)."""
    return tuple(
        (name, value)
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (
            isinstance(value, _PLAIN)
            or (isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value))
        )
    )
