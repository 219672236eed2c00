"""Training-step metrics (issue 13): backward_flops, train_flops and train_bytes of one
training step, derived by hand, checked against PyTorch's FlopCounterMode, and the
user's model left exactly as it was."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from nets import (
    ConvReluLinear,
    MultiOutput,
    SdpaBlock,
    SelfAttention,
    SmallCNN,
    TiedLinear,
    tiny_decoder,
)
from test_measure_model_state import _assert_same, _prepared_model, _snapshot
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from zoo import ZOO
from zoo_transformers import ZOO_TRANSFORMERS, mixtral_eager

from pytest_actbudget.measure.model import MeasureCache, measure
from pytest_actbudget.measure.training import backward_macs
from pytest_actbudget.results import Profile
from pytest_actbudget.training import TrainingSpec


def backward(model: nn.Module, *inputs: Any, counting: str = "macs") -> Profile:
    return measure(model, *inputs, counting=counting, training=True)


# -- Linear ------------------------------------------------------------------------
# Linear(I=16, O=32) on batch B=8: forward B*I*O = 8*16*32 = 4096 multiply-adds. The
# backward's weight gradient grad_out^T @ x costs O*B*I = 4096, the input gradient
# grad_out @ W costs B*O*I = 4096 when the input requires grad; the bias gradient is a
# sum (no multiply-add).


def test_linear_first_layer_has_no_input_gradient() -> None:
    profile = backward(nn.Linear(16, 32), torch.randn(8, 16))
    assert profile.total.flops == 4096
    assert profile.total.backward_flops == 4096  # weight gradient only
    assert profile.total.train_flops == 8192


def test_linear_input_that_requires_grad_gets_its_gradient() -> None:
    profile = backward(nn.Linear(16, 32), torch.randn(8, 16, requires_grad=True))
    assert profile.total.backward_flops == 2 * 4096  # input + weight gradient


def test_frozen_linear_computes_no_weight_gradient() -> None:
    layer = nn.Linear(16, 32).requires_grad_(False)
    assert backward(layer, torch.randn(8, 16, requires_grad=True)).total.backward_flops == 4096
    assert backward(layer, torch.randn(8, 16)).total.backward_flops == 0


def test_backward_is_attributed_to_the_module_that_created_it() -> None:
    # Linear(3, 4) then Linear(4, 5) on batch 2: forward 2*3*4 = 24 and 2*4*5 = 40.
    # The first gets the weight gradient only (24), the second both gradients (80).
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 5))
    profile = backward(model, torch.randn(2, 3))
    assert [(layer.path, layer.backward_flops) for layer in profile.layers] == [
        ("", 104),
        ("0", 24),
        ("1", 0),
        ("2", 80),
    ]


# -- Conv2d --------------------------------------------------------------------------
# Conv2d(4 -> 8, k=3, padding 1) on (2, 4, 10, 10): forward N*Cout*Hout*Wout*Cin*k*k
# /groups = 2*8*10*10*4*9 = 57,600; groups=2: 28,800; depthwise Conv2d(4, 4, groups=4):
# 2*4*10*10*1*9 = 7,200. The input gradient (a transposed convolution with the same
# weight) and the weight gradient (a convolution of the input with grad_out) each
# cost the forward's multiply-adds.


@pytest.mark.parametrize(
    ("conv", "forward"),
    [
        (nn.Conv2d(4, 8, 3, padding=1), 57_600),
        (nn.Conv2d(4, 8, 3, padding=1, groups=2), 28_800),
        (nn.Conv2d(4, 4, 3, padding=1, groups=4), 7_200),
    ],
    ids=["dense", "groups2", "depthwise"],
)
def test_conv2d_backward(conv: nn.Conv2d, forward: int) -> None:
    first = backward(conv, torch.randn(2, 4, 10, 10))
    assert first.total.flops == forward
    assert first.total.backward_flops == forward  # no input gradient for the first layer
    inner = backward(conv, torch.randn(2, 4, 10, 10, requires_grad=True))
    assert inner.total.backward_flops == 2 * forward
    frozen = backward(conv.requires_grad_(False), torch.randn(2, 4, 10, 10, requires_grad=True))
    assert frozen.total.backward_flops == forward  # input gradient only


def test_grouped_conv_differs_from_flop_counter_mode_by_design() -> None:
    # FlopCounterMode's weight gradient ignores groups: groups * forward, so its
    # backward of the groups=2 conv above (input requiring grad) is (1 + 2) * 28,800 =
    # 86,400 multiply-adds where 2 * 28,800 = 57,600 is right.
    conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    x = torch.randn(2, 4, 10, 10, requires_grad=True)
    assert flop_counter_backward(conv, x) == 2 * 86_400
    assert backward(conv, x).total.backward_flops == 57_600


# -- attention -------------------------------------------------------------------------
# SDPA with q (B=2, H=3, L=5, E=4), k (2, 3, S=7, 4), v (2, 3, 7, Ev=6): forward
# q@k^T B*H*L*S*E = 840 and weights@v B*H*L*S*Ev = 1,260, total 2,100. Backward (the
# formula FlopCounterMode uses for SDPA): grad_v = weights^T @ grad_out B*H*S*L*Ev =
# 1,260, grad_weights = grad_out @ v^T 1,260, grad_q = grad_scores @ k 840, grad_k =
# grad_scores^T @ q 840: 4,200 = 2x the forward.


class Attend(nn.Module):
    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return F.scaled_dot_product_attention(q, k, v)


def test_attention_backward_follows_sdpa_formula() -> None:
    q, k, v = (torch.randn(2, 3, n, e, requires_grad=True) for n, e in ((5, 4), (7, 4), (7, 6)))
    profile = backward(Attend(), q, k, v)
    assert profile.total.flops == 2_100
    assert profile.total.backward_flops == 4_200


def test_no_gradient_wanted_costs_no_backward() -> None:
    q, k, v = (torch.randn(2, 3, n, e) for n, e in ((5, 4), (7, 4), (7, 6)))
    assert backward(Attend(), q, k, v).total.backward_flops == 0


# -- train_bytes ----------------------------------------------------------------------
# MLP Linear(4, 8) -> ReLU -> Linear(8, 2), float32, batch 3, input without grad.
# params: fc1 4*8 + 8 = 40, fc2 8*2 + 2 = 18, 58 elements = 232 bytes, all trainable.
# saved for backward: fc1's input x 3*4 floats = 48 bytes (for its weight gradient),
# the ReLU output 3*8 floats = 96 bytes (ReLU's own saves; fc2 saves the same tensor
# for its weight gradient, counted once), fc2's output is not saved: 144 bytes.
#   sgd:           232 params + 232 grads +   0 state = 464  (+ 144 saved = 608)
#   sgd_momentum:  232 + 232 + 232 (one float32 buffer)  = 696  (+ 144 = 840)
#   adam:          232 + 232 + 464 (two float32 moments) = 928  (+ 144 = 1,072)
#   adam, bfloat16 grads and state: 232 + 58*2 + 2*58*2 = 580 (+ 144 = 724)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (TrainingSpec("sgd"), 608),
        (TrainingSpec("sgd_momentum"), 840),
        (TrainingSpec("adam"), 1_072),
        (TrainingSpec("adamw"), 1_072),
        (TrainingSpec("adam", grad_dtype="bfloat16", state_dtype="bfloat16"), 724),
    ],
)
def test_train_bytes_of_a_small_mlp(spec: TrainingSpec, expected: int) -> None:
    profile = measure(mlp(), torch.randn(3, 4), training=spec)
    assert profile.total.saved_bytes == 144
    assert profile.total.train_bytes == expected
    # per module: fc1 under adam = 40*4 params + 40*4 grads + 2*40*4 state + 48 saved
    if spec == TrainingSpec("adam"):
        assert profile.layer("0").train_bytes == 160 + 160 + 320 + 48


def test_train_bytes_frozen_and_tied_parameters() -> None:
    # TiedLinear: one 4x4 weight and one bias of 4 shared by two linears, 20 elements =
    # 80 bytes counted once; under adam 80 params + 80 grads + 160 state = 320, plus
    # what was saved. Frozen, only the parameters themselves: 80.
    model = TiedLinear()
    adam = measure(model, torch.randn(2, 4), training=TrainingSpec("adam"))
    assert adam.total.train_bytes == 320 + adam.total.saved_bytes
    frozen = measure(model.requires_grad_(False), torch.randn(2, 4), training=TrainingSpec("adam"))
    assert frozen.total.train_bytes == 80 + frozen.total.saved_bytes


# -- against FlopCounterMode -----------------------------------------------------------


def flop_counter_backward(model: nn.Module, *inputs: Tensor, **kwargs: Tensor) -> int:
    """FlopCounterMode's FLOPs of the backward of the sum of the float outputs (2 per
    multiply-add), attention on its math kernel as the plugin runs it."""
    with sdpa_kernel([SDPBackend.MATH]):
        loss = sum(t.sum() for t in _floats(model(*inputs, **kwargs)))
        leaves = [p for p in model.parameters() if p.requires_grad]
        leaves += [t for t in (*inputs, *kwargs.values()) if t.requires_grad]
        with FlopCounterMode(display=False) as counter:
            torch.autograd.grad(loss, leaves)
    return counter.get_total_flops()


def _floats(obj: Any) -> list[Tensor]:
    """The floating-point tensors inside a model output that require grad, nested
    (ModelOutput is a dict; CLIP nests the text and vision outputs)."""
    if isinstance(obj, Tensor):
        return [obj] if obj.is_floating_point() and obj.requires_grad else []
    if isinstance(obj, tuple | list):
        return [t for item in obj for t in _floats(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _floats(item)]
    return []


NETS: dict[str, tuple[Any, tuple[int, ...], torch.dtype]] = {
    "conv_relu_linear": (ConvReluLinear, (2, 1, 5, 5), torch.float32),
    "sdpa_block": (lambda: SdpaBlock(8, 2, causal=True), (2, 6, 8), torch.float32),
    "self_attention": (lambda: SelfAttention(8, 2), (2, 6, 8), torch.float32),
    "tied_linear": (TiedLinear, (3, 4), torch.float32),
    "multi_output": (lambda: MultiOutput("dict"), (3, 3), torch.float32),
    "tiny_decoder": (tiny_decoder, (2, 7), torch.long),
}


@pytest.mark.parametrize("name", list(NETS))
def test_macs_backward_is_flop_counter_mode_over_two_on_nets(name: str) -> None:
    factory, shape, dtype = NETS[name]
    model = factory()
    x = torch.randint(0, 50, shape) if dtype == torch.long else torch.randn(shape)
    expected = flop_counter_backward(model, x)
    assert expected > 0
    assert backward(model, x).total.backward_flops * 2 == expected


# Grouped convolutions in the zoo: the plugin's backward is FlopCounterMode's / 2 less
# (groups - 1) x the forward of each grouped conv's weight gradient.
ZOO_GROUPED = ["mobilenet_v2", "efficientnet_b0", "convnext_tiny"]


def grouped_weight_gradient_excess(model: nn.Module, image: Tensor) -> int:
    """sum over grouped convs of (groups - 1) * forward MACs, from forward hooks."""
    excess = 0

    def hook(conv: nn.Module, args: Any, out: Tensor) -> None:
        nonlocal excess
        assert isinstance(conv, nn.Conv2d)
        forward = out.numel() * conv.weight[0].numel()  # N*Cout*Ho*Wo * Cin/g*k*k
        excess += (conv.groups - 1) * forward

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.groups > 1
    ]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return excess


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_macs_backward_against_flop_counter_mode_on_the_zoo(name: str) -> None:
    with torch.device("meta"):
        model = ZOO[name]().eval()
        image = torch.empty(1, 3, 224, 224)
    expected = flop_counter_backward(model, image) // 2
    if name in ZOO_GROUPED:
        excess = grouped_weight_gradient_excess(model, image)
        assert excess > 0
        expected -= excess
    else:
        assert grouped_weight_gradient_excess(model, image) == 0
    assert backward(model, image).total.backward_flops == expected


@pytest.mark.parametrize("name", ZOO_TRANSFORMERS)
def test_macs_backward_against_flop_counter_mode_on_the_transformers_zoo(name: str) -> None:
    # Mixtral's experts run _grouped_mm, forward and backward, which FlopCounterMode
    # does not count (it misses 64% of that model's backward): its reference is the
    # same model with eager experts (the same routed tokens through plain linears).
    factory, make_inputs = ZOO_TRANSFORMERS[name]
    reference = mixtral_eager() if name == "mixtral" else factory()
    inputs = make_inputs()
    expected = flop_counter_backward(reference, **inputs)
    assert expected > 0 and expected % 2 == 0
    got = measure(factory(), counting="macs", training=True, **inputs).total.backward_flops
    assert got == expected // 2


def test_matrix_vector_products_in_the_backward() -> None:
    # y = W @ x with W (3, 4) frozen and x (4,) requiring grad: the forward is an mv,
    # 3 x 4 = 12 multiply-adds; the input gradient W^T @ grad_y is an mv too, 12.
    class MatVec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(3, 4), requires_grad=False)

        def forward(self, x: Tensor) -> Tensor:
            return torch.mv(self.weight, x)

    profile = backward(MatVec(), torch.randn(4, requires_grad=True))
    assert (profile.total.flops, profile.total.backward_flops) == (12, 12)


def test_fvcore_counting_uses_the_same_backward() -> None:
    # The convention under counting: fvcore: the backward's matmul- and conv-like
    # operators in fvcore's unit (one multiply-add = 1), norms and elementwise
    # gradients not counted: the macs backward. SmallCNN at (2, 3, 16, 16): stem conv
    # 3->8 s2 at 8x8 2*8*8*8*27 = 27,648 (weight gradient only: first layer), the
    # depthwise 3x3 2*8*8*8*9 = 9,216 and pointwise 8->16 2*8*8*16*8 = 16,384 (both
    # gradients: 2x), head 16->10 2*160 = 320 (2x): 27,648 + 2*(9,216 + 16,384 + 320).
    x = torch.randn(2, 3, 16, 16)
    fvcore = backward(SmallCNN(), x, counting="fvcore")
    assert fvcore.total.backward_flops == 27_648 + 2 * (9_216 + 16_384 + 320) == 79_488
    assert fvcore.total.backward_flops == backward(SmallCNN(), x).total.backward_flops
    assert fvcore.layer("stem").backward_flops == 27_648
    assert fvcore.total.train_flops == fvcore.total.flops + 79_488


# -- the model comes out unchanged ------------------------------------------------------


def test_training_step_leaves_the_model_as_it_was() -> None:
    model = _prepared_model()
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    before = _snapshot(model)
    profile = measure(model, x, training=TrainingSpec("adam"))
    assert profile.total.backward_flops
    _assert_same(before, _snapshot(model))
    assert x.grad is None


def test_real_fallback_leaves_the_model_as_it_was() -> None:
    # A forward that reads a value (data-dependent) cannot run on meta: the step runs
    # on the real tensors, still without writing a .grad. Linear(4, 4) on batch 2:
    # 32 MACs forward, 32 for the weight gradient.
    class ReadsValue(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: Tensor) -> Tensor:
            out: Tensor = self.fc(x)
            return out * 2 if bool(x.sum() > -1e9) else out

    model, x = ReadsValue(), torch.randn(2, 4)
    before = _snapshot(model)
    profile = backward(model, x)
    assert profile.total.backward_flops == 32
    _assert_same(before, _snapshot(model))


def test_the_step_runs_on_the_traces_meta_stand_ins() -> None:
    # A plain tensor attribute (neither parameter nor buffer) and a tensor the forward
    # makes without a device: the trace's stand-ins cover the first, the meta default
    # device the second, so the step stays on meta (before, the attribute stayed a real
    # CPU tensor next to meta parameters, and the step fell back to computing).
    # Linear(4, 4) on batch 2: weight gradient 2*4*4 = 32 MACs, no input gradient.
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.scale = torch.full((4,), 2.0)

        def forward(self, x: Tensor) -> Tensor:
            out: Tensor = self.fc(x) * self.scale + torch.arange(4)
            return out

    model, x = Scaled(), torch.randn(2, 4)
    before = _snapshot(model)
    scale = model.scale
    counts, where = backward_macs(model, (x,), {})
    assert (where, sum(counts.values()), counts["fc"]) == ("meta", 32, 32)
    _assert_same(before, _snapshot(model))
    assert model.scale is scale and not scale.is_meta


def test_training_is_part_of_the_cache_key() -> None:
    cache = MeasureCache()
    model, x = mlp(), torch.randn(3, 4)
    plain = measure(model, x, cache=cache)
    sgd = measure(model, x, cache=cache, training=TrainingSpec("sgd"))
    adam = measure(model, x, cache=cache, training=TrainingSpec("adam"))
    assert plain.training is None and plain.total.backward_flops is None
    assert (sgd.training, adam.training) == (TrainingSpec("sgd"), TrainingSpec("adam"))
    assert measure(model, x, cache=cache, training=TrainingSpec("adam")) is adam
    assert len(cache) == 3


def test_profile_round_trips_through_json() -> None:
    profile = backward(SmallCNN(), torch.randn(1, 3, 8, 8))
    assert Profile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


_SEVEN_B = """
import json, sys, time
import torch
from nets import decoder_7b
from pytest_actbudget.measure.model import measure
from pytest_actbudget.training import TrainingSpec
with torch.device("meta"):
    model = decoder_7b()
tokens = torch.zeros(1, 2048, dtype=torch.long, device="meta")
start = time.perf_counter()
forward = measure(model, tokens, counting="macs")
forward_s = time.perf_counter() - start
start = time.perf_counter()
profile = measure(model, tokens, counting="macs", training=TrainingSpec("adam"))
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the
# peak of the pytest worker this process was forked from.
rss_mib = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"forward_s": forward_s, "seconds": seconds, "rss_mib": rss_mib,
                  "profile": profile.to_dict()}))
"""


@pytest.mark.slow
def test_7b_decoder_training_step_on_meta() -> None:
    # in a subprocess of its own, so that its peak RSS is the measurement's
    tests = Path(__file__).parent
    out = subprocess.run(
        [sys.executable, "-c", _SEVEN_B], cwd=tests, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert result["seconds"] < 10.0  # the trace and the training step
    assert result["rss_mib"] < 2048  # the whole process, torch itself included
    profile = Profile.from_dict(result["profile"])
    # forward 14,630,806,093,824 MACs (test_measure_meta). Every linear and attention
    # matmul gets both gradients (the embedding's output requires grad through its
    # weight, so even layer 0's input gradient is needed): 2x the forward.
    assert profile.total.flops == 14_630_806_093_824
    assert profile.total.backward_flops == 2 * 14_630_806_093_824
    assert profile.layer("layers.0").backward_flops == 2 * 448_824_082_432
    # train_bytes under adam: 6,738,415,616 float32 params, each with a float32
    # gradient and two float32 moments: 16 bytes each = 107,814,649,856, plus saved.
    assert profile.total.train_bytes == 107_814_649_856 + profile.total.saved_bytes
