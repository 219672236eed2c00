"""The ``act budget summary`` terminal section: groups per entry, layers at ``-v``.

Pure text: the plugin (or the CLI) decides where it goes and whether it has colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_actbudget.report import growth
from pytest_actbudget.report.format import (
    OUTCOME_WORDS,
    bar,
    compared,
    group_use,
    headline,
    human,
    inputs_text,
    ordered,
    over_text,
    shape_text,
    shared_lines,
    uncounted_text,
    use_text,
    warning_lines,
)
from pytest_actbudget.report.style import Palette, Role
from pytest_actbudget.report.training import TRAINING_HEADS, spec_text, training_rows
from pytest_actbudget.results import BudgetResult, GroupResult, LayerStats, Profile

if TYPE_CHECKING:
    from pytest_actbudget.report.baseline import Comparison

__all__ = [
    "entry_lines",
    "group_lines",
    "layer_lines",
    "profile_text",
    "render",
    "training_lines",
]

BAR_WIDTH = 10
_NAME_WIDTH = 24  # longest group name shown before truncating
# The layer table has eight columns: cap the free-text ones so that it stays within
# about 120 columns for any model (real resnet/transformer paths fit uncut).
_MODULE_WIDTH = 28  # indent + module path, truncated on the left beyond it
_TYPE_WIDTH = 18
_GROUP_WIDTH = 14
_INDENT = "  "


def render(
    results: Sequence[BudgetResult],
    *,
    verbose: bool = False,
    color: bool = False,
    depth: int | None = None,
    baseline: Comparison | None = None,
    problems: Sequence[str] = (),
    failed: bool | None = None,
) -> str:
    """The body of the ``act budget summary`` section.

    Entries with violations come first. ``verbose`` adds the per-layer table of every
    entry, down to ``depth`` (root = 0; None: all); ``color`` paints with ANSI codes
    (off for ``NO_COLOR`` or a plain terminal); ``baseline`` adds what changed since.
    ``problems`` are the run's own failures for the headline (``2 entries no test
    checked``), which is red when the run ``failed`` (by default: when a result did not
    pass or there are problems) and green otherwise.
    """
    palette = Palette(color)
    if failed is None:
        failed = bool(problems) or any(not result.passed for result in results)
    lines = [palette.paint(headline(results, problems), "bad" if failed else "good")]
    if baseline is not None:
        lines.append(_plain(baseline.headline()))
    for result in ordered(results):
        lines.append("")
        against = baseline.of(result) if baseline is not None else None
        notes = against.lines(baseline.source) if baseline and against else []
        lines.extend(entry_lines(result, palette, layers=verbose, depth=depth, notes=notes))
    return "\n".join(lines) + "\n"


def entry_lines(
    result: BudgetResult,
    palette: Palette,
    *,
    layers: bool = False,
    depth: int | None = None,
    notes: Sequence[str] = (),
) -> list[str]:
    """One entry: header, what went wrong, groups, uncounted operators, ``notes`` (the
    comparison with a baseline), optional layers."""
    lines = [_header(result, palette)]
    if result.nodeid:
        lines.append(_INDENT + palette.paint(_plain(result.nodeid), "dim"))
    lines.extend(_INDENT + palette.paint(_plain(text), "warn") for text in warning_lines(result))
    if result.violations:
        lines.append(_INDENT + palette.paint(_over_line(result), "bad"))
    if result.outcome in ("error", "no_budget") and result.message:
        # The test's failure shows the whole message; here its first line is enough.
        first, *rest = result.message.splitlines()
        more = " (the rest under FAILURES)" if rest and result.nodeid else ""
        lines.append(_INDENT + palette.outcome(_plain(first) + more, result.outcome))
    lines.extend(_INDENT + palette.paint(_plain(note), "warn") for note in result.notes)
    if result.profile is not None:
        lines.extend(group_lines(result, palette))
        lines.extend(training_lines(result, palette))
        lines.extend(_INDENT + palette.paint(_plain(text), "dim") for text in shared_lines(result))
        lines.extend(growth.terminal_lines(result, palette, _INDENT))
        if result.profile.uncounted_ops:
            text = "uncounted operators: " + uncounted_text(result.profile.uncounted_ops)
            lines.append(_INDENT + palette.paint(text, "warn"))
        lines.extend(_INDENT + _plain(note) for note in notes)
        if result.profile.meta_fallback:
            text = f"traced on {result.profile.traced_on}, not meta: {result.profile.meta_fallback}"
            lines.append(_INDENT + palette.paint(_plain(text), "dim"))
        if layers:
            lines.append("")
            lines.extend(layer_lines(result, palette, depth=depth))
    return lines


def _over_line(result: BudgetResult) -> str:
    """One line for an entry over budget; its violation table is the test's failure."""
    violations = result.violations
    worst = max(violations, key=lambda v: v.over if not v.is_share else v.over / 100.0)
    measured, budget = compared(worst)
    count = len(violations)
    noun = "budget" if count == 1 else "budgets"
    where = "; the table is in the test's failure, under FAILURES" if result.nodeid else ""
    return (
        f"{count} {noun} exceeded, most: {_plain(worst.group)} {worst.metric} {measured} > "
        f"budget {budget} ({over_text(worst)}){where}"
    )


def _header(result: BudgetResult, palette: Palette) -> str:
    parts = [
        palette.paint(_plain(result.name), "bold"),
        palette.outcome(OUTCOME_WORDS.get(result.outcome, result.outcome), result.outcome),
    ]
    if result.profile is not None:
        parts.append(f"{_plain(result.profile.model)}({inputs_text(result.profile.inputs)})")
    parts.append(result.counting)
    if result.location:
        parts.append(result.location)
    return "  ".join(parts)


def group_lines(result: BudgetResult, palette: Palette) -> list[str]:
    """The group table: flops, share with a bar, activations, params, act_bytes and
    budget use (measured / budget, the largest over the group's budgets), the last
    column only when some row has a budget."""
    rows: list[GroupResult] = list(result.groups)
    if result.total is not None:
        rows.append(result.total)
    if not rows:
        return []
    with_use = any(row.budgets for row in rows)
    width = min(max(len("group"), *(len(row.name) for row in rows)), _NAME_WIDTH)
    header = (
        f"{'group':<{width}}  {'flops':>8}  {'share':>6} {'':<{BAR_WIDTH}}  "
        f"{'activations':>11}  {'params':>8}  {'act_bytes':>9}  {'use' if with_use else '':>5}"
    ).rstrip()
    lines = [_INDENT + palette.paint(header, "dim")]
    for row in rows:
        stats = row.stats
        use = group_use(row)
        over = bool(row.violations) or (use is not None and use > 1.0)
        use_cell = f"{use_text(use):>5}" + (" !" if over else "") if with_use else ""
        text = (
            f"{_fit(row.name, width):<{width}}  {human(stats.flops, 'flops'):>8}  "
            f"{human(stats.flops_share, 'flops_share'):>6} "
            f"{palette.paint(bar(stats.flops_share, BAR_WIDTH), 'bar')}  "
            f"{human(stats.activations, 'activations'):>11}  "
            f"{human(stats.params, 'params'):>8}  {human(stats.act_bytes, 'act_bytes'):>9}  "
        )
        role: Role = "bad" if over else ("good" if use is not None else "dim")
        lines.append((_INDENT + text + palette.paint(use_cell, role)).rstrip())
    return lines


def training_lines(result: BudgetResult, palette: Palette) -> list[str]:
    """The training-step block (only for a result measured with one): a title naming
    how the step was costed, then backward beside forward per group."""
    rows = training_rows(result)
    if not rows or result.profile is None or result.profile.training is None:
        return []
    with_use = any(row.use is not None for row in rows)
    heads = TRAINING_HEADS if with_use else TRAINING_HEADS[:-1]
    table = [(_fit(row.cells[0], _NAME_WIDTH), *row.cells[1 : len(heads)]) for row in rows]
    widths = [max(len(head), *(len(row[i]) for row in table)) for i, head in enumerate(heads)]
    right = set(range(1, len(heads)))
    title = f"training step ({spec_text(result.profile.training)})"
    lines = [_INDENT + palette.paint(title, "dim")]
    lines.append(_INDENT + palette.paint(_row(heads, widths, right), "dim"))
    for row, cells in zip(rows, table, strict=True):
        text = _row(cells, widths, right) + (" !" if row.over else "")
        lines.append(_INDENT + (palette.paint(text, "bad") if row.over else text))
    return lines


def layer_lines(result: BudgetResult, palette: Palette, *, depth: int | None = None) -> list[str]:
    """The per-layer table in the style of fastai's ``learn.summary``, down to ``depth``
    (root = 0; None: every module).

    Module paths are indented by depth; containers (their numbers include their
    descendants, as the header says) are dimmed so the leaf rows, which add up, stand
    out. A footer gives the model's totals, as learn.summary and torchinfo end.
    """
    if result.profile is None:
        return []
    profile = result.profile
    layers = [layer for layer in profile.layers if depth is None or layer.depth <= depth]
    cells: list[tuple[str, ...]] = [_layer_cells(result, layer) for layer in layers]
    heads: tuple[str, ...] = (
        "module",
        "type",
        "output shape",
        "params",
        "trainable",
        "flops",
        "activations",
    )
    training = profile.training is not None
    if training:  # backward beside forward, before the group
        heads += ("backward_flops",)
        cells = [
            (*row[:-1], human(layer.backward_flops or 0, "backward_flops"), row[-1])
            for layer, row in zip(layers, cells, strict=True)
        ]
    heads_all = (*heads, "group")
    widths = [max(len(head), *(len(row[i]) for row in cells)) for i, head in enumerate(heads_all)]
    right = {3, 4, 5, 6, 7} if training else {3, 4, 5, 6}  # numbers line up on the right
    hidden = len(profile.layers) - len(layers)
    note = "a container's numbers include its descendants; the leaf rows add up to the total"
    if hidden:
        noun = "module" if hidden == 1 else "modules"
        note += f"; {hidden} {noun} below depth {depth} not shown"
    lines = [
        _INDENT + palette.paint(note, "dim"),
        _INDENT + palette.paint(_row(heads_all, widths, right), "dim"),
    ]
    for layer, row in zip(layers, cells, strict=True):
        text = _row(row, widths, right)
        lines.append(_INDENT + (text if layer.leaf else palette.paint(text, "dim")))
    lines.extend(_INDENT + line for line in _totals(profile.total))
    return lines


def _totals(root: LayerStats) -> list[str]:
    """``total params 11,689,512 (trainable 11,689,512, non-trainable 0)`` and the compute."""
    lines = [
        f"total params {root.params:,}  trainable {root.trainable:,}  "
        f"non-trainable {root.params - root.trainable:,}",
        f"total flops {human(root.flops, 'flops')}  activations "
        f"{human(root.activations, 'activations')}  act_bytes {human(root.act_bytes, 'act_bytes')}",
    ]
    if root.backward_flops is not None and root.train_bytes is not None:
        lines.append(
            f"training step backward_flops {human(root.backward_flops, 'backward_flops')}  "
            f"train_flops {human(root.train_flops or 0, 'train_flops')}  "
            f"train_bytes {human(root.train_bytes, 'train_bytes')}"
        )
    return lines


def profile_text(profile: Profile) -> str:
    """``str(profile)``: a title line and the per-layer table, without colour."""
    result = BudgetResult(
        name="", nodeid="", outcome="passed", counting=profile.counting, profile=profile
    )
    title = f"{_plain(profile.model)}({inputs_text(profile.inputs)})  {profile.counting}"
    return "\n".join([title, *layer_lines(result, Palette(False))])


def _layer_cells(result: BudgetResult, layer: LayerStats) -> tuple[str, ...]:
    label = layer.path or "(root)"
    indent = "  " * max(layer.depth - 1, 0)
    module = indent + _fit_path(label, max(_MODULE_WIDTH - len(indent), 8))
    return (
        module,
        _fit(layer.type, _TYPE_WIDTH),
        shape_text(layer.output_shape) if layer.calls else "(not called)",
        f"{layer.params:,}",
        f"{layer.trainable:,}",  # a count throughout: frozen and partly frozen alike
        human(layer.flops, "flops"),
        human(layer.activations, "activations"),
        _fit(result.group_of(layer.path) or "", _GROUP_WIDTH),
    )


def _row(cells: Sequence[str], widths: Sequence[int], right: set[int]) -> str:
    padded = [
        cell.rjust(width) if index in right else cell.ljust(width)
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(padded).rstrip()


def _fit(text: str, width: int) -> str:
    """Truncate with an ellipsis so one long name cannot push every column right."""
    text = _plain(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _fit_path(path: str, width: int) -> str:
    """Truncate a module path on the left: its last components name the module."""
    path = _plain(path)
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def _plain(text: str) -> str:
    """A name from user code as one printable line: a newline or an escape sequence in
    a module or entry name must not break the table or drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
