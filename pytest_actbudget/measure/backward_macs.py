"""Multiply-adds of the aten operators a backward pass runs, from their shapes alone.

One multiply-add = 1, the unit of ``counting: macs`` and of fvcore's matmul and conv
counts. PyTorch's ``FlopCounterMode`` counts the same operators at 2 FLOPs per
multiply-add; we differ from it (by design) on one formula: its weight gradient of a
convolution ignores ``groups`` (a depthwise 3x3 conv with 32 groups gets a backward of
33x its forward in torch 2.13), where the weight gradient costs exactly the forward's
multiply-adds, as the input gradient does. Imported only while measuring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from pytest_actbudget.measure.macs import grouped_mm_macs

aten = torch.ops.aten

__all__ = ["conv_macs", "op_macs"]


def _numel(shape: Sequence[int]) -> int:
    return math.prod(int(size) for size in shape)


def _mm(a: torch.Tensor, b: torch.Tensor) -> int:
    # (m, k) @ (k, n): m * k * n; batched, (B, m, k) @ (B, k, n): B * m * k * n
    return _numel(a.shape) * int(b.shape[-1])


def conv_macs(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    transposed: bool,
) -> int:
    """A convolution's forward multiply-adds: N*Cout*Hout*Wout * Cin/groups*k*k.

    The weight holds (Cout, Cin/groups, k...) for a convolution, (Cin, Cout/groups,
    k...) for a transposed one: every element of the larger side (the output, or the
    transposed convolution's input) takes one multiply-add per weight element of its
    group."""
    side = input_shape if transposed else output_shape
    return _numel(side) * _numel(weight_shape[1:])


def _convolution(args: Sequence[Any], out: Any) -> int:
    input, weight, transposed = args[0], args[1], bool(args[6])
    return conv_macs(input.shape, weight.shape, out.shape, transposed)


def _convolution_backward(args: Sequence[Any], out: Any) -> int:
    # (grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
    #  output_padding, groups, output_mask): the input gradient is a (transposed)
    # convolution of grad_output with the weight, the weight gradient one of the input
    # with grad_output; each costs the forward's multiply-adds. The bias gradient is a
    # sum, not a multiply-add.
    grad_output, input, weight, transposed, mask = args[0], args[1], args[2], args[7], args[10]
    forward = conv_macs(input.shape, weight.shape, grad_output.shape, bool(transposed))
    return forward * (int(bool(mask[0])) + int(bool(mask[1])))


_FORMULAS: Mapping[Any, Callable[[Sequence[Any], Any], int]] = {
    aten.mm.default: lambda args, out: _mm(args[0], args[1]),
    aten.addmm.default: lambda args, out: _mm(args[1], args[2]),
    aten.bmm.default: lambda args, out: _mm(args[0], args[1]),
    aten.baddbmm.default: lambda args, out: _mm(args[1], args[2]),
    # (n, k) @ (k,) and the dot products: one multiply-add per element of the matrix
    aten.mv.default: lambda args, out: _numel(args[0].shape),
    aten.addmv.default: lambda args, out: _numel(args[1].shape),
    aten.dot.default: lambda args, out: _numel(args[0].shape),
    aten.vdot.default: lambda args, out: _numel(args[0].shape),
    # Mixtral's experts: their backward runs _grouped_mm too
    aten._grouped_mm.default: lambda args, out: grouped_mm_macs(
        args[0].shape, args[1].shape, out.shape
    ),
    aten.convolution.default: _convolution,
    aten._convolution.default: _convolution,
    aten.convolution_backward.default: _convolution_backward,
}


def op_macs(func: Any, args: Sequence[Any], out: Any) -> int:
    """The multiply-adds of one aten call (overload packet ``func``), 0 for an
    operator that does no matmul- or convolution-like work."""
    formula = _FORMULAS.get(func)
    return formula(args, out) if formula is not None else 0
