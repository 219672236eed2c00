"""budgets.example.yaml at the top of the repository: every key of the budgets file,
each with a comment, and valid for the demo's resnet18 (examples/models.py).

resnet18_mnist on 8 x 3 x 28 x 28 in training mode, fvcore counting, measured once:
stem 15,253,504 flops (5.45% of 279,902,208), 100,352 activations; early 125,822,976
flops, act_share 52.3%, 1,500,160 saved bytes; late 134,524,928 flops, 10,493,440
params; head 532,480 params, 196,928 act bytes; total 11,708,992 params. Each budget
in the file is that number x 1.1 rounded up to 3 significant digits (shares: x 1.1 to
0.1 point), so every use is about 91%: within budget and above min_use (50%).

Growth over H = W in (28, 56), exponent = log2(value at 56 / value at 28): stem flops
15,253,504 -> 61,014,016 (x4: ^2.00, budget 2.05); early activations 182,272 -> 652,288
(^1.84: the maxpool's floor rounding at 28 px; budget 1.89); late saved bytes
473,088 -> 1,800,192 (^1.93, budget 1.98); head act bytes 196,928 at both (^0.00, budget
0.05); total flops 279,902,208 -> 1,043,420,160 (^1.90, budget 1.95): each budget is the
exponent + growth_headroom (0.05) rounded up to two decimals.

Its training step under adam (resnet18-mnist-adam), measured once: stem backward_flops
14,751,744 (no input gradient for the first conv, so less than its forward); early
train_flops 375,646,208; late train_bytes 168,368,128; head train_flops 12,771,328;
total backward_flops 541,480,960, train_flops 821,383,168 and train_bytes 190,588,928
(derived in the test). Budgets x 1.1 rounded up as above (train_bytes: 168,368,128 x 1.1
= 185.2M bytes = 176.6 MiB -> 177MiB; 190,588,928 x 1.1 = 199.9 MiB -> 200MiB).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from pytest_actbudget.budgets.schema import (
    DEFAULT_KEYS,
    ENTRY_KEYS,
    GROUP_KEYS,
    TOP_KEYS,
    load_budgets,
)
from pytest_actbudget.checks import evaluate
from pytest_actbudget.guards import slack, unguarded
from pytest_actbudget.measure.model import measure
from pytest_actbudget.scaling import measure_growth
from pytest_actbudget.training import TRAINING_KEYS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "budgets.example.yaml"


def test_every_key_is_there_with_a_comment() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    keys = {
        match.group(1)
        for line in lines
        for match in re.finditer(r"([a-z_]+):(?= |$)", line.split("#")[0])
    }
    expected = (*TOP_KEYS, *DEFAULT_KEYS, *ENTRY_KEYS, *GROUP_KEYS, *TRAINING_KEYS)
    for key in expected:
        assert key in keys, f"budgets.example.yaml does not show the key {key!r}"
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert all("#" in line for line in code), [line for line in code if "#" not in line]


def test_it_checks_the_demo_resnet18(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    sys.modules.pop("models", None)
    from models import resnet18_mnist

    budgets = load_budgets(EXAMPLE)
    assert (budgets.headroom, budgets.min_use) == (0.1, 0.5)
    entry = budgets.models["resnet18-mnist"]
    assert entry.input is not None and entry.mode == "train"
    model = resnet18_mnist().train(entry.mode == "train")
    inputs = [torch.randn(spec.shape) for spec in entry.input]
    profile = measure(model, *inputs, counting=budgets.counting)
    result = evaluate(profile, entry, nodeid="", budget_file="budgets.example.yaml")
    assert result.outcome == "passed", result.message
    assert unguarded(result, entry, "budgets.example.yaml") == []
    assert slack(result, entry, "budgets.example.yaml", budgets.min_use) == []
    assert set(profile.uncounted_ops) == set(entry.allow_uncounted)
    assert profile.total.params == 11_708_992  # module docstring

    patterns = {group.name: group.modules for group in entry.groups}
    growth = measure_growth(
        lambda m, args, kwargs: measure(m, *args, counting=budgets.counting, **kwargs),
        model,
        inputs,
        {},
        name="resnet18-mnist",
        entry=entry,
        scaling=None,
        patterns=patterns,
        display="budgets.example.yaml",
    )
    budgeted = {(g.group, g.metric): g for g in growth if g.budget is not None}
    assert sorted(budgeted) == [
        ("early", "activations_growth"),
        ("head", "act_bytes_growth"),
        ("late", "saved_bytes_growth"),
        ("stem", "flops_growth"),
        ("total", "flops_growth"),
    ]
    assert budgeted["stem", "flops_growth"].values == (15_253_504, 61_014_016)  # docstring
    assert budgeted["total", "flops_growth"].values == (279_902_208, 1_043_420_160)
    for g in budgeted.values():
        assert g.exponent is not None and g.budget is not None
        # within budget, by less than growth_headroom + the rounding up
        assert 0 <= g.budget - g.exponent <= 0.06, (g.group, g.metric, g.exponent, g.budget)


def test_its_training_entry_checks_a_training_step_of_the_demo_resnet18(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    sys.modules.pop("models", None)
    from models import resnet18_mnist

    budgets = load_budgets(EXAMPLE)
    entry = budgets.models["resnet18-mnist-adam"]
    spec = budgets.training_for(entry, False)
    # `training: {optimizer: adam}` over defaults.training
    assert spec is not None
    assert (spec.optimizer, spec.grad_dtype, spec.state_dtype) == ("adam", "float32", "float32")
    assert budgets.training_for(budgets.models["resnet18-mnist"], False) is None
    model = resnet18_mnist().train()
    profile = measure(model, torch.randn(8, 3, 28, 28), counting=budgets.counting, training=spec)
    result = evaluate(profile, entry, nodeid="", budget_file="budgets.example.yaml")
    assert result.outcome == "passed", result.message
    assert unguarded(result, entry, "budgets.example.yaml") == []
    assert slack(result, entry, "budgets.example.yaml", budgets.min_use) == []
    total = profile.total
    # 11,708,992 float32 parameters, all trainable: 46,835,968 bytes of them, as many of
    # gradients, and adam's two float32 moments 2 x 46,835,968, plus what autograd saved
    assert total.train_bytes == 4 * 46_835_968 + total.saved_bytes
    assert total.train_flops == total.flops + total.backward_flops
    stem = next(g for g in result.groups if g.name == "stem")
    assert stem.stats.backward_flops is not None
    assert stem.stats.backward_flops < stem.stats.flops  # the first conv: no input gradient
