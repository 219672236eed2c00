"""Multiply-add counts of the conv, matmul-like and attention operators, read from the
shapes a JIT trace recorded; the same in both counting conventions.

``COUNTS`` lists ``(aten op, key name, count)``; ``handles`` turns each into an fvcore
handle. Every formula is derived in its comment. Imported only while measuring.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from math import prod
from typing import Any

from fvcore.nn import jit_handles

#: What a count gets: the op's input and output ``torch._C.Value`` objects.
Values = Sequence[Any]
Count = Callable[[Values, Values], int]


def dims(value: Any) -> list[int]:
    """The complete shape of a traced tensor value; raises when the tracer lost it."""
    shape = jit_handles.get_shape(value)
    if shape is None:
        raise ValueError("shape unknown")
    return list(shape)


def _ints(value: Any) -> list[int]:
    """An int[] argument: a constant, or a list built from constants in the graph."""
    constant = value.toIValue()
    if constant is None:
        constant = [item.toIValue() for item in value.node().inputs()]
    return [int(item) for item in constant]


def numel(value: Any) -> int:
    """The number of elements of a traced tensor value."""
    return prod(dims(value))


# --- multiply-add counts of conv and matmul-like ops (identical in both conventions) ---


def _conv(inputs: Values, outputs: Values) -> int:
    # N x Cout x (Cin / groups) x prod(kernel) x prod(out spatial): fvcore's formula,
    # which reads groups from the weight shape (Cout, Cin/groups, k, k); bias ignored.
    transposed = bool(inputs[6].toIValue())
    return int(
        jit_handles.conv_flop_count(
            dims(inputs[0]), dims(inputs[1]), dims(outputs[0]), transposed=transposed
        )
    )


def _matmul(inputs: Values, outputs: Values) -> int:
    # Any matmul form (1-D operands, broadcasting batch dims on either side): every
    # output element is one dot product over the last dim of the first operand.
    return numel(outputs[0]) * dims(inputs[0])[-1]


def _addmm(inputs: Values, outputs: Values) -> int:
    # addmm / baddbmm(input, a, b): the product a @ b; adding `input` is not counted.
    return numel(outputs[0]) * dims(inputs[1])[-1]


def _linear(inputs: Values, outputs: Values) -> int:
    # x (..., in) @ W.T (in, out): output elements x in_features, bias ignored.
    return numel(outputs[0]) * dims(inputs[1])[-1]


def _sdpa(inputs: Values, outputs: Values) -> int:
    # softmax(Q K^T) V with Q (..., L, E), K (..., S, E), V (..., S, Ev):
    # Q K^T is (...) x L x S x E and A V is (...) x L x S x Ev multiply-adds.
    # A causal mask is counted as the full L x S (what the math kernel computes).
    # Every scaled_dot_product variant has this layout and returns the output first.
    q, out = dims(inputs[0]), dims(outputs[0])
    s = dims(inputs[1])[-2]
    return prod(q) * s + prod(out) * s


def _attention_forward(inputs: Values, outputs: Values) -> int:
    # _flash/_efficient_attention_forward: the same products as _sdpa, in the
    # (B, L, heads, E) layout, so S is the second dim of K.
    q, out = dims(inputs[0]), dims(outputs[0])
    s = dims(inputs[1])[1]
    return prod(q) * s + prod(out) * s


def _native_mha(inputs: Values, outputs: Values) -> int:
    # _native_multi_head_attention(query (B, L, E), key (B, S, E), value, ...): the
    # in-projections (L + 2S rows x E x E), Q K^T and A V (L x S x E each over all
    # heads) and the out-projection (L x E x E), per batch element.
    query, key = dims(inputs[0]), dims(inputs[1])
    e, s = query[-1], key[-2]
    return prod(query) * e + 2 * prod(key) * e + 2 * prod(query) * s + prod(query) * e


def _encoder_layer(inputs: Values, outputs: Values) -> int:
    # _transformer_encoder_layer_fwd(src (B, L, E), ..., ffn_weight_1 (F, E) at 14):
    # self-attention (qkv 3E, Q K^T and A V over L, out-projection E) and the two
    # feed-forward matmuls, per token: 4 E^2 + 2 L E + 2 E F. Its norms, activation and
    # residual adds are not counted (as for a layer built from modules in "macs").
    src = dims(inputs[0])
    e, length = src[-1], src[-2]
    ffn = dims(inputs[14])[0]
    return prod(src) * (4 * e + 2 * length + 2 * ffn)


def _einsum(inputs: Values, outputs: Values) -> int:
    equation = str(inputs[0].toIValue())
    operand_values = list(inputs[1].node().inputs())
    return einsum_macs(equation, [dims(v) for v in operand_values])


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


def _times_output(inputs: Values, outputs: Values) -> int:
    # outer, addr, kron: one multiply per output element.
    return numel(outputs[0])


def _addbmm(inputs: Values, outputs: Values) -> int:
    # addbmm(input, b1 (B, N, M), b2 (B, M, P)) -> (N, P): B products of N x M x P.
    batch = dims(inputs[1])
    return numel(outputs[0]) * batch[0] * batch[-1]


def _vecdot(inputs: Values, outputs: Values) -> int:
    # linalg_vecdot(x, y, dim): one dot product over `dim` (broadcast) per output element.
    dim = int(inputs[2].toIValue())
    sizes = [
        shape[dim]
        for shape in (dims(inputs[0]), dims(inputs[1]))
        if -len(shape) <= dim < len(shape)
    ]
    return numel(outputs[0]) * max(sizes)


def _tensordot(inputs: Values, outputs: Values) -> int:
    # tensordot(a, b, dims_a, dims_b): every output element sums over the contracted dims.
    a = dims(inputs[0])
    contracted = _ints(inputs[2])
    return numel(outputs[0]) * prod(a[d] for d in contracted)


def _bilinear(inputs: Values, outputs: Values) -> int:
    # bilinear(x1 (..., I1), x2 (..., I2), W (O, I1, I2)): x1^T W_o x2 per output element.
    weight = dims(inputs[2])
    return numel(outputs[0]) * weight[1] * weight[2]


def _chain(inputs: Values, outputs: Values) -> int:
    # linalg_multi_dot / chain_matmul: torch multiplies in the cheapest order, so count
    # the optimal matrix-chain cost. A 1-D first (last) operand is a row (column) vector.
    shapes = [dims(v) for v in inputs[0].node().inputs()]
    if len(shapes[0]) == 1:
        shapes[0] = [1, shapes[0][0]]
    if len(shapes[-1]) == 1:
        shapes[-1] = [shapes[-1][0], 1]
    return chain_macs([shapes[0][0], *(shape[-1] for shape in shapes)])


def chain_macs(dims: Sequence[int]) -> int:
    """Multiply-adds of the cheapest order for matrices ``dims[i] x dims[i + 1]``."""
    count = len(dims) - 1
    cost = [[0] * count for _ in range(count)]
    for span in range(1, count):
        for i in range(count - span):
            j = i + span
            cost[i][j] = min(
                cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                for k in range(i, j)
            )
    return cost[0][count - 1] if count else 0


def grouped_mm_macs(a: Sequence[int], b: Sequence[int], out: Sequence[int]) -> int:
    """``_grouped_mm(a, b, offs)`` from its shapes (the forward's and the backward's).

    a @ b per group; every output element is a dot product over a's last dim, except
    for 2-D x 2-D (a weight gradient), where K is split between the G groups of the
    (G, M, N) output. So MACs = sum over groups of rows x K x N, with offs (a runtime
    tensor) summing to the grouped size; rows past offs[-1] are not computed."""
    if len(a) == 2 and len(b) == 2:
        return prod(out[1:]) * a[-1]
    return prod(out) * a[-1]


def _grouped_mm(inputs: Values, outputs: Values) -> int:
    return grouped_mm_macs(dims(inputs[0]), dims(inputs[1]), dims(outputs[0]))


def _conv_tbc(inputs: Values, outputs: Values) -> int:
    # conv_tbc(input (T, B, Cin), weight (k, Cin, Cout), bias, pad) -> (T', B, Cout).
    weight = dims(inputs[1])
    return numel(outputs[0]) * weight[0] * weight[1]


def _conv_shapes(transposed: bool) -> Count:
    """A convolution counted from its input, weight and output shapes alone (fvcore's
    formula reads groups from the weight): _convolution_mode ("same"/"valid" padding)
    and the backend kernels a user may call directly (mkldnn, thnn, slow_conv...)."""

    def count(inputs: Values, outputs: Values) -> int:
        return int(
            jit_handles.conv_flop_count(
                dims(inputs[0]), dims(inputs[1]), dims(outputs[0]), transposed=transposed
            )
        )

    return count


_BACKEND_CONVOLUTIONS = (
    "_convolution_mode",
    "mkldnn_convolution",
    "thnn_conv2d",
    "_slow_conv2d_forward",
    "slow_conv3d",
    "slow_conv3d_forward",
    "slow_conv_dilated2d",
    "slow_conv_dilated3d",
    "cudnn_convolution",
    "miopen_convolution",
    "miopen_depthwise_convolution",
    "_conv_depthwise2d",
    "conv_depthwise3d",
    "_mps_convolution",
)
_BACKEND_TRANSPOSED = (
    "slow_conv_transpose2d",
    "slow_conv_transpose3d",
    "cudnn_convolution_transpose",
    "miopen_convolution_transpose",
    "_mps_convolution_transpose",
)


# Conv and matmul-like ops: the same multiply-add counts in both conventions. Each name
# is the key the FLOPs are kept under (``flops/<name>``).
COUNTS: list[tuple[str, str, Count]] = [
    ("aten::_convolution", "conv", _conv),
    *((f"aten::{op}", "conv", _conv_shapes(False)) for op in _BACKEND_CONVOLUTIONS),
    *((f"aten::{op}", "conv", _conv_shapes(True)) for op in _BACKEND_TRANSPOSED),
    ("aten::conv_tbc", "conv", _conv_tbc),
    ("aten::linear", "linear", _linear),
    ("aten::addmm", "addmm", _addmm),
    ("aten::_addmm_activation", "addmm", _addmm),
    ("aten::baddbmm", "baddbmm", _addmm),
    ("aten::addbmm", "addbmm", _addbmm),
    ("aten::addmv", "addmv", _addmm),
    ("aten::addr", "addr", _times_output),
    ("aten::mm", "mm", _matmul),
    ("aten::bmm", "bmm", _matmul),
    ("aten::matmul", "matmul", _matmul),
    ("aten::mv", "mv", _matmul),
    ("aten::dot", "dot", _matmul),
    ("aten::vdot", "dot", _matmul),
    ("aten::inner", "inner", _matmul),
    ("aten::outer", "outer", _times_output),
    ("aten::kron", "kron", _times_output),
    ("aten::linalg_vecdot", "vecdot", _vecdot),
    ("aten::tensordot", "tensordot", _tensordot),
    ("aten::bilinear", "bilinear", _bilinear),
    ("aten::linalg_multi_dot", "multi_dot", _chain),
    ("aten::chain_matmul", "multi_dot", _chain),
    ("aten::einsum", "einsum", _einsum),
    ("aten::_grouped_mm", "grouped_mm", _grouped_mm),
    ("aten::_scaled_grouped_mm", "grouped_mm", _grouped_mm),
    ("aten::_scaled_mm", "scaled_mm", _matmul),
    ("aten::_scaled_mm_v2", "scaled_mm", _matmul),
    ("aten::_int_mm", "int_mm", _matmul),
    ("aten::_weight_int8pack_mm", "int_mm", _matmul),
    ("aten::_weight_int4pack_mm", "int_mm", _matmul),
    ("aten::_weight_int4pack_mm_for_cpu", "int_mm", _matmul),
    ("aten::_weight_int4pack_mm_with_scales_and_zeros", "int_mm", _matmul),
    ("aten::scaled_dot_product_attention", "attention", _sdpa),
    *(
        (f"aten::_scaled_dot_product_{variant}", "attention", _sdpa)
        for variant in (
            "attention_math",
            "attention_math_for_mps",
            "flash_attention",
            "flash_attention_for_cpu",
            "efficient_attention",
            "cudnn_attention",
            "fused_attention_overrideable",
        )
    ),
    ("aten::_flash_attention_forward", "attention", _attention_forward),
    ("aten::_efficient_attention_forward", "attention", _attention_forward),
    ("aten::_native_multi_head_attention", "attention", _native_mha),
    ("aten::_transformer_encoder_layer_fwd", "encoder_layer", _encoder_layer),
]
