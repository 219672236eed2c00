"""Operator handles for fvcore's JIT analysis: one table per counting convention.

Every handle returns a Counter whose keys say what they count, so that a single
fvcore ``JitModelAnalysis`` (one trace) yields FLOPs and activations together:

- ``flops/<op>``: FLOPs in the convention's unit (one multiply-add = 1 for every
  conv and matmul-like op, in both conventions);
- ``act/<op>``: activations, the number of output elements of conv and
  matmul-like ops (fvcore's ``ActivationCountAnalysis``), attention included;
- ``unknown/<op>``: an op whose handle could not read its shapes (or a float
  add/sub/mul, see ``_integer_only``); it is reported as uncounted rather than
  silently counted as 0.

The multiply-add formulas of conv, matmul-like and attention ops are in ``macs``.

Imported by ``measure`` only while measuring: it imports fvcore (and so torch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from fvcore.nn import jit_handles

from pytest_actbudget.measure.macs import COUNTS, Values, chain_macs, einsum_macs, numel

__all__ = ["HANDLES", "chain_macs", "einsum_macs"]

Handle = Callable[[Values, Values], "Counter[str]"]


def _counted(op: str, name: str, count: Callable[[Values, Values], int], act: bool) -> Handle:
    """A handle for the aten op ``op`` counting ``count`` FLOPs under the key
    ``flops/<name>``, plus activations (output elements) if ``act``."""

    def handle(inputs: Values, outputs: Values) -> Counter[str]:
        try:
            counts = Counter({f"flops/{name}": int(count(inputs, outputs))})
            if act:
                counts[f"act/{name}"] = numel(outputs[0])
        except Exception:
            # A handle must never abort a measurement: the op shows up as uncounted.
            return Counter({f"unknown/{op}": 1})
        return counts

    return handle


def _zero(inputs: Values, outputs: Values) -> Counter[str]:
    """An op that is known and costs 0 in this convention (not "uncounted")."""
    return Counter()


def _integer_only(op: str) -> Handle:
    """``op`` (add/sub/mul) costs 0 on integer outputs, which are bookkeeping such as
    BatchNorm's ``num_batches_tracked += 1``; on floating point it stays uncounted
    (a residual ``x += y`` is real work that neither convention counts)."""

    def handle(inputs: Values, outputs: Values) -> Counter[str]:
        dtype = outputs[0].type().dtype() if outputs else None
        if dtype is not None and not dtype.is_floating_point and not dtype.is_complex:
            return Counter()
        return Counter({f"unknown/{op}": 1})

    return handle


_INTEGER_BOOKKEEPING: dict[str, Handle] = {
    op: _integer_only(op)
    for name in ("add", "sub", "mul")
    for op in (f"aten::{name}", f"aten::{name}_")
}


_MATMUL_LIKE: dict[str, Handle] = {
    op: _counted(op, name, count, act=True) for op, name, count in COUNTS
}


def _fvcore_handle(op: str, handle: Callable[[Values, Values], Any]) -> Handle:
    name = op.removeprefix("aten::")
    return _counted(op, name, lambda i, o: int(handle(i, o)), act=False)


# fvcore's default FLOP handles for everything that is not conv/matmul-like.
_FVCORE_OTHERS: dict[str, Handle] = {
    op: _fvcore_handle(op, handle)
    for op, handle in [
        ("aten::batch_norm", jit_handles.batchnorm_flop_jit),
        ("aten::group_norm", jit_handles.norm_flop_counter(2)),
        ("aten::layer_norm", jit_handles.norm_flop_counter(2)),
        ("aten::instance_norm", jit_handles.norm_flop_counter(1)),
        ("aten::upsample_nearest2d", jit_handles.elementwise_flop_counter(0, 1)),
        ("aten::upsample_bilinear2d", jit_handles.elementwise_flop_counter(0, 4)),
        ("aten::adaptive_avg_pool2d", jit_handles.elementwise_flop_counter(1, 0)),
        ("aten::grid_sampler", jit_handles.elementwise_flop_counter(0, 4)),
    ]
}

#: The handle table of each counting convention.
HANDLES: dict[str, dict[str, Handle]] = {
    "fvcore": {**_INTEGER_BOOKKEEPING, **_FVCORE_OTHERS, **_MATMUL_LIKE},
    # macs: the ops fvcore would count besides conv/matmul are known and cost 0 here.
    "macs": {**_INTEGER_BOOKKEEPING, **dict.fromkeys(_FVCORE_OTHERS, _zero), **_MATMUL_LIKE},
}
