"""``actbudget diff --format md|json``: the diff as a pull-request comment or as data.

Pure: a :class:`~pytest_actbudget.report.diff.ReportDiff` in, text out. The Markdown
says in one line what grew past the threshold, then lists only the groups that
changed, largest growth first; JSON carries every number for other tools.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_actbudget.report.diff import Change, EntryDiff, ReportDiff
from pytest_actbudget.report.format import human
from pytest_actbudget.report.markdown import escape

__all__ = [
    "DEFAULT_THRESHOLD",
    "DIFF_SCHEMA_PATH",
    "GroupChange",
    "changed_groups",
    "growth_headline",
    "json_text",
]
__all__ += ["markdown"]

#: The JSON Schema of ``--format json`` (shipped with the package).
DIFF_SCHEMA_PATH = Path(__file__).with_name("diff_schema.json")

#: What "grew" means in the headline when no ``--fail-over`` is given: more than 5%.
DEFAULT_THRESHOLD = 0.05
_LISTED = 3  # groups named in the headline before "and N more"


@dataclass(frozen=True)
class GroupChange:
    """The changed metrics of one group of one entry, largest growth first."""

    entry: EntryDiff
    group: str
    changes: tuple[Change, ...]

    @property
    def largest(self) -> Change:
        return self.changes[0]

    @property
    def growth(self) -> float:
        return self.largest.relative


def changed_groups(entries: Sequence[EntryDiff]) -> list[GroupChange]:
    """Every group with a changed metric, largest growth first (shrinking groups last)."""
    found = []
    for entry in entries:
        by_group: dict[str, list[Change]] = {}
        for change in entry.changes:
            by_group.setdefault(change.group, []).append(change)
        for group, changes in by_group.items():
            changes.sort(key=lambda change: -change.relative)
            found.append(GroupChange(entry, group, tuple(changes)))
    found.sort(key=lambda group: -group.growth)
    return found


def growth_headline(entries: Sequence[EntryDiff], threshold: float) -> str:
    """``2 groups grew more than 5%: resnet18-mnist/stem flops +263.0%, ...``."""
    limit = f"{threshold * 100:g}%"
    grown = [group for group in changed_groups(entries) if group.growth > threshold]
    if not grown:
        changed = len(changed_groups(entries))
        rest = f" ({changed} changed less or shrank)" if changed else ""
        return f"no group grew more than {limit}{rest}"
    noun = "group" if len(grown) == 1 else "groups"
    named = [
        f"{group.entry.name}/{group.group} {group.largest.metric} {group.largest.text}"
        for group in grown[:_LISTED]
    ]
    more = f", and {len(grown) - _LISTED} more" if len(grown) > _LISTED else ""
    return f"{len(grown)} {noun} grew more than {limit}: {', '.join(named)}{more}"


def markdown(diff: ReportDiff, *, threshold: float = DEFAULT_THRESHOLD) -> str:
    """A pull-request comment: the headline, the changed groups, new and gone ones."""
    lines = [f"**act budget: {escape(growth_headline(diff.entries, threshold))}**", ""]
    groups = changed_groups(diff.entries)
    if groups:
        lines += [
            "| entry | group | metric | before | after | change |",
            "| :--- | :--- | :--- | ---: | ---: | ---: |",
        ]
        for group in groups:
            for change in group.changes:
                mark = " ⚠️" if change.relative > threshold else ""
                lines.append(
                    f"| {escape(group.entry.name)} | {escape(group.group)} | {change.metric} "
                    f"| {human(change.old, change.metric)} | {human(change.new, change.metric)} "
                    f"| {change.text}{mark} |"
                )
        lines.append("")
    notes = []
    for entry in diff.entries:
        if entry.status in ("added", "removed"):
            notes.append(f"entry {escape(entry.name)} is {_NEW_OR_GONE[entry.status]}")
        notes += [f"group {escape(entry.name)}/{escape(g.name)} is new" for g in entry.added_groups]
        notes += [
            f"group {escape(entry.name)}/{escape(g.name)} is gone" for g in entry.removed_groups
        ]
    if notes:
        lines += [*(f"- {note}" for note in notes), ""]
    unchanged = diff.count("same")
    if unchanged:
        lines.append(f"{unchanged} {'entry' if unchanged == 1 else 'entries'} unchanged.")
    return "\n".join(lines).rstrip("\n") + "\n"


_NEW_OR_GONE = {"added": "new (not in the old report)", "removed": "gone (not in the new report)"}


def json_text(diff: ReportDiff, *, threshold: float = DEFAULT_THRESHOLD) -> str:
    """The diff as JSON (``"schema": 1``): counts, every entry with its changes, and what
    grew past ``threshold``. A change from zero has ``"change": null``."""
    document = {
        "schema": 1,
        "threshold": threshold,
        "headline": growth_headline(diff.entries, threshold),
        "counts": {
            status: diff.count(status) for status in ("changed", "same", "added", "removed")
        },
        "entries": [_entry(entry) for entry in diff.entries],
        "grown": [
            {"entry": entry.name, "nodeid": entry.nodeid, **_change(change)}
            for entry, change in diff.grown(threshold)
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _entry(entry: EntryDiff) -> dict[str, Any]:
    return {
        "name": entry.name,
        "nodeid": entry.nodeid,
        "old_nodeid": entry.old_nodeid,
        "status": entry.status,
        "changes": [_change(change) for change in entry.changes],
        "added_groups": [group.name for group in entry.added_groups],
        "removed_groups": [group.name for group in entry.removed_groups],
    }


def _change(change: Change) -> dict[str, Any]:
    relative = change.relative
    return {
        "group": change.group,
        "metric": change.metric,
        "old": change.old,
        "new": change.new,
        "change": None if math.isinf(relative) else relative,
    }
