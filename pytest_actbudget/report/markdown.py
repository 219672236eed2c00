"""The Markdown report: short enough for ``$GITHUB_STEP_SUMMARY`` or a PR comment.

A headline, the violations table, then one compact table per entry. Every string that
comes from user code (entry names, node ids, module paths, messages) goes through
:func:`escape`, so a name cannot inject HTML or break a table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pytest_actbudget.checks import top_modules_line
from pytest_actbudget.report import growth
from pytest_actbudget.report.format import (
    OUTCOME_WORDS,
    compared,
    group_use,
    headline,
    human,
    inputs_text,
    ordered,
    over_text,
    shared_lines,
    uncounted_text,
    use_text,
    warning_lines,
)
from pytest_actbudget.report.training import TRAINING_HEADS, spec_text, training_rows
from pytest_actbudget.results import BudgetResult, GroupResult

if TYPE_CHECKING:
    from pytest_actbudget.report.baseline import Comparison, EntryBaseline

__all__ = ["escape", "render"]

# Markdown punctuation that could start emphasis, code, a link or strikethrough, or end
# a table cell; a backslash makes each one literal. ("<", ">", "&" become entities.)
_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def escape(text: str) -> str:
    """A user-derived string made inert inside Markdown text and table cells."""
    text = "".join(_ENTITIES.get(char, char) for char in text)
    text = _PUNCTUATION.sub(r"\\\1", text)
    return " ".join(text.splitlines()) if "\n" in text or "\r" in text else text


def render(results: Sequence[BudgetResult], baseline: Comparison | None = None) -> str:
    """The whole Markdown report; with ``baseline``, what changed since it, per entry.

    Entries that need a look (over budget, error, no budget) each get their table;
    entries within budget share one summary table, with their group tables folded
    in a ``<details>`` block so that a suite of hundreds of tests stays readable.
    """
    lines = ["## act budget summary", "", f"**{headline(results)}**", ""]
    if baseline is not None:
        lines += [escape(baseline.headline()), ""]
    lines.extend(_missing_compute(results))
    lines.extend(_violations(results))
    passed = [result for result in results if result.passed]
    for result in ordered(results):
        if not result.passed:
            lines.extend(_entry(result, against=_of(baseline, result)))
    if passed:
        lines.extend(_within_budget(passed, baseline))
    return "\n".join(lines).rstrip("\n") + "\n"


def _of(baseline: Comparison | None, result: BudgetResult) -> EntryBaseline | None:
    return baseline.of(result) if baseline is not None else None


def _within_budget(
    results: Sequence[BudgetResult], baseline: Comparison | None = None
) -> list[str]:
    rows = []
    for result in results:
        profile = result.profile
        uses = [use for group in _rows(result) if (use := group_use(group)) is not None]
        row = (
            escape(result.name),
            escape(profile.model) if profile else "-",
            human(profile.total.flops, "flops") if profile else "-",
            human(profile.total.activations, "activations") if profile else "-",
            human(profile.total.params, "params") if profile else "-",
            use_text(max(uses)) if uses else "-",
        )
        against = _of(baseline, result)
        rows.append((*row, escape(against.summary())) if against is not None else row)
    heads: tuple[str, ...] = ("entry", "model", "flops", "activations", "params", "max budget use")
    if baseline is not None:
        heads += ("vs baseline",)
    lines = ["### Within budget", "", *_table(heads, rows, right=(2, 3, 4, 5)), ""]
    lines += ["<details><summary>Groups of each entry within budget</summary>", ""]
    for result in results:
        lines.extend(_entry(result, level="####", against=_of(baseline, result)))
    return [*lines, "</details>", ""]


def _missing_compute(results: Sequence[BudgetResult]) -> list[str]:
    """Uncounted compute, before anything else: the numbers below lack it."""
    warnings = [
        f"> ⚠️ {escape(result.name)}: {escape(text)}"
        for result in results
        for text in warning_lines(result)
    ]
    return [line for warning in warnings for line in (warning, "")]


def _violations(results: Sequence[BudgetResult]) -> list[str]:
    rows = [
        (
            escape(result.name),
            escape(violation.group),
            violation.metric,
            *compared(violation),
            over_text(violation),
        )
        for result in ordered(results)
        for violation in result.violations
    ]
    if not rows:
        return []
    heads = ("entry", "group", "metric", "measured", "budget", "over")
    return ["### Over budget", "", *_table(heads, rows, right=(3, 4, 5)), ""]


def _entry(
    result: BudgetResult, level: str = "###", against: EntryBaseline | None = None
) -> list[str]:
    word = OUTCOME_WORDS.get(result.outcome, result.outcome)
    lines = [f"{level} {escape(result.name)} — {word}", ""]
    facts = []
    if result.profile is not None:
        facts.append(escape(f"{result.profile.model} on {inputs_text(result.profile.inputs)}"))
    facts.append(f"counting: {escape(result.counting)}")
    if result.location:
        facts.append(f"budgets: {escape(result.location)}")
    if result.nodeid:
        facts.append(f"test: {escape(result.nodeid)}")
    lines += [" · ".join(facts), ""]
    lines += [line for text in warning_lines(result) for line in (f"> ⚠️ {escape(text)}", "")]
    if result.outcome in ("error", "no_budget") and result.message:
        lines += [f"> {escape(result.message)}", ""]
    rows = [
        (
            escape(group.name),
            human(group.stats.flops, "flops"),
            human(group.stats.flops_share, "flops_share"),
            human(group.stats.activations, "activations"),
            human(group.stats.params, "params"),
            human(group.stats.act_bytes, "act_bytes"),
            _use_cell(group_use(group), bool(group.violations)),
        )
        for group in _rows(result)
    ]
    if rows:
        heads = ("group", "flops", "share", "activations", "params", "act_bytes", "budget use")
        lines += [*_table(heads, rows, right=(1, 2, 3, 4, 5, 6)), ""]
    lines += growth.markdown_lines(result, escape)
    tops = _top_modules(result)
    if tops:
        lines += [*(f"- {escape(line)}" for line in tops), ""]
    lines += _training(result)
    if against is not None:
        lines += _against(against)
    lines += [line for text in shared_lines(result) for line in (escape(text), "")]
    if result.profile is not None and result.profile.uncounted_ops:
        lines += [
            f"Uncounted operators: {escape(uncounted_text(result.profile.uncounted_ops))}",
            "",
        ]
    return lines


def _top_modules(result: BudgetResult) -> list[str]:
    """The modules that weigh most in each offending group: where to look first."""
    lines, seen = [], set()
    for violation in result.violations:
        if violation.group not in seen:
            seen.add(violation.group)
            if line := top_modules_line(result, violation):
                lines.append(line)
    return lines


def _against(against: EntryBaseline) -> list[str]:
    """What changed since the baseline: its value, the value now, the change."""
    lines = [f"Against the baseline: {escape(against.summary())}", ""]
    rows = [
        (escape(group), metric, old, new, change)
        for group, metric, old, new, change in against.rows()
    ]
    if rows:
        heads = ("group", "metric", "baseline", "now", "change")
        lines += [*_table(heads, rows, right=(2, 3, 4)), ""]
    return lines


def _training(result: BudgetResult) -> list[str]:
    """Backward beside forward per group, for a result measured with a training step."""
    rows = training_rows(result)
    if not rows or result.profile is None or result.profile.training is None:
        return []
    table = [(escape(row.cells[0]), *row.cells[1:-1], _use_cell(row.use, row.over)) for row in rows]
    return [
        f"Training step ({escape(spec_text(result.profile.training))}):",
        "",
        *_table(TRAINING_HEADS, table, right=(1, 2, 3, 4, 5)),
        "",
    ]


def _rows(result: BudgetResult) -> tuple[GroupResult, ...]:
    return (*result.groups, *((result.total,) if result.total else ()))


def _use_cell(use: float | None, violated: bool) -> str:
    text = use_text(use)
    return f"**{text}** ❌" if violated or (use is not None and use > 1.0) else text


def _table(
    heads: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    align = ["---:" if index in right else ":---" for index in range(len(heads))]
    return [
        "| " + " | ".join(heads) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
