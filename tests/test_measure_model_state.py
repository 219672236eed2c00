"""measure() leaves the user's model as it was, also when the measurement fails;
failures are MeasurementError with one clear message."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import torch
from nets import ReturnsInt, SmallCNN, WrongShapes
from torch import nn

from pytest_actbudget.errors import MeasurementError
from pytest_actbudget.measure.model import MeasureCache, measure

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")


def _snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "training": [m.training for m in model.modules()],
        "hooks": [{name: list(getattr(m, name)) for name in _HOOK_DICTS} for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "rng": torch.get_rng_state(),
        "fastpath": torch.backends.mha.get_fastpath_enabled(),
        "grad_enabled": torch.is_grad_enabled(),
    }


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["training"] == before["training"]
    assert after["hooks"] == before["hooks"]
    assert after["requires_grad"] == before["requires_grad"]
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key
    for old, new in zip(before["grads"], after["grads"], strict=True):
        assert (old is None and new is None) or torch.equal(old, new)
    assert torch.equal(before["rng"], after["rng"])
    assert after["fastpath"] == before["fastpath"]
    assert after["grad_enabled"] == before["grad_enabled"]


def _prepared_model() -> nn.Module:
    """SmallCNN in train mode (BatchNorm updates running stats in a train forward), with
    a dropout (draws from the RNG), a user hook, a frozen parameter and a .grad."""
    cnn = SmallCNN()
    model = nn.Sequential(cnn, nn.Dropout(0.5))
    model.train()
    cnn.stem[1].eval()
    cnn.stem[0].register_forward_hook(lambda module, args, out: None)
    cnn.head.bias.requires_grad_(False)
    cnn.head.weight.grad = torch.ones_like(cnn.head.weight)
    return model


def test_model_comes_out_unchanged() -> None:
    model, x = _prepared_model(), torch.randn(2, 3, 16, 16)
    before = _snapshot(model)
    measure(model, x)
    _assert_same(before, _snapshot(model))


def test_model_comes_out_unchanged_after_a_failed_measurement() -> None:
    # 4 channels into a 3-channel stem: the forward raises inside the stem
    model, x = _prepared_model(), torch.randn(2, 4, 16, 16)
    before = _snapshot(model)
    with pytest.raises(MeasurementError):
        measure(model, x)
    _assert_same(before, _snapshot(model))


def test_nothing_is_kept_alive() -> None:
    # no autograd graph, no cache entry and no hook keeps the model or inputs alive
    model, x = SmallCNN(), torch.randn(2, 3, 16, 16)
    cache = MeasureCache()
    measure(model, x, cache=cache)
    model_ref, x_ref = weakref.ref(model), weakref.ref(x)
    del model, x
    gc.collect()
    assert model_ref() is None and x_ref() is None


def test_forward_error_names_model_and_cause() -> None:
    with pytest.raises(MeasurementError) as raised:
        measure(WrongShapes(), torch.randn(64, 512))
    assert str(raised.value) == (
        "could not measure WrongShapes: its forward raised RuntimeError: "
        "mat1 and mat2 shapes cannot be multiplied (64x512 and 256x10)"
    )
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_non_tensor_output_is_a_clear_error() -> None:
    with pytest.raises(MeasurementError) as raised:
        measure(ReturnsInt(), torch.randn(3, 2))
    assert str(raised.value) == (
        "could not measure ReturnsInt: its forward returned no tensor (got int); the JIT "
        "tracer follows tensors only, so the forward must return a tensor or "
        "tuples/lists/dicts/dataclasses of tensors"
    )


def test_not_a_module_is_a_clear_error() -> None:
    with pytest.raises(MeasurementError, match="could not measure function: it is not a"):
        measure(lambda x: x, torch.randn(1))  # type: ignore[arg-type]


def test_data_dependent_control_flow_on_meta_is_a_clear_error() -> None:
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x

    with pytest.raises(MeasurementError) as raised:
        measure(Branchy(), torch.randn(2, device="meta"))
    assert str(raised.value).startswith("could not measure Branchy: its forward raised ")


def test_inputs_made_under_inference_mode() -> None:
    # the SmallCNN of test_measure on (1, 3, 16, 16): 26_784 multiply-adds
    model = SmallCNN().eval()
    with torch.inference_mode():
        x = torch.randn(1, 3, 16, 16)
        profile = measure(model, x, counting="macs")
    assert profile.total.flops == 26_784


def test_global_switches_are_put_back_also_after_a_failure() -> None:
    # measuring patches torch.Tensor (int shapes) and, on meta, torch.nn.functional
    import torch.nn.functional as F

    functions = {name: getattr(F, name) for name in ("conv2d", "batch_norm")}
    model = SmallCNN().to("meta")
    measure(model, torch.empty(1, 3, 16, 16, device="meta"))
    with pytest.raises(MeasurementError):
        measure(model, torch.empty(1, 4, 16, 16, device="meta"))
    assert {name: getattr(F, name) for name in functions} == functions
    assert not {"shape", "size", "numel"} & set(vars(torch.Tensor))
