"""MeasureCache: one trace per (structure, parameter shapes, inputs, convention)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from nets import Scaled, SmallCNN
from torch import nn

from pytest_actbudget.measure_model import MeasureCache, measure


def test_identical_model_hits_the_cache() -> None:
    cache = MeasureCache()
    x = torch.randn(2, 3, 16, 16)
    first = measure(SmallCNN(), x, cache=cache)
    # a new instance with other weights, other input values: same numbers, no trace
    second = measure(SmallCNN(), torch.randn(2, 3, 16, 16), cache=cache)
    assert second is first
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def _stride_one(model: SmallCNN) -> None:
    conv = model.stem[0]
    assert isinstance(conv, nn.Conv2d)
    conv.stride = (1, 1)


def _frozen_head(model: SmallCNN) -> None:
    model.head.weight.requires_grad_(False)


@pytest.mark.parametrize(
    ("change", "inputs", "kwargs"),
    [
        (_stride_one, (torch.randn(2, 3, 16, 16),), {}),  # a hyperparameter
        (_frozen_head, (torch.randn(2, 3, 16, 16),), {}),  # requires_grad
        (lambda m: m.eval(), (torch.randn(2, 3, 16, 16),), {}),  # training flag
        (None, (torch.randn(4, 3, 16, 16),), {}),  # input shape
        (None, (torch.randn(2, 3, 16, 16, dtype=torch.float64),), {}),  # input dtype
        (None, (torch.randn(2, 3, 16, 16),), {"counting": "macs"}),  # convention
    ],
)
def test_anything_that_changes_numbers_misses(
    change: Callable[[SmallCNN], Any] | None, inputs: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    cache = MeasureCache()
    measure(SmallCNN(), torch.randn(2, 3, 16, 16), cache=cache)
    model = SmallCNN()
    if inputs[0].dtype == torch.float64:
        model = model.double()
    if change is not None:
        change(model)
    measure(model, *inputs, cache=cache, **kwargs)
    assert (cache.hits, cache.misses) == (0, 2)


def test_forward_kwargs_are_part_of_the_key() -> None:
    cache, x = MeasureCache(), torch.randn(2, 3)
    measure(Scaled(), x, scale=2.0, cache=cache)
    measure(Scaled(), x, scale=3.0, cache=cache)
    measure(Scaled(), x, scale=2.0, extra={"bias_input": torch.randn(2, 3)}, cache=cache)
    measure(Scaled(), x, scale=2.0, cache=cache)
    assert (cache.hits, cache.misses) == (1, 3)


def test_a_cached_check_does_not_run_the_model_again() -> None:
    # What a cache hit costs is a key (structure, shapes, dtypes): no trace and no
    # forward. Counted by a forward pre-hook rather than timed (timings live in
    # benchmarks/bench.py: a hit costs 0.4-1.3% of a trace there).
    cache, x = MeasureCache(), torch.randn(8, 3, 32, 32)
    first = measure(SmallCNN(), x, cache=cache)
    again = SmallCNN()
    forwards: list[object] = []
    again.register_forward_pre_hook(lambda module, args: forwards.append(module))
    assert measure(again, x, cache=cache) is first
    assert forwards == []
    assert (cache.hits, cache.misses) == (1, 1)


def test_importing_measure_and_the_cache_does_not_import_torch(tmp_path: Any) -> None:
    import subprocess

    code = (
        "import sys; import pytest_actbudget.measure_model as m; m.MeasureCache();"
        "print('torch' in sys.modules, 'fvcore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_package_measure_stays_the_function() -> None:
    import pytest_actbudget
    import pytest_actbudget.measure_model  # the implementation module, same stem

    assert callable(pytest_actbudget.measure)
    assert pytest_actbudget.measure.__module__ == "pytest_actbudget"
