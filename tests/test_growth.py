"""Growth exponents without torch: the fit, the recorded budget, the check and its text,
the ``scaling:`` schema and the in-place update of growth budgets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_actbudget.budgets.schema import parse_budgets
from pytest_actbudget.budgets.units import growth_budget, human, parse_quantity
from pytest_actbudget.budgets.write import MeasuredEntry, update_budgets
from pytest_actbudget.errors import BudgetFileError
from pytest_actbudget.growth import fit_exponent
from pytest_actbudget.report.growth import exponent_text, growth_line
from pytest_actbudget.results import BudgetResult, GrowthResult


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # 216 x H^2 (a 3x3 conv, 3 -> 8 channels, stride 1, at H = W = size): slope 2
        ([216 * 16**2, 216 * 32**2, 216 * 64**2, 216 * 128**2], 2.0),
        # 4096 x n (an MLP 16 -> 64 -> 16 over n tokens): slope 1
        ([4096 * 16, 4096 * 32, 4096 * 64, 4096 * 128], 1.0),
        # a constant (the head after global pooling): slope 0
        ([650, 650, 650, 650], 0.0),
    ],
)
def test_exact_power_laws(values: list[int], expected: float) -> None:
    assert fit_exponent([16, 32, 64, 128], values) == pytest.approx(expected, abs=1e-12)


def test_least_squares_of_a_bent_curve() -> None:
    # 1024 n + 32 n^2 (qkv/out projections + attention) at n = 16, 32, 64, 128:
    # values 24,576 / 65,536 / 196,608 / 655,360. In log2: x = 4, 5, 6, 7 (mean 5.5),
    # y = log2 of the values; slope = sum((x - 5.5)(y - ybar)) / sum((x - 5.5)^2), with
    # sum((x - 5.5)^2) = 2.25 + 0.25 + 0.25 + 2.25 = 5.
    sizes = [16, 32, 64, 128]
    values = [1024 * n + 32 * n * n for n in sizes]
    ys = [math.log2(v) for v in values]
    ybar = sum(ys) / 4
    by_hand = sum((x - 5.5) * (y - ybar) for x, y in zip([4, 5, 6, 7], ys, strict=True)) / 5
    assert fit_exponent(sizes, values) == pytest.approx(by_hand, abs=1e-12)
    assert 1.0 < by_hand < 2.0  # 1.5555...: between linear and quadratic


def test_a_metric_that_is_zero_somewhere_has_no_exponent() -> None:
    assert fit_exponent([1, 2], [0, 5]) is None
    growth = GrowthResult("g", "flops_growth", (1, 2), (0, 5), None, 1.05)
    assert growth.zero_at == 1
    assert growth.violation is None
    assert exponent_text(growth) == "0 at 1"
    assert exponent_text(GrowthResult("g", "flops_growth", (1, 2), (0, 0), None)) == "0"


def test_fit_needs_two_different_sizes() -> None:
    with pytest.raises(ValueError, match="two or more"):
        fit_exponent([1], [1])
    with pytest.raises(ValueError, match="different sizes"):
        fit_exponent([2, 2], [1, 3])


@pytest.mark.parametrize(
    ("exponent", "headroom", "budget"),
    [
        (2.0, 0.05, 2.05),
        (2.0000000004, 0.05, 2.05),  # fit noise does not round up a step
        (1.999999999, 0.05, 2.05),
        (1.013, 0.05, 1.07),  # 1.063 rounded up to two decimals
        (1.5556, 0.05, 1.61),  # 1.556 + 0.05 = 1.606 -> 1.61
        (0.0, 0.0, 0.0),
        (-0.5, 0.05, 0.0),  # a shrinking metric: budgets are never negative
    ],
)
def test_growth_budget_is_exponent_plus_headroom_rounded_up(
    exponent: float, headroom: float, budget: float
) -> None:
    assert growth_budget(exponent, headroom) == budget


def test_exponents_read_and_show() -> None:
    assert parse_quantity("2.05", "flops_growth") == 2.05
    assert parse_quantity(1, "act_bytes_growth") == 1.0
    assert human(2.0, "flops_growth") == "^2.00"
    with pytest.raises(ValueError, match="not an exponent"):
        parse_quantity("2M", "flops_growth")


def test_growth_violation_and_its_line() -> None:
    # attention flops at n = 128 and 1024 with 2 x 8 x 16 n^2 ... here simply 2048 n^2:
    # 2048 x 128^2 = 33,554,432 (33.6M) and 2048 x 1024^2 = 2,147,483,648 (2.1G).
    sizes = (128, 256, 512, 1024)
    values = tuple(2048.0 * n * n for n in sizes)
    growth = GrowthResult("attention", "flops_growth", sizes, values, 2.0, 1.05)
    assert growth.violation is not None
    assert growth.violation.over == pytest.approx(0.95)
    assert growth_line(growth) == (
        "attention flops grow as size^2.00 (budget ^1.05) from 128 to 1024: 33.6M -> 2.1G"
    )
    result = BudgetResult("decoder", "t.py::t", "over_budget", "fvcore", growth=(growth,))
    assert [v.metric for v in result.violations] == ["flops_growth"]
    again = BudgetResult.from_dict(result.to_dict())
    assert again.growth == (growth,)


def test_at_budget_up_to_noise_is_within() -> None:
    growth = GrowthResult("g", "flops_growth", (1, 2), (1, 4), 2.0000000001, 2.0)
    assert growth.violation is None


# -- the schema ----------------------------------------------------------------------

ENTRY = """\
version: 1
defaults:
  growth_headroom: 0.1
models:
  decoder:
    scaling:
      inputs: {0: [1], attention_mask: [1]}
      sizes: [128, 256, 512, 1024]
    groups:
      attention: {modules: ["blocks.*.attn"], flops_growth: 2.05}
      mlp: {modules: ["blocks.*.mlp"], flops_growth: 1.05, act_bytes_growth: 1.05}
    total: {flops_growth: 1.6, flops: 1G}
"""


def test_scaling_entry_loads() -> None:
    loaded = parse_budgets(ENTRY, "budgets.yaml")
    entry = loaded.models["decoder"]
    assert loaded.growth_headroom == 0.1
    assert entry.scaling is not None
    assert dict(entry.scaling.inputs) == {0: (1,), "attention_mask": (1,)}
    assert entry.scaling.sizes == (128, 256, 512, 1024)
    assert entry.scaling.line == 6
    assert [dict(g.growth) for g in entry.groups] == [
        {"flops_growth": 2.05},
        {"flops_growth": 1.05, "act_bytes_growth": 1.05},
    ]
    assert [dict(g.limits) for g in entry.groups] == [{}, {}]  # growth is not a size budget
    assert dict(entry.total_growth) == {"flops_growth": 1.6}
    assert dict(entry.total) == {"flops": 1e9}
    assert parse_budgets("version: 1\n", "b.yaml").growth_headroom == 0.05  # the default


_SCALING = "      inputs: {0: [1], attention_mask: [1]}\n      sizes: [128, 256, 512, 1024]\n"


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        (
            "      inputs: {0: [1]}\n      sizes: [128]\n",
            "budgets.yaml:8: models.decoder.scaling.sizes: lists one size; a growth exponent "
            "is fitted over two or more sizes: list two or more different positive sizes, "
            "e.g. sizes: [128, 256, 512, 1024]",
        ),
        (
            "      inputs: {0: [1]}\n      sizes: [128, 128]\n",
            "budgets.yaml:8: models.decoder.scaling.sizes: size 128 is listed twice; list two "
            "or more different positive sizes, e.g. sizes: [128, 256, 512, 1024]",
        ),
        (
            "      inputs: {0: [1]}\n      sizes: [0, 128]\n",
            "budgets.yaml:8: models.decoder.scaling.sizes: 0 is not a positive size",
        ),
        (
            "      inputs: {0: [1]}\n",
            "budgets.yaml:6: models.decoder.scaling: missing 'sizes'; list two or more "
            "different positive sizes, e.g. sizes: [128, 256, 512, 1024]",
        ),
        (
            "      inputs: {0: [x]}\n      sizes: [1, 2]\n",
            "budgets.yaml:7: models.decoder.scaling.inputs.0: 'x' is not a dimension index",
        ),
        (
            "      inputs: {0: [1]}\n      size: [1, 2]\n",
            "budgets.yaml:8: models.decoder.scaling.size: unknown key 'size'",
        ),
    ],
)
def test_bad_scaling(scaling: str, message: str) -> None:
    with pytest.raises(BudgetFileError) as caught:
        parse_budgets(ENTRY.replace(_SCALING, scaling), "budgets.yaml")
    assert str(caught.value).startswith(message)


def test_growth_budget_without_scaling() -> None:
    text = ENTRY.replace("    scaling:\n" + _SCALING, "")
    with pytest.raises(BudgetFileError) as caught:
        parse_budgets(text, "budgets.yaml")
    assert str(caught.value) == (
        "budgets.yaml:7: models.decoder.groups.attention.flops_growth: a growth budget "
        "needs the entry to say how its inputs scale: add 'scaling: {inputs: {0: [1]}, "
        "sizes: [128, 256, 512]}' to the entry (input position or keyword -> dimensions "
        "that take each size)"
    )


def test_growth_headroom_is_absolute() -> None:
    with pytest.raises(BudgetFileError) as caught:
        parse_budgets(ENTRY.replace("growth_headroom: 0.1", "growth_headroom: 5%"), "b.yaml")
    assert str(caught.value) == (
        "b.yaml:3: defaults.growth_headroom: '5%' is a percentage; growth_headroom is an "
        "absolute amount added to the measured exponent (e.g. 0.05)"
    )


# -- update ---------------------------------------------------------------------------

RECORDED = """\
version: 1
models:
  decoder:
    scaling:
      inputs: {0: [1]}
      sizes: [128, 256, 512, 1024]
    groups:
      attention: {modules: ["blocks.*.attn"], flops_growth: 1.05}  # was windowed
      mlp: {modules: ["blocks.*.mlp"], flops: 1M}
      head:
        modules: ["head"]
        params: 1K
    total: {flops: 2M}
"""


def test_update_refreshes_listed_and_adds_missing_growth_budgets(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(RECORDED)
    measured = MeasuredEntry(
        name="decoder",
        groups={
            "attention": {"flops": 0},
            "mlp": {"flops": 1_000_000},
            "head": {"params": 1000},
        },
        group_modules={},
        total={"flops": 1_818_181},  # x 1.1 = 1,999,999.1 -> 2M, unchanged
        input=None,
        growth={
            "attention": {"flops_growth": 1.8, "act_bytes_growth": 1.0},
            "mlp": {"flops_growth": 1.0, "act_bytes_growth": 1.0},
            "head": {"flops_growth": 1.0, "act_bytes_growth": 1.0},
            "total": {"flops_growth": 1.4},
        },
    )
    summary = update_budgets(path, [measured], 0.1)
    # attention lists flops_growth: refreshed to 1.8 + 0.05 = 1.85; mlp and head list no
    # growth budget: they get flops_growth and act_bytes_growth 1.0 + 0.05 = 1.05, in
    # their own style (flow / block); the total lists none and gets none.
    assert path.read_text() == RECORDED.replace(
        "flops_growth: 1.05}  # was windowed", "flops_growth: 1.85}  # was windowed"
    ).replace("flops: 1M}", "flops: 1.1M, flops_growth: 1.05, act_bytes_growth: 1.05}").replace(
        "        params: 1K\n",
        "        params: 1.1K\n        flops_growth: 1.05\n        act_bytes_growth: 1.05\n",
    ).replace("total: {flops: 2M}", "total: {flops: 2M}")
    assert summary.lines()[0].startswith(
        f"{path}: updated 'decoder': attention.flops_growth 1.05 -> 1.85, mlp.flops 1M -> "
        "1.1M, mlp.flops_growth 1.05 (new), mlp.act_bytes_growth 1.05 (new)"
    )
    again = update_budgets(path, [measured], 0.1)
    assert again.unchanged == ("decoder",)
