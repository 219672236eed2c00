"""The fast meta kernels return what the CPU kernels return (shapes, strides, dtypes),
hand odd cases to torch's own kernels, and are gone after the measurement."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch

from pytest_actbudget.measure.kernels import fast_meta_kernels

aten = torch.ops.aten


def _layout(outputs: Any) -> list[tuple[Any, ...]]:
    items = outputs if isinstance(outputs, tuple) else (outputs,)
    return [(tuple(t.shape), t.stride(), t.dtype) for t in items]


def _bn(training: bool, channels_last: bool = False) -> Callable[[str], Any]:
    def call(device: str) -> Any:
        x = torch.randn(2, 3, 4, 4, device=device)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        stats = [torch.ones(3, device=device) for _ in range(4)]
        return aten.native_batch_norm(x, *stats, training, 0.1, 1e-5)

    return call


CASES: dict[str, Callable[[str], Any]] = {
    "batch_norm_train": _bn(True),
    "batch_norm_eval": _bn(False),
    "batch_norm_channels_last": _bn(False, channels_last=True),
    "layer_norm": lambda d: aten.native_layer_norm(
        torch.randn(2, 5, 8, device=d), [8], torch.ones(8, device=d), None, 1e-5
    ),
    # non-contiguous input: a contiguous output on the CPU
    "layer_norm_transposed": lambda d: aten.native_layer_norm(
        torch.randn(5, 2, 8, device=d).transpose(0, 1), [8], None, None, 1e-5
    ),
    "addmm": lambda d: aten.addmm(
        torch.zeros(5, device=d), torch.randn(3, 4, device=d), torch.randn(5, 4, device=d).t()
    ),
    "mm": lambda d: aten.mm(torch.randn(3, 4, device=d), torch.randn(4, 6, device=d)),
    "bmm": lambda d: aten.bmm(torch.randn(2, 3, 4, device=d), torch.randn(2, 4, 6, device=d)),
    "gelu": lambda d: aten.gelu(torch.randn(2, 3, device=d)),
    "gelu_channels_last": lambda d: aten.gelu(
        torch.randn(2, 3, 4, 4, device=d).to(memory_format=torch.channels_last)
    ),
    "silu_transposed": lambda d: aten.silu(torch.randn(3, 4, device=d).t()),
    "hardtanh_": lambda d: aten.hardtanh_(torch.randn(2, 3, device=d), 0.0, 6.0),
    "safe_softmax": lambda d: aten._safe_softmax(torch.randn(2, 3, 4, device=d), -1),
    # convolutions as the tracer records them (aten::_convolution); torch's meta kernel
    # makes a contiguous output, so inputs are contiguous here (CPU: the same)
    "convolution": lambda d: aten._convolution(
        torch.randn(2, 4, 9, 9, device=d),
        torch.randn(6, 2, 3, 3, device=d),
        torch.zeros(6, device=d),
        [2, 2],
        [1, 1],
        [1, 1],
        False,
        [0, 0],
        2,
        False,
        False,
        True,
        True,
    ),
    "convolution_transposed": lambda d: aten._convolution(
        torch.randn(1, 4, 5, 5, device=d),
        torch.randn(4, 3, 2, 2, device=d),
        None,
        [2, 2],
        [0, 0],
        [1, 1],
        True,
        [1, 1],
        1,
        False,
        False,
        True,
        True,
    ),
    "convolution_1d_dilated": lambda d: aten._convolution(
        torch.randn(2, 3, 20, device=d),
        torch.randn(5, 3, 3, device=d),
        None,
        [1],
        [2],
        [2],
        False,
        [0],
        1,
        False,
        False,
        True,
        True,
    ),
    "add_broadcast": lambda d: aten.add(
        torch.randn(2, 1, 3, device=d), torch.randn(4, 1, device=d), alpha=2
    ),
    "mul_number": lambda d: torch.randn(2, 3, device=d) * 0.5,
    "div_floor": lambda d: aten.div(
        torch.randn(2, 3, device=d), torch.randn(3, device=d), rounding_mode="floor"
    ),
    "add_in_place": lambda d: torch.randn(2, 3, device=d).add_(torch.randn(3, device=d)),
    "mul_positions": lambda d: torch.arange(6, device=d).view(2, 3) * 2,
    "mul_int_by_float": lambda d: torch.arange(6, device=d) * 0.5,  # a float result
    "div_ints": lambda d: aten.div(torch.arange(6, device=d), torch.arange(1, 7, device=d)),
    "cat_permuted": lambda d: torch.cat(
        [torch.randn(1, 1, 8, device=d), torch.randn(1, 8, 5, device=d).permute(0, 2, 1)], 1
    ),
    "cat": lambda d: torch.cat([torch.randn(2, 3, 4, device=d), torch.randn(2, 5, 4, device=d)], 1),
    "cat_negative_dim": lambda d: torch.cat([torch.randn(2, 3, device=d)] * 3, -1),
    "mean_pool": lambda d: aten.mean.dim(torch.randn(2, 3, 4, 5, device=d), [-1, -2], True),
    "mean_drop": lambda d: aten.mean.dim(torch.randn(2, 3, 4, device=d), [1]),
    # not the plain case: torch's kernels (both layouts at once; channels-last inputs)
    "cat_one_channel": lambda d: torch.cat([torch.randn(2, 1, 3, 3, device=d)] * 2, 0),
    "mean_channels_last": lambda d: aten.mean.dim(
        torch.randn(2, 3, 4, 5, device=d).to(memory_format=torch.channels_last), [1], True
    ),
    # not the plain case: torch's kernels (CPU: a channels-last result)
    "add_transposed": lambda d: torch.randn(3, 2, device=d).t() + torch.randn(2, 3, device=d),
    # half statistics, as on the CPU (torch's own meta kernel makes them float32)
    "layer_norm_half": lambda d: aten.native_layer_norm(
        torch.randn(2, 8, device=d).half(), [8], None, None, 1e-5
    ),
    "layer_norm_bfloat16": lambda d: aten.native_layer_norm(
        torch.randn(2, 8, device=d).bfloat16(), [8], None, None, 1e-5
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_fast_kernels_return_what_the_cpu_returns(case: str) -> None:
    on_cpu = _layout(CASES[case]("cpu"))
    with fast_meta_kernels():
        on_meta = _layout(CASES[case]("meta"))
    assert on_meta == on_cpu


def test_mismatched_arguments_still_raise_as_on_the_cpu() -> None:
    x, wrong = torch.empty(2, 5, 8, device="meta"), torch.empty(7, device="meta")
    with fast_meta_kernels():
        with pytest.raises(RuntimeError):
            aten.native_layer_norm(x, [8], wrong, None, 1e-5)
        with pytest.raises(RuntimeError):  # 4 input channels, the weight wants 3
            aten._convolution(
                torch.empty(1, 4, 5, 5, device="meta"),
                torch.empty(2, 3, 3, 3, device="meta"),
                None,
                [1, 1],
                [0, 0],
                [1, 1],
                False,
                [0, 0],
                1,
                False,
                False,
                True,
                True,
            )
        with pytest.raises(RuntimeError):  # sizes off the cat dim differ
            torch.cat([torch.empty(2, 3, device="meta"), torch.empty(3, 3, device="meta")], 1)
        with pytest.raises(RuntimeError):  # shapes that do not broadcast
            aten.add(torch.empty(2, 3, device="meta"), torch.empty(4, device="meta"))
        with pytest.raises(RuntimeError, match="expected device meta"):
            aten.addmm(torch.zeros(5), torch.empty(3, 4, device="meta"), x[0, :4, :5])


def test_torch_kernels_are_back_afterwards() -> None:
    # torch's meta kernel of native_batch_norm returns (C,) statistics in eval mode,
    # the fast one the CPU's empty ones
    def stats_shape() -> tuple[int, ...]:
        return tuple(_bn(False)("meta")[1].shape)

    with fast_meta_kernels():
        assert stats_shape() == (0,)
    assert stats_shape() == (3,)


def _views(count: int) -> list[torch.Tensor]:
    """Non-contiguous views of every kind: permuted, sliced, selected, expanded, with
    size-1 dims (whose strides are arbitrary), of rank 1 to 6; seeded."""
    rng = random.Random(11)
    views = []
    while len(views) < count:
        rank = rng.randint(1, 5)
        t = torch.randn(*(rng.choice([1, 1, 2, 3, 4]) for _ in range(rank + 1)))
        if rng.random() < 0.3:
            t = t.expand(*(rng.choice([1, 3]) if n == 1 else n for n in t.shape))
        t = t.permute(*rng.sample(range(t.dim()), t.dim()))
        dim = rng.randrange(t.dim())
        if rng.random() < 0.5 and t.shape[dim] > 2:
            t = t.narrow(dim, 1, t.shape[dim] - 2)
        if rng.random() < 0.3 and t.dim() > 1:
            t = t.select(dim, 0)
        if not t.is_contiguous():
            views.append(t)
    return views


def test_a_view_times_a_number_is_laid_out_as_on_the_cpu() -> None:
    # attention scales q, a slice of the fused qkv projection; TensorIterator orders the
    # result's dims by the input's strides, which iterator_strides redoes in Python
    with fast_meta_kernels():
        for view in _views(300):
            standin = torch.empty_strided(view.shape, view.stride(), device="meta")
            expected = (view * 0.5).stride()
            assert (standin * 0.5).stride() == expected, (view.shape, view.stride())
            # from C++ (the math attention kernel) the number comes as a Scalar
            assert aten.mul.Scalar(standin, 0.5).stride() == expected


_FIRST_MEASUREMENT = """
import sys
import torch
from torch import nn
from pytest_actbudget import measure

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        x = self.conv(x)
        x = torch.cat([x, x], 0).mean([-1], keepdim=True).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(x).chunk(3, -1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v) + 1

measure(Net(), torch.randn(1, 3, 6, 6))
print(sorted(name for name in ("torch._dynamo", "sympy") if name in sys.modules))
"""


def test_a_first_measurement_does_not_import_torch_dynamo() -> None:
    # torch's Python references of cat, mean, mul and add run under torch._dynamo.disable,
    # which imports torch._dynamo (about a second) on the first call in a process
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_MEASUREMENT], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[-2] == "[]", done.stdout
