"""MeasureCache: one trace per (structure, parameter shapes, inputs, convention)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from nets import Scaled, SmallCNN
from torch import nn

from pytest_actbudget.measure.cache import attribute_key, cache_key
from pytest_actbudget.measure.model import MeasureCache, measure


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
        "import sys; from pytest_actbudget.measure import model as m; m.MeasureCache();"
        "print('torch' in sys.modules, 'fvcore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_package_measure_stays_the_function() -> None:
    # Importing a module of the measure package binds the package as attribute
    # `measure` of pytest_actbudget unless the package was imported first (it is, by
    # pytest_actbudget/__init__.py): the public name must stay the function.
    import pytest_actbudget
    import pytest_actbudget.measure.model
    from pytest_actbudget.measure import measure as public

    assert callable(pytest_actbudget.measure)
    assert pytest_actbudget.measure is public


class Repeated(nn.Module):
    """Applies its conv once per item of a list attribute."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.sizes = sizes
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in self.sizes:
            x = self.conv(x)
        return x


class Upsampled(nn.Module):
    """Upsamples by a scale held in a dict attribute, then a 1x1 conv."""

    def __init__(self, cfg: dict[str, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(nn.functional.interpolate(x, scale_factor=self.cfg["s"]))
        return out


def test_a_list_attribute_is_part_of_the_key() -> None:
    # x (1, 3, 8, 8); conv 3->3 k3 p1 keeps 8x8: MACs 1*3*8*8*3*3*3 = 5_184 per call,
    # so sizes [1] -> 1 call = 5_184 and [1, 1, 1, 1] -> 4 calls = 20_736
    cache, x = MeasureCache(), torch.randn(1, 3, 8, 8)
    assert measure(Repeated([1]), x, cache=cache).total.flops == 5_184
    assert measure(Repeated([1, 1, 1, 1]), x, cache=cache).total.flops == 20_736
    assert (cache.hits, cache.misses) == (0, 2)
    # an equal list in a new instance still hits
    assert measure(Repeated([1, 1, 1, 1]), x, cache=cache).total.flops == 20_736
    assert (cache.hits, cache.misses) == (1, 2)


def test_a_dict_attribute_is_part_of_the_key() -> None:
    # x (1, 3, 8, 8); fvcore counts upsample_nearest2d as 1 per output element and the
    # 1x1 conv 3->3 as 3*3 = 9 MACs per output pixel:
    # s=1: 1*3*8*8 = 192 + 1*8*8*9 = 576 -> 768
    # s=4: output 32x32: 1*3*32*32 = 3_072 + 32*32*9 = 9_216 -> 12_288
    cache, x = MeasureCache(), torch.randn(1, 3, 8, 8)
    assert measure(Upsampled({"s": 1}), x, cache=cache).total.flops == 768
    assert measure(Upsampled({"s": 4}), x, cache=cache).total.flops == 12_288
    assert (cache.hits, cache.misses) == (0, 2)


def _double(x: Any) -> Any:
    return 2 * x


def _triple(x: Any) -> Any:
    return 3 * x


def _closure(factor: int) -> Callable[[Any], Any]:
    return lambda x: factor * x


class Config:
    def __init__(self, depth: int) -> None:
        self.depth = depth


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ([1], [1, 1]),
        ([[1, 2], [3]], [[1, 2], [4]]),  # nested
        ({"s": 1}, {"s": 4}),
        ({"a": [1]}, {"a": [1, 1]}),
        ({1, 2}, {1, 3}),
        ((1, [2]), (1, [3])),
        ([1], (1,)),  # another container type
        (1, True),  # equal in Python, another type
        (1, 1.0),
        (torch.tensor(2.0), torch.tensor(4.0)),  # small tensors by value
        (torch.zeros(32), torch.zeros(33)),  # large ones by shape
        (torch.zeros(2), torch.zeros(2, dtype=torch.int64)),
        (_double, _triple),
        (_closure(2), _closure(3)),
        (Config(1), Config(2)),  # an object's attributes
        ([nn.Linear(2, 3)], [nn.Linear(2, 4)]),  # a module outside the tree
    ],
)
def test_attribute_keys_differ_when_values_differ(one: Any, other: Any) -> None:
    assert attribute_key(one) != attribute_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ([1, {"a": (2, 3)}], [1, {"a": (2, 3)}]),
        ({3, 1, 2}, {1, 2, 3}),  # set order does not matter
        (torch.tensor(2.0), torch.tensor(2.0)),
        (torch.zeros(32), torch.ones(32)),  # values of large tensors change no count
        (nn.Parameter(torch.zeros(2)), nn.Parameter(torch.ones(2))),  # weights: shape
        (_closure(2), _closure(2)),
        (Config(1), Config(1)),
        (object(), object()),  # the address in a default repr is not part of the key
    ],
)
def test_equal_attribute_values_give_equal_keys(one: Any, other: Any) -> None:
    assert attribute_key(one) == attribute_key(other)
    hash(attribute_key(one))


def test_a_reference_cycle_gives_a_key() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    hash(attribute_key(cycle))
    assert attribute_key(cycle) != attribute_key([1, [2]])


def test_private_attributes_are_part_of_the_key() -> None:
    # a forward may read self._depth as well as self.depth; nn.Module's own private
    # attributes (_parameters, hook dicts...) are keyed elsewhere or not at all
    one, other, x = Repeated([1]), Repeated([1]), torch.randn(1, 3, 8, 8)
    one._depth = 1  # type: ignore[assignment]
    other._depth = 2  # type: ignore[assignment]
    assert cache_key(one, (x,), {}, "fvcore") != cache_key(other, (x,), {}, "fvcore")
    other._depth = 1  # type: ignore[assignment]
    assert cache_key(one, (x,), {}, "fvcore") == cache_key(other, (x,), {}, "fvcore")
