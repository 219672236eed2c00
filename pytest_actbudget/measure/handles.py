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

Imported by ``measure`` only while measuring: it imports fvcore (and so torch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from math import prod
from typing import Any

from fvcore.nn import jit_handles

#: What a handle gets: the op's input and output ``torch._C.Value`` objects.
Values = Sequence[Any]
Handle = Callable[[Values, Values], "Counter[str]"]


def _shape(value: Any) -> list[int]:
    """The complete shape of a traced tensor value; raises when the tracer lost it."""
    shape = jit_handles.get_shape(value)
    if shape is None:
        raise ValueError("shape unknown")
    return list(shape)


def _numel(value: Any) -> int:
    return prod(_shape(value))


def _counted(op: str, name: str, count: Callable[[Values, Values], int], act: bool) -> Handle:
    """A handle for the aten op ``op`` counting ``count`` FLOPs under the key
    ``flops/<name>``, plus activations (output elements) if ``act``."""

    def handle(inputs: Values, outputs: Values) -> Counter[str]:
        try:
            counts = Counter({f"flops/{name}": int(count(inputs, outputs))})
            if act:
                counts[f"act/{name}"] = _numel(outputs[0])
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


# --- multiply-add counts of conv and matmul-like ops (identical in both conventions) ---


def _conv(inputs: Values, outputs: Values) -> int:
    # N x Cout x (Cin / groups) x prod(kernel) x prod(out spatial): fvcore's formula,
    # which reads groups from the weight shape (Cout, Cin/groups, k, k); bias ignored.
    transposed = bool(inputs[6].toIValue())
    return int(
        jit_handles.conv_flop_count(
            _shape(inputs[0]), _shape(inputs[1]), _shape(outputs[0]), transposed=transposed
        )
    )


def _matmul(inputs: Values, outputs: Values) -> int:
    # Any matmul form (1-D operands, broadcasting batch dims on either side): every
    # output element is one dot product over the last dim of the first operand.
    return _numel(outputs[0]) * _shape(inputs[0])[-1]


def _addmm(inputs: Values, outputs: Values) -> int:
    # addmm / baddbmm(input, a, b): the product a @ b; adding `input` is not counted.
    return _numel(outputs[0]) * _shape(inputs[1])[-1]


def _linear(inputs: Values, outputs: Values) -> int:
    # x (..., in) @ W.T (in, out): output elements x in_features, bias ignored.
    return _numel(outputs[0]) * _shape(inputs[1])[-1]


def _sdpa(inputs: Values, outputs: Values) -> int:
    # softmax(Q K^T) V with Q (..., L, E), K (..., S, E), V (..., S, Ev):
    # Q K^T is (...) x L x S x E and A V is (...) x L x S x Ev multiply-adds.
    # A causal mask is counted as the full L x S (what the math kernel computes).
    q, out = _shape(inputs[0]), _shape(outputs[0])
    s = _shape(inputs[1])[-2]
    return prod(q) * s + prod(out) * s


def _einsum(inputs: Values, outputs: Values) -> int:
    equation = str(inputs[0].toIValue())
    operand_values = list(inputs[1].node().inputs())
    return einsum_macs(equation, [_shape(v) for v in operand_values])


def einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """Multiply-adds of an einsum, contracting operands pairwise from left to right.

    Each pairwise step costs the product of the sizes of every index in the two
    operands (one multiply-add per combination); a single operand costs 0.
    """
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    sizes: dict[str, int] = {}
    expanded: list[str] = []
    ellipsis_rank = max(
        (
            len(shape) - len(term.replace("...", ""))
            for term, shape in zip(terms, shapes, strict=True)
        ),
        default=0,
    )
    # Ellipsis dims become private-use characters (no clash with the user's letters),
    # right-aligned as in broadcasting.
    fill = "".join(chr(0xE000 + i) for i in range(ellipsis_rank))
    for term, shape in zip(terms, shapes, strict=True):
        rank = len(shape) - len(term.replace("...", ""))
        letters = term.replace("...", fill[ellipsis_rank - rank :]) if "..." in term else term
        for letter, size in zip(letters, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), size)
        expanded.append(letters)
    if arrow:
        output = rhs.replace("...", fill)
    else:
        counts = Counter("".join(expanded))
        output = fill + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in fill))
    if len(expanded) < 2:
        return 0
    total = 0
    current = expanded[0]
    for position in range(1, len(expanded)):
        other = expanded[position]
        indices = set(current) | set(other)
        total += prod(sizes[i] for i in indices)
        needed = set(output).union(*expanded[position + 1 :])
        current = "".join(i for i in sorted(indices) if i in needed)
    return total


# Conv and matmul-like ops: the same multiply-add counts in both conventions.
_MATMUL_LIKE: dict[str, Handle] = {
    op: _counted(op, name, count, act=True)
    for op, name, count in [
        ("aten::_convolution", "conv", _conv),
        ("aten::linear", "linear", _linear),
        ("aten::addmm", "addmm", _addmm),
        ("aten::baddbmm", "baddbmm", _addmm),
        ("aten::mm", "mm", _matmul),
        ("aten::bmm", "bmm", _matmul),
        ("aten::matmul", "matmul", _matmul),
        ("aten::einsum", "einsum", _einsum),
        ("aten::scaled_dot_product_attention", "attention", _sdpa),
    ]
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
