"""The operator audit: every matmul-, convolution- and attention-like aten operator of
torch 2.13 that a JIT trace can record is counted, in both conventions, by hand.

Each case traces one operator through ``measure``; the expected multiply-adds are
derived in the comment next to it. Operators the tracer cannot record on CPU or meta
(CUDA-only attention kernels) are checked on a real JIT graph parsed from IR, with
the same handle the measurement uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_actbudget.measure.model import measure

Op = Callable[..., Any]


class Call(nn.Module):
    """A model whose forward is one operator call."""

    def __init__(self, op: Op) -> None:
        super().__init__()
        self.op = op

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.op(*tensors)


def r(*shape: int, device: str = "cpu") -> torch.Tensor:
    return torch.randn(*shape, device=device)


def _first(result: Any) -> torch.Tensor:
    return result[0] if isinstance(result, tuple) else result


class NativeMha(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mha
        weights = (m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.out_proj.bias)
        return torch._native_multi_head_attention(x, x, x, 8, 2, *weights)[0]


class EncoderLayerFwd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        lay, attn = self.layer, self.layer.self_attn
        return torch._transformer_encoder_layer_fwd(
            src,
            8,
            2,
            attn.in_proj_weight,
            attn.in_proj_bias,
            attn.out_proj.weight,
            attn.out_proj.bias,
            False,
            False,
            1e-5,
            lay.norm1.weight,
            lay.norm1.bias,
            lay.norm2.weight,
            lay.norm2.bias,
            lay.linear1.weight,
            lay.linear1.bias,
            lay.linear2.weight,
            lay.linear2.bias,
            None,
        )


f8 = torch.float8_e4m3fn
offs = torch.tensor([4, 8, 12], dtype=torch.int32)  # three groups of 4
q4 = r(2, 2, 8, 4)  # (B, heads, L, E)

# (operator, model, inputs, multiply-adds)
CASES: list[tuple[str, nn.Module, tuple[Any, ...], int]] = [
    # mat (4, 8) @ vec (8): 4 x 8 = 32
    ("mv", Call(torch.mv), (r(4, 8), r(8)), 32),
    ("dot", Call(torch.dot), (r(8), r(8)), 8),
    ("vdot", Call(torch.vdot), (r(8), r(8)), 8),
    # inner (4, 8) x (5, 8) -> (4, 5), each over 8: 160
    ("inner", Call(torch.inner), (r(4, 8), r(5, 8)), 160),
    # outer (4) x (8): 32 products
    ("outer", Call(torch.outer), (r(4), r(8)), 32),
    # addmv: (4, 8) @ (8) = 32; the added input is not counted
    ("addmv", Call(torch.addmv), (r(4), r(4, 8), r(8)), 32),
    ("addr", Call(torch.addr), (r(4, 8), r(4), r(8)), 32),
    # addbmm: 3 batches of (4, 8) @ (8, 6) summed: 3 x 4 x 8 x 6 = 576
    ("addbmm", Call(torch.addbmm), (r(4, 6), r(3, 4, 8), r(3, 8, 6)), 576),
    ("baddbmm", Call(torch.baddbmm), (r(3, 4, 6), r(3, 4, 8), r(3, 8, 6)), 576),
    # (4, 8) @ (8, 6) = 192
    ("_addmm_activation", Call(torch._addmm_activation), (r(6), r(4, 8), r(8, 6)), 192),
    # vecdot over the last dim of (4, 8): 4 x 8 = 32
    ("linalg_vecdot", Call(torch.linalg.vecdot), (r(4, 8), r(4, 8)), 32),
    # tensordot dims=1 of (4, 8) and (8, 6): 4 x 6 outputs x 8 = 192
    ("tensordot", Call(lambda a, b: torch.tensordot(a, b, dims=1)), (r(4, 8), r(8, 6)), 192),
    # multi_dot (2, 8) (8, 6) (6, 3): (AB)C = 2*8*6 + 2*6*3 = 132 < A(BC) = 8*6*3 + 2*8*3 = 192
    (
        "linalg_multi_dot",
        Call(lambda a, b, c: torch.linalg.multi_dot([a, b, c])),
        (r(2, 8), r(8, 6), r(6, 3)),
        132,
    ),
    # kron (2, 3) x (4, 5) -> (8, 15): 120 products
    ("kron", Call(torch.kron), (r(2, 3), r(4, 5)), 120),
    # bilinear x1 (4, 8), x2 (4, 6), W (5, 8, 6): 4 x 5 outputs x 8 x 6 = 960
    ("bilinear", Call(F.bilinear), (r(4, 8), r(4, 6), r(5, 8, 6)), 960),
    # conv_tbc input (T 10, B 2, Cin 8), weight (k 3, Cin 8, Cout 6), pad 1: T' = 10;
    # 10 x 2 x 6 outputs x 3 x 8 = 2_880
    (
        "conv_tbc",
        Call(lambda x, w, b: torch.conv_tbc(x, w, b, 1)),
        (r(10, 2, 8), r(3, 8, 6), r(6)),
        2_880,
    ),
    # padding="same": out (1, 4, 16, 16); 4 x 16 x 16 x 3 x 3 x 3 = 27_648
    (
        "_convolution_mode",
        Call(lambda x, w: F.conv2d(x, w, padding="same")),
        (r(1, 3, 16, 16), r(4, 3, 3, 3)),
        27_648,
    ),
    # padding="valid": out (1, 4, 14, 14); 4 x 14 x 14 x 27 = 21_168
    (
        "_convolution_mode",
        Call(lambda x, w: F.conv2d(x, w, padding="valid")),
        (r(1, 3, 16, 16), r(4, 3, 3, 3)),
        21_168,
    ),
    # on meta, "same" padding is recorded as _convolution_mode too: 27_648 as above
    (
        "_convolution_mode",
        Call(lambda x, w: F.conv2d(x, w, padding="same")),
        (r(1, 3, 16, 16, device="meta"), r(4, 3, 3, 3, device="meta")),
        27_648,
    ),
    # unbatched (3, 16, 16) on meta: out (4, 14, 14); 4 x 14 x 14 x 27 = 21_168
    (
        "_convolution",
        Call(lambda x, w: F.conv2d(x, w)),
        (r(3, 16, 16, device="meta"), r(4, 3, 3, 3, device="meta")),
        21_168,
    ),
    # unbatched transposed (3, 10), weight (Cin 3, Cout 4, k 3) on meta: out (4, 12);
    # fvcore's transposed formula: Cin x Cout x k x input length = 3 x 4 x 3 x 10 = 360
    (
        "_convolution",
        Call(lambda x, w: F.conv_transpose1d(x, w)),
        (r(3, 10, device="meta"), r(3, 4, 3, device="meta")),
        360,
    ),
    # backend kernels called directly, x (1, 3, 8, 8), w (4, 3, 3, 3):
    # padding 1: out (1, 4, 8, 8): 4 x 8 x 8 x 3 x 9 = 6_912
    (
        "mkldnn_convolution",
        Call(lambda x, w: torch.mkldnn_convolution(x, w, None, [1, 1], [1, 1], [1, 1], 1)),
        (r(1, 3, 8, 8), r(4, 3, 3, 3)),
        6_912,
    ),
    (
        "thnn_conv2d",
        Call(lambda x, w: torch._C._nn.thnn_conv2d(x, w, [3, 3], None, [1, 1], [1, 1])),
        (r(1, 3, 8, 8), r(4, 3, 3, 3)),
        6_912,
    ),
    # 3-D, x (1, 3, 4, 8, 8), w (4, 3, 3, 3, 3), padding 1: 4 x 4 x 8 x 8 x 3 x 27 = 82_944
    (
        "slow_conv3d",
        Call(lambda x, w: torch._C._nn.slow_conv3d(x, w, [3, 3, 3], None, [1, 1, 1], [1, 1, 1])),
        (r(1, 3, 4, 8, 8), r(4, 3, 3, 3, 3)),
        82_944,
    ),
    # dilation 2, padding 1: out 6 x 6; 4 x 6 x 6 x 27 = 3_888
    (
        "slow_conv_dilated2d",
        Call(
            lambda x, w: torch._C._nn.slow_conv_dilated2d(
                x, w, [3, 3], None, [1, 1], [1, 1], [2, 2]
            )
        ),
        (r(1, 3, 8, 8), r(4, 3, 3, 3)),
        3_888,
    ),
    # transposed, weight (Cin 3, Cout 4, 3, 3): Cin x Cout x k x k x input 8 x 8 = 6_912
    (
        "slow_conv_transpose2d",
        Call(lambda x, w: torch._C._nn.slow_conv_transpose2d(x, w, [3, 3])),
        (r(1, 3, 8, 8), r(3, 4, 3, 3)),
        6_912,
    ),
    # grouped_mm, 2-D x 3-D (MoE experts): rows split 4/4/4 over 3 experts of (8, 16):
    # sum over groups of rows x K x N = 3 x (4 x 8 x 16) = 1_536
    ("_grouped_mm", Call(torch._grouped_mm), (r(12, 8), r(3, 8, 16), offs), 1_536),
    # 3-D x 3-D (batched): 3 x 4 x 8 x 16 = 1_536
    ("_grouped_mm", Call(torch._grouped_mm), (r(3, 4, 8), r(3, 8, 16)), 1_536),
    # 2-D x 2-D: K 12 split 4/4/4, out (3, 4, 16): 3 x (4 x 4 x 16) = 768
    ("_grouped_mm", Call(torch._grouped_mm), (r(4, 12), r(12, 16), offs), 768),
    # 3-D x 2-D: N 12 split 4/4/4, out (4, 12): 3 x (4 x 8 x 4) = 384
    ("_grouped_mm", Call(torch._grouped_mm), (r(3, 4, 8), r(8, 12), offs), 384),
    # float8 (16, 32) @ (32, 16): 16 x 16 x 32 = 8_192
    (
        "_scaled_mm",
        Call(lambda a, b, s: torch._scaled_mm(a, b, s, s, out_dtype=torch.float32)),
        (r(16, 32).to(f8), r(16, 32).to(f8).t(), torch.tensor(1.0)),
        8_192,
    ),
    # int8 (32, 32) @ (32, 32): 32^3 = 32_768
    (
        "_int_mm",
        Call(torch._int_mm),
        (torch.ones(32, 32, dtype=torch.int8), torch.ones(32, 32, dtype=torch.int8)),
        32_768,
    ),
    # attention kernels, Q = K = V (B 2, heads 2, L = S 8, E 4):
    # Q K^T 2 x 2 x 8 x 8 x 4 = 1_024, A V 1_024 -> 2_048
    (
        "_scaled_dot_product_attention_math",
        Call(lambda q, k, v: torch.ops.aten._scaled_dot_product_attention_math(q, k, v)[0]),
        (q4, q4, q4),
        2_048,
    ),
    (
        "_scaled_dot_product_flash_attention_for_cpu",
        Call(
            lambda q, k, v: torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0]
        ),
        (q4, q4, q4),
        2_048,
    ),
    (
        "_scaled_dot_product_efficient_attention",
        Call(
            lambda q, k, v: torch.ops.aten._scaled_dot_product_efficient_attention(
                q, k, v, None, False
            )[0]
        ),
        tuple(q4.to("meta") for _ in range(3)),
        2_048,
    ),
    # (B, L, heads, E) layout: (2, 8, 2, 4), the same products: 2_048
    (
        "_flash_attention_forward",
        Call(
            lambda q, k, v: torch.ops.aten._flash_attention_forward(
                q, k, v, None, None, 8, 8, 0.0, False, False
            )[0]
        ),
        tuple(r(2, 8, 2, 4, device="meta") for _ in range(3)),
        2_048,
    ),
    # query = key = value (2, 5, 8), E 8: q, k and v projections 3 x 2*5*8*8 = 1_920,
    # Q K^T and A V 2 x 2*5*5*8 = 800, out projection 640 -> 3_360
    ("_native_multi_head_attention", NativeMha(), (r(2, 5, 8),), 3_360),
    # src (2, 5, 8), F 16, per token 4*8*8 + 2*5*8 + 2*8*16 = 256 + 80 + 256 = 592;
    # 10 tokens -> 5_920
    ("_transformer_encoder_layer_fwd", EncoderLayerFwd(), (r(2, 5, 8),), 5_920),
]


@pytest.mark.parametrize("counting", ["macs", "fvcore"])
@pytest.mark.parametrize(
    ("op", "model", "inputs", "macs"),
    CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)],
)
def test_operator_is_counted(
    op: str, model: nn.Module, inputs: tuple[Any, ...], macs: int, counting: str
) -> None:
    profile = measure(model.eval(), *inputs, counting=counting)
    assert f"aten::{op}" not in profile.uncounted_ops
    assert profile.total.flops == macs
    with torch.no_grad():
        # activations: the elements of the operator's output
        assert profile.total.activations == _first(model(*inputs)).numel()


ATTENTION_IR = """
graph(%q : Tensor, %k : Tensor, %v : Tensor):
  %o : Tensor, %l : Tensor, %a : Tensor, %b : Tensor, %c : int, %d : int, %e : Tensor, %f : Tensor, %g : Tensor = aten::{op}(%q, %k, %v)
  return (%o)
"""  # noqa: E501


def _typed(value: Any, *shape: int) -> None:
    value.setType(torch._C.TensorType.create_from_tensor(torch.empty(shape, device="meta")))


@pytest.mark.parametrize(
    "op",
    [
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
    ],
)
@pytest.mark.parametrize("counting", ["macs", "fvcore"])
def test_cuda_only_attention_kernels_are_counted(op: str, counting: str) -> None:
    # Not traceable on CPU or meta (the tracer rejects their SymInt arguments), so the
    # handle reads a parsed graph. Q (2, 2, 8, 4), K = V (2, 2, 6, 4): Q K^T
    # 2 x 2 x 8 x 6 x 4 = 768, A V 768 -> 1_536
    from pytest_actbudget.measure.handles import HANDLES

    graph = torch._C.parse_ir(ATTENTION_IR.replace("{op}", op))
    node = next(n for n in graph.nodes() if n.kind() == f"aten::{op}")
    for value, shape in zip(node.inputs(), [(2, 2, 8, 4), (2, 2, 6, 4), (2, 2, 6, 4)], strict=True):
        _typed(value, *shape)
    _typed(next(node.outputs()), 2, 2, 8, 4)
    counts = HANDLES[counting][f"aten::{op}"](list(node.inputs()), list(node.outputs()))
    assert counts == {"flops/attention": 1_536, "act/attention": 2 * 2 * 8 * 4}


def test_chain_macs_picks_the_cheapest_order() -> None:
    from pytest_actbudget.measure.handles import chain_macs

    # 10x30 30x5 5x60: (AB)C = 10*30*5 + 10*5*60 = 4_500; A(BC) = 30*5*60 + 10*30*60 = 27_000
    assert chain_macs([10, 30, 5, 60]) == 4_500
    assert chain_macs([3, 4]) == 0  # one matrix: nothing to multiply
