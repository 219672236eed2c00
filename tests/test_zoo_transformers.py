"""The transformers zoo end to end: eleven architectures nobody here wrote, each measured
through a marked test in real pytest runs (update, then check), called as
``model(**inputs)`` and, where it exists, ``model(first_input)``.

Expected numbers are computed here, by other tools, on the same models and inputs:

- ``macs`` = PyTorch's FlopCounterMode total / 2 under the math attention kernel (it
  counts 2 per multiply-add). FlopCounterMode has no formula for ``_grouped_mm``, so
  Mixtral's reference is the same model with ``experts_implementation="eager"``: its
  experts run as plain linears over the same routed rows.
- ``fvcore`` = fvcore's own ``FlopCountAnalysis`` plus the attention it misses
  (``scaled_dot_product_attention``: 2·B·heads·L·S·head_dim, as a handle written
  here) plus ``_grouped_mm`` (rows x K x N over the groups: output elements x K).

Configs are tiny (see zoo_transformers.py); HF_HUB_OFFLINE=1 proves nothing is
downloaded. The check run uses ``-W error`` for deprecation warnings: none of the
plugin's reaches the user.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from math import prod
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from zoo_transformers import POSITIONAL, ZOO_TRANSFORMERS, Inputs, mixtral_eager

ENTRIES = [(name, "kwargs") for name in ZOO_TRANSFORMERS] + [
    (name, "positional") for name in POSITIONAL
]

TESTS = """
import pytest
import torch
from zoo_transformers import POSITIONAL, ZOO_TRANSFORMERS

ENTRIES = [(name, "kwargs") for name in ZOO_TRANSFORMERS] + [
    (name, "positional") for name in POSITIONAL
]


@pytest.mark.parametrize(
    ("name", "form"),
    [pytest.param(n, f, marks=pytest.mark.act_budget(f"{n}-{f}")) for n, f in ENTRIES],
)
def test_model(name, form):
    factory, inputs = ZOO_TRANSFORMERS[name]
    model, kwargs = factory(), inputs()
    with torch.no_grad():
        if form == "kwargs":
            output = model(**kwargs)
        else:
            output = model(kwargs[POSITIONAL[name]])
    assert output is not None
"""


def _call(model: nn.Module, inputs: Inputs, form: str, name: str) -> Any:
    return model(**inputs) if form == "kwargs" else model(inputs[POSITIONAL[name]])


def flop_counter_macs(model: nn.Module, inputs: Inputs, form: str, name: str) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel([SDPBackend.MATH]), torch.no_grad(), FlopCounterMode(display=False) as fc:
        _call(model, inputs, form, name)
    total = fc.get_total_flops()
    assert total % 2 == 0
    return total // 2


class _Flat(nn.Module):
    """The model with its inputs as positional tensors and its output as a tuple of
    tensors, which is what fvcore's tracer takes."""

    def __init__(self, model: nn.Module, keys: list[str], form: str) -> None:
        super().__init__()
        self.model, self.keys, self.form = model, keys, form

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.form == "kwargs":
            output = self.model(**dict(zip(self.keys, tensors, strict=True)))
        else:
            output = self.model(tensors[0])
        return tuple(_tensors(output))


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)


def _shape(value: Any) -> list[int]:
    return list(value.type().sizes())


def _sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    # Q (..., L, E) K (..., S, E) V (..., S, Ev): Q K^T + A V multiply-adds
    s = _shape(inputs[1])[-2]
    return prod(_shape(inputs[0])) * s + prod(_shape(outputs[0])) * s


def _grouped_mm(inputs: list[Any], outputs: list[Any]) -> int:
    # 2-D x 3-D (tokens sorted by expert): sum over experts of rows x K x N
    return prod(_shape(outputs[0])) * _shape(inputs[0])[-1]


def fvcore_plus_attention(model: nn.Module, inputs: Inputs, form: str, name: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and the tracer
        from fvcore.nn import FlopCountAnalysis

        keys = list(inputs) if form == "kwargs" else [POSITIONAL[name]]
        analysis = (
            FlopCountAnalysis(_Flat(model, keys, form), tuple(inputs[k] for k in keys))
            .set_op_handle(
                **{"aten::scaled_dot_product_attention": _sdpa, "aten::_grouped_mm": _grouped_mm}
            )
            .unsupported_ops_warnings(False)
            .uncalled_modules_warnings(False)
        )
        return int(analysis.total())


@pytest.fixture(scope="module")
def expected() -> dict[str, dict[str, int]]:
    numbers: dict[str, dict[str, int]] = {}
    for name, form in ENTRIES:
        factory, make_inputs = ZOO_TRANSFORMERS[name]
        model, inputs = factory(), make_inputs()
        reference = mixtral_eager() if name == "mixtral" else model
        numbers[f"{name}-{form}"] = {
            "macs": flop_counter_macs(reference, inputs, form, name),
            "fvcore": fvcore_plus_attention(model, inputs, form, name),
            "params": sum(p.numel() for p in model.parameters()),  # tied weights once
        }
    return numbers


@pytest.mark.slow
@pytest.mark.parametrize("counting", ["macs", "fvcore"])
def test_zoo_update_then_check(
    pytester: pytest.Pytester, counting: str, expected: dict[str, dict[str, int]]
) -> None:
    pytester._monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytester.makepyfile(
        zoo_transformers=(Path(__file__).parent / "zoo_transformers.py").read_text(),
        test_zoo=TESTS,
    )
    pytester.makefile(
        ".yaml", budgets=f"version: 1\ncounting: {{flops: {counting}}}\nmodels: {{}}\n"
    )
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    pytester.runpytest_subprocess(*quiet, "--actbudget-update").assert_outcomes(passed=len(ENTRIES))
    check = pytester.runpytest_subprocess(
        *quiet,
        "-W",
        "error::DeprecationWarning",
        "-W",
        "error::FutureWarning",
        "--actbudget-report",
        "r.json",
    )
    check.assert_outcomes(passed=len(ENTRIES))
    assert "with uncounted compute" not in check.stdout.str()

    results = json.loads((pytester.path / "r.json").read_text())["results"]
    measured = {r["name"]: r for r in results}
    assert sorted(measured) == sorted(expected)
    for name, result in measured.items():
        assert result["outcome"] == "passed", name
        assert (name, result["total"]["flops"]) == (name, expected[name][counting])
        assert result["warnings"] == [], name
        # tied weights (GPT-2, BERT, T5, Whisper): groups add up to the total
        params = [g["metrics"]["params"] for g in result["groups"]]
        assert (name, sum(params), result["total"]["params"]) == (
            name,
            expected[name]["params"],
            expected[name]["params"],
        )
