"""Growth exponents: how a group's metric grows with the input size, and its budget.

Pure functions, no pytest, no torch. The exponent k of ``metric ~ size^k`` is the slope
of the least-squares line through (log size, log metric) over the measured sizes: 2.00
for a conv whose H and W both take the size, 1.00 for a Linear over sequence length.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .checks import violation_message
from .results import GROWTH_METRICS, GROWTH_OF, BudgetResult, GroupStats, GrowthResult

__all__ = ["fit_exponent", "growth_of", "with_growth"]


def fit_exponent(sizes: Sequence[float], values: Sequence[float]) -> float | None:
    """The slope of log(values) against log(sizes); None when a value is not positive
    (a metric that is 0 at some size has no exponent)."""
    if len(sizes) != len(values) or len(sizes) < 2:
        raise ValueError("an exponent is fitted over two or more (size, value) pairs")
    if any(value <= 0 for value in values):
        return None
    xs = [math.log(size) for size in sizes]
    ys = [math.log(value) for value in values]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        raise ValueError("an exponent needs two or more different sizes")
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def growth_of(
    sizes: Sequence[int],
    stats: Sequence[Sequence[GroupStats]],
    limits: Mapping[str, Mapping[str, float]],
) -> tuple[GrowthResult, ...]:
    """Every group's growth exponents over ``sizes``.

    ``stats[i]`` holds the groups (and the total) measured at ``sizes[i]``, the same
    groups at every size; ``limits`` maps a group to its growth budgets
    (``{"attention": {"flops_growth": 2.05}}``).
    """
    if len(stats) != len(sizes):
        raise ValueError("one list of group stats per size")
    found = []
    for first in stats[0]:
        series = [next(s for s in at_size if s.name == first.name) for at_size in stats]
        for metric in GROWTH_METRICS:
            values = tuple(s.metric(GROWTH_OF[metric]) for s in series)
            found.append(
                GrowthResult(
                    group=first.name,
                    metric=metric,
                    sizes=tuple(sizes),
                    values=values,
                    exponent=fit_exponent(sizes, values),
                    budget=limits.get(first.name, {}).get(metric),
                )
            )
    return tuple(found)


def with_growth(result: BudgetResult, growth: tuple[GrowthResult, ...]) -> BudgetResult:
    """``result`` with its growth exponents; over budget when one exceeds its budget."""
    result = replace(result, growth=growth)
    if result.outcome in ("passed", "over_budget") and result.violations:
        return replace(result, outcome="over_budget", message=violation_message(result))
    return result
