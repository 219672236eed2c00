"""model + example inputs -> Profile.

The public entry point of measurement. Importing this module is free: torch and
fvcore are imported the first time something is measured, so that the pytest
plugin costs nothing in a run without act_budget tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pytest_actbudget.errors import MeasurementError
from pytest_actbudget.measure.cache import MeasureCache, cache_key
from pytest_actbudget.results import COUNTINGS, Profile
from pytest_actbudget.training import TrainingSpec

if TYPE_CHECKING:
    from torch import nn

__all__ = ["COUNTINGS", "MeasureCache", "MeasurementError", "measure"]

# torch.jit.script/trace deprecation notices (DeprecationWarning in torch 2.13,
# FutureWarning in 2.14), raised by fvcore's import and by our trace, not by the user.
_JIT_DEPRECATED = r".*torch\.jit\b.*deprecated"


def measure(
    model: nn.Module,
    *inputs: Any,
    counting: str = "fvcore",
    cache: MeasureCache | None = None,
    training: TrainingSpec | bool | None = None,
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

    Nothing is computed: the trace runs on meta stand-ins of the model's tensors and
    the inputs, with the numbers of a real trace. A forward that meta cannot follow
    (``.item()``, branches on tensor values, ``nonzero``, ops without a meta kernel)
    is traced again on the real tensors; ``Profile.traced_on`` and
    ``Profile.meta_fallback`` say where it ran and why.

    With ``training`` (True, or a :class:`~pytest_actbudget.training.TrainingSpec`
    naming the optimizer and dtypes), one training step is measured too: every layer
    gets ``backward_flops`` and ``train_bytes`` (see
    :mod:`pytest_actbudget.measure.training`).

    With a ``cache``, measuring an identical model (same structure, attribute
    values, parameter shapes, training flags) with identically shaped inputs returns
    the cached Profile without tracing.

    Raises :class:`~pytest_actbudget.errors.MeasurementError` when the forward
    raises or the model cannot be traced.
    """
    if counting not in COUNTINGS:
        raise ValueError(f"unknown counting {counting!r}; valid: {', '.join(COUNTINGS)}")
    spec = TrainingSpec() if training is True else (training or None)
    key = (cache_key(model, inputs, forward_kwargs, counting), spec) if cache is not None else None
    if cache is not None and key is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    profile = _measure(model, inputs, forward_kwargs, counting)
    if spec is not None:
        profile = _measure_training(profile, model, inputs, forward_kwargs, spec)
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
    with quiet_torch_jit():
        from pytest_actbudget.measure.trace import ForwardFailed, NoTensorOutput, trace_profile

    try:
        with quiet_torch_jit():
            return trace_profile(model, inputs, kwargs, counting)
    except ForwardFailed as failed:
        cause = failed.__cause__ or failed
        raise _forward_error(model, inputs, kwargs, cause) from cause
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


@contextmanager
def quiet_torch_jit() -> Iterator[None]:
    """No torch.jit deprecation warnings from our machinery: importing fvcore scripts
    its losses, and measuring traces. Warnings of the user's forward still show."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", _JIT_DEPRECATED, category)
        yield


def _forward_error(
    model: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], cause: BaseException
) -> MeasurementError:
    """The forward raised while measured: the user's error, unless the same forward
    traces without the plugin's tracing tweaks, which then broke it."""
    from pytest_actbudget.measure.capture import paused
    from pytest_actbudget.measure.trace import plain_trace_error

    name = type(model).__name__
    raised = f"{type(cause).__name__}: {cause}"
    yours = MeasurementError(f"could not measure {name}: its forward raised {raised}")
    # The replay runs the forward (and its hooks) once more: only for the errors our
    # plain-int sizes can cause (an int used as a tensor), never for the user's own.
    if not isinstance(cause, (AttributeError, TypeError)) or "'int'" not in str(cause):
        return yours
    with paused(), quiet_torch_jit(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's own warnings, for a trace we drop
        if plain_trace_error(model, inputs, kwargs) is not None:
            return yours
    return MeasurementError(
        f"could not measure {name}: the forward traces fine with plain torch.jit but "
        "failed under pytest-actbudget's measuring machinery (which makes tensor sizes "
        "plain ints while tracing), so the failure is the plugin's, not the forward's: "
        f"at {_operation(cause)}: {raised}. Please report it to pytest-actbudget with "
        "the model; until it is fixed, leave this model unmarked"
    )


def _operation(error: BaseException) -> str:
    """The function that raised, as ``module.function (file.py:line)``."""
    tb = error.__traceback__
    if tb is None:
        return "an operation"
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    module = frame.f_globals.get("__name__", "?")
    filename = frame.f_code.co_filename.replace("\\", "/").rpartition("/")[2]
    qualname = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)  # 3.11+
    return f"{module}.{qualname} ({filename}:{tb.tb_lineno})"


def _measure_training(
    profile: Profile,
    model: nn.Module,
    inputs: tuple[Any, ...],
    kwargs: dict[str, Any],
    spec: TrainingSpec,
) -> Profile:
    from pytest_actbudget.measure.trace import ForwardFailed
    from pytest_actbudget.measure.training import BackwardFailed, with_training

    name = type(model).__name__
    try:
        return with_training(profile, model, inputs, kwargs, spec)
    except (ForwardFailed, BackwardFailed) as failed:
        cause = failed.__cause__ or failed
        part = "forward" if isinstance(failed, ForwardFailed) else "backward"
        raise MeasurementError(
            f"could not measure the training step of {name}: its {part} with autograd "
            f"raised {type(cause).__name__}: {cause}; measure it without `training:` "
            "(inference budgets only), or make its forward differentiable"
        ) from cause
