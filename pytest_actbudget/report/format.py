"""Number and text formatting shared by every renderer.

Renderers differ in markup, not in what a number reads like: ``472.1M`` flops,
``29.4%`` share, ``93%`` budget use and ``+263.2%`` over read the same in the
terminal, Markdown and HTML.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pytest_actbudget.budgets.units import human
from pytest_actbudget.opkinds import missing_compute
from pytest_actbudget.results import (
    SHARE_METRICS,
    BudgetResult,
    GroupResult,
    TensorSpec,
    Violation,
)

__all__ = [
    "GROUP_COLUMNS",
    "OUTCOME_WORDS",
    "bar",
    "compared",
    "group_use",
    "headline",
    "human",
    "inputs_text",
    "ordered",
    "over_text",
    "shape_text",
    "shared_lines",
    "uncounted_text",
    "use_text",
    "warning_lines",
]

#: The metrics every group table shows, in column order.
GROUP_COLUMNS: tuple[str, ...] = ("flops", "flops_share", "activations", "params", "act_bytes")

#: How an outcome reads in a report; shouting marks the ones that need a look.
OUTCOME_WORDS: Mapping[str, str] = {
    "passed": "passed",
    "over_budget": "OVER BUDGET",
    "no_budget": "NO BUDGET",
    "error": "ERROR",
}

# Violations first, so a reviewer sees what failed before what passed.
_OUTCOME_RANK: Mapping[str, int] = {"over_budget": 0, "error": 1, "no_budget": 2, "passed": 3}

# Eighth blocks make a fixed-width bar show small differences between groups.
_BLOCKS = " ▏▎▍▌▋▊▉█"


def ordered(results: Iterable[BudgetResult]) -> list[BudgetResult]:
    """Results with violations first (over budget, error, no budget, passed), otherwise in
    the caller's order (a stable sort)."""
    return sorted(results, key=lambda result: _OUTCOME_RANK.get(result.outcome, 0))


def headline(results: Sequence[BudgetResult], problems: Sequence[str] = ()) -> str:
    """``3 entries checked: 1 over budget, 1 error`` — the one line a reviewer reads first;
    ``problems`` are failures of the run beside the entries (``2 entries no test
    checked``), so that a failed run never reads "all within budget"."""
    count = len(results)
    noun = "entry" if count == 1 else "entries"
    parts = []
    for outcome, word in (
        ("over_budget", "over budget"),
        ("error", "error"),
        ("no_budget", "without budget"),
    ):
        found = sum(1 for result in results if result.outcome == outcome)
        if found:
            plural = "s" if outcome == "error" and found != 1 else ""
            parts.append(f"{found} {word}{plural}")
    parts.extend(problems)
    status = ", ".join(parts) if parts else "all within budget"
    missing = sum(1 for result in results if warning_lines(result))
    if missing:
        # Within budget or not, those numbers lack compute: the first line says so.
        status += f"; {missing} with uncounted compute"
    return f"{count} {noun} checked: {status}"


def warning_lines(result: BudgetResult) -> list[str]:
    """Uncounted compute-bearing operators (``aten::_grouped_mm x4 was not counted:
    matmul-like, ...``): every report shows them first, strict or not."""
    return missing_compute(result.profile.uncounted_ops) if result.profile else []


def shared_lines(result: BudgetResult) -> list[str]:
    """``group 'lm_head' shares lm_head.weight; its params are counted in 'transformer'``
    for each tied tensor a group holds but another group counts."""
    return [
        f"group '{group.name}' shares {name}; its params are counted in '{owner}'"
        for group in result.groups
        for name, owner in group.stats.shared
    ]


def shape_text(shape: Sequence[int] | None, sep: str = " x ") -> str:
    """``64 x 64 x 14 x 14`` as fastai's learn.summary writes it; ``-`` for no tensor."""
    if shape is None:
        return "-"
    return sep.join(str(size) for size in shape) if shape else "scalar"


def inputs_text(inputs: Sequence[TensorSpec]) -> str:
    """``64x3x28x28 float32, 64 int64`` — the example inputs of a measurement."""
    return ", ".join(f"{shape_text(spec.shape, 'x')} {spec.dtype}" for spec in inputs)


def group_use(group: GroupResult) -> float | None:
    """The largest measured/budget over the group's budgets; None without a budget."""
    uses = [use for metric in group.budgets if (use := group.budget_use(metric)) is not None]
    return max(uses) if uses else None


def use_text(use: float | None) -> str:
    """``93%`` of the budget used; ``-`` without a budget."""
    if use is None:
        return "-"
    if math.isinf(use):
        return "inf"
    if use > 1.0 and round(use * 100) <= 100:
        return f"{use * 100:.1f}%"  # over, if only just: "100%" would read as within
    return f"{use * 100:.0f}%"


def over_text(violation: Violation) -> str:
    """``+263.2%`` over an absolute budget, ``+14.4 pts`` over a share budget, ``+0.95``
    over a growth exponent."""
    over = violation.over
    if violation.is_growth:
        return f"+{over:.2f}"
    if math.isinf(over):
        return "over a zero budget"
    if violation.is_share:
        return f"+{over:.1f} pts"
    return f"+{over * 100:.1f}%"


def compared(violation: Violation) -> tuple[str, str]:
    """Measured and budget as text: short, unless both would read the same
    (``11.0M`` over ``11.0M``), then exact (``11,017,984`` over ``11,000,000``)."""
    metric = violation.metric
    measured, budget = human(violation.measured, metric), human(violation.budget, metric)
    if measured != budget:
        return measured, budget
    if metric in SHARE_METRICS:
        return f"{violation.measured * 100:.3f}%", f"{violation.budget * 100:.3f}%"
    if violation.is_growth:
        return f"^{violation.measured:.4f}", f"^{violation.budget:.4f}"
    return f"{violation.measured:,.0f}", f"{violation.budget:,.0f}"


def bar(fraction: float, width: int = 10) -> str:
    """A fixed-width bar of unicode blocks (eighths) for a fraction in 0..1."""
    fraction = min(max(fraction, 0.0), 1.0) if math.isfinite(fraction) else 0.0
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_BLOCKS[part] if part else "")
    return text.ljust(width)


def uncounted_text(ops: Mapping[str, int]) -> str:
    """``aten::max_pool2d x1, aten::add_ x4`` — operators no FLOP handle counted."""
    return ", ".join(f"{op} x{count}" for op, count in sorted(ops.items()))
