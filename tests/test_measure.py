"""measure(): FLOPs, activations, params, shapes and bytes of tiny models, by hand."""

from __future__ import annotations

import pytest
import torch
from nets import (
    ConvReluLinear,
    Einsum,
    MatMul,
    MultiOutput,
    Scaled,
    SdpaBlock,
    SelfAttention,
    SmallCNN,
    TiedLinear,
)
from torch import nn

from pytest_actbudget.measure.model import measure
from pytest_actbudget.results import TensorSpec


def test_conv_relu_linear_every_number() -> None:
    # x (2, 1, 5, 5)
    # conv 1->2, k3: out (2, 2, 3, 3); MACs N*Cout*Hout*Wout*Cin*k*k = 2*2*3*3*1*9 = 324,
    #   activations 2*2*3*3 = 36, params 2*1*3*3 + 2 = 20
    # fc 18->4: MACs 2*18*4 = 144, activations 2*4 = 8, params 18*4 + 4 = 76
    profile = measure(ConvReluLinear(), torch.randn(2, 1, 5, 5))
    conv, relu, flat, fc = (profile.layer(p) for p in ("conv", "relu", "flat", "fc"))
    assert (conv.flops, conv.activations, conv.params) == (324, 36, 20)
    assert (fc.flops, fc.activations, fc.params) == (144, 8, 76)
    assert (relu.flops, flat.flops) == (0, 0)
    assert (profile.total.flops, profile.total.activations, profile.total.params) == (468, 44, 96)
    assert conv.output_shape == (2, 2, 3, 3) and conv.output_dtype == "float32"
    assert flat.output_shape == (2, 18) and profile.total.output_shape == (2, 4)
    # act_bytes (float32 = 4 bytes): conv, relu and flatten outputs 36*4 = 144 each,
    # fc 8*4 = 32; total 3*144 + 32 = 464
    assert [x.act_bytes for x in (conv, relu, flat, fc)] == [144, 144, 144, 32]
    assert profile.total.act_bytes == 464
    # saved_bytes: conv saves its input x (2*1*5*5*4 = 200; its weight is a parameter),
    # relu saves its output (36*4 = 144); flatten is a view; fc saves the flattened
    # view of relu's output (same storage: counted once) and its weight (a parameter)
    assert [x.saved_bytes for x in (conv, relu, flat, fc)] == [200, 144, 0, 0]
    assert profile.total.saved_bytes == 344
    assert profile.inputs == (TensorSpec((2, 1, 5, 5), "float32"),)
    assert profile.model == "ConvReluLinear" and profile.counting == "fvcore"
    assert [x.calls for x in profile.layers] == [1, 1, 1, 1, 1]
    assert profile.paths == ("", "conv", "relu", "flat", "fc")


def test_small_cnn_depthwise_grouped_batchnorm_pool_in_both_conventions() -> None:
    # x (1, 3, 16, 16)
    # stem conv 3->8 k3 s2 p1: out 8x8x8; MACs 1*8*8*8*3*9 = 13_824
    # depthwise 8->8 k3 groups 8: MACs 1*8*8*8*(8/8)*9 = 4_608
    # pointwise 8->16 k1: MACs 1*16*8*8*8 = 8_192
    # head 16->10: MACs 160                       -> macs total 26_784
    # fvcore adds (eval) batchnorm = 2 per input element (affine): 2*512 twice = 2_048,
    # and adaptive_avg_pool2d = 1 per input element: 16*8*8 = 1_024 -> 29_856
    model = SmallCNN().eval()
    x = torch.randn(1, 3, 16, 16)
    macs = measure(model, x, counting="macs")
    fvcore = measure(model, x)
    assert macs.layer("block.0").flops == 4_608
    assert macs.layer("stem").flops == 13_824
    assert macs.total.flops == 26_784
    assert fvcore.layer("stem.1").flops == 1_024
    assert fvcore.layer("pool").flops == 1_024
    assert fvcore.total.flops == 29_856
    # activations (conv/linear outputs): 512 + 512 + 1024 + 10 = 2_058, both conventions
    assert macs.total.activations == fvcore.total.activations == 2_058
    # train mode: fvcore counts batchnorm as 5 per input element: 26_784 + 2*2_560 + 1_024
    assert measure(model.train(), x).total.flops == 32_928
    # known zero-cost ops in macs (batch_norm, adaptive_avg_pool2d) are not "uncounted"
    assert macs.uncounted_ops == fvcore.uncounted_ops == {}


def test_children_never_exceed_their_parent() -> None:
    profile = measure(SmallCNN(), torch.randn(2, 3, 16, 16))
    for layer in profile.layers:
        children = [c for c in profile.layers if c.path.rpartition(".")[0] == layer.path and c.path]
        if layer.path == "":
            children = [c for c in profile.layers if c.path and "." not in c.path]
        for metric in ("flops", "activations", "params", "act_bytes", "saved_bytes"):
            assert sum(c.metric(metric) for c in children) <= layer.metric(metric), (layer, metric)


@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention(causal: bool) -> None:
    # x (2, 5, 8), 2 heads of 4
    # qkv 8->24: 2*5*8*24 = 1_920 MACs, 240 activations
    # attention: Q K^T and A V, each B*H*L*S*hd = 2*2*5*5*4 = 400 -> 800; output 2*2*5*4 = 80
    #   (causal counted as the full L x S, like the math kernel: same 800)
    # out 8->8: 2*5*8*8 = 640 MACs, 80 activations
    profile = measure(SdpaBlock(8, 2, causal), torch.randn(2, 5, 8), counting="macs")
    assert profile.total.flops == 1_920 + 800 + 640
    assert profile.total.activations == 240 + 80 + 80
    assert measure(SdpaBlock(8, 2, causal), torch.randn(2, 5, 8)).total.flops == 3_360


@pytest.mark.parametrize("mode", ["train", "eval", "eval-no-grad", "inference-mode"])
def test_multihead_attention_fast_path_does_not_hide_flops(mode: str) -> None:
    # nn.MultiheadAttention(8, 2) on (2, 5, 8): in-projection 1_920 + attention 800 +
    # out-projection 640 = 3_360, whatever path eval/no-grad inference would take
    model = SelfAttention(8, 2)
    x = torch.randn(2, 5, 8)
    model.train(mode == "train")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    if mode == "eval-no-grad":
        with torch.no_grad():
            profile = measure(model, x)
    elif mode == "inference-mode":
        with torch.inference_mode():
            profile = measure(model, x)
    else:
        profile = measure(model, x)
    assert profile.total.flops == 3_360
    assert profile.layer("attn").flops == 3_360
    assert torch.backends.mha.get_fastpath_enabled() == fastpath


@pytest.mark.parametrize("mode", ["train", "eval-no-grad", "eval-frozen"])
def test_transformer_encoder_layer(mode: str) -> None:
    # TransformerEncoderLayer(8, 2, dim_feedforward=16) on (2, 5, 8):
    # self-attention 3_360, linear1 2*5*8*16 = 1_280, linear2 1_280 -> macs 5_920
    # fvcore adds layer_norm = 5 per input element (affine): 2 * 5*80 = 800 -> 6_720
    # activations: attention 240 + 80 + 80, linear1 160, linear2 80 = 640
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    x = torch.randn(2, 5, 8)
    layer.train(mode == "train")
    if mode == "eval-frozen":  # no parameter needs grad: the fused fast path's condition
        layer.requires_grad_(False)
    with torch.set_grad_enabled(mode == "train"):
        fvcore = measure(layer, x)
        macs = measure(layer, x, counting="macs")
    assert fvcore.total.flops == 6_720
    assert macs.total.flops == 5_920
    assert fvcore.total.activations == 640


@pytest.mark.parametrize(
    ("equation", "shapes", "macs"),
    [
        # b*i*j*k = 2*3*4*5
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 120),
        # attention scores: b*h*q*k*d = 1*2*3*5*4
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)], 120),
        # ellipsis broadcast over the first operand's batch: 2*3*4*5
        ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)], 120),
        # implicit output (ik): 3*4*5
        ("ij,jk", [(3, 4), (4, 5)], 60),
    ],
)
def test_einsum(equation: str, shapes: list[tuple[int, ...]], macs: int) -> None:
    a, b = (torch.randn(*shape) for shape in shapes)
    profile = measure(Einsum(equation), a, b)
    assert profile.total.flops == macs
    assert profile.total.activations == torch.einsum(equation, a, b).numel()


def test_einsum_of_three_operands_contracts_left_to_right() -> None:
    from pytest_actbudget.measure.handles import einsum_macs

    # ij,jk -> ik: 2*3*4 = 24; ik,kl -> il: 2*4*5 = 40
    assert einsum_macs("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]) == 64


@pytest.mark.parametrize(
    ("a", "b", "macs"),
    [
        ((3, 4), (2, 4, 5), 2 * 3 * 5 * 4),  # broadcast on the right: out (2,3,5) x k=4
        ((2, 1, 3, 4), (5, 4, 6), 2 * 5 * 3 * 6 * 4),  # both sides broadcast
        ((4,), (4,), 4),  # dot product
        ((4,), (2, 4, 5), 2 * 5 * 4),  # 1-D on the left: out (2, 5)
        ((2, 3, 4), (4,), 2 * 3 * 4),  # 1-D on the right: out (2, 3)
    ],
)
def test_matmul_forms(a: tuple[int, ...], b: tuple[int, ...], macs: int) -> None:
    profile = measure(MatMul(), torch.randn(*a), torch.randn(*b))
    assert profile.total.flops == macs
    assert profile.uncounted_ops == {}


def test_linear_on_3d_input() -> None:
    # (2, 7, 3) @ W (4, 3).T: 2*7*3*4 = 168 MACs, out 2*7*4 = 56
    profile = measure(nn.Linear(3, 4), torch.randn(2, 7, 3), counting="macs")
    assert (profile.total.flops, profile.total.activations) == (168, 56)


def test_shared_weights_are_counted_once() -> None:
    # one 4x4 weight + 4 bias = 20, shared by both linears; FLOPs 2 * 3*4*4 = 96
    model = TiedLinear()
    model.first.bias.requires_grad_(False)
    profile = measure(model, torch.randn(3, 4))
    assert profile.total.params == 20
    assert profile.total.trainable == 16
    assert profile.layer("first").params == profile.layer("second").params == 20
    assert profile.total.flops == 96


def test_forward_kwargs_and_dict_inputs() -> None:
    # fc 3->2 on (2, 3): 12 MACs per call; with `extra` it runs twice
    x = torch.randn(2, 3)
    plain = measure(Scaled(), x, scale=2.0)
    assert plain.total.flops == 12
    both = measure(Scaled(), x, scale=2.0, extra={"bias_input": torch.randn(2, 3)})
    assert both.total.flops == 24
    assert both.layer("fc").calls == 2
    # A keyword input's tensors carry the keyword's name (here nested in a dict).
    assert both.inputs == (
        TensorSpec((2, 3), "float32"),
        TensorSpec((2, 3), "float32", name="extra"),
    )


@pytest.mark.parametrize("kind", ["dict", "tuple", "dataclass"])
def test_structured_outputs(kind: str) -> None:
    # body 3->5 on (4, 3): 60 MACs; head 5->2: 40; the root's output is its first tensor
    profile = measure(MultiOutput(kind), torch.randn(4, 3))
    assert profile.total.flops == 100
    assert profile.total.output_shape == (4, 2)
    assert profile.layer("body").output_shape == (4, 5)


def test_uncalled_modules_come_last_with_zero_calls() -> None:
    model = nn.ModuleDict({"used": nn.Linear(2, 2), "unused": nn.Linear(2, 2)})

    class Uses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.parts = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.parts["used"](x)
            return out

    profile = measure(Uses(), torch.randn(1, 2))
    assert profile.paths == ("", "parts.used", "parts", "parts.unused")
    assert profile.layer("parts.unused").calls == 0
    assert profile.layer("parts.unused").output_shape is None
    assert profile.layer("parts").params == 12


def test_uncounted_ops_are_listed_at_the_root() -> None:
    class Gelu(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.gelu(x) + x.sigmoid()

    profile = measure(Gelu(), torch.randn(2, 3))
    assert profile.uncounted_ops == {"aten::add": 1, "aten::gelu": 1, "aten::sigmoid": 1}


def test_same_numbers_every_time() -> None:
    model, x = SmallCNN(), torch.randn(2, 3, 16, 16)
    assert measure(model, x) == measure(model, x)


def test_unknown_counting_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown counting 'flops'; valid: fvcore, macs"):
        measure(nn.Linear(2, 2), torch.randn(1, 2), counting="flops")


def test_fastai_resnet18_rows() -> None:
    # examples/models.py is the demo's model; skip only while it is not there yet
    models = pytest.importorskip("examples.models")
    # on meta: the same numbers as on the CPU (test_measure_meta), without computing
    model = models.resnet18_mnist().to("meta")
    profile = measure(model, torch.empty(64, 3, 28, 28, device="meta"))
    conv1 = profile.layer("0.0")
    # conv1: 3->64, k7, s2, p3 on 28x28: out 14x14; params 64*3*7*7 = 9_408 (no bias)
    assert conv1.output_shape == (64, 64, 14, 14)
    assert conv1.params == 9_408
    # MACs N*Cout*Hout*Wout*Cin*k*k = 64*64*14*14*3*7*7 = 118_013_952
    assert conv1.flops == 118_013_952
    # ResNet-18 without fc 11_176_512 + fastai head 532_480
    assert profile.total.params == 11_708_992
    assert profile.total.output_shape == (64, 10)


class Bookkeeping(nn.Module):
    """A conv, a training-mode BatchNorm (``num_batches_tracked += 1``) and integer
    arithmetic on a long buffer, in place and out of place."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        self.steps -= 1
        self.steps *= 3
        self.steps.copy_((self.steps + 1) * 2 - 1)
        out: torch.Tensor = self.bn(self.conv(x))
        return out


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize(("counting", "flops"), [("fvcore", 224), ("macs", 64)])
def test_integer_bookkeeping_costs_nothing_and_is_not_uncounted(
    counting: str, flops: int, device: str
) -> None:
    # x (1, 2, 4, 4); conv 2->2 k1: MACs 1*2*4*4*2 = 64; fvcore adds the training-mode
    # batch norm, 5 per input element: 5*32 = 160 -> 224. The integer add_/sub_/mul_/
    # add/mul/sub (BatchNorm's num_batches_tracked among them) cost 0 in both
    # conventions and are not listed as uncounted.
    model = Bookkeeping().train().to(device)
    profile = measure(model, torch.randn(1, 2, 4, 4, device=device), counting=counting)
    assert profile.total.flops == flops
    assert profile.uncounted_ops == {}


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.conv(x)
        y += x
        return y * 2 - x


@pytest.mark.parametrize(("counting", "flops"), [("fvcore", 64), ("macs", 64)])
def test_float_add_sub_mul_stay_uncounted(counting: str, flops: int) -> None:
    # x (1, 2, 4, 4); conv 2->2 k1: MACs 1*2*4*4*2 = 64 in both conventions; the float
    # residual add_, the mul and the sub are real work that neither counts: 1 each
    profile = measure(Residual(), torch.randn(1, 2, 4, 4), counting=counting)
    assert profile.total.flops == flops
    assert profile.uncounted_ops == {"aten::add_": 1, "aten::mul": 1, "aten::sub": 1}


class _AttentionThenLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.attn(x, x, x, need_weights=False)[0])


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_act_bytes_of_a_container_that_calls_no_child(mode: str) -> None:
    # nn.MultiheadAttention hands out_proj's weight to a function instead of calling
    # out_proj: the attention call is innermost, so its output is act_bytes.
    # x (2, 5, 8): attn output (2, 5, 8) = 80 floats = 320 bytes (its second output,
    # the weights, is None); fc output (2, 5, 3) = 30 floats = 120 bytes; total 440.
    model = _AttentionThenLinear().train(mode == "train")
    profile = measure(model, torch.randn(2, 5, 8))
    attn, out_proj, fc = (profile.layer(p) for p in ("attn", "attn.out_proj", "fc"))
    assert out_proj.calls == 0 and out_proj.act_bytes == 0
    assert (attn.act_bytes, fc.act_bytes, profile.total.act_bytes) == (320, 120, 440)
    # Innermost, so the reports list it among the leaves (per-layer chart, top modules),
    # with its own flops: 2 x 5 x 8 x 8 MACs for each of q, k, v and out_proj = 2,560,
    # plus q @ k^T and p @ v, 2 x 2 heads x 5 x 5 x 4 = 400 each -> 3,360 (fvcore).
    assert attn.leaf and fc.leaf and not profile.layer("").leaf
    assert attn.flops == 3_360
