"""The training-step block of a report entry: backward beside forward per group.

Shown only for results measured with a training step (``Profile.training``); every
renderer takes its rows from :func:`training_rows`, so the numbers read the same in
the terminal, Markdown and HTML.
"""

from __future__ import annotations

from typing import NamedTuple

from pytest_actbudget.report.format import human, use_text
from pytest_actbudget.results import BudgetResult, GroupResult
from pytest_actbudget.training import TRAINING_METRICS, TrainingSpec

__all__ = ["TRAINING_HEADS", "TrainingRow", "spec_text", "training_rows"]

#: Column heads of the training table, in order.
TRAINING_HEADS: tuple[str, ...] = (
    "group",
    "flops",
    "backward_flops",
    "train_flops",
    "train_bytes",
    "use",
)


def spec_text(spec: TrainingSpec) -> str:
    """``optimizer adam, grads as params, state float32`` — how the step was costed."""
    grads = spec.grad_dtype or "as params"
    return f"optimizer {spec.optimizer}, grads {grads}, state {spec.state_dtype}"


class TrainingRow(NamedTuple):
    """One group (or the total) of the training table."""

    group: GroupResult
    cells: tuple[str, ...]  # one per TRAINING_HEADS column, as text
    use: float | None  # the largest measured/budget over the group's training budgets
    over: bool  # a training budget of the group is exceeded


def training_rows(result: BudgetResult) -> list[TrainingRow]:
    """The training table's rows, groups then the total; empty for a result measured
    without a training step."""
    if result.profile is None or result.profile.training is None:
        return []
    rows: list[TrainingRow] = []
    for group in (*result.groups, *((result.total,) if result.total else ())):
        stats = group.stats
        uses = [use for metric in TRAINING_METRICS if (use := group.budget_use(metric)) is not None]
        use = max(uses) if uses else None
        over = any(v.metric in TRAINING_METRICS for v in group.violations) or (
            use is not None and use > 1.0
        )
        cells = (
            group.name,
            human(stats.flops, "flops"),
            human(stats.backward_flops or 0, "backward_flops"),
            human(stats.train_flops or 0, "train_flops"),
            human(stats.train_bytes or 0, "train_bytes"),
            use_text(use),
        )
        rows.append(TrainingRow(group, cells, use, over))
    return rows
