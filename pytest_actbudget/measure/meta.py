"""Tracing tweaks that make a model on the ``meta`` device trace like one on the CPU.

Shapes read from Python are plain ints while measuring (``int_shapes``), which
``F.interpolate`` does not expect when it recomputes a scale factor under tracing; it
gets its output size computed in Python instead. Three things differ on meta under
the JIT tracer:

- ``tensor.shape`` gives 0-d size tensors while tracing, and the meta kernels written
  in Python pass comparisons of them to ``torch._check``, which insists on a bool;
- ``aten::convolution`` is not recorded by the tracer (it records the
  ``aten::_convolution`` that the CPU kernel calls), and the meta kernel of
  ``convolution`` never calls ``_convolution``: convolutions would vanish (a kernel
  registered for meta tensors below the tracer calls it, as the CPU kernel does);
- batch norm in eval mode saves its per-channel mean and inverse std for backward on
  meta, where the CPU kernel saves empty tensors: ``saved_bytes`` would differ;
- ``x[i:j] = 3`` becomes ``fill_`` on the CPU (the number is a CPU scalar tensor) but
  ``view``/``expand``/``copy_`` on meta (a meta one): an uncounted op would vanish.

Imported only while measuring.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from pytest_actbudget.measure.inputs import untraced
from pytest_actbudget.measure.kernels import fast_meta_kernels

_BASE = torch._C.TensorBase
_MISSING = object()


_SHAPE = _BASE.shape.__get__  # type: ignore[attr-defined]
_NUMEL = _BASE.numel
_get_state = torch._C._get_tracing_state
_set_state = torch._C._set_tracing_state  # type: ignore[attr-defined]


def _int_shape(tensor: torch.Tensor) -> torch.Size:
    # Read with the tracer paused: sizes come out as ints and record no aten::size /
    # aten::Int nodes (torch's Python meta kernels read shapes thousands of times).
    state = _get_state()
    if state is None:
        shape: torch.Size = _SHAPE(tensor)
        return shape
    _set_state(None)
    try:
        shape = _SHAPE(tensor)
    finally:
        _set_state(state)
    return shape


def _int_size(tensor: torch.Tensor, dim: int | None = None) -> Any:
    shape = _int_shape(tensor)
    return shape if dim is None else shape[dim]


def _int_numel(tensor: torch.Tensor) -> int:
    state = _get_state()
    if state is None:
        return int(_NUMEL(tensor))
    _set_state(None)
    try:
        return int(_NUMEL(tensor))
    finally:
        _set_state(state)


@contextmanager
def _patched(owner: Any, replacements: dict[str, Any]) -> Iterator[None]:
    """Set attributes on ``owner`` and put back exactly what was there."""
    saved = {name: owner.__dict__.get(name, _MISSING) for name in replacements}
    for name, replacement in replacements.items():
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for name, original in saved.items():
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


@contextmanager
def int_shapes() -> Iterator[None]:
    """Tensor shapes read from Python are plain ints while we trace.

    The traced graph is never replayed at other shapes, so nothing is lost; on top of
    fixing meta kernels, shape arithmetic no longer shows up as uncounted
    ``aten::mul``/``aten::div`` ops, on any device.
    """
    sizes = {"shape": property(_int_shape), "size": _int_size, "numel": _int_numel}
    with (
        _patched(torch.Tensor, sizes),
        _patched(F, {"interpolate": _interpolate(F.interpolate)}),
    ):
        yield


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _interpolate(original: Callable[..., Any]) -> Callable[..., Any]:
    """``F.interpolate`` that computes a recomputed output size in Python.

    With ``recompute_scale_factor=True``, or ``mode="area"`` and a scale factor, torch
    computes the output size while tracing as ``input.size(i + 2).float()`` times the
    factor: with plain-int sizes that is ``int.float()``, an AttributeError. The size is
    computed here the same way (float32 product, floored) and passed as ``size``,
    which is what torch then does with it, so the traced operator is the same one.
    """

    def interpolate(
        input: torch.Tensor,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
        antialias: bool = False,
    ) -> Any:
        dims = input.dim() - 2
        factors = (
            list(scale_factor) if isinstance(scale_factor, (list, tuple)) else [scale_factor] * dims
        )
        recompute = recompute_scale_factor or mode == "area"
        if size is not None or scale_factor is None or not recompute or len(factors) != dims:
            # Nothing to recompute, or an argument error torch words best.
            return original(
                input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias
            )
        # float32 x float32 is exact in a double, so one rounding gives torch's product.
        output = [
            math.floor(_float32(_float32(float(input.shape[i + 2])) * _float32(float(factor))))
            for i, factor in enumerate(factors)
        ]
        return original(input, output, None, mode, align_corners, None, antialias)

    return interpolate


def _recorded_convolution(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
    output_padding: list[int],
    groups: int,
) -> Any:
    """``aten::convolution`` of meta tensors, at the AutogradMeta key: calls
    ``aten::_convolution`` as the CPU kernel does, with the flags it passes, so the
    tracer records it and autograd saves what it saves on the CPU.

    Registered below the tracer rather than patched into ``F.conv2d``: every way to a
    convolution (``nn.Conv*``, ``F.conv*`` and ``F.conv_transpose*``, a
    ``conv = F.conv2d`` captured before the measurement, ``torch.conv2d``, unbatched
    inputs) meets here, as on the CPU."""
    cudnn = torch.backends.cudnn
    return torch._convolution(
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        transposed,
        output_padding,
        groups,
        cudnn.benchmark,
        cudnn.deterministic or torch.are_deterministic_algorithms_enabled(),
        cudnn.enabled,
        cudnn.allow_tf32,
    )


@contextmanager
def _convolutions_recorded() -> Iterator[None]:
    library = torch.library.Library("aten", "IMPL")  # type: ignore[no-untyped-call]
    try:
        library.impl(  # type: ignore[no-untyped-call]
            torch.ops.aten.convolution.default, _recorded_convolution, "AutogradMeta"
        )
        yield
    finally:
        library._destroy()  # type: ignore[no-untyped-call]


def _batch_norm(original: Callable[..., Any], pack: Callable[[torch.Tensor], Any]) -> Any:
    """``F.batch_norm`` whose eval-mode saves are the CPU kernel's: the per-channel
    statistics the meta kernel also saves (1-D, not parameters or buffers) are dropped."""

    def drop_statistics(tensor: torch.Tensor) -> Any:
        return None if tensor.dim() == 1 else pack(tensor)

    def batch_norm(input: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        training = kwargs.get("training", args[4] if len(args) > 4 else False)
        if training:
            return original(input, *args, **kwargs)
        # Weight and running stats are 1-D too, but never counted (parameters, buffers).
        with torch.autograd.graph.saved_tensors_hooks(drop_statistics, _never_unpacked):
            return original(input, *args, **kwargs)

    return batch_norm


def _never_unpacked(packed: Any) -> Any:
    raise RuntimeError("pytest-actbudget measured this graph; it cannot run backward")


_NUMBER = (bool, int, float, complex)


def _setitem(original: Callable[..., Any]) -> Callable[..., Any]:
    """``Tensor.__setitem__`` that turns a Python number into the CPU scalar tensor the
    CPU path makes of it (of the target's dtype), made outside the trace as torch's
    own conversion is."""

    def setitem(self: torch.Tensor, index: Any, value: Any) -> Any:
        if isinstance(value, _NUMBER) and self.is_meta:
            with untraced():
                value = torch.tensor(value, dtype=self.dtype, device="cpu")
        return original(self, index, value)

    return setitem


@contextmanager
def cpu_like_meta(enabled: bool, pack: Callable[[torch.Tensor], Any]) -> Iterator[None]:
    """On meta, record convolutions as ``aten::_convolution`` (as on the CPU), make
    eval batch norm save what it saves on the CPU and item assignment of a number fill
    as on the CPU; ``pack`` is the measurement's saved-tensor hook."""
    if not enabled:
        yield
        return
    with (
        _convolutions_recorded(),
        _patched(F, {"batch_norm": _batch_norm(F.batch_norm, pack)}),
        _patched(torch.Tensor, {"__setitem__": _setitem(torch.Tensor.__setitem__)}),
        fast_meta_kernels(),
    ):
        yield
