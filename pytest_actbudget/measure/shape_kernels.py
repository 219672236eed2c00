"""Fast meta kernels that compute an output shape: ``_convolution`` (the output-size
formula), the broadcasting binary ``add``/``sub``/``mul``/``div``, ``cat`` and
``mean`` over dims. Registered by ``kernels.fast_meta_kernels`` with the others; each
returns ``TORCH`` outside its plain case, and torch's own kernel runs.

Imported only while measuring.
"""

from __future__ import annotations

from typing import Any

import torch

from pytest_actbudget.measure.kernels import (
    FLOATS,
    TORCH,
    Kernel,
    new_meta,
    on_meta,
    vector,
)


def convolution(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
    output_padding: list[int],
    groups: int,
    *flags: bool,
) -> Any:
    """``_convolution``: the shape from the output-size formula (torch's kernel makes a
    contiguous output too, checks and all, in far more Python)."""
    shape = _convolution_shape(
        input, weight, bias, stride, padding, dilation, transposed, output_padding, groups
    )
    return TORCH if shape is None else new_meta(shape, input)


def _convolution_shape(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
    output_padding: list[int],
    groups: int,
) -> tuple[int, ...] | None:
    """The output shape of a well-formed batched convolution; None for anything else
    (torch's kernel then raises, or handles it)."""
    dims = input.dim() - 2
    if (
        dims not in (1, 2, 3)
        or weight.dim() != input.dim()
        or not all(len(v) == dims for v in (stride, padding, dilation, output_padding))
        or input.dtype not in FLOATS
        or weight.dtype != input.dtype
        or not on_meta(input, weight, bias)
        or groups < 1
    ):
        return None
    batch, channels, *sizes = input.shape
    filters, per_group, *kernel = weight.shape
    if transposed:
        out_channels = per_group * groups
        fits = filters == channels and all(
            0 <= o < max(s, d) for o, s, d in zip(output_padding, stride, dilation, strict=True)
        )
    else:
        out_channels = filters
        fits = per_group * groups == channels and filters % groups == 0
    if not fits or channels == 0 or not vector(bias, out_channels, input.dtype):
        return None
    out = []
    for i in range(dims):
        span = dilation[i] * (kernel[i] - 1)
        if transposed:
            size = (sizes[i] - 1) * stride[i] - 2 * padding[i] + span + output_padding[i] + 1
        else:
            size = (sizes[i] + 2 * padding[i] - span - 1) // stride[i] + 1
        if stride[i] < 1 or dilation[i] < 1 or padding[i] < 0 or size < 1:
            return None
        out.append(size)
    return (batch, out_channels, *out)


def binary(*, inplace: bool = False, integers: bool = False) -> Kernel:
    """``add``/``sub``/``mul``/``div`` of two contiguous float tensors of one dtype (or
    a tensor and a number): a contiguous result of the broadcast shape (what
    TensorIterator makes of them); in place: the left operand, when the result has its
    shape. With ``integers`` (not for ``div``, whose integer result is a float) also
    int64/int32 tensors and integer numbers (position ids)."""
    dtypes = (*FLOATS, torch.int64, torch.int32) if integers else FLOATS

    def kernel(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        # torch hands a Python number over as it was (int, float or bool)
        number = isinstance(b, (bool, int, float))
        if not (
            isinstance(a, torch.Tensor)
            and a.dtype in dtypes
            and a.is_meta
            and set(kwargs) <= {"alpha", "rounding_mode"}
        ):
            return TORCH
        if number:
            # an int tensor times a float number is a float tensor: torch's kernel
            if not a.is_floating_point() and isinstance(b, float):
                return TORCH
            if inplace:
                return a
            if a.is_contiguous():
                return new_meta(a.shape, a)
            # attention's q * scale on a slice of the fused qkv projection
            strides = iterator_strides(tuple(a.shape), a.stride())
            return torch.empty_strided(a.shape, strides, dtype=a.dtype, device="meta")
        if not a.is_contiguous():
            return TORCH
        if not (
            isinstance(b, torch.Tensor)
            and (_number(b) or (b.dtype == a.dtype and b.is_meta and b.is_contiguous()))
            and (a.is_floating_point() or not b.is_floating_point())
        ):
            return TORCH
        shape = _broadcast(tuple(a.shape), tuple(b.shape))
        if shape is None or (inplace and shape != tuple(a.shape)):
            return TORCH
        return a if inplace else new_meta(shape, a)

    return kernel


def iterator_strides(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, ...]:
    """The strides TensorIterator gives the result of an op on one non-contiguous
    tensor (and numbers): dims sorted by the input's strides (an insertion sort
    from the last dim; equal strides put the smaller dim first, zero strides give no
    order), then laid out densely in that order."""
    rank = len(shape)

    def swap(first: int, second: int) -> int:
        if strides[first] == 0 or strides[second] == 0:
            return 0  # no order to go by: keep looking further left
        if strides[first] != strides[second]:
            return -1 if strides[first] < strides[second] else 1
        return 1 if shape[first] > shape[second] else 0

    perm = list(range(rank - 1, -1, -1))  # fastest-moving first
    for i in range(1, rank):
        moving = i
        for left in range(i - 1, -1, -1):
            order = swap(perm[left], perm[moving])
            if order > 0:
                perm[left], perm[moving] = perm[moving], perm[left]
                moving = left
            elif order < 0:
                break
    result = [0] * rank
    step = 1
    for dim in perm:
        result[dim] = step
        step *= shape[dim]
    return tuple(result)


def _number(tensor: torch.Tensor) -> bool:
    """A 0-d CPU tensor that is not complex (a Python number, as the dispatcher wraps
    it): it takes part in type promotion by category only, so a float tensor keeps its
    dtype."""
    return tensor.dim() == 0 and tensor.device.type == "cpu" and not tensor.is_complex()


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
        return None
    return tuple(y if x == 1 else x for x, y in zip(a, b, strict=True))


def _plainly_contiguous(tensor: torch.Tensor) -> bool:
    """Contiguous, and not also channels-last (a 4-d or 5-d tensor with one channel or
    1x1 pixels is both: which layout a new tensor takes is torch's call)."""
    if not tensor.is_contiguous():
        return False
    if tensor.dim() == 4:
        return not tensor.is_contiguous(memory_format=torch.channels_last)
    if tensor.dim() == 5:
        return not tensor.is_contiguous(memory_format=torch.channels_last_3d)
    return True


def cat(tensors: list[torch.Tensor], dim: int = 0) -> Any:
    """``cat`` of meta tensors of one float dtype and rank that agree off ``dim``
    (contiguous ones when 4-d or 5-d): a contiguous result (the U-Net's skips, ViT's
    class token)."""
    first = tensors[0] if tensors else None
    if first is None or first.dim() == 0 or not -first.dim() <= dim < first.dim():
        return TORCH
    dim %= first.dim()
    shape = list(first.shape)
    for tensor in tensors:
        if not (
            tensor.is_meta
            and tensor.dtype == first.dtype
            and tensor.dtype in FLOATS
            and tensor.dim() == first.dim()
            # 4-d and 5-d results follow the inputs' layout; others are contiguous
            and (tensor.dim() not in (4, 5) or _plainly_contiguous(tensor))
            and all(
                n == m for i, (n, m) in enumerate(zip(tensor.shape, shape, strict=True)) if i != dim
            )
        ):
            return TORCH
    shape[dim] = sum(tensor.shape[dim] for tensor in tensors)
    return new_meta(tuple(shape), first)


def mean(
    input: torch.Tensor,
    dim: list[int] | None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
) -> Any:
    """``mean`` over some dims of a contiguous float tensor (global average pooling): a
    contiguous result with those dims dropped, or kept as 1."""
    rank = input.dim()
    if (
        not dim
        or dtype not in (None, input.dtype)
        or input.dtype not in FLOATS
        or not input.is_meta
        or not _plainly_contiguous(input)
        or not all(-rank <= d < rank for d in dim)
    ):
        return TORCH
    reduced = {d % rank for d in dim}
    if len(reduced) != len(dim):
        return TORCH  # a dim named twice: torch's error
    shape = [
        1 if i in reduced else n for i, n in enumerate(input.shape) if keepdim or i not in reduced
    ]
    return new_meta(tuple(shape), input)
