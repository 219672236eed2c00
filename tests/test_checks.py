"""Checks: group stats vs budgets -> violations, and the failure message (pure)."""

from __future__ import annotations

import pytest
from profiles import toy_profile

from pytest_actbudget.budgets.schema import GroupBudget, ModelBudget
from pytest_actbudget.checks import evaluate, uncounted_offenders, violations_of
from pytest_actbudget.grouping import group_profile


def entry(total: dict[str, float] | None = None, **groups: dict[str, float]) -> ModelBudget:
    patterns = {"stem": ("0",), "body": ("1",)}
    return ModelBudget(
        name="toy",
        groups=tuple(
            GroupBudget(name, patterns[name], limits, line=5 + i)
            for i, (name, limits) in enumerate(groups.items())
        ),
        total=total or {},
        input=None,
        allow_uncounted=(),
        line=4,
    )


def test_a_budget_is_a_maximum_equal_is_within() -> None:
    (stem, _) = group_profile(toy_profile(), {"stem": ["0"]})
    # stem flops = 110 (0.0 conv 100 + 0.1 bn 10): a budget of 110 holds, 109 does not.
    assert violations_of(stem, {"flops": 110}) == ()
    (over,) = violations_of(stem, {"flops": 109})
    assert (over.group, over.metric, over.measured, over.budget) == ("stem", "flops", 110, 109)


def test_share_budgets_compare_fractions() -> None:
    (stem, _) = group_profile(toy_profile(), {"stem": ["0"]})
    # flops_share = 110 / 200 = 0.55: 55% holds, 54.9% is 0.1 points over.
    assert violations_of(stem, {"flops_share": 0.55}) == ()
    (over,) = violations_of(stem, {"flops_share": 0.549})
    assert over.over == pytest.approx(0.1)


def test_passing_entry() -> None:
    result = evaluate(
        toy_profile(), entry(stem={"flops": 200}), nodeid="t.py::test", budget_file="budgets.yaml"
    )
    assert result.outcome == "passed"
    assert result.message == ""
    assert [g.name for g in result.groups] == ["stem", "(other)"]
    assert result.total is not None and result.total.stats.flops == 200


def test_violation_message_names_every_exceeded_budget_and_the_top_modules() -> None:
    # stem: 110 flops > 50 (+120.0%); 0.55 share > 0.15 (+40.0 pts);
    # body: 3,000 params > 2,000 (+50.0%); total: 200 flops > 150 (+33.3%).
    result = evaluate(
        toy_profile(),
        entry(
            total={"flops": 150},
            stem={"flops": 50, "flops_share": 0.15},
            body={"params": 2000, "flops": 100},
        ),
        nodeid="t.py::test",
        budget_file="budgets.yaml",
    )
    assert result.outcome == "over_budget"
    assert result.message == (
        "act_budget 'toy': 4 budgets exceeded (budgets.yaml:4)\n"
        "  group  metric       measured  budget  over\n"
        "  stem   flops        110       50      +120.0%\n"
        "  stem   flops_share  55.0%     15.0%   +40.0 pts\n"
        "  body   params       3.0K      2.0K    +50.0%\n"
        "  total  flops        200       150     +33.3%\n"
        "  top modules in 'stem' by flops: 0.0 (Conv2d) 100, 0.1 (BatchNorm2d) 10\n"
        "  top modules in 'body' by params: 1.1 (Conv2d) 2.0K, 1.0 (Conv2d) 1.0K\n"
        "  top modules in 'total' by flops: 0.0 (Conv2d) 100, 1.0 (Conv2d) 50, 1.1 (Conv2d) 30"
    )


def test_uncounted_offenders_respect_the_allow_list() -> None:
    assert uncounted_offenders(toy_profile(), []) == {"aten::add": 1}
    assert uncounted_offenders(toy_profile(), ["aten::add"]) == {}


def test_violation_that_reads_like_its_budget_is_shown_exactly() -> None:
    # body params = 1.0 conv 1,000 + 1.1 conv 2,000 = 3,000; both 3,000 and 2,990 read
    # "3.0K", so the table falls back to exact numbers: +0.3%.
    result = evaluate(
        toy_profile(), entry(body={"params": 2990}), nodeid="t.py::t", budget_file="b.yaml"
    )
    assert "  body   params  3,000     2,990   +0.3%" in result.message.splitlines()
