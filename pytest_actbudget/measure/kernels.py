"""Fast meta kernels for the operators that dominate a meta trace.

On the meta device, torch runs Python reference code for batch and layer norm,
convolution, ``addmm`` (every linear over a sequence), ``mm``/``bmm``, the binary
``add``/``sub``/``mul``/``div``, GELU, SiLU, ReLU6 and the softmax of attention:
elementwise type promotion, broadcasting and stride logic in Python, several
milliseconds per call (ResNet-50's 53 batch norms alone took longer than its whole
CPU forward; the elementwise references also import torch._dynamo, about a second,
on their first call in a process). While a measurement traces on meta, these kernels
are replaced by ones that only allocate the outputs the CPU kernel would return:
same shapes, strides and dtypes, so the trace, the saved tensors and every number
are unchanged (the meta == real tests check it on every test model). A call outside
the plain case (other dtypes, odd layouts, mismatched shapes) goes to torch's own
kernel, which also raises the errors the CPU would. The registrations are removed
afterwards.

Imported only while measuring.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch._decomp import global_decomposition_table

_aten = torch.ops.aten
_FLOATS = (torch.float32, torch.float64)
# Layer norm statistics stay in the input dtype on the CPU for these too (torch's own
# meta kernel makes float32 ones for half inputs: saved_bytes would differ).
_LAYER_NORM_FLOATS = (*_FLOATS, torch.float16, torch.bfloat16)
Kernel = Callable[..., Any]


def _original(op: Any) -> Kernel:
    """torch's Python meta kernel of ``op``: the one ``torch._meta_registrations`` picks
    (meta, then post-autograd, then pre-autograd decompositions)."""
    for kind in ("meta", "post_autograd", "pre_autograd"):
        table = global_decomposition_table[kind]
        if op in table:
            kernel: Kernel = table[op]
            return kernel
    raise LookupError(op)


def _dense(tensor: torch.Tensor) -> bool:
    """Laid out as ``empty_like`` lays out a new tensor: contiguous or channels-last."""
    return tensor.is_contiguous() or (
        tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last)
    )


def _vector(tensor: torch.Tensor | None, size: int, dtype: torch.dtype) -> bool:
    return tensor is None or (
        tuple(tensor.shape) == (size,) and tensor.dtype == dtype and tensor.is_meta
    )


def _on_meta(*tensors: torch.Tensor | None) -> bool:
    """Every tensor argument on meta: a CPU one among them is the device error that
    torch's kernel raises (as the real forward would)."""
    return all(tensor is None or tensor.is_meta for tensor in tensors)


def _batch_norm(original: Kernel) -> Kernel:
    def kernel(
        input: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        running_mean: torch.Tensor | None,
        running_var: torch.Tensor | None,
        training: bool,
        momentum: float,
        eps: float,
    ) -> Any:
        channels = input.shape[1] if input.dim() >= 2 else -1
        plain = (
            channels > 0
            and input.is_meta
            and input.dtype in _FLOATS
            and _dense(input)
            and all(
                _vector(t, channels, input.dtype) for t in (weight, bias, running_mean, running_var)
            )
            and (training or (running_mean is not None and running_var is not None))
        )
        if not plain:
            return original(input, weight, bias, running_mean, running_var, training, momentum, eps)
        # The CPU kernel returns batch statistics in training and empty ones in eval.
        stats = (channels,) if training else (0,)
        return torch.empty_like(input), input.new_empty(stats), input.new_empty(stats)

    return kernel


def _layer_norm(original: Kernel) -> Kernel:
    def kernel(
        input: torch.Tensor,
        normalized_shape: list[int],
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        eps: float,
    ) -> Any:
        shape, normalized = tuple(input.shape), tuple(normalized_shape)
        axis = len(shape) - len(normalized)
        plain = (
            axis >= 0
            and shape[axis:] == normalized
            and input.dtype in _LAYER_NORM_FLOATS
            and _on_meta(input, weight, bias)
            and all(
                t is None or (tuple(t.shape) == normalized and t.dtype == input.dtype)
                for t in (weight, bias)
            )
        )
        if not plain:
            return original(input, normalized_shape, weight, bias, eps)
        # Output contiguous whatever the input's layout (the CPU kernel makes it so);
        # mean and rstd keep the leading dims with size-1 normalized dims.
        stats = (*shape[:axis], *(1 for _ in normalized))
        return input.new_empty(shape), input.new_empty(stats), input.new_empty(stats)

    return kernel


def _matrix_product(original: Kernel, *, batched: bool, with_input: bool) -> Kernel:
    """``mm``/``bmm``/``addmm``: a contiguous (…, n, p) result."""

    def kernel(*args: Any, **kwargs: Any) -> Any:
        a, b = (args[1], args[2]) if with_input else (args[0], args[1])
        rank = 3 if batched else 2
        plain = (
            set(kwargs) <= {"beta", "alpha"}
            and a.dim() == rank
            and b.dim() == rank
            and a.dtype == b.dtype
            and _on_meta(a, b)
            and a.shape[-1] == b.shape[-2]
            and (not batched or a.shape[0] == b.shape[0])
        )
        out = (*a.shape[:-1], b.shape[-1])
        if plain and with_input:
            added = args[0]
            plain = (
                added.dtype == a.dtype
                and added.is_meta
                and added.dim() <= 2
                and _broadcasts(added.shape, out)
            )
        if not plain:
            return original(*args, **kwargs)
        return a.new_empty(out)

    return kernel


def _broadcasts(shape: tuple[int, ...] | torch.Size, to: tuple[int, ...]) -> bool:
    return all(
        size in (1, target) for size, target in zip(reversed(shape), reversed(to), strict=False)
    )


def _elementwise(original: Kernel, *, inplace: bool = False) -> Kernel:
    """A unary op whose result is laid out like its (dense) input; in place: the input."""

    def kernel(input: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if input.dtype not in _FLOATS or not _dense(input):
            return original(input, *args, **kwargs)
        return input if inplace else torch.empty_like(input)

    return kernel


def _softmax(original: Kernel) -> Kernel:
    def kernel(input: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> Any:
        if input.dtype not in _FLOATS or dtype not in (None, input.dtype):
            return original(input, dim, dtype)
        if not input.is_contiguous():
            return original(input, dim, dtype)
        return torch.empty_like(input)

    return kernel


def _convolution(original: Kernel) -> Kernel:
    """``_convolution``: the shape from the output-size formula (torch's kernel makes a
    contiguous output too, checks and all, in far more Python)."""

    def kernel(
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
        shape = _convolution_shape(
            input, weight, bias, stride, padding, dilation, transposed, output_padding, groups
        )
        if shape is None:
            return original(
                input,
                weight,
                bias,
                stride,
                padding,
                dilation,
                transposed,
                output_padding,
                groups,
                *flags,
            )
        return input.new_empty(shape)

    return kernel


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
        or input.dtype not in _FLOATS
        or weight.dtype != input.dtype
        or not _on_meta(input, weight, bias)
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
    if not fits or channels == 0 or not _vector(bias, out_channels, input.dtype):
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


def _binary(original: Kernel, *, inplace: bool = False) -> Kernel:
    """``add``/``sub``/``mul``/``div`` of two contiguous float tensors of one dtype: a
    contiguous result of the broadcast shape (what TensorIterator makes of them); in
    place: the left operand, when the result has its shape."""

    def kernel(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        if not (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype in _FLOATS
            and a.is_meta
            and a.is_contiguous()
            and (_number(b) or (b.dtype == a.dtype and b.is_meta and b.is_contiguous()))
            and set(kwargs) <= {"alpha", "rounding_mode"}
        ):
            return original(a, b, *args, **kwargs)
        shape = _broadcast(tuple(a.shape), tuple(b.shape))
        if shape is None or (inplace and shape != tuple(a.shape)):
            return original(a, b, *args, **kwargs)
        return a if inplace else a.new_empty(shape)

    return kernel


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


def _kernels() -> dict[Any, Kernel]:
    ops: dict[Any, Callable[[Kernel], Kernel]] = {
        _aten.native_batch_norm.default: _batch_norm,
        _aten.native_layer_norm.default: _layer_norm,
        _aten.addmm.default: lambda k: _matrix_product(k, batched=False, with_input=True),
        _aten.mm.default: lambda k: _matrix_product(k, batched=False, with_input=False),
        _aten.bmm.default: lambda k: _matrix_product(k, batched=True, with_input=False),
        _aten.gelu.default: _elementwise,
        _aten.silu.default: _elementwise,
        _aten.hardtanh.default: _elementwise,
        _aten.silu_.default: lambda k: _elementwise(k, inplace=True),
        _aten.hardtanh_.default: lambda k: _elementwise(k, inplace=True),
        _aten._safe_softmax.default: _softmax,
        _aten._convolution.default: _convolution,
        _aten.add.Tensor: _binary,
        _aten.sub.Tensor: _binary,
        _aten.mul.Tensor: _binary,
        _aten.div.Tensor: _binary,
        _aten.div.Tensor_mode: _binary,
        _aten.add_.Tensor: lambda k: _binary(k, inplace=True),
        _aten.mul_.Tensor: lambda k: _binary(k, inplace=True),
    }
    return {op: make(_original(op)) for op, make in ops.items()}


@contextmanager
def fast_meta_kernels() -> Iterator[None]:
    """The fast kernels registered for the Meta key while inside; torch's own again
    afterwards (a dispatcher registration that is removed uncovers the one below)."""
    library = torch.library.Library("aten", "IMPL")  # type: ignore[no-untyped-call]
    try:
        with warnings.catch_warnings():
            # "Overriding a previously registered kernel": that is the point.
            warnings.simplefilter("ignore")
            for op, kernel in _kernels().items():
                library.impl(op, kernel, "Meta")  # type: ignore[no-untyped-call]
        yield
    finally:
        library._destroy()  # type: ignore[no-untyped-call]
