"""The HTML report: one self-contained file with inline CSS and SVG charts.

No script, no font, no image and no URL of any kind: opening the file makes no
request. Every string taken from user code goes through :func:`_e` (``html.escape``
with quotes), in text and in attributes alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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
    shape_text,
    shared_lines,
    uncounted_text,
    use_text,
    warning_lines,
)
from pytest_actbudget.report.growth_chart import growth_chart
from pytest_actbudget.report.html_charts import (
    COLOURS,
    OTHER_COLOUR,
    group_chart,
    group_colours,
    use_chart,
)
from pytest_actbudget.report.html_charts import escape as _e
from pytest_actbudget.report.html_layers import layer_chart
from pytest_actbudget.report.training import TRAINING_HEADS, spec_text, training_rows
from pytest_actbudget.results import BudgetResult, GroupResult

if TYPE_CHECKING:
    from pytest_actbudget.report.baseline import Comparison, EntryBaseline

__all__ = ["render"]

_CSS = (
    """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em;
       color: #1f2328; background: #fff; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
.headline { font-size: 1.1em; font-weight: 600; }
.headline.bad { color: #cf222e; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: 2px 10px; border-bottom: 1px solid #d0d7de; text-align: left;
         vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.outcome { padding: 1px 6px; border-radius: 4px; font-size: .8em; color: #fff; }
.outcome.passed { background: #1a7f37; }
.outcome.over_budget, .outcome.error { background: #cf222e; }
.outcome.no_budget { background: #9a6700; }
.meta, .nodeid { color: #59636e; }
.message { white-space: pre-wrap; color: #9a6700; font-family: ui-monospace, monospace; }
.message.over_budget { color: #cf222e; }
tr.over td:first-child, td.over { color: #cf222e; font-weight: 600; }
.budget-value { display: block; color: #59636e; font-size: .85em; }
.overshoot { display: block; color: #cf222e; font-size: .85em; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 32px; }
figure { margin: 0 0 1em; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg text { font: 11px ui-monospace, "SFMono-Regular", Menlo, monospace; fill: #1f2328; }
svg text.over { fill: #cf222e; font-weight: 700; }
svg text.band-name { font-weight: 700; }
svg .bar.over { fill: #cf222e; }
svg .budget { stroke: #1f2328; stroke-width: 3; }
svg .budget.share { stroke: #8250df; stroke-width: 2; stroke-dasharray: 3 2; }
svg .budget.full { stroke-width: 1.5; stroke-dasharray: 4 3; }
svg rect.band { fill-opacity: .14; }
.legend { font-weight: normal; color: #59636e; font-size: .85em; }
ul.legend-keys { list-style: none; padding: 0; margin: 4px 0; display: flex;
                 flex-wrap: wrap; gap: 4px 16px; font-size: .9em; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
          vertical-align: -1px; border-radius: 2px; }
details { margin: .5em 0 1em; } code { font-size: .95em; }
.baseline-headline { font-weight: 600; }
td.baseline.grew { color: #cf222e; } td.baseline.shrank { color: #1a7f37; }
td.baseline.new { color: #9a6700; }
.zero-layers p { color: #59636e; max-width: 1100px; }
"""
    + "".join(
        f".g{index} {{ fill: {colour}; background: {colour}; }}\n"
        for index, colour in enumerate(COLOURS)
    )
    + f".gother {{ fill: {OTHER_COLOUR}; background: {OTHER_COLOUR}; }}\n"
    + ".gnone, .gtotal { fill: #57606a; background: #57606a; }\n"
)


def render(results: Sequence[BudgetResult], baseline: Comparison | None = None) -> str:
    """The whole report as one HTML document; with ``baseline``, what changed since it."""
    entries = ordered(results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>act budget report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>act budget summary</h1>",
        _headline(results),
        _baseline_headline(baseline),
        _violations(entries),
        _index(entries, baseline),
        *(_entry(index, result, baseline) for index, result in enumerate(entries)),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _violations(results: Sequence[BudgetResult]) -> str:
    rows = [
        "<tr>"
        f'<td><a href="#entry-{index}">{_e(result.name)}</a></td>'
        f"<td>{_e(violation.group)}</td><td>{_e(violation.metric)}</td>"
        + "".join(f'<td class="num">{_e(text)}</td>' for text in compared(violation))
        + f'<td class="num">{_e(over_text(violation))}</td></tr>'
        for index, result in enumerate(results)
        for violation in result.violations
    ]
    if not rows:
        return ""
    return (
        '<section id="violations"><h2>Over budget</h2><table>'
        "<tr><th>entry</th><th>group</th><th>metric</th><th class=num>measured</th>"
        "<th class=num>budget</th><th class=num>over</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def _index(results: Sequence[BudgetResult], baseline: Comparison | None = None) -> str:
    """One row per entry, linking to its section: the way in for a large suite."""
    rows = []
    for index, result in enumerate(results):
        against = baseline.of(result) if baseline is not None else None
        profile = result.profile
        uses = [use for group in _groups(result) if (use := group_use(group)) is not None]
        cells = (
            human(profile.total.flops, "flops") if profile else "-",
            human(profile.total.activations, "activations") if profile else "-",
            human(profile.total.params, "params") if profile else "-",
            use_text(max(uses)) if uses else "-",
        )
        word = OUTCOME_WORDS.get(result.outcome, result.outcome)
        rows.append(
            f'<tr><td><a href="#entry-{index}">{_e(result.name)}</a></td>'
            f'<td><span class="outcome {_e(result.outcome)}">{_e(word)}</span></td>'
            + "".join(f'<td class="num">{_e(cell)}</td>' for cell in cells)
            + (f"<td>{_e(against.summary())}</td>" if against is not None else "")
            + "</tr>"
        )
    extra = "<th>vs baseline</th>" if baseline is not None else ""
    return (
        '<section id="entries"><h2>Entries</h2><table><tr><th>entry</th><th>outcome</th>'
        "<th class=num>flops</th><th class=num>activations</th><th class=num>params</th>"
        f"<th class=num>max budget use</th>{extra}</tr>" + "".join(rows) + "</table></section>"
    )


def _baseline_headline(baseline: Comparison | None) -> str:
    if baseline is None:
        return ""
    from pytest_actbudget.report import html_baseline

    return html_baseline.headline(baseline)


def _groups(result: BudgetResult) -> tuple[GroupResult, ...]:
    return (*result.groups, *((result.total,) if result.total else ()))


def _headline(results: Sequence[BudgetResult]) -> str:
    bad = any(not result.passed for result in results)
    return f'<p class="headline{" bad" if bad else ""}">{_e(headline(results))}</p>'


def _entry(index: int, result: BudgetResult, baseline: Comparison | None = None) -> str:
    against = baseline.of(result) if baseline is not None else None
    word = OUTCOME_WORDS.get(result.outcome, result.outcome)
    parts = [
        f'<section class="entry {_e(result.outcome)}" id="entry-{index}">',
        f'<h2>{_e(result.name)} <span class="outcome {_e(result.outcome)}">{_e(word)}</span></h2>',
    ]
    meta = []
    if result.profile is not None:
        meta.append(
            f"<code>{_e(result.profile.model)}</code> on {_e(inputs_text(result.profile.inputs))}"
        )
    meta.append(f"counting: {_e(result.counting)}")
    if result.location:
        meta.append(f"budgets: {_e(result.location)}")
    parts.append(f'<p class="meta">{" · ".join(meta)}</p>')
    if result.nodeid:
        parts.append(f'<p class="nodeid"><code>{_e(result.nodeid)}</code></p>')
    parts.extend(f'<p class="uncounted">{_e(text)}</p>' for text in warning_lines(result))
    if result.message and result.outcome != "passed":
        # The comparison the message ends with has its own table below.
        message = result.message
        if against is not None:
            from pytest_actbudget.report.baseline import without_comparison

            message = without_comparison(message)
        parts.append(f'<p class="message {_e(result.outcome)}">{_e(message)}</p>')
    if result.profile is not None:
        colours = group_colours(result)
        parts.append(use_chart(result, colours))
        parts.append(_groups_table(result, against))
        parts.extend(f'<p class="meta">{_e(text)}</p>' for text in shared_lines(result))
        parts.append(_training_table(result))  # backward beside forward, under the groups
        if baseline is not None and against is not None:
            from pytest_actbudget.report import html_baseline

            parts.append(html_baseline.entry_section(against, baseline.source))
        if result.growth:
            parts += [growth.html_table(result, _e), growth_chart(result)]
        if result.groups:
            parts.append('<div class="charts">')
            parts.append(group_chart(result, colours, "flops", "flops_share", "FLOPs per group"))
            parts.append(
                group_chart(result, colours, "activations", "act_share", "Activations per group")
            )
            parts.append("</div>")
        parts.append(layer_chart(result, colours))
        parts.append(_layers_table(result))
        if result.profile.uncounted_ops:
            ops = uncounted_text(result.profile.uncounted_ops)
            parts.append(f'<p class="uncounted">Uncounted operators: {_e(ops)}</p>')
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


# The metrics of the groups table; a budget on a share shows in the column of its share.
_TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("flops", "flops"),
    ("flops_share", "flops share"),
    ("activations", "activations"),
    ("act_share", "act share"),
    ("params", "params"),
    ("act_bytes", "act_bytes"),
)


def _groups_table(result: BudgetResult, against: EntryBaseline | None = None) -> str:
    """Measured values, each with its budget written under it and the overshoot in red;
    budgets on metrics without a column are listed in the last one."""
    columns = [metric for metric, _ in _TABLE_METRICS]
    heads = "".join(f"<th class=num>{_e(head)}</th>" for _, head in _TABLE_METRICS)
    rows = []
    for group in _groups(result):
        use = group_use(group)
        over = bool(group.violations) or (use is not None and use > 1.0)
        cells = "".join(_metric_cell(group, metric) for metric in columns)
        others = ", ".join(
            f"{metric} ≤ {human(value, metric)}"
            for metric, value in group.budgets.items()
            if metric not in columns
        )
        rows.append(
            f'<tr class="{"over" if over else "ok"}" data-group="{_e(group.name)}">'
            f"<td>{_e(group.name)}</td>{cells}"
            f'<td class="num{" over" if over else ""}">{_e(use_text(use))}</td>'
            f"<td>{_e(others)}</td>{_group_baseline(against, group.name)}</tr>"
        )
    return (
        '<table class="groups"><tr><th>group</th>'
        f"{heads}<th class=num>budget use</th><th>other budgets</th>"
        f"{'<th>vs baseline</th>' if against is not None else ''}</tr>"
        f"{''.join(rows)}</table>"
    )


def _group_baseline(against: EntryBaseline | None, group: str) -> str:
    if against is None:
        return ""
    from pytest_actbudget.report import html_baseline

    return html_baseline.group_cell(against, group)


def _metric_cell(group: GroupResult, metric: str) -> str:
    measured = human(group.stats.metric(metric), metric)
    if metric not in group.budgets:
        return f'<td class="num">{_e(measured)}</td>'
    budget = group.budgets[metric]
    violation = next((v for v in group.violations if v.metric == metric), None)
    if violation is None:
        return (
            f'<td class="num">{_e(measured)}'
            f'<span class="budget-value">budget {_e(human(budget, metric))}</span></td>'
        )
    shown, limit = compared(violation)
    return (
        f'<td class="num over" data-metric="{_e(metric)}">{_e(shown)}'
        f'<span class="budget-value">budget {_e(limit)}</span>'
        f'<span class="overshoot">{_e(over_text(violation))} over</span></td>'
    )


def _training_table(result: BudgetResult) -> str:
    """Backward beside forward per group, for a result measured with a training step."""
    rows = training_rows(result)
    if not rows or result.profile is None or result.profile.training is None:
        return ""
    body = "".join(
        f'<tr class="{"over" if over else "ok"}"><td>{_e(cells[0])}</td>'
        + "".join(f'<td class="num">{_e(cell)}</td>' for cell in cells[1:])
        + "</tr>"
        for _, cells, _, over in rows
    )
    head = "".join(
        f"<th{' class=num' if index else ''}>{_e(head)}</th>"
        for index, head in enumerate(TRAINING_HEADS)
    )
    title = f"Training step ({spec_text(result.profile.training)})"
    return f'<p class="meta">{_e(title)}</p><table class="training"><tr>{head}</tr>{body}</table>'


def _layers_table(result: BudgetResult) -> str:
    """Every module, learn.summary style, folded away: the charts come first."""
    assert result.profile is not None
    heads = ("module", "type", "output shape", "params", "trainable", "flops", "activations")
    rows = []
    for layer in result.profile.layers:
        label = layer.path or f"({result.profile.model})"
        indent = f"padding-left: {0.3 + layer.depth:.1f}em"
        cells = (
            shape_text(layer.output_shape) if layer.calls else "(not called)",
            f"{layer.params:,}",
            f"{layer.trainable:,}",
            human(layer.flops, "flops"),
            human(layer.activations, "activations"),
        )
        rows.append(
            f'<tr><td style="{indent}"><code>{_e(label)}</code></td><td>{_e(layer.type)}</td>'
            + "".join(f'<td class="num">{_e(cell)}</td>' for cell in cells)
            + f"<td>{_e(result.group_of(layer.path) or '')}</td></tr>"
        )
    head = "".join(f"<th{' class=num' if i > 1 else ''}>{h}</th>" for i, h in enumerate(heads))
    return (
        f"<details><summary>All {len(rows)} modules (numbers include descendants)</summary>"
        f'<table class="layers"><tr>{head}<th>group</th></tr>{"".join(rows)}</table></details>'
    )
