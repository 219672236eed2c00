"""Models that cannot be measured, end to end: the test fails with one clear message
naming the model class and the cause, the rest of the suite goes on, and the model
comes out of every measurement (successful or not) exactly as it went in.

Every model of MODELS below is a Linear(4, 4) on a 2 x 4 input somewhere, which fvcore
counts as 2 x 4 x 4 = 32 flops (one multiply-add = one flop; the bias add and the
elementwise ``* scale`` are not counted). Branchy picks Linear(4, 8) for a positive
input sum and Linear(4, 2) otherwise.
StatefulNet is Conv2d(3, 4, 3, bias=False) on 1 x 3 x 6 x 6 -> 1 x 4 x 4 x 4:
4 x 4 x 4 x 3 x 3 x 3 = 1,728 flops, then a training-mode BatchNorm2d(4) on its 64
elements (5 flops each: 320), and a frozen Linear(4, 2) on the pooled 1 x 4:
1 x 4 x 2 = 8, total 1,728 + 320 + (pool 64) + 8 = 2,120.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml  # noqa: F401

from pytest_actbudget.budgets.schema import load_budgets

# `import yaml` above: pytester drops the modules a test imported when it ends, and
# PyYAML's libyaml binding, imported a second time into one process, composes nodes
# without tags; importing it before any test keeps the first import for the session.

MODELS = """
import collections

import torch
from torch import nn


class _Lin(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)


class Works(_Lin):
    def forward(self, x):
        return self.lin(x)


class TraceHostile(_Lin):
    # Runs in the test body; raises only under the tracer that measures it.
    def forward(self, x):
        if torch.jit.is_tracing():
            raise ValueError("this forward refuses to be traced")
        return self.lin(x)


class AlwaysRaises(_Lin):
    def forward(self, x):
        raise ValueError("boom in forward")


class StrOut(_Lin):
    def forward(self, x):
        self.lin(x)
        return "a string"


class SetOut(_Lin):
    def forward(self, x):
        return {float(self.lin(x).detach().sum())}


class KwOnly(_Lin):
    def forward(self, *, x, scale=1.0):
        return self.lin(x) * scale


class DictOut(_Lin):
    def forward(self, x):
        return {"y": self.lin(x), "x": x}


class TupleOut(_Lin):
    def forward(self, x):
        return self.lin(x), x


Pair = collections.namedtuple("Pair", "y x")


class NamedTupleOut(_Lin):
    def forward(self, x):
        return Pair(self.lin(x), x)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.wide = nn.Linear(4, 8)
        self.narrow = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent Python control flow
            return self.wide(x)
        return self.narrow(x)


class StatefulNet(nn.Module):
    # Training-mode BatchNorm (buffers a forward would update), one submodule in eval
    # mode, a frozen head, a user hook: all must survive measuring.
    def __init__(self, fault="none"):
        super().__init__()
        self.fault = fault
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1).eval()
        self.head = nn.Linear(4, 2)
        self.head.weight.requires_grad_(False)
        self.seen = []
        self.conv.register_forward_hook(lambda m, i, o: self.seen.append(tuple(o.shape)))

    def forward(self, x):
        y = self.bn(self.conv(x))
        if self.fault == "raise":
            raise RuntimeError("fault after the BatchNorm ran")
        y = self.head(self.pool(y).flatten(1))
        return "no tensor" if self.fault == "str" else y


def state(model):
    from torch.nn.modules import module as torch_module

    def hooks(m):
        return [
            list(d.items())
            for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks,
                      m._forward_hooks_with_kwargs, m._forward_pre_hooks_with_kwargs)
        ]

    return {
        "training": {n: m.training for n, m in model.named_modules()},
        "hooks": {n: hooks(m) for n, m in model.named_modules()},
        "global hooks": (
            list(torch_module._global_forward_hooks.items()),
            list(torch_module._global_forward_pre_hooks.items()),
        ),
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grads": {n: p.grad for n, p in model.named_parameters()},
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "grad mode": torch.is_grad_enabled(),
    }


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if key in ("params", "buffers"):
            assert before[key].keys() == after[key].keys()
            for name, tensor in before[key].items():
                assert torch.equal(tensor, after[key][name]), (key, name)
        else:
            assert before[key] == after[key], key
"""

# Marked tests whose measurement fails, between tests that pass; no budgets file is
# needed in update mode.
MARKED = """
import pytest
import torch
import models

SNAPSHOT = {}


def test_first_passes():
    assert True


@pytest.mark.act_budget("trace-hostile")
def test_trace_hostile():
    model = models.TraceHostile()
    assert model(torch.ones(2, 4)).shape == (2, 4)


@pytest.mark.act_budget("str-out")
def test_str_out():
    assert models.StrOut()(torch.ones(2, 4)) == "a string"


@pytest.mark.act_budget("set-out")
def test_set_out():
    assert len(models.SetOut()(torch.ones(2, 4))) == 1


@pytest.mark.act_budget("int64-conv")
def test_int64_into_a_conv():
    # The body itself fails: torch's own error and nothing on top.
    torch.nn.Conv2d(3, 4, 3)(torch.ones(1, 3, 8, 8, dtype=torch.int64))


@pytest.mark.act_budget("kwargs-only")
def test_kwargs_only():
    assert models.KwOnly()(x=torch.ones(2, 4), scale=2.0).shape == (2, 4)


@pytest.mark.act_budget("dict-out")
def test_dict_out():
    assert set(models.DictOut()(torch.ones(2, 4))) == {"y", "x"}


@pytest.mark.act_budget("tuple-out")
def test_tuple_out():
    assert len(models.TupleOut()(torch.ones(2, 4))) == 2


@pytest.mark.act_budget("namedtuple-out")
def test_namedtuple_out():
    assert models.NamedTupleOut()(torch.ones(2, 4)).y.shape == (2, 4)


@pytest.mark.act_budget("recovers")
def test_a_caught_failing_call_then_a_good_one():
    model = models.KwOnly()
    with pytest.raises(RuntimeError):
        model(x=torch.ones(2, 5))  # 5 features into Linear(4, 4)
    assert model(x=torch.ones(3, 4), scale=2.0).shape == (3, 4)


@pytest.mark.act_budget("stateful-str")
def test_stateful_str_measured_after_the_body():
    model = models.StatefulNet()
    SNAPSHOT["model"] = model
    model(torch.ones(1, 3, 6, 6))
    # Measured after this body returns: the measurement fails on the string output.
    model.fault = "str"
    SNAPSHOT["before"] = models.state(model)
    # The marker's recorder is listening now (two global hooks); it leaves with the body.
    assert [len(hooks) for hooks in SNAPSHOT["before"].pop("global hooks")] == [1, 1]


def test_stateful_model_unchanged_by_the_failed_marker_measurement():
    model = SNAPSHOT["model"]
    after = models.state(model)
    assert after.pop("global hooks") == ([], [])
    models.assert_same_state(SNAPSHOT["before"], after)
    # The user's hook fired for the body's call and for the one traced forward.
    assert model.seen == [(1, 4, 4, 4)] * 2


def test_last_passes():
    assert True
"""

FIXTURE = """
import pytest
import torch
import models
from pytest_actbudget.errors import MeasurementError


@pytest.mark.parametrize(
    "case",
    ["always-raises", "str-out", "int64-input", "meta-input", "meta-branchy"],
)
def test_check_fails(act_budget, case):
    if case == "always-raises":
        act_budget.check(models.AlwaysRaises(), torch.ones(2, 4), name=case)
    elif case == "str-out":
        act_budget.check(models.StrOut(), torch.ones(2, 4), name=case)
    elif case == "int64-input":
        act_budget.check(
            torch.nn.Conv2d(3, 4, 3), torch.ones(1, 3, 8, 8, dtype=torch.int64), name=case
        )
    elif case == "meta-input":
        act_budget.check(models.Works(), torch.ones(2, 4, device="meta"), name=case)
    else:
        with torch.device("meta"):
            model = models.Branchy()
        act_budget.measure(model, torch.ones(2, 4, device="meta"))


def test_between_passes():
    assert True


def test_data_dependent_branches_are_measured_as_taken(act_budget):
    # Traced along the branch the example input takes (module docstring): 2 x 4 x 8
    # = 64 for a positive sum; 3 x 4 x 2 = 24 for a negative one. Another batch size
    # for the second: the session cache keys on shapes, not values.
    assert act_budget.measure(models.Branchy(), torch.ones(2, 4)).total.flops == 64
    assert act_budget.measure(models.Branchy(), -torch.ones(3, 4)).total.flops == 24


@pytest.mark.parametrize("fault", ["none", "raise", "str"])
@pytest.mark.parametrize("how", ["check", "measure"])
def test_model_state_survives(act_budget, how, fault):
    model = models.StatefulNet(fault)
    x = torch.ones(1, 3, 6, 6)
    before = models.state(model)
    call = act_budget.check if how == "check" else act_budget.measure
    kwargs = {"name": "stateful"} if how == "check" else {}
    if fault == "none":
        profile = call(model, x, **kwargs)
        total = profile.total if how == "measure" else profile.profile.total
        assert total.flops == 2120  # module docstring
    else:
        with pytest.raises(MeasurementError, match="could not measure StatefulNet: "):
            call(model, x, **kwargs)
    models.assert_same_state(before, models.state(model))
    # The user's hook fires for the traced forward (none when the cache answered); a
    # forward that raises on the meta stand-ins is traced once more on the real tensors.
    assert len(model.seen) <= (2 if fault == "raise" else 1)
"""

NO_TENSOR = (
    "the JIT tracer follows tensors only, so the forward must return a tensor or "
    "tuples/lists/dicts/dataclasses of tensors"
)
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def first_lines(output: str) -> dict[str, str]:
    """Test name -> the first line of its entry in the FAILURES section."""
    return dict(re.findall(r"^_{3,} (\S+) _{3,}\n(.*)$", output, flags=re.MULTILINE))


def _no_plugin_frames(output: str) -> None:
    assert "pytest_actbudget/" not in output and "pytest_actbudget\\" not in output, output
    assert "INTERNALERROR" not in output


def test_marked_tests_with_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS, test_marked=MARKED)
    result = pytester.runpytest_subprocess(
        *QUIET, "--actbudget-update", "--actbudget-report", "r.json"
    )
    # Passing: first, kwargs-only, dict-out, tuple-out, namedtuple-out, recovers, the
    # state check, last (8); failing: trace-hostile, str-out, set-out, int64,
    # stateful-str (5).
    result.assert_outcomes(passed=8, failed=5)
    output = result.stdout.str()
    failures = first_lines(output)
    assert failures == {
        "test_trace_hostile": "could not measure TraceHostile: its forward raised "
        "ValueError: this forward refuses to be traced",
        "test_str_out": "could not measure StrOut: its forward returned no tensor "
        f"(got str); {NO_TENSOR}",
        "test_set_out": "could not measure SetOut: its forward returned no tensor "
        f"(got set); {NO_TENSOR}",
        # The body itself failed: pytest's own traceback of the test, no budget text.
        "test_int64_into_a_conv": "",
        "test_stateful_str_measured_after_the_body": "could not measure StatefulNet: its "
        f"forward returned no tensor (got str); {NO_TENSOR}",
    }
    int64_section = output[output.index("test_int64_into_a_conv ___") :]
    int64_section = int64_section[: int64_section.index("\n___")]
    assert "RuntimeError: Input type (long int) and bias type (float) should be the same" in (
        int64_section
    )
    assert "could not measure" not in int64_section and "no budget" not in int64_section
    _no_plugin_frames(output)

    results = {r["name"]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    # int64-conv never reached a measurement: no result.
    assert {name: r["outcome"] for name, r in results.items()} == {
        "trace-hostile": "error",
        "str-out": "error",
        "set-out": "error",
        "kwargs-only": "passed",
        "dict-out": "passed",
        "tuple-out": "passed",
        "namedtuple-out": "passed",
        "recovers": "passed",
        "stateful-str": "error",
    }
    for name in ("kwargs-only", "dict-out", "tuple-out", "namedtuple-out"):
        assert results[name]["total"]["flops"] == 32  # module docstring
    # The call that raised was not kept: the good one was measured, 3 x 4 x 4 = 48.
    assert results["recovers"]["total"]["flops"] == 48
    assert results["recovers"]["inputs"] == [{"shape": [3, 4], "dtype": "float32", "name": "x"}]
    assert "always_call" not in output  # no hook of ours failed on the way
    # Only the entries of tests that passed were recorded.
    recorded = load_budgets(pytester.path / "budgets.yaml").models
    assert sorted(recorded) == [
        "dict-out",
        "kwargs-only",
        "namedtuple-out",
        "recovers",
        "tuple-out",
    ]


def test_fixture_checks_with_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS, test_fixture=FIXTURE)
    result = pytester.runpytest_subprocess(*QUIET, "--actbudget-update")
    # 5 failing checks; passing: between, branches, 2 x 3 state checks (8).
    result.assert_outcomes(passed=8, failed=5)
    failures = first_lines(result.stdout.str())
    assert failures == {
        "test_check_fails[always-raises]": "could not measure AlwaysRaises: its forward "
        "raised ValueError: boom in forward",
        "test_check_fails[str-out]": f"could not measure StrOut: its forward returned no "
        f"tensor (got str); {NO_TENSOR}",
        "test_check_fails[int64-input]": "could not measure Conv2d: its forward raised "
        "RuntimeError: Input type (long int) and bias type (float) should be the same",
        "test_check_fails[meta-input]": "could not measure Works: its forward raised "
        "RuntimeError: Tensor on device cpu is not on the expected device meta!",
        "test_check_fails[meta-branchy]": "could not measure Branchy: its forward raised "
        "RuntimeError: Tensor.item() cannot be called on meta tensors",
    }
    _no_plugin_frames(result.stdout.str())
