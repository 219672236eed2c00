"""What changed between two JSON reports, per entry and group (``actbudget diff``).

Pure: results in, a :class:`ReportDiff` out, text from :func:`render`. Entries match
by (name, nodeid); groups by name, with the whole model as group ``total``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_actbudget.report.format import human
from pytest_actbudget.results import TOTAL_GROUP, BudgetResult, GroupResult

__all__ = ["DIFF_METRICS", "Change", "EntryDiff", "ReportDiff", "compare", "render"]

#: The absolute metrics a diff compares (shares follow from them).
DIFF_METRICS: tuple[str, ...] = ("flops", "activations", "params", "act_bytes")


@dataclass(frozen=True)
class Change:
    """One metric of one group that differs between the two reports."""

    group: str
    metric: str
    old: float
    new: float

    @property
    def relative(self) -> float:
        """(new - old) / old; infinite for growth from zero."""
        if self.old == 0:
            return math.inf if self.new > 0 else 0.0
        return (self.new - self.old) / self.old

    @property
    def text(self) -> str:
        """``+300.0%`` (or ``new`` for growth from zero)."""
        if math.isinf(self.relative):
            return "new"
        return f"{self.relative * 100:+.1f}%"


@dataclass(frozen=True)
class EntryDiff:
    """One entry present in both reports (or only in one: ``added`` / ``removed``)."""

    name: str
    nodeid: str
    status: str  # "changed" | "same" | "added" | "removed"
    changes: tuple[Change, ...] = ()
    added_groups: tuple[str, ...] = ()
    removed_groups: tuple[str, ...] = ()

    def grown(self, threshold: float) -> tuple[Change, ...]:
        """Changes that grew by more than ``threshold`` (a fraction: 0.1 = 10%)."""
        return tuple(change for change in self.changes if change.relative > threshold)


@dataclass(frozen=True)
class ReportDiff:
    """Every entry of both reports, in the new report's order, removed ones last."""

    entries: tuple[EntryDiff, ...]

    def grown(self, threshold: float) -> list[tuple[EntryDiff, Change]]:
        """Every (entry, change) that grew by more than ``threshold`` (0.1 = 10%)."""
        return [(entry, change) for entry in self.entries for change in entry.grown(threshold)]

    def count(self, status: str) -> int:
        return sum(1 for entry in self.entries if entry.status == status)


def compare(old: Sequence[BudgetResult], new: Sequence[BudgetResult]) -> ReportDiff:
    """Match entries by (name, nodeid) and compare their groups' metrics."""
    before = {(result.name, result.nodeid): result for result in old}
    after_keys = {(result.name, result.nodeid) for result in new}
    entries = []
    for result in new:
        previous = before.get((result.name, result.nodeid))
        if previous is None:
            entries.append(EntryDiff(result.name, result.nodeid, "added"))
        else:
            entries.append(_compare_entry(previous, result))
    entries.extend(
        EntryDiff(result.name, result.nodeid, "removed")
        for result in old
        if (result.name, result.nodeid) not in after_keys
    )
    return ReportDiff(tuple(entries))


def _compare_entry(old: BudgetResult, new: BudgetResult) -> EntryDiff:
    old_groups, new_groups = _groups(old), _groups(new)
    changes = [
        Change(name, metric, old_group.stats.metric(metric), new_group.stats.metric(metric))
        for name, new_group in new_groups.items()
        if (old_group := old_groups.get(name)) is not None
        for metric in DIFF_METRICS
        if old_group.stats.metric(metric) != new_group.stats.metric(metric)
    ]
    added = tuple(name for name in new_groups if name not in old_groups)
    removed = tuple(name for name in old_groups if name not in new_groups)
    status = "changed" if changes or added or removed else "same"
    return EntryDiff(new.name, new.nodeid, status, tuple(changes), added, removed)


def _groups(result: BudgetResult) -> Mapping[str, GroupResult]:
    groups = {group.name: group for group in result.groups}
    if result.total is not None:
        groups[TOTAL_GROUP] = result.total
    return groups


def render(diff: ReportDiff, *, fail_over: float | None = None) -> str:
    """The diff as text; with ``fail_over`` (a fraction), growth past it is marked ``!``
    and listed at the end."""
    lines = [
        f"{len(diff.entries)} {'entry' if len(diff.entries) == 1 else 'entries'}: "
        f"{diff.count('changed')} changed, "
        f"{diff.count('same')} unchanged, {diff.count('added')} added, "
        f"{diff.count('removed')} removed"
    ]
    for entry in diff.entries:
        if entry.status == "same":
            continue
        lines.append("")
        lines.append(f"{entry.name}  ({entry.nodeid})" + _status_note(entry.status))
        if entry.changes:
            lines.append(f"  {'group':<16} {'metric':<12} {'old':>10} {'new':>10} {'change':>9}")
        for change in entry.changes:
            mark = " !" if fail_over is not None and change.relative > fail_over else ""
            lines.append(
                f"  {_fit(change.group, 16):<16} {change.metric:<12} "
                f"{human(change.old, change.metric):>10} {human(change.new, change.metric):>10} "
                f"{change.text:>9}{mark}"
            )
        for name in entry.added_groups:
            lines.append(f"  group '{name}' added")
        for name in entry.removed_groups:
            lines.append(f"  group '{name}' removed")
    if fail_over is not None:
        grown = diff.grown(fail_over)
        lines.append("")
        if grown:
            lines.append(f"{len(grown)} metric(s) grew by more than {fail_over * 100:g}%:")
            lines.extend(
                f"  {entry.name} {change.group} {change.metric} {change.text}"
                for entry, change in grown
            )
        else:
            lines.append(f"nothing grew by more than {fail_over * 100:g}%")
    return "\n".join(lines) + "\n"


def _status_note(status: str) -> str:
    return {"added": "  added", "removed": "  removed"}.get(status, "")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
