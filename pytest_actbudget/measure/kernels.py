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
#: Returned by a fast kernel for a call outside its plain case: torch's kernel runs.
TORCH = object()
FLOATS = (torch.float32, torch.float64)
# Layer norm statistics stay in the input dtype on the CPU for these too (torch's own
# meta kernel makes float32 ones for half inputs: saved_bytes would differ).
_LAYER_NORM_FLOATS = (*FLOATS, torch.float16, torch.bfloat16)
Kernel = Callable[..., Any]
# Inside a measurement every torch call and tensor attribute read from Python goes
# through the meta device context's __torch_function__ (4 us for a .shape, 20 for an
# empty tensor); a fast kernel runs without it, torch's kernels as they would.
_NO_FUNCTION_MODES = torch._C.DisableTorchFunction


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


def vector(tensor: torch.Tensor | None, size: int, dtype: torch.dtype) -> bool:
    return tensor is None or (
        tuple(tensor.shape) == (size,) and tensor.dtype == dtype and tensor.is_meta
    )


def on_meta(*tensors: torch.Tensor | None) -> bool:
    """Every tensor argument on meta: a CPU one among them is the device error that
    torch's kernel raises (as the real forward would)."""
    return all(tensor is None or tensor.is_meta for tensor in tensors)


def new_meta(shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    """A contiguous meta tensor of ``like``'s dtype."""
    return torch.empty(shape, dtype=like.dtype, device="meta")


def _empty_like(tensor: torch.Tensor) -> torch.Tensor:
    """``torch.empty_like`` of a dense tensor (its strides): torch's own runs its
    Python reference on meta, 70-270 us a call."""
    return torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device="meta")


def _batch_norm(
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
        and input.dtype in FLOATS
        and _dense(input)
        and all(vector(t, channels, input.dtype) for t in (weight, bias, running_mean, running_var))
        and (training or (running_mean is not None and running_var is not None))
    )
    if not plain:
        return TORCH
    # The CPU kernel returns batch statistics in training and empty ones in eval.
    stats = (channels,) if training else (0,)
    return _empty_like(input), new_meta(stats, input), new_meta(stats, input)


def _layer_norm(
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
        and on_meta(input, weight, bias)
        and all(
            t is None or (tuple(t.shape) == normalized and t.dtype == input.dtype)
            for t in (weight, bias)
        )
    )
    if not plain:
        return TORCH
    # Output contiguous whatever the input's layout (the CPU kernel makes it so);
    # mean and rstd keep the leading dims with size-1 normalized dims.
    stats = (*shape[:axis], *(1 for _ in normalized))
    return new_meta(shape, input), new_meta(stats, input), new_meta(stats, input)


def _matrix_product(*, batched: bool, with_input: bool) -> Kernel:
    """``mm``/``bmm``/``addmm``: a contiguous (…, n, p) result."""

    def kernel(*args: Any, **kwargs: Any) -> Any:
        a, b = (args[1], args[2]) if with_input else (args[0], args[1])
        rank = 3 if batched else 2
        plain = (
            set(kwargs) <= {"beta", "alpha"}
            and a.dim() == rank
            and b.dim() == rank
            and a.dtype == b.dtype
            and on_meta(a, b)
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
        return new_meta(out, a) if plain else TORCH

    return kernel


def _broadcasts(shape: tuple[int, ...] | torch.Size, to: tuple[int, ...]) -> bool:
    return all(
        size in (1, target) for size, target in zip(reversed(shape), reversed(to), strict=False)
    )


def _elementwise(*, inplace: bool = False) -> Kernel:
    """A unary op whose result is laid out like its (dense) input; in place: the input."""

    def kernel(input: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if input.dtype not in FLOATS or not _dense(input):
            return TORCH
        return input if inplace else _empty_like(input)

    return kernel


def _softmax(input: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> Any:
    if input.dtype not in FLOATS or dtype not in (None, input.dtype):
        return TORCH
    return _empty_like(input) if input.is_contiguous() else TORCH


def _registered(fast: Kernel, original: Kernel) -> Kernel:
    """The kernel the dispatcher gets: ``fast`` without function modes, torch's own
    (with them, as always) when ``fast`` declines."""

    def kernel(*args: Any, **kwargs: Any) -> Any:
        with _NO_FUNCTION_MODES():
            out = fast(*args, **kwargs)
        return original(*args, **kwargs) if out is TORCH else out

    return kernel


def _kernels() -> dict[Any, Kernel]:
    # The kernels that compute an output shape live beside (they import these helpers).
    from pytest_actbudget.measure.shape_kernels import binary, cat, convolution, mean

    add, add_in_place = binary(integers=True), binary(inplace=True, integers=True)
    div = binary()
    unary, unary_in_place = _elementwise(), _elementwise(inplace=True)
    fast: dict[Any, Kernel] = {
        _aten.native_batch_norm.default: _batch_norm,
        _aten.native_layer_norm.default: _layer_norm,
        _aten.addmm.default: _matrix_product(batched=False, with_input=True),
        _aten.mm.default: _matrix_product(batched=False, with_input=False),
        _aten.bmm.default: _matrix_product(batched=True, with_input=False),
        _aten.gelu.default: unary,
        _aten.silu.default: unary,
        _aten.hardtanh.default: unary,
        _aten.silu_.default: unary_in_place,
        _aten.hardtanh_.default: unary_in_place,
        _aten._safe_softmax.default: _softmax,
        _aten._convolution.default: convolution,
        _aten.add.Tensor: add,
        _aten.sub.Tensor: add,
        _aten.mul.Tensor: add,
        _aten.mul.Scalar: add,  # attention's q * scale, from C++
        _aten.div.Tensor: div,
        _aten.div.Tensor_mode: div,
        _aten.add_.Tensor: add_in_place,
        _aten.mul_.Tensor: add_in_place,
        _aten.cat.default: cat,
        _aten.mean.dim: mean,
    }
    return {op: _registered(kernel, _original(op)) for op, kernel in fast.items()}


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
