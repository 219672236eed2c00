"""Real models are traced on meta stand-ins: the same numbers as a real trace, nothing
computed, the model untouched; data-dependent models fall back to the real trace."""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

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
    tiny_decoder,
)
from test_measure_model_state import _assert_same, _prepared_model, _snapshot
from torch import nn
from zoo import ZOO
from zoo_transformers import ZOO_TRANSFORMERS

from examples.models import mobilenet_tiny, resnet18_mnist, tiny_transformer
from pytest_actbudget.measure.model import measure
from pytest_actbudget.measure.trace import trace_profile
from pytest_actbudget.results import Profile


def _real(model: nn.Module, *inputs: Any, **kwargs: Any) -> Profile:
    """The reference: the same trace on the real tensors."""
    return trace_profile(model, inputs, kwargs, "fvcore", standins=False)


def assert_meta_equals_real(model: nn.Module, *inputs: Any, **kwargs: Any) -> None:
    """measure() ran on meta, and every number of every layer is the real trace's."""
    on_meta = measure(model, *inputs, **kwargs)
    real = _real(model, *inputs, **kwargs)
    assert (on_meta.traced_on, on_meta.meta_fallback) == ("meta", None)
    assert real.traced_on == "cpu"
    # flops, activations, params, trainable, act_bytes, saved_bytes, output shapes and
    # dtypes, calls of every layer, in the same order; uncounted operators
    assert on_meta.layers == real.layers
    assert on_meta == dataclasses.replace(real, traced_on="meta")


class Assigns(nn.Module):
    """Item assignment of numbers: a slice, an index tensor, a mask, a column."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x)
        out[0:1] = 3  # a fill_ on the CPU, also on meta (uncounted on both)
        out[torch.tensor([0, 1], device=x.device)] = 2.5
        out[out > 0] = 0
        out[:, 1] = True
        return out


NETS: dict[str, Callable[[], tuple[nn.Module, tuple[Any, ...], dict[str, Any]]]] = {
    "conv_relu_linear": lambda: (ConvReluLinear(), (torch.randn(2, 1, 5, 5),), {}),
    "small_cnn": lambda: (SmallCNN(), (torch.randn(2, 3, 16, 16),), {}),
    "sdpa": lambda: (SdpaBlock(8, 2, causal=False), (torch.randn(2, 5, 8),), {}),
    "sdpa_causal": lambda: (SdpaBlock(8, 2, causal=True), (torch.randn(2, 5, 8),), {}),
    "multihead": lambda: (SelfAttention(8, 2), (torch.randn(2, 5, 8),), {}),
    "einsum": lambda: (Einsum("bij,bjk->bik"), (torch.randn(2, 3, 4), torch.randn(2, 4, 5)), {}),
    "matmul": lambda: (MatMul(), (torch.randn(2, 3, 4), torch.randn(4)), {}),
    "tied": lambda: (TiedLinear(), (torch.randn(3, 4),), {}),
    "kwargs": lambda: (
        Scaled(),
        (torch.randn(2, 3),),
        {"scale": 2.0, "extra": {"bias_input": torch.randn(2, 3)}},
    ),
    "dict_output": lambda: (MultiOutput("dict"), (torch.randn(4, 3),), {}),
    "dataclass_output": lambda: (MultiOutput("dataclass"), (torch.randn(4, 3),), {}),
    "assigns": lambda: (Assigns(), (torch.randn(4, 4),), {}),
    "decoder": lambda: (tiny_decoder(), (torch.randint(0, 50, (2, 7)),), {}),
    "demo_resnet18": lambda: (resnet18_mnist(), (torch.randn(4, 3, 28, 28),), {}),
    "demo_transformer": lambda: (tiny_transformer(), (torch.randn(2, 3, 32, 32),), {}),
    "demo_mobilenet": lambda: (mobilenet_tiny(), (torch.randn(2, 3, 32, 32),), {}),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", NETS)
def test_test_models_on_meta_equal_real(name: str, mode: str) -> None:
    model, inputs, kwargs = NETS[name]()
    assert_meta_equals_real(model.train(mode == "train"), *inputs, **kwargs)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_on_meta_equals_real(name: str) -> None:
    # train mode: batch norm's batch statistics, dropout masks and every activation
    # autograd keeps are saved, the hardest case for saved_bytes
    assert_meta_equals_real(ZOO[name]().train(), torch.randn(1, 3, 224, 224))


# torch's meta kernel of _grouped_mm (Mixtral's experts) takes bfloat16 only, as the
# CUDA kernel does; the CPU kernel, and so the real trace, runs float32.
_GROUPED_MM = (
    "in model.layers.0.mlp.experts (MixtralExperts): RuntimeError: Expected inputs of "
    "BF16 type but got mat_a.dtype=torch.float32 and mat_b.dtype=torch.float32."
)


@pytest.mark.parametrize("name", ZOO_TRANSFORMERS)
def test_transformers_zoo_on_meta_equals_real(name: str) -> None:
    # every metric of every layer equal to the real trace's, the model untouched after
    # the meta trace and after the real one; Mixtral falls back (its reason, above)
    factory, make_inputs = ZOO_TRANSFORMERS[name]
    model, inputs = factory(), make_inputs()
    before, ids = _snapshot(model), _identities(model)
    profile = measure(model, **inputs)
    _assert_same(before, _snapshot(model))
    real = _real(model, **inputs)
    _assert_same(before, _snapshot(model))
    assert _identities(model) == ids
    if name == "mixtral":
        assert (profile.traced_on, profile.meta_fallback) == ("cpu", _GROUPED_MM)
        assert dataclasses.replace(profile, meta_fallback=None) == real
        return
    assert (profile.traced_on, profile.meta_fallback, real.traced_on) == ("meta", None, "cpu")
    assert profile.layers == real.layers
    assert profile == dataclasses.replace(real, traced_on="meta")


def test_grad_requiring_inputs_and_channels_last_on_meta_equal_real() -> None:
    x = torch.randn(2, 3, 16, 16).to(memory_format=torch.channels_last).requires_grad_()
    assert_meta_equals_real(SmallCNN(), x)


class Positions(nn.Module):
    """A plain tensor attribute (not a buffer) and a tensor made without a device."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.offset = torch.ones(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x + self.offset) + torch.arange(x.shape[-1])
        return out


def test_plain_tensor_attributes_and_factories_stay_on_meta() -> None:
    # both join the stand-ins; on the CPU they would clash with meta tensors
    model = Positions()
    offset = model.offset
    assert_meta_equals_real(model, torch.randn(2, 4))
    assert model.offset is offset


class TiedCheck(TiedLinear):
    """Fails unless the two linears still share one weight inside the forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.second.weight is self.first.weight, "weights came untied"
        return super().forward(x)


def test_tied_weights_stay_tied_on_meta() -> None:
    # params once: weight 4*4 + bias 4 = 20
    profile = measure(TiedCheck(), torch.randn(3, 4))
    assert (profile.traced_on, profile.total.params) == ("meta", 20)


_CONV2D = torch.nn.functional.conv2d  # captured at import, before any measurement
_CONV_TRANSPOSE1D = torch.nn.functional.conv_transpose1d


class CapturedConvolutions(nn.Module):
    """Convolutions through functions held since import time and through torch.*."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 3, 3, 3))
        self.up = nn.Parameter(torch.randn(6, 2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _CONV2D(x, self.weight, stride=2)  # (2, 6, 4, 4)
        z = torch.conv2d(x[0], self.weight)  # unbatched: (6, 7, 7)
        line = _CONV_TRANSPOSE1D(y.flatten(2), self.up, stride=2)  # (2, 2, 34)
        return line.sum() + z.sum()


def test_captured_convolution_functions_are_counted_on_meta() -> None:
    # fvcore: conv2d 2*6*4*4 * 3*3*3 = 5_184, unbatched 1*6*7*7 * 27 = 7_938, transposed
    # 1d N*Cin*Lin*Cout*k = 2*6*16*2*4 = 1_536 -> 14_658 (the sums are not counted)
    profile = measure(CapturedConvolutions(), torch.randn(2, 3, 9, 9))
    assert (profile.traced_on, profile.total.flops) == ("meta", 14_658)
    assert_meta_equals_real(CapturedConvolutions(), torch.randn(2, 3, 9, 9))


# --- data-dependent models: the real trace's numbers, and why ---


class Branch(nn.Module):
    """Python branches on a tensor value."""

    def __init__(self) -> None:
        super().__init__()
        self.big = nn.Linear(4, 8)
        self.small = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.big(x) if x.sum() > 0 else self.small(x)
        return out


class Repeats(nn.Module):
    """Applies its linear as many times as ``.item()`` of the input's sum says."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(int(x.sum().item())):
            x = self.fc(x)
        return x


class Rows(nn.Module):
    """Keeps the rows whose first value is positive (``nonzero``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = torch.nonzero(x[:, 0] > 0).squeeze(1)
        out: torch.Tensor = self.fc(x.index_select(0, rows))
        return out


class Positives(nn.Module):
    """Pairs up the positive values (``masked_select``, which has no meta kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(torch.masked_select(x, x > 0).view(-1, 2))
        return out


class Gated(nn.Module):
    """A data-dependent gate inside a submodule."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.gate = Branch()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.gate(self.fc(x))
        return out


_ITEM = "RuntimeError: Tensor.item() cannot be called on meta tensors"
FALLBACKS = {
    # ones(1, 4) sums to 4 > 0: big, 1*4*8 = 32 multiply-adds (small would be 8)
    "branch": (Branch, torch.ones(1, 4), 32, f"in Branch.forward: {_ITEM}"),
    # 4 * 0.5 = 2 applications of fc: 2 * (1*4*4) = 32
    "item": (Repeats, torch.full((1, 4), 0.5), 32, f"in Repeats.forward: {_ITEM}"),
    # rows 0 and 2 are kept: fc on (2, 3): 2*3*5 = 30
    "nonzero": (
        Rows,
        torch.tensor([[1.0, 2, 3], [-1, 2, 3], [2, 0, 0], [-3, 1, 1]]),
        30,
        "in Rows.forward: NotImplementedError: The register_meta function for "
        "torch.nonzero() raises unimplemented by default, as a correct data-independent "
        "implementation does not exist.",
    ),
    # 4 positive values -> (2, 2): fc 2*2*3 = 12
    "masked_select": (
        Positives,
        torch.tensor([[1.0, -2], [3, 4], [-5, 6]]),
        12,
        "in Positives.forward: NotImplementedError: aten::masked_select: attempted to run "
        "this operator with Meta tensors, but there was no fake impl or Meta kernel "
        "registered.",
    ),
    # fc on (1, 4) = 16, then gate: fc(ones) with weight 1/bias 0 sums to 16 > 0: big 32
    "submodule": (Gated, torch.ones(1, 4), 48, f"in gate (Branch): {_ITEM}"),
}


@pytest.mark.parametrize("name", FALLBACKS)
def test_data_dependent_models_fall_back_to_the_real_trace(name: str) -> None:
    factory, x, flops, reason = FALLBACKS[name]
    model = factory()
    if name == "submodule":
        nn.init.ones_(model.fc.weight)
        nn.init.zeros_(model.fc.bias)
    profile = measure(model, x)
    assert (profile.traced_on, profile.meta_fallback) == ("cpu", reason)
    assert profile.total.flops == flops
    assert dataclasses.replace(profile, meta_fallback=None) == _real(model, x)


class Tagged(torch.Tensor):
    """A tensor subclass: a stand-in would not be one."""


def test_tensor_subclasses_are_measured_on_the_real_tensors() -> None:
    # Linear(4, 3) on (2, 4): 2*4*3 = 24 multiply-adds
    profile = measure(nn.Linear(4, 3), torch.randn(2, 4).as_subclass(Tagged))
    assert (profile.traced_on, profile.meta_fallback) == (
        "cpu",
        "input 0 is a Tagged, a tensor subclass",
    )
    assert profile.total.flops == 24


# --- the model comes out exactly as it was, on both paths ---


def _identities(model: nn.Module) -> list[Any]:
    return [
        [id(p) for p in model.parameters()],
        [id(p.grad) for p in model.parameters()],
        [id(b) for b in model.buffers()],
        [{name: id(value) for name, value in vars(m).items()} for m in model.modules()],
    ]


class Caching(nn.Module):
    """Writes to itself in its forward: an attribute and a buffer, made on first use."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_input = x
        if "ones" not in self._buffers:
            self.register_buffer("ones", torch.ones(4, device=x.device))
        out: torch.Tensor = self.fc(x) + self.ones
        return out


@pytest.mark.parametrize("gated", [False, True], ids=["meta", "fallback"])
def test_model_comes_out_as_it_was(gated: bool) -> None:
    # the prepared SmallCNN: train-mode batch norm, dropout, a user hook, a frozen
    # parameter and a .grad; gated, its output goes through a data-dependent branch
    model: nn.Module = _prepared_model()
    if gated:
        model = nn.Sequential(model, nn.Linear(10, 4), Branch())
    x = torch.randn(2, 3, 16, 16)
    before, ids = _snapshot(model), _identities(model)
    profile = measure(model, x)
    assert profile.traced_on == ("cpu" if gated else "meta")
    _assert_same(before, _snapshot(model))
    assert _identities(model) == ids


def test_what_the_forward_wrote_is_undone_on_meta() -> None:
    model = Caching()
    attributes = dict(vars(model))
    profile = measure(model, torch.randn(2, 4))
    assert profile.traced_on == "meta"
    assert vars(model) == attributes and "ones" not in model._buffers
    # the model still runs for real: nothing meta was left in it
    assert model(torch.randn(2, 4)).device.type == "cpu"


class StackDepth(nn.Module):
    """Notes how deep the Python stack is inside its forward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.depths: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.depths.append(len(inspect.stack(0)))
        out: torch.Tensor = self.fc(x)
        return out


def _called_under(frames: int, run: Callable[[], Any]) -> Any:
    return run() if frames == 0 else _called_under(frames - 1, run)


def test_the_meta_trace_walks_a_stack_without_the_callers_frames() -> None:
    # the JIT tracer records the whole Python stack at every node: the meta trace runs
    # on a fresh thread, so 200 frames of caller (pytest's, here) are not on it
    model = StackDepth()
    shallow = measure(model, torch.randn(2, 4))
    deep = _called_under(200, lambda: measure(model, torch.randn(2, 4)))
    assert (shallow.traced_on, deep.traced_on) == ("meta", "meta")
    assert model.depths[0] == model.depths[1] < 200
    assert shallow == deep


_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="unset")


class Labelled(nn.Linear):
    """Fails unless the caller's context variable is seen inside the forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert _LABEL.get() == "set by the caller", _LABEL.get()
        return super().forward(x)


def test_the_callers_context_variables_reach_the_forward() -> None:
    token = _LABEL.set("set by the caller")
    try:
        profile = measure(Labelled(4, 3), torch.randn(2, 4))
    finally:
        _LABEL.reset(token)
    # Linear(4, 3) on (2, 4): 2*4*3 = 24 multiply-adds
    assert (profile.traced_on, profile.total.flops) == ("meta", 24)
