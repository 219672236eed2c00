"""The baseline parts of the HTML report: what changed since the baseline, per entry
and per group, as page text (``1.1G -> 4.3G +261.7%``)."""

from __future__ import annotations

from pytest_actbudget.report.baseline import Comparison, EntryBaseline
from pytest_actbudget.report.html_charts import escape as _e

__all__ = ["entry_section", "group_cell", "headline"]


def headline(comparison: Comparison) -> str:
    """``against baseline main.json: 1 entry changed, 1 new``, under the headline."""
    return f'<p class="baseline-headline">{_e(comparison.headline())}</p>'


def group_cell(against: EntryBaseline | None, group: str) -> str:
    """A group's change since the baseline: each changed metric, ``new`` or ``=``."""
    if against is None:
        return ""
    if against.old_group(group) is None:
        return '<td class="baseline new">new</td>'
    changes = against.changes_of(group)
    if not changes:
        return '<td class="baseline same">=</td>'
    grew = any(change.relative > 0 for change in changes)
    text = ", ".join(f"{change.metric} {change.text}" for change in changes)
    return f'<td class="baseline {"grew" if grew else "shrank"}">{_e(text)}</td>'


def entry_section(against: EntryBaseline, source: str) -> str:
    """The summary and the table of changed metrics: baseline, now, change."""
    rows = "".join(
        f'<tr data-group="{_e(group)}"><td>{_e(group)}</td><td>{_e(metric)}</td>'
        f'<td class="num">{_e(old)}</td><td class="num">{_e(new)}</td>'
        f'<td class="num">{_e(change)}</td></tr>'
        for group, metric, old, new, change in against.rows()
    )
    table = (
        '<table class="baseline"><tr><th>group</th><th>metric</th><th class=num>baseline</th>'
        f"<th class=num>now</th><th class=num>change</th></tr>{rows}</table>"
        if rows
        else ""
    )
    return (
        f'<div class="baseline"><p><strong>Against the baseline</strong> {_e(source)}: '
        f"{_e(against.summary())}</p>{table}</div>"
    )
