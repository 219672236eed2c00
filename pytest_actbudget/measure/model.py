"""model + example inputs -> Profile.

The public entry point of measurement. Importing this module is free: torch and
fvcore are imported the first time something is measured, so that the pytest
plugin costs nothing in a run without act_budget tests.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from pytest_actbudget.errors import MeasurementError
from pytest_actbudget.measure.cache import MeasureCache, cache_key
from pytest_actbudget.results import COUNTINGS, Profile

if TYPE_CHECKING:
    from torch import nn

__all__ = ["COUNTINGS", "MeasureCache", "MeasurementError", "measure"]

#: The counting conventions ``measure`` understands (``counting.flops`` in budgets files).


def measure(
    model: nn.Module,
    *inputs: Any,
    counting: str = "fvcore",
    cache: MeasureCache | None = None,
    **forward_kwargs: Any,
) -> Profile:
    """Measure ``model(*inputs, **forward_kwargs)`` with one fvcore JIT trace.

    Returns a :class:`~pytest_actbudget.results.Profile`: for every module path
    (root ``""`` = totals) FLOPs, activations, params, trainable params, output
    shape/dtype, ``act_bytes`` and ``saved_bytes``, each inclusive of descendants,
    plus the aten operators that were not counted.

    ``counting`` is ``"fvcore"`` (fvcore's default handles plus attention and the
    matmul forms fvcore misses) or ``"macs"`` (only conv and matmul-like ops, one
    multiply-add = 1). Inputs may be tensors or tuples/lists/dicts of tensors, on
    any device including ``meta``. The model comes out unchanged (modes, hooks,
    ``requires_grad``, parameters, buffers, grads, RNG state).

    With a ``cache``, measuring an identical model (same structure, attribute
    values, parameter shapes, training flags) with identically shaped inputs returns
    the cached Profile without tracing.

    Raises :class:`~pytest_actbudget.errors.MeasurementError` when the forward
    raises or the model cannot be traced.
    """
    if counting not in COUNTINGS:
        raise ValueError(f"unknown counting {counting!r}; valid: {', '.join(COUNTINGS)}")
    key = cache_key(model, inputs, forward_kwargs, counting) if cache is not None else None
    if cache is not None and key is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    profile = _measure(model, inputs, forward_kwargs, counting)
    if cache is not None and key is not None:
        cache.put(key, profile)
    return profile


def _measure(model: Any, inputs: tuple[Any, ...], kwargs: dict[str, Any], counting: str) -> Profile:
    from torch import nn

    name = type(model).__name__
    if not isinstance(model, nn.Module):
        raise MeasurementError(
            f"could not measure {name}: it is not a torch.nn.Module "
            "(measure takes the model first, then its example inputs)"
        )
    slashed = next((path for path, _ in model.named_modules() if "/" in path), None)
    if slashed is not None:
        # fvcore joins module scopes with "/" and splits them again: such a name would
        # attribute its operators to modules that do not exist.
        raise MeasurementError(
            f"could not measure {name}: module {slashed!r} has a '/' in its name, which "
            "fvcore's tracer uses to separate module scopes; rename it (e.g. with '_')"
        )
    with warnings.catch_warnings():
        # fvcore.nn scripts its losses at import: torch.jit.script's DeprecationWarning
        # says nothing to our users.
        warnings.simplefilter("ignore", DeprecationWarning)
        from pytest_actbudget.measure.trace import ForwardFailed, NoTensorOutput, trace_profile

    try:
        return trace_profile(model, inputs, kwargs, counting)
    except ForwardFailed as failed:
        cause = failed.__cause__ or failed
        raise MeasurementError(
            f"could not measure {name}: its forward raised {type(cause).__name__}: {cause}"
        ) from cause
    except NoTensorOutput as error:
        raise MeasurementError(
            f"could not measure {name}: {error}; the JIT tracer follows tensors only, so "
            "the forward must return a tensor or tuples/lists/dicts/dataclasses of tensors"
        ) from error
    except Exception as error:
        raise MeasurementError(
            f"could not measure {name}: torch.jit could not trace it "
            f"({type(error).__name__}: {error}); measured models must run under "
            "torch.jit tracing (tensor inputs and outputs, no Python-side data-dependent "
            "control flow on meta tensors)"
        ) from error
