"""Budgets that guard nothing: groups without a budget, and slack budgets.

A group with no budget cannot fail however much it grows, and a budget far above the
measurement (use below ``defaults.min_use``) lets it grow that far unnoticed. Both are
named in the summary and fail under ``--actbudget-strict``. Pure functions; no pytest,
no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from .budgets.inputs import input_text
from .budgets.schema import ModelBudget
from .budgets.units import format_percent, human
from .results import OTHER_GROUP, TOTAL_GROUP, BudgetResult, Profile, TensorSpec

UPDATE_HINT = "run --actbudget-update"


def unguarded(result: BudgetResult, entry: ModelBudget, where: str) -> list[str]:
    """One line per group of ``entry`` that has no budget (or for the entry when
    nothing in it has one); ``where`` is the budgets file as messages name it."""
    groups = [g for g in result.groups if g.name != OTHER_GROUP]
    found = [
        f"{where}:{entry.line_of(g.name)}: entry '{entry.name}': group '{g.name}' has no "
        f"budget: nothing fails when it grows; {UPDATE_HINT}"
        for g in groups
        if not g.budgets
    ]
    if not groups and not entry.total:
        found.append(
            f"{where}:{entry.line}: entry '{entry.name}' has no budget: nothing fails when "
            f"the model grows; {UPDATE_HINT}"
        )
    return found


def slack(result: BudgetResult, entry: ModelBudget, where: str, min_use: float) -> list[str]:
    """One line per budget whose measured use is below ``min_use``."""
    rows = [*result.groups, *([result.total] if result.total is not None else [])]
    found = []
    for row in rows:
        for metric, budget in row.budgets.items():
            use = row.budget_use(metric)
            if budget <= 0 or use is None or use >= min_use:
                continue
            measured = row.stats.metric(metric)
            size = (
                f"is {budget / measured:.1f}x what was measured"
                if measured > 0
                else f"is {human(budget, metric)} and nothing was measured"
            )
            label = "total" if row.name == TOTAL_GROUP else row.name
            found.append(
                f"{where}:{entry.line_of(row.name)}: entry '{entry.name}': {label} {metric} "
                f"budget {size} (use {use * 100:.0f}%, below min_use "
                f"{format_percent(min_use)}); tighten it with --actbudget-update"
            )
    return found


def other_models(measured: str, others: Sequence[str]) -> list[str]:
    """The note for a marked test that called several models with parameters."""
    if not others:
        return []
    listed = ", ".join(others)
    return [
        f"measured {measured}, the first model with parameters the test called; it also "
        f"called {listed} (use the act_budget fixture to budget several models)"
    ]


def recorded_change(entry: ModelBudget, profile: Profile) -> str:
    """``recorded with input [4, 3, 64, 64] eval, now input [4, 3, 128, 128] eval`` when
    the entry's ``input:`` or ``mode:`` differs from this measurement; else ``""``."""
    inputs_differ = entry.input is not None and entry.input != tuple(profile.inputs)
    mode_differs = entry.mode is not None and entry.mode != profile.mode
    if not (inputs_differ or mode_differs):
        return ""

    def side(inputs: Sequence[TensorSpec] | None, mode: str | None) -> str:
        parts = []
        if entry.input is not None:
            parts.append(f"input {input_text(inputs or ())}")
        if entry.mode is not None:
            parts.append(f"{mode or '?'}" if parts else f"mode {mode or '?'}")
        return " ".join(parts)

    then, now = side(entry.input, entry.mode), side(profile.inputs, profile.mode)
    return f"recorded with {then}, now {now}"
