"""A baseline: this run's results against a JSON report of an earlier run (main's).

Pure, like the diff it builds on: entries match by name (the node id tells apart the
tests of one entry), groups by name, the whole model as group ``total``. Every report
of the run asks a :class:`Comparison` what an entry was, what it is and what changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_actbudget.report.diff import (
    DIFF_METRICS,
    Change,
    EntryDiff,
    compare_entry,
    compared_metrics,
    pair,
)
from pytest_actbudget.report.format import human
from pytest_actbudget.results import TOTAL_GROUP, BudgetResult, GroupResult

__all__ = [
    "AGAINST",
    "Baseline",
    "Comparison",
    "EntryBaseline",
    "load_baseline",
    "with_comparison",
    "without_comparison",
]


#: How the comparison's first line starts; an over-budget message ends with the
#: comparison, indented, from a line that starts so.
AGAINST = "against baseline "


def with_comparison(message: str, entry: EntryBaseline, source: str) -> str:
    """An over-budget message followed by what changed since the baseline."""
    return "\n".join([message, *(f"  {line}" for line in entry.lines(source))])


def without_comparison(message: str) -> str:
    """An over-budget message without the baseline comparison the session appended
    (for the HTML, which shows the comparison as its own table)."""
    return message.split(f"\n  {AGAINST}", 1)[0]


@dataclass(frozen=True)
class Baseline:
    """The results of an earlier run, read from its JSON report."""

    source: str  # the file as the user named it
    results: tuple[BudgetResult, ...]

    def compare(self, results: Sequence[BudgetResult]) -> Comparison:
        """Pair this run's results with the baseline's."""
        pairs = pair(self.results, results)
        entries = tuple(
            EntryBaseline.of(result, self.results[pairs[i]] if i in pairs else None)
            for i, result in enumerate(results)
        )
        paired = set(pairs.values())
        gone = tuple(old for i, old in enumerate(self.results) if i not in paired)
        return Comparison(self.source, entries, gone)

    def entry(self, result: BudgetResult) -> EntryBaseline:
        """One result against the baseline (as the failure message of its test needs)."""
        return self.compare([result]).entries[0]


def load_baseline(path: str | Path, shown: str | None = None) -> Baseline:
    """Read a JSON report as a baseline; ReportFileError naming the file otherwise."""
    from pytest_actbudget.report.json import load

    return Baseline(shown or str(path), tuple(load(path)))


@dataclass(frozen=True)
class EntryBaseline:
    """One result of this run and its baseline entry (None: the entry is new)."""

    result: BudgetResult
    old: BudgetResult | None
    diff: EntryDiff

    @classmethod
    def of(cls, result: BudgetResult, old: BudgetResult | None) -> EntryBaseline:
        if old is None:
            return cls(result, None, EntryDiff(result.name, result.nodeid, "added"))
        return cls(result, old, compare_entry(old, result))

    @property
    def is_new(self) -> bool:
        return self.old is None

    def old_group(self, name: str) -> GroupResult | None:
        """The group of that name in the baseline; None when it is new (or the entry is)."""
        if self.old is None:
            return None
        if name == TOTAL_GROUP:
            return self.old.total
        return next((group for group in self.old.groups if group.name == name), None)

    def changes_of(self, group: str) -> tuple[Change, ...]:
        return tuple(change for change in self.diff.changes if change.group == group)

    @property
    def gone_groups(self) -> tuple[str, ...]:
        return tuple(stats.name for stats in self.diff.removed_groups)

    @property
    def new_groups(self) -> tuple[str, ...]:
        return tuple(stats.name for stats in self.diff.added_groups)

    @property
    def changed(self) -> bool:
        return bool(self.is_new or self.diff.changes or self.new_groups or self.gone_groups)

    def summary(self) -> str:
        """``2 metrics changed``, ``unchanged``, ``new entry`` — against the baseline."""
        if self.is_new:
            return "new entry: not in the baseline"
        parts = []
        count = len(self.diff.changes)
        if count:
            parts.append(f"{count} {'metric' if count == 1 else 'metrics'} changed")
        if self.new_groups:
            parts.append("new " + _groups(self.new_groups))
        if self.gone_groups:
            parts.append("gone " + _groups(self.gone_groups))
        return ", ".join(parts) if parts else "unchanged"

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(group, metric, baseline, now, change) of every changed metric, as text."""
        return [
            (
                change.group,
                change.metric,
                human(change.old, change.metric),
                human(change.new, change.metric),
                change.text,
            )
            for change in self.diff.changes
        ]

    def lines(self, source: str) -> list[str]:
        """The comparison as plain text lines: the terminal and the failure message."""
        head = f"{AGAINST}{source}: {self.summary()}"
        rows = self.rows()
        if not rows:
            return [head]
        table = [("group", "metric", "baseline", "now", "change"), *rows]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        return [head] + [
            "  "
            + "  ".join(
                cell.rjust(width) if index >= 2 else cell.ljust(width)
                for index, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in table
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the entry's ``baseline`` key."""
        changed = self.diff.changes or self.new_groups or self.gone_groups
        data: dict[str, Any] = {
            "status": "new" if self.is_new else ("changed" if changed else "same"),
            "nodeid": self.old.nodeid if self.old is not None else None,
            "new_groups": list(self.new_groups),
            "gone_groups": list(self.gone_groups),
            "total": None,
        }
        total = self.group_dict(TOTAL_GROUP)
        if total is not None:
            data["total"], data["total_change"] = total["metrics"], total["change"]
        return data

    def group_dict(self, name: str) -> dict[str, Any] | None:
        """The JSON form of a group's ``baseline`` key: its metrics then and the change
        (a fraction; null from zero); None for a group the baseline does not have."""
        old = self.old_group(name)
        if old is None:
            return None
        changes = {change.metric: change.relative for change in self.changes_of(name)}
        new = self.result.total if name == TOTAL_GROUP else _named(self.result.groups, name)
        compared = compared_metrics(old.stats, new.stats) if new is not None else DIFF_METRICS
        return {
            "metrics": _metrics(old),
            "change": {metric: _fraction(changes.get(metric, 0.0)) for metric in compared},
        }


@dataclass(frozen=True)
class Comparison:
    """This run's results, each against its baseline entry, and the baseline's entries
    that no result of this run matched."""

    source: str
    entries: tuple[EntryBaseline, ...]
    gone: tuple[BudgetResult, ...]

    def of(self, result: BudgetResult) -> EntryBaseline | None:
        for entry in self.entries:
            if entry.result is result:
                return entry
        return next(
            (
                e
                for e in self.entries
                if (e.result.name, e.result.nodeid) == (result.name, result.nodeid)
            ),
            None,
        )

    def headline(self) -> str:
        """``against baseline main.json: 1 entry changed, 1 new, 1 gone``."""
        changed = sum(1 for e in self.entries if e.changed and not e.is_new)
        new = sum(1 for e in self.entries if e.is_new)
        parts = [f"{changed} {'entry' if changed == 1 else 'entries'} changed"]
        if new:
            parts.append(f"{new} new")
        if self.gone:
            names = ", ".join(result.name for result in self.gone)
            parts.append(f"{len(self.gone)} gone or not checked in this run ({names})")
        return f"against baseline {self.source}: {', '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the report's top-level ``baseline`` key."""
        return {
            "source": self.source,
            "gone": [{"name": r.name, "nodeid": r.nodeid} for r in self.gone],
        }


def _fraction(value: float) -> float | None:
    """A change as JSON can hold it: growth from zero (infinite) is null."""
    return None if math.isinf(value) else value


def _metrics(group: GroupResult | None) -> dict[str, float]:
    if group is None:
        return {}
    stats = group.stats
    return {metric: stats.metric(metric) for metric in compared_metrics(stats, stats)}


def _named(groups: Sequence[GroupResult], name: str) -> GroupResult | None:
    return next((group for group in groups if group.name == name), None)


def _groups(names: Sequence[str]) -> str:
    noun = "group" if len(names) == 1 else "groups"
    return f"{noun} {', '.join(names)}"
