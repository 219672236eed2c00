"""The fast meta kernels return what the CPU kernels return (shapes, strides, dtypes),
hand odd cases to torch's own kernels, and are gone after the measurement."""

from __future__ import annotations

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
