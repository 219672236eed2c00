"""What changed between two JSON reports, per entry and group (``actbudget diff``).

Pure: results in, a :class:`ReportDiff` out, text from :func:`render`. Entries match
by name, so a moved or renamed test still compares with its entry's old numbers; the
node id only tells apart the tests of an entry checked by several. Groups match by
name, with the whole model as group ``total``. A group (or entry) present in one
report only is listed, never counted as growth: the ``total`` of its entry, which both
reports have, shows whether the model grew.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_actbudget.report.format import human
from pytest_actbudget.results import TOTAL_GROUP, BudgetResult, GroupResult, GroupStats
from pytest_actbudget.training import TRAINING_METRICS

__all__ = [
    "DIFF_METRICS",
    "Change",
    "EntryDiff",
    "ReportDiff",
    "compare",
    "compare_entry",
    "compared_metrics",
    "pair",
    "render",
]

#: The absolute metrics a diff compares (shares follow from them); the training metrics
#: too where both sides measured a training step (see ``compared_metrics``).
DIFF_METRICS: tuple[str, ...] = ("flops", "activations", "params", "act_bytes")


def compared_metrics(old: GroupStats, new: GroupStats) -> tuple[str, ...]:
    """What a diff compares for one group: DIFF_METRICS, and the training metrics when
    both reports measured a training step (one side alone has nothing to compare)."""
    both = old.backward_flops is not None and new.backward_flops is not None
    return DIFF_METRICS + (TRAINING_METRICS if both else ())


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
    nodeid: str  # the new report's (the old one's for a removed entry)
    status: str  # "changed" | "same" | "added" | "removed"
    changes: tuple[Change, ...] = ()
    added_groups: tuple[GroupStats, ...] = ()  # in the new report only
    removed_groups: tuple[GroupStats, ...] = ()  # in the old report only
    old_nodeid: str | None = None  # when the entry's test moved: its old node id

    @property
    def moved(self) -> bool:
        return self.old_nodeid is not None and self.old_nodeid != self.nodeid

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

    def moved(self) -> int:
        return sum(1 for entry in self.entries if entry.moved)


def compare(old: Sequence[BudgetResult], new: Sequence[BudgetResult]) -> ReportDiff:
    """Match entries by name and compare their groups' metrics.

    An entry checked by several tests pairs its results by node id first, then the
    rest in report order; what is left over is added or removed.
    """
    pairs = pair(old, new)
    entries = []
    for index, result in enumerate(new):
        previous = pairs.get(index)
        if previous is None:
            entries.append(EntryDiff(result.name, result.nodeid, "added"))
        else:
            entries.append(compare_entry(old[previous], result))
    paired = set(pairs.values())
    entries.extend(
        EntryDiff(result.name, result.nodeid, "removed")
        for index, result in enumerate(old)
        if index not in paired
    )
    return ReportDiff(tuple(entries))


def pair(old: Sequence[BudgetResult], new: Sequence[BudgetResult]) -> dict[int, int]:
    """Index in ``new`` -> index in ``old`` of the same entry: by name, the same node id
    first, then in report order."""
    unpaired: dict[str, list[int]] = {}
    for index, result in enumerate(old):
        unpaired.setdefault(result.name, []).append(index)
    pairs: dict[int, int] = {}
    for index, result in enumerate(new):  # the same test first
        candidates = unpaired.get(result.name, [])
        same = [i for i in candidates if old[i].nodeid == result.nodeid]
        if same:
            pairs[index] = same[0]
            candidates.remove(same[0])
    for index, result in enumerate(new):  # then moved or renamed tests, in order
        candidates = unpaired.get(result.name, [])
        if index not in pairs and candidates:
            pairs[index] = candidates.pop(0)
    return pairs


def compare_entry(old: BudgetResult, new: BudgetResult) -> EntryDiff:
    """The changes of one entry, group by group (the total included)."""
    old_groups, new_groups = _groups(old), _groups(new)
    changes = [
        Change(name, metric, old_group.stats.metric(metric), new_group.stats.metric(metric))
        for name, new_group in new_groups.items()
        if (old_group := old_groups.get(name)) is not None
        for metric in compared_metrics(old_group.stats, new_group.stats)
        if old_group.stats.metric(metric) != new_group.stats.metric(metric)
    ]
    added = tuple(group.stats for name, group in new_groups.items() if name not in old_groups)
    removed = tuple(group.stats for name, group in old_groups.items() if name not in new_groups)
    status = "changed" if changes or added or removed else "same"
    old_nodeid = old.nodeid if old.nodeid != new.nodeid else None
    return EntryDiff(new.name, new.nodeid, status, tuple(changes), added, removed, old_nodeid)


def _groups(result: BudgetResult) -> Mapping[str, GroupResult]:
    groups = {group.name: group for group in result.groups}
    if result.total is not None:
        groups[TOTAL_GROUP] = result.total
    return groups


def render(diff: ReportDiff, *, fail_over: float | None = None) -> str:
    """The diff as text; with ``fail_over`` (a fraction), growth past it is marked ``!``
    and listed at the end."""
    moved = diff.moved()
    lines = [
        f"{len(diff.entries)} {'entry' if len(diff.entries) == 1 else 'entries'}: "
        f"{diff.count('changed')} changed, "
        f"{diff.count('same')} unchanged, {diff.count('added')} added, "
        f"{diff.count('removed')} removed" + (f" ({moved} moved to another test)" if moved else "")
    ]
    for entry in diff.entries:
        if entry.status == "same" and not entry.moved:
            continue
        lines.append("")
        where = f"{entry.old_nodeid} -> {entry.nodeid}" if entry.moved else entry.nodeid
        lines.append(f"{entry.name}  ({where})" + _status_note(entry))
        if entry.changes:
            lines.append(f"  {'group':<16} {'metric':<12} {'old':>10} {'new':>10} {'change':>9}")
        for change in entry.changes:
            mark = " !" if fail_over is not None and change.relative > fail_over else ""
            lines.append(
                f"  {_fit(change.group, 16):<16} {change.metric:<12} "
                f"{human(change.old, change.metric):>10} {human(change.new, change.metric):>10} "
                f"{change.text:>9}{mark}"
            )
        for stats in entry.added_groups:
            lines.append(f"  group '{stats.name}' added: {_group_text(stats)}")
        for stats in entry.removed_groups:
            lines.append(f"  group '{stats.name}' removed: {_group_text(stats)}")
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
        lines.extend(_uncompared(diff))
    return "\n".join(lines) + "\n"


def _uncompared(diff: ReportDiff) -> list[str]:
    """What ``--fail-over`` could not compare: groups and entries of the new report only."""
    groups = [
        f"'{stats.name}' of '{entry.name}'"
        for entry in diff.entries
        for stats in entry.added_groups
    ]
    added = [f"'{entry.name}'" for entry in diff.entries if entry.status == "added"]
    lines = []
    if groups:
        noun = "group" if len(groups) == 1 else "groups"
        lines.append(
            f"not compared, only in the new report: {noun} {', '.join(groups)} "
            "(each entry's total is compared)"
        )
    if added:
        noun = "entry" if len(added) == 1 else "entries"
        lines.append(f"not compared, only in the new report: {noun} {', '.join(added)}")
    return lines


def _group_text(stats: GroupStats) -> str:
    return (
        f"{human(stats.flops, 'flops')} flops ({stats.flops_share * 100:.1f}%), "
        f"{human(stats.activations, 'activations')} activations, "
        f"{human(stats.params, 'params')} params"
    )


def _status_note(entry: EntryDiff) -> str:
    if entry.moved and entry.status == "same":
        return "  moved, unchanged"
    return {"added": "  added", "removed": "  removed"}.get(entry.status, "")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
