"""Recording budgets: ``--actbudget-update`` and ``actbudget init``.

The budgets file is hand-edited code, so it is never re-dumped. Existing values are
replaced in place at the character spans PyYAML's nodes report, and new entries are
appended as text at the end of ``models:``. Everything else (comments, quoting, key
order, blank lines, line endings, other entries) stays byte for byte. The result is
re-validated before it is written atomically, and nothing is written when nothing
changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ..atomic import write_atomic
from ..errors import BudgetFileError
from ..results import ABSOLUTE_METRICS, GROWTH_METRICS, TOTAL_GROUP, TensorSpec
from ..training import TRAINING_METRICS
from .inputs import input_text
from .safe_yaml import gc_paused, read_text, yaml_key, yaml_quoted
from .schema import (
    DEFAULT_METRICS,
    RESERVED_GROUPS,
    BudgetsFile,
    ModelBudget,
    parse_budgets,
    parse_tree,
)
from .units import budget_value, format_percent, format_quantity, growth_budget

if TYPE_CHECKING:
    import yaml

_TOTAL_METRICS = (*ABSOLUTE_METRICS, *TRAINING_METRICS)  # what `total:` takes

#: The metrics a new entry records, per group and for the total, unless the file's
#: ``defaults.metrics`` says otherwise.
NEW_ENTRY_METRICS: tuple[str, ...] = DEFAULT_METRICS
#: The growth budgets an update adds to a group of an entry with ``scaling:`` that lists none.
NEW_GROWTH_METRICS: tuple[str, ...] = ("flops_growth", "act_bytes_growth")
#: ... and, on top, what an entry measured with a training step records.
NEW_TRAINING_METRICS: tuple[str, ...] = ("train_flops", "train_bytes")


@dataclass(frozen=True)
class MeasuredEntry:
    """What one check measured, ready to become (or refresh) a budgets entry."""

    name: str
    groups: Mapping[str, Mapping[str, float]]  # group -> metric -> measured (all METRICS)
    group_modules: Mapping[str, tuple[str, ...]]  # patterns per group, for a new entry
    total: Mapping[str, float]  # absolute metrics of the whole model
    input: tuple[TensorSpec, ...] | None  # None: the inputs cannot be written as `input:`
    mode: str | None = None  # "train" | "eval"; None leaves `mode:` alone
    nodeid: str = ""  # the test that measured it, for messages
    # measured growth exponents: group (or "total") -> flops_growth -> exponent
    growth: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    training: bool = False  # measured with a training step: a new entry says `training: true`

    def recorded_metrics(self, metrics: Sequence[str]) -> tuple[str, ...]:
        """What a group that lists no metric records: ``metrics``, plus the training
        metrics when this entry was measured with a training step."""
        extra = NEW_TRAINING_METRICS if self.training else ()
        return (*metrics, *(m for m in extra if m not in metrics))


@dataclass(frozen=True)
class BudgetChange:
    """One budget value written: ``old`` is None for a value of a new entry."""

    entry: str
    group: str  # a group name, or "total"
    metric: str
    old: float | None
    new: float


@dataclass(frozen=True)
class UpdateSummary:
    """What an update did to one budgets file."""

    path: str
    created_file: bool
    created: tuple[str, ...]  # entries added
    changed: tuple[str, ...]  # existing entries with at least one new value
    unchanged: tuple[str, ...]  # existing entries whose budgets already matched
    changes: tuple[BudgetChange, ...]
    recorded: tuple[tuple[str, str], ...] = ()  # (entry, "input [..] -> [..]") rewrites

    @property
    def written(self) -> bool:
        """Whether the file was (re)written."""
        return self.created_file or bool(self.created or self.changed)

    def lines(self) -> list[str]:
        """Human summary: ``created budgets.yaml``, ``updated 'x': stem.flops 130M -> 520M``."""
        out = [f"created {self.path}"] if self.created_file else []
        for name in self.created:
            count = len({c.group for c in self.changes if c.entry == name} - {TOTAL_GROUP})
            out.append(f"{self.path}: created entry {_name(name)} ({_plural(count, 'group')})")
        for name in self.changed:
            parts = [text for entry, text in self.recorded if entry == name]
            parts += [
                f"{c.group}.{c.metric} {_text(c.old, c.metric)} -> {_text(c.new, c.metric)}"
                if c.old is not None
                else f"{c.group}.{c.metric} {_text(c.new, c.metric)} (new)"
                for c in self.changes
                if c.entry == name
            ]
            out.append(f"{self.path}: updated {_name(name)}: {', '.join(parts)}")
        if self.unchanged:
            names = ", ".join(_name(name) for name in self.unchanged)
            out.append(f"{self.path}: unchanged: {names}")
        return out


def update_budgets(
    path: str | Path,
    entries: Sequence[MeasuredEntry],
    headroom: float,
    *,
    counting: str = "fvcore",
    metrics: Sequence[str] = NEW_ENTRY_METRICS,
) -> UpdateSummary:
    """Record ``measured x (1 + headroom)`` (rounded up, see ``units.budget_value``) for
    ``entries`` in the budgets file at ``path``.

    A missing file is created (``counting`` and ``headroom`` become its header). An
    existing entry gets new values for the metrics it already lists, in its groups and
    its total, and ``metrics`` (the file's ``defaults.metrics``) for a group or total
    that lists none; its ``input:`` and ``mode:`` are rewritten. A missing entry is
    appended with automatic groups. Everything else stays byte for byte. Raises
    BudgetFileError when the file is invalid or cannot be edited in place; nothing is
    written then.
    """
    name = str(path)
    # One entry per name, the last measurement winning; no reserved group names.
    entries = list({entry.name: _unreserved(entry) for entry in entries}.values())
    text = read_text(Path(path), name, must_exist=False)
    if text is None:
        body = "".join(_entry_text(entry, headroom, 2, 2, metrics) for entry in entries)
        new_text = _header(counting, headroom) + "models:\n" + body
        loaded = _validated(new_text, name)
        changes = tuple(c for entry in entries for c in _created_changes(entry, headroom, metrics))
        _check_values(loaded, changes, name)
        _write(Path(path), new_text, name)
        created = tuple(entry.name for entry in entries)
        return UpdateSummary(name, True, created, (), (), changes)
    # libyaml's marks do not count a byte order mark (PyYAML's do): edit without it.
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    with gc_paused():  # node trees are large and acyclic (see budgets_yaml.gc_paused)
        editor = _Editor(text[len(bom) :], name, headroom, metrics)
        for entry in entries:
            editor.record(entry)
        new_text = bom + editor.result()
        if new_text != text:
            loaded = _validated(new_text, name)
            _check_values(loaded, editor.changes, name)
    if new_text != text:
        _write(Path(path), new_text, name)
    return UpdateSummary(
        name,
        False,
        tuple(editor.created),
        tuple(editor.changed),
        tuple(editor.unchanged),
        tuple(editor.changes),
        tuple(editor.recorded),
    )


class _Editor:
    """Collects span replacements and appended entries for one file's text."""

    def __init__(self, text: str, path: str, headroom: float, metrics: Sequence[str]) -> None:
        import yaml

        self.text = text
        self.path = path
        self.headroom = headroom
        self.metrics = tuple(metrics)
        self.newline = _newline_of(text)
        self.loaded, self.root = parse_tree(text, path)  # an invalid file is never edited
        if "*" in text and _shares_nodes(self.root):
            # An alias shares its anchor's node: editing "its" value would edit the
            # anchor's text, so such a file is refused rather than guessed at.
            raise BudgetFileError(
                f"{path}: uses YAML aliases (*name); budgets cannot be updated in place "
                "in such a file. Write the values out. Nothing was written.",
                path=path,
            )
        self.edits: list[tuple[int, int, str]] = []
        self.new_entries: list[MeasuredEntry] = []
        self.created: list[str] = []
        self.changed: list[str] = []
        self.unchanged: list[str] = []
        self.changes: list[BudgetChange] = []
        self.recorded: list[tuple[str, str]] = []
        assert isinstance(self.root, yaml.MappingNode)  # validated above
        self.models = _value_of(self.root, "models")
        self.entry_nodes = dict(_mapping_items(self.models))

    def record(self, entry: MeasuredEntry) -> None:
        """Plan the edits for one measured entry (new or existing)."""
        headroom = self.headroom
        node = self.entry_nodes.get(entry.name)
        if node is None:
            self.new_entries.append(entry)
            self.created.append(entry.name)
            self.changes.extend(_created_changes(entry, headroom, self.metrics))
            return
        budget = self.loaded.models[entry.name]
        # Training budgets only where the file turns the training step on: an entry
        # measured with one (check(..., training=True)) gets `training: true` written,
        # unless it says `training: false`.
        trains = budget.training is not None or _adds_training(entry, node, budget)
        metrics = entry.recorded_metrics(self.metrics) if trains else self.metrics
        limits = {group.name: {**group.limits, **group.growth} for group in budget.groups}
        scaled = budget.scaling is not None
        found: list[BudgetChange] = []
        for group, group_node in _mapping_items(_value_of(node, "groups")):
            measured = entry.groups.get(group)
            if measured is None:
                continue
            exponents = entry.growth.get(group, {})
            if limits[group]:
                found += self.refresh(
                    entry.name,
                    group,
                    group_node,
                    {**measured, **exponents},
                    limits[group],
                    headroom,
                )
            elif not scaled:  # a group that lists no metric gets the default metrics
                found += self.fill(entry.name, group, group_node, measured, metrics)
            if scaled:  # (with scaling:, the growth budgets guard such a group)
                found += self.add_growth(entry.name, group, group_node, exponents)
        total_node = _value_of(node, "total")
        exponents = entry.growth.get(TOTAL_GROUP, {})
        if budget.total or budget.total_growth:
            found += self.refresh(
                entry.name,
                TOTAL_GROUP,
                total_node,
                {**entry.total, **exponents},
                {**budget.total, **budget.total_growth},
                headroom,
            )
        elif entry.total:
            absolute = [m for m in metrics if m in _TOTAL_METRICS]
            if total_node is None:
                found += self.append_key(entry.name, node, entry.total, absolute)
            else:
                found += self.fill(entry.name, TOTAL_GROUP, total_node, entry.total, absolute)
        rewrote = self.rerecord(entry, node, budget)
        self.changes.extend(found)
        (self.changed if found or rewrote else self.unchanged).append(entry.name)

    def rerecord(self, entry: MeasuredEntry, node: yaml.Node, budget: ModelBudget) -> bool:
        """Rewrite the entry's ``input:`` and ``mode:`` to what was measured now (and
        add ``training: true`` when it was measured with a training step)."""
        pairs: list[tuple[str, str]] = []
        if entry.input is not None and entry.input != budget.input:
            pairs.append(("input", input_text(entry.input)))
        if entry.mode is not None and entry.mode != budget.mode:
            pairs.append(("mode", entry.mode))
        if _adds_training(entry, node, budget):
            pairs.append(("training", "true"))
        missing: list[tuple[str, str]] = []
        for key, written in pairs:
            old = {"input": budget.input, "mode": budget.mode}.get(key)
            if old is None:
                self.recorded.append((entry.name, f"{key} {written} (new)"))
            else:
                before = input_text(budget.input) if budget.input else str(budget.mode)
                self.recorded.append((entry.name, f"{key} {before} -> {written}"))
            value = _value_of(node, key)
            if old is not None and value is not None:
                self.edits.append((value.start_mark.index, value.end_mark.index, written))
            else:
                missing.append((key, written))
        if missing:
            self.insert_first(node, missing)
        return bool(pairs)

    def refresh(
        self,
        entry: str,
        group: str,
        node: yaml.Node | None,
        measured: Mapping[str, float],
        old: Mapping[str, float],
        headroom: float,
    ) -> list[BudgetChange]:
        """Replace the values of the metrics ``node`` lists; only those that change."""
        found = []
        for metric, value_node in _mapping_items(node):
            if metric == "modules" or metric not in measured:
                continue
            if metric in GROWTH_METRICS:
                new = growth_budget(measured[metric], self.loaded.growth_headroom)
            else:
                new = budget_value(measured[metric], headroom, metric)
            if new == old[metric]:
                continue  # keep the text as written (1_500_000 stays 1_500_000)
            start, end = value_node.start_mark.index, value_node.end_mark.index
            written = format_quantity(new, metric)
            span = self.text[start:end]
            if getattr(value_node, "style", None) in ("|", ">"):
                written += span[len(span.rstrip()) :]  # a block scalar owns its line break
            self.edits.append((start, end, written))
            found.append(BudgetChange(entry, group, metric, old[metric], new))
        return found

    def add_growth(
        self, entry: str, group: str, node: yaml.Node | None, exponents: Mapping[str, float]
    ) -> list[BudgetChange]:
        """A group of an entry with ``scaling:`` that lists no growth budget gets
        NEW_GROWTH_METRICS, written into its mapping in the mapping's own style. (The
        total gets growth budgets only where it lists them: the groups say where the
        growth comes from.)"""
        import yaml

        if not isinstance(node, yaml.MappingNode):
            return []  # `total:` left empty, or absent: nothing to add to
        if any(metric in GROWTH_METRICS for metric, _ in _mapping_items(node)):
            return []
        values = {
            metric: growth_budget(exponents[metric], self.loaded.growth_headroom)
            for metric in NEW_GROWTH_METRICS
            if metric in exponents
        }
        if not values:
            return []
        pairs = [f"{metric}: {format_quantity(v, metric)}" for metric, v in values.items()]
        if node.flow_style:
            if node.value:
                at = node.value[-1][1].end_mark.index
                self.edits.append((at, at, "".join(", " + pair for pair in pairs)))
            else:
                at = node.start_mark.index + 1  # just inside "{"
                self.edits.append((at, at, ", ".join(pairs)))
        else:
            column = node.value[0][0].start_mark.column
            at, prefix = self.after_line(_last_node(node).end_mark.index)
            lines = "".join(" " * column + pair + self.newline for pair in pairs)
            self.edits.append((at, at, prefix + lines))
        return [BudgetChange(entry, group, metric, None, v) for metric, v in values.items()]

    def fill(
        self,
        entry: str,
        group: str,
        node: yaml.Node | None,
        measured: Mapping[str, float],
        metrics: Sequence[str],
    ) -> list[BudgetChange]:
        """Add ``metrics`` to a group (or ``total``) that lists none: inside its flow
        mapping, as lines of its block mapping, or in place of an empty value."""
        import yaml

        values = self.values(measured, metrics)
        if node is None or not values:
            return []
        pairs = [(metric, format_quantity(new, metric)) for metric, new in values]
        flow = "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        start, end = node.start_mark.index, node.end_mark.index
        if isinstance(node, yaml.MappingNode) and node.value and node.flow_style:
            at = node.value[-1][1].end_mark.index
            self.edits.append((at, at, "".join(f", {k}: {v}" for k, v in pairs)))
        elif isinstance(node, yaml.MappingNode) and node.value:
            self.add_lines(node, pairs)
        elif start == end:  # `total:` with nothing after it
            self.edits.append((start, end, " " + flow))
        else:  # `{}` or `~`
            self.edits.append((start, end, flow))
        return [BudgetChange(entry, group, metric, None, new) for metric, new in values]

    def append_key(
        self, entry: str, node: yaml.Node, measured: Mapping[str, float], metrics: Sequence[str]
    ) -> list[BudgetChange]:
        """Add ``total: {...}`` to an entry that has no ``total`` key."""
        import yaml

        values = self.values(measured, metrics)
        if not isinstance(node, yaml.MappingNode) or not node.value or not values:
            return []
        flow = "{" + ", ".join(f"{m}: {format_quantity(v, m)}" for m, v in values) + "}"
        if node.flow_style:
            at = node.value[-1][1].end_mark.index
            self.edits.append((at, at, f", total: {flow}"))
        else:
            self.add_lines(node, [("total", flow)])
        return [BudgetChange(entry, TOTAL_GROUP, metric, None, new) for metric, new in values]

    def insert_first(self, node: yaml.Node, pairs: Sequence[tuple[str, str]]) -> None:
        """Put ``key: value`` pairs (``input:``, ``mode:``) after the entry's ``input:``
        or ``mode:`` when it has one, else first in its mapping."""
        import yaml

        if not isinstance(node, yaml.MappingNode) or not node.value:
            return  # an empty entry: nothing recorded yet to say what it was run with
        anchor = next((v for k, v in reversed(node.value) if k.value in ("input", "mode")), None)
        if node.flow_style:
            if anchor is not None:
                at = anchor.end_mark.index
                self.edits.append((at, at, "".join(f", {k}: {v}" for k, v in pairs)))
            else:
                at = node.start_mark.index + 1
                self.edits.append((at, at, "".join(f"{k}: {v}, " for k, v in pairs)))
            return
        first = node.value[0][0]
        pad = " " * first.start_mark.column
        if anchor is not None:
            at, prefix = self.after_line(anchor.end_mark.index)
        else:
            at, prefix = first.start_mark.index - first.start_mark.column, ""
        lines = "".join(f"{pad}{k}: {v}{self.newline}" for k, v in pairs)
        self.edits.append((at, at, prefix + lines))

    def add_lines(self, node: yaml.MappingNode, pairs: Sequence[tuple[str, str]]) -> None:
        """Append ``key: value`` lines to a block mapping, indented like its keys."""
        pad = " " * node.value[0][0].start_mark.column
        at, prefix = self.after_line(_last_node(node).end_mark.index)
        lines = "".join(f"{pad}{k}: {v}{self.newline}" for k, v in pairs)
        self.edits.append((at, at, prefix + lines))

    def values(
        self, measured: Mapping[str, float], metrics: Sequence[str]
    ) -> list[tuple[str, float]]:
        return [
            (metric, budget_value(measured[metric], self.headroom, metric))
            for metric in metrics
            if metric in measured
        ]

    def result(self) -> str:
        text = self.text
        if self.new_entries:
            at, prefix, indent, step = self.insertion()
            body = "".join(
                _entry_text(entry, self.headroom, indent, step, self.metrics)
                for entry in self.new_entries
            )
            self.edits.append((at, at, prefix + body.replace("\n", self.newline)))
        # From the end of the text backwards; of two edits at one offset the one
        # planned first must come first in the text, so it is applied last.
        order = sorted(range(len(self.edits)), key=lambda i: (self.edits[i][0], i), reverse=True)
        for index in order:
            start, end, written = self.edits[index]
            text = text[:start] + written + text[end:]
        return text

    def insertion(self) -> tuple[int, str, int, int]:
        """Where new entries go: (offset, text before them, entry indent, indent step)."""
        import yaml

        assert isinstance(self.root, yaml.MappingNode)
        root_column = self.root.start_mark.column
        models_key = _key_of(self.root, "models")
        models = self.models
        nl = self.newline
        if self.root.flow_style:  # no block can go inside '{...}', wherever 'models' is
            self.refuse(self.root, "the file is one flow mapping ({...})")
        if models_key is None:
            at, prefix = self.after_line(self.root.end_mark.index)
            return at, prefix + " " * root_column + "models:" + nl, root_column + 2, 2
        assert models is not None
        if isinstance(models, yaml.MappingNode) and models.value:
            if models.flow_style:
                self.refuse(models, "'models' is written in flow style ({...})")
            first_key = models.value[0][0]
            indent = first_key.start_mark.column
            step = max(indent - models_key.start_mark.column, 1)
            at, prefix = self.after_line(_last_node(models).end_mark.index)
            at = self.skip_trailing_comments(at, indent)
            return at, prefix, indent, step
        # `models:` with nothing (or `~`, `{}`) under it: drop the token, start a block.
        start, end = models.start_mark.index, models.end_mark.index
        if end > start:
            self.edits.append((start, end, ""))
        at, prefix = self.after_line(end)
        indent = models_key.start_mark.column + 2
        return at, prefix, indent, 2

    def after_line(self, index: int) -> tuple[int, str]:
        """The start of the line after ``index`` (and a line break to add at EOF)."""
        # Already at a line start, unless between the CR and the LF of a CRLF.
        at_start = index > 0 and self.text[index - 1] in "\r\n"
        if at_start and not self.text.startswith("\r\n", index - 1):
            return index, ""
        found = _LINE_BREAK.search(self.text, index)
        if found is None:
            return len(self.text), self.newline
        return found.end(), ""

    def skip_trailing_comments(self, at: int, indent: int) -> int:
        """Comment lines indented like the entries still belong to the last entry."""
        best = at
        for match in _LINE.finditer(self.text, at):
            line = match.group().rstrip("\r\n")
            stripped = line.lstrip(" ")
            if not stripped.strip():
                continue
            if stripped.startswith("#") and len(line) - len(stripped) >= indent:
                best = match.end()
                continue
            break
        return best

    def refuse(self, node: yaml.Node, why: str) -> NoReturn:
        names = ", ".join(_name(e.name) for e in self.new_entries)
        line = node.start_mark.line + 1
        raise BudgetFileError(
            f"{self.path}:{line}: models: cannot add {names}: {why}, which cannot be "
            "edited in place; write 'models:' as a block mapping (one entry per line) "
            "or add the entries by hand. Nothing was written.",
            path=self.path,
            line=line,
        )


# -- text of new entries -------------------------------------------------------------

# YAML's line breaks as the file may use them: LF, CRLF or a lone CR (classic Mac).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _newline_of(text: str) -> str:
    """The line break new lines get: the file's first one (LF for a one-line file)."""
    found = _LINE_BREAK.search(text)
    return found.group() if found else "\n"


def _unreserved(entry: MeasuredEntry) -> MeasuredEntry:
    """Rename automatic groups that would take a reserved name (a child module called
    ``total``): ``total`` -> ``total_``, which reads the same in every report."""
    taken = set(entry.group_modules) | set(entry.groups)
    renames: dict[str, str] = {}
    for group in entry.group_modules:
        if group in RESERVED_GROUPS:
            new = group + "_"
            while new in taken or new in RESERVED_GROUPS:
                new += "_"
            taken.add(new)
            renames[group] = new
    if not renames:
        return entry
    return replace(
        entry,
        groups={renames.get(g, g): values for g, values in entry.groups.items()},
        group_modules={renames.get(g, g): p for g, p in entry.group_modules.items()},
    )


def _adds_training(entry: MeasuredEntry, node: yaml.Node, budget: ModelBudget) -> bool:
    """An update writes ``training: true`` into an entry measured with a training step
    that has no ``training:`` key (``false`` is the user's word, and stays)."""
    return entry.training and budget.training is None and _value_of(node, "training") is None


def _header(counting: str, headroom: float) -> str:
    return (
        "# Compute budgets checked by pytest-actbudget; record them with\n"
        "# `pytest --actbudget-update` (comments and order here are kept).\n"
        "version: 1\n"
        f"counting:\n  flops: {counting}\n"
        f"defaults:\n  headroom: {format_percent(headroom)}\n"
    )


def _entry_text(
    entry: MeasuredEntry, headroom: float, indent: int, step: int, metrics: Sequence[str]
) -> str:
    """A new entry as a block: ``input``, ``mode``, one flow mapping per group, ``total``."""
    pad, inner = " " * indent, " " * (indent + step)
    lines = [f"{pad}{yaml_key(entry.name)}:"]
    metrics = entry.recorded_metrics(metrics)
    if entry.input is not None:
        lines.append(f"{inner}input: {input_text(entry.input)}")
    if entry.mode is not None:
        lines.append(f"{inner}mode: {entry.mode}")
    if entry.training:
        lines.append(f"{inner}training: true")
    groups = [g for g in entry.group_modules if g in entry.groups]
    if groups:
        lines.append(f"{inner}groups:")
    for group in groups:
        patterns = ", ".join(yaml_quoted(p) for p in entry.group_modules[group])
        values = _flow_values(entry.groups[group], headroom, metrics)
        fields = ", ".join(filter(None, [f"modules: [{patterns}]", values]))
        lines.append(f"{inner}{' ' * step}{yaml_key(group)}: {{{fields}}}")
    total = _flow_values(entry.total, headroom, [m for m in metrics if m in _TOTAL_METRICS])
    if total:
        lines.append(f"{inner}total: {{{total}}}")
    return "\n".join(lines) + "\n"


def _flow_values(measured: Mapping[str, float], headroom: float, metrics: Sequence[str]) -> str:
    return ", ".join(
        f"{metric}: {format_quantity(budget_value(measured[metric], headroom, metric), metric)}"
        for metric in metrics
        if metric in measured
    )


def _created_changes(
    entry: MeasuredEntry, headroom: float, metrics: Sequence[str]
) -> list[BudgetChange]:
    metrics = entry.recorded_metrics(metrics)
    changes = [
        BudgetChange(
            entry.name, group, metric, None, budget_value(values[metric], headroom, metric)
        )
        for group, values in (
            (g, entry.groups[g]) for g in entry.group_modules if g in entry.groups
        )
        for metric in metrics
        if metric in values
    ]
    changes += [
        BudgetChange(entry.name, TOTAL_GROUP, m, None, budget_value(entry.total[m], headroom, m))
        for m in metrics
        if m in entry.total and m in _TOTAL_METRICS
    ]
    return changes


# -- reading the node tree -----------------------------------------------------------


def _mapping_items(node: yaml.Node | None) -> Iterable[tuple[str, yaml.Node]]:
    """(key, value node) of a mapping node; nothing for None or an empty value."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield str(key.value), value


def _value_of(node: yaml.Node | None, key: str) -> yaml.Node | None:
    return next((value for name, value in _mapping_items(node) if name == key), None)


def _key_of(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    return next((k for k, _ in node.value if k.value == key), None)


def _shares_nodes(root: yaml.Node | None) -> bool:
    """Whether a node sits twice in the tree, which is what an alias composes to.
    (Walking the tree costs a tenth of parsing the text again for alias events.)"""
    import yaml

    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return False


def _last_node(node: yaml.Node) -> yaml.Node:
    """The node that ends a block collection: its last scalar or flow collection."""
    import yaml

    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style:
        if not node.value:
            break
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return node


# -- validating and writing ----------------------------------------------------------


def _validated(text: str, path: str) -> BudgetsFile:
    """The new text must load; if not, it is a bug here, and nothing is written."""
    try:
        return parse_budgets(text, path)
    except BudgetFileError as e:
        raise BudgetFileError(
            f"{path}: the updated file would not load ({e}); nothing was written. "
            "Please report this as a pytest-actbudget bug.",
            path=path,
        ) from e


def _check_values(loaded: BudgetsFile, changes: Iterable[BudgetChange], path: str) -> None:
    """Every value written must read back as the budget meant."""
    for change in changes:
        entry = loaded.models.get(change.entry)
        if entry is None:
            read = None
        elif change.group == TOTAL_GROUP:
            read = {**entry.total, **entry.total_growth}.get(change.metric)
        else:
            limits = {g.name: {**g.limits, **g.growth} for g in entry.groups}.get(change.group, {})
            read = limits.get(change.metric)
        if read != change.new:
            raise BudgetFileError(
                f"{path}: the updated file would read {_name(change.entry)}.{change.group}."
                f"{change.metric} as {read}, not {change.new}; nothing was written. "
                "Please report this as a pytest-actbudget bug.",
                path=path,
            )


def _write(path: Path, text: str, name: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as e:
        raise BudgetFileError(f"{name}: cannot write: {e.strerror or e}", path=name) from e


def _name(name: str) -> str:
    """An entry name in a message: ``'resnet18'``; escaped when it holds line breaks or
    other unprintable characters, so that every message stays one line."""
    return f"'{name}'" if name.isprintable() else repr(name)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _text(value: float | None, metric: str) -> str:
    return "-" if value is None else format_quantity(value, metric)
