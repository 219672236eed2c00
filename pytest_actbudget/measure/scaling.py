"""The inputs of a scaling check at one size, built from the test's own inputs.

Every input that scales gets a new tensor of the same dtype, device and
``requires_grad``, whose scaling dimensions take the size and whose other dimensions
stay as they were. Values are drawn from a fixed seed, so every run measures the same
inputs: floats from a normal distribution, integers (token ids, masks) between the
smallest and the largest of the original values, so that an embedding still finds
every id. Inputs that do not scale are passed on unchanged. Imported only while
measuring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from pytest_actbudget.errors import ActBudgetError

_SEED = 0


class ScalingInputError(ActBudgetError):
    """``scaling.inputs`` names an input or a dimension that the test's inputs lack.

    ``key`` is the input (position or keyword) named in the entry; the message says
    what the inputs are and what would be valid, without a file location (the caller
    adds it).
    """

    def __init__(self, key: int | str, message: str) -> None:
        super().__init__(message)
        self.key = key


def resized_inputs(
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    dims: Mapping[int | str, tuple[int, ...]],
    size: int,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` with every input named in ``dims`` resized to ``size`` along its
    dimensions. Raises ScalingInputError for an input or a dimension that is not there."""
    new_args, new_kwargs = list(args), dict(kwargs)
    generator = torch.Generator().manual_seed(_SEED + size)
    for key, axes in dims.items():
        if isinstance(key, int):
            if key >= len(args):
                raise ScalingInputError(key, _no_position(key, args, kwargs))
            new_args[key] = _resized(key, args[key], axes, size, generator)
        else:
            if key not in kwargs:
                raise ScalingInputError(key, _no_keyword(key, args, kwargs))
            new_kwargs[key] = _resized(key, kwargs[key], axes, size, generator)
    return tuple(new_args), new_kwargs


def _resized(
    key: int | str, tensor: Any, axes: tuple[int, ...], size: int, generator: torch.Generator
) -> torch.Tensor:
    name = _name(key)
    if not isinstance(tensor, torch.Tensor):
        raise ScalingInputError(
            key,
            f"{name} is a {type(tensor).__name__}, not a tensor, so it cannot be resized; "
            "name a tensor input, or pass scaling=Scaling(make_inputs, sizes) to "
            "act_budget.check",
        )
    shape = list(tensor.shape)
    for axis in axes:
        if not -len(shape) <= axis < len(shape):
            raise ScalingInputError(
                key,
                f"{name} has {len(shape)} dimension(s) (shape {shape}), so dimension {axis} "
                f"does not exist; valid dimensions: 0 to {len(shape) - 1}",
            )
        shape[axis] = size
    return _drawn(tensor, tuple(shape), generator)


def _drawn(like: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """A new tensor like ``like`` (dtype, device, requires_grad) of ``shape``."""
    if like.device.type == "meta":
        return torch.empty(shape, dtype=like.dtype, device="meta").requires_grad_(
            like.requires_grad
        )
    if like.is_floating_point() or like.is_complex():
        drawn = torch.randn(shape, generator=generator, dtype=like.dtype)
    elif like.numel() == 0:
        drawn = torch.zeros(shape, dtype=like.dtype)
    else:
        low, high = int(like.min()), int(like.max())
        drawn = torch.randint(low, high + 1, shape, generator=generator).to(like.dtype)
    return drawn.to(like.device).requires_grad_(like.requires_grad)


def _name(key: int | str) -> str:
    return f"input {key}" if isinstance(key, int) else f"keyword input {key!r}"


def _no_position(key: int, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    return (
        f"the model was called with {len(args)} positional input(s), so there is no input "
        f"{key}; {_what_there_is(args, kwargs)}"
    )


def _no_keyword(key: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    return f"the model was not called with a keyword input {key!r}; {_what_there_is(args, kwargs)}"


def _what_there_is(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    names = [str(i) for i in range(len(args))] + list(kwargs)
    if not names:
        return "the model was called without inputs"
    return f"inputs there are: {', '.join(names)}"
