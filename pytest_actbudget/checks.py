"""Checks: measured groups + budgets -> violations -> a BudgetResult and its message.

Pure functions; no pytest, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from .budgets.schema import ModelBudget
from .budgets.units import human
from .grouping import auto_groups, group_profile, is_within
from .guards import recorded_change
from .report.format import compared, over_text, shape_text
from .report.growth import growth_line
from .results import (
    SHARE_METRICS,
    SHARE_OF,
    BudgetResult,
    GroupResult,
    GroupStats,
    Profile,
    Violation,
    total_stats,
)

# Shares are floats: a share equal to its budget up to rounding noise is not over it.
_SHARE_TOLERANCE = 1e-9
TOP_MODULES = 3


def violations_of(stats: GroupStats, limits: Mapping[str, float]) -> tuple[Violation, ...]:
    """Every budget of ``limits`` that ``stats`` exceeds (a budget is a maximum)."""
    found = []
    for metric, budget in limits.items():
        measured = stats.metric(metric)
        slack = _SHARE_TOLERANCE if metric in SHARE_METRICS else 0.0
        if measured > budget + slack:
            found.append(Violation(stats.name, metric, measured, budget))
    return tuple(found)


def evaluate(
    profile: Profile,
    entry: ModelBudget,
    *,
    nodeid: str,
    budget_file: str,
) -> BudgetResult:
    """Group ``profile`` by ``entry``'s groups and check every budget of the entry.

    Raises GroupingError when the entry's patterns do not fit the model.
    """
    stats = group_profile(profile, {group.name: group.modules for group in entry.groups})
    limits = {group.name: group.limits for group in entry.groups}
    groups = tuple(
        GroupResult(s, dict(limits.get(s.name, {})), violations_of(s, limits.get(s.name, {})))
        for s in stats
    )
    whole = total_stats(profile)
    total = GroupResult(whole, dict(entry.total), violations_of(whole, entry.total))
    result = BudgetResult(
        name=entry.name,
        nodeid=nodeid,
        outcome="passed",
        counting=profile.counting,
        profile=profile,
        groups=groups,
        total=total,
        budget_file=budget_file,
        budget_line=entry.line,
    )
    if not result.violations:
        return result
    message = violation_message(result, recorded_change(entry, profile))
    return replace(result, outcome="over_budget", message=message)


def unbudgeted(
    profile: Profile, name: str, *, nodeid: str, budget_file: str, outcome: str = "no_budget"
) -> BudgetResult:
    """A result for a model without an entry: automatic groups, no budgets."""
    stats = group_profile(profile, auto_groups(profile))
    message = (
        f"no budget '{name}' in {budget_file}; record one with `pytest --actbudget-update`"
        if outcome == "no_budget"
        else ""
    )
    return BudgetResult(
        name=name,
        nodeid=nodeid,
        outcome="no_budget" if outcome == "no_budget" else "passed",
        counting=profile.counting,
        profile=profile,
        groups=tuple(GroupResult(s) for s in stats),
        total=GroupResult(total_stats(profile)),
        budget_file=budget_file,
        message=message,
    )


def uncounted_offenders(profile: Profile, allowed: Sequence[str]) -> dict[str, int]:
    """Operators fvcore did not count and the entry does not allow (for strict mode)."""
    return {op: n for op, n in sorted(profile.uncounted_ops.items()) if op not in set(allowed)}


def violation_message(result: BudgetResult, changed: str = "") -> str:
    """The failure text: a headline (first what changed since the budgets were
    recorded, when the inputs or mode did), one row per exceeded budget, the top
    modules."""
    violations = result.violations
    count = len(violations)
    noun = "budget" if count == 1 else "budgets"
    where = f" ({result.location})" if result.location else ""
    rows = [("group", "metric", "measured", "budget", "over")]
    rows += [(v.group, v.metric, *compared(v), over_text(v)) for v in violations]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    first = f"{changed}; " if changed else ""
    lines = [f"act_budget '{result.name}': {first}{count} {noun} exceeded{where}"]
    lines += [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    seen: set[str] = set()
    for v in violations:
        if v.group in seen or v.is_growth:
            continue
        seen.add(v.group)
        line = top_modules_line(result, v)
        if line:
            lines.append("  " + line)
    lines += ["  " + growth_line(g) for g in result.growth if g.violation is not None]
    return "\n".join(lines)


def top_modules_line(result: BudgetResult, violation: Violation) -> str:
    """The innermost modules of the offending group that weigh most in the exceeded metric
    (for a growth exponent: how the metric grew, from the smallest to the largest size)."""
    if violation.is_growth:
        key = (violation.group, violation.metric)
        found = next((g for g in result.growth if (g.group, g.metric) == key), None)
        return growth_line(found) if found is not None else ""
    profile = result.profile
    if profile is None:
        return ""
    metric = SHARE_OF.get(violation.metric, violation.metric)
    if violation.group == "total":
        tops: Sequence[str] = ("",)
    else:
        group = next(g for g in result.groups if g.name == violation.group)
        tops = group.stats.modules
    leaves = [
        layer
        for layer in profile.layers
        if layer.leaf and layer.path and any(is_within(layer.path, top) for top in tops)
    ]
    leaves.sort(key=lambda layer: -layer.metric(metric))
    shown = [layer for layer in leaves[:TOP_MODULES] if layer.metric(metric) > 0]
    if not shown:
        return ""
    listed = ", ".join(
        f"{layer.path} ({layer.type}{_shape(layer.output_shape)}) "
        f"{human(layer.metric(metric), metric)}"
        for layer in shown
    )
    return f"top modules in '{violation.group}' by {metric}: {listed}"


def _shape(shape: Sequence[int] | None) -> str:
    """`` -> 64x64x14x14``: three equal convs differ by what they emit."""
    return "" if shape is None else f" -> {shape_text(shape, 'x')}"
