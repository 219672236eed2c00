"""Measurement: model + example inputs -> Profile. The only package that imports torch
and fvcore, and only once something is measured: importing it costs nothing.

Modules, by idea: ``model`` (the entry point and its errors), ``trace`` (one fvcore JIT
trace -> Profile), ``handles`` (operator FLOP handles per counting convention),
``hooks`` (forward and saved-tensor hooks, the model-state snapshot), ``inputs``
(nested inputs and outputs), ``meta`` (tracing tweaks for meta tensors), ``standins``
(meta stand-ins for a real model's tensors, so that nothing computes), ``cache``
(the per-session Profile cache) and ``capture`` (the marker's first-call recorder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from pytest_actbudget.results import Profile
    from pytest_actbudget.training import TrainingSpec

__all__ = ["measure"]


def measure(
    model: nn.Module,
    *inputs: Any,
    counting: str = "fvcore",
    training: TrainingSpec | bool | None = None,
    **forward_kwargs: Any,
) -> Profile:
    """Measure ``model(*inputs, **forward_kwargs)`` in one fvcore trace.

    Returns a :class:`~pytest_actbudget.results.Profile` with per-module FLOPs,
    activations, params, output shapes and bytes; ``counting`` is ``"fvcore"``
    (default) or ``"macs"``; ``training`` (True or a TrainingSpec) adds one training
    step's ``backward_flops`` and ``train_bytes``. See
    :func:`pytest_actbudget.measure.model.measure`.
    """
    from pytest_actbudget.measure.model import measure as measure_model

    return measure_model(model, *inputs, counting=counting, training=training, **forward_kwargs)
