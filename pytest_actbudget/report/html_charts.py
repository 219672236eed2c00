"""Inline SVG charts of an entry's groups for the HTML report: budget use, and one
absolute metric per chart with its budgets drawn and written out.

Plain SVG elements: they render without any script. Every number a reader needs is
page text (a label beside the bar); the ``<title>`` tooltips only repeat it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_actbudget.report.format import human, over_text, use_text
from pytest_actbudget.results import OTHER_GROUP, BudgetResult, GroupResult, Violation

__all__ = ["COLOURS", "escape", "group_chart", "group_colours", "label_width", "use_chart"]

#: Group colours, in the entry's group order (then again); red is kept for "over budget"
#: and grey for "(other)".
COLOURS: tuple[str, ...] = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#b279a2",
    "#72b7b2",
    "#b8860b",
    "#9d755d",
    "#e377c2",
)
OTHER_COLOUR = "#8c959f"

_CHAR = 7.0  # px per character of the 11px monospace labels (measured in Chromium: 6.6)
_BAR = 260  # px of the longest bar
_ROW = 22  # px per group row
_TEXT = 330  # px left for the label after a bar: "1.0G · budget 1.1G · share budget ..."


def escape(text: object) -> str:
    """Escape for HTML text and attribute values alike."""
    return html.escape(str(text), quote=True)


_e = escape


def group_colours(result: BudgetResult) -> dict[str, str]:
    """The CSS class of each group's colour: ``g0``.. in the entry's order, ``gother``
    for ``(other)``; the same in every chart and legend of the entry."""
    classes = {}
    index = 0
    for group in result.groups:
        if group.name == OTHER_GROUP:
            classes[group.name] = "gother"
        else:
            classes[group.name] = f"g{index % len(COLOURS)}"
            index += 1
    return classes


def label_width(names: Iterable[str]) -> int:
    """Pixels for a column of labels, so that the longest is shown whole."""
    return int(max([8, *(len(name) for name in names)]) * _CHAR) + 12


@dataclass(frozen=True)
class _Use:
    """A group's largest budget use, with the metric it is in."""

    group: GroupResult
    metric: str | None  # None: the group has no budget
    use: float

    @property
    def violation(self) -> Violation | None:
        return next((v for v in self.group.violations if v.metric == self.metric), None)


def _largest_use(group: GroupResult) -> _Use:
    uses = [
        (use, metric) for metric in group.budgets if (use := group.budget_use(metric)) is not None
    ]
    if not uses:
        return _Use(group, None, 0.0)
    use, metric = max(uses, key=lambda pair: pair[0])
    return _Use(group, metric, use)


def use_chart(result: BudgetResult, colours: Mapping[str, str]) -> str:
    """One bar per group (and the total): measured / budget of its most used budget,
    with a line at 100%. A group over budget is red and says by how much, whatever the
    absolute sizes of the groups: the one chart where a small stem over budget is as
    visible as a large stage within."""
    rows = [_largest_use(group) for group in _with_total(result)]
    if not any(row.metric for row in rows):
        return ""
    finite = [row.use for row in rows if math.isfinite(row.use)]
    scale = max([1.0, *finite])
    label = label_width(row.group.name for row in rows)
    width, height = label + _BAR + _TEXT, _ROW * len(rows) + 8
    parts = [
        '<figure class="chart use-chart"><figcaption>Budget use per group '
        '<span class="legend">(measured / budget, the most used budget of each group; '
        "line: 100%)</span></figcaption>",
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="budget use per group">',
    ]
    for index, row in enumerate(rows):
        y = index * _ROW + 4
        name = row.group.name
        over = row.use > 1.0
        length = _BAR if math.isinf(row.use) else _BAR * row.use / scale
        text = _use_label(row)
        colour = "over" if over else colours.get(name, "gtotal")
        parts.append(
            f'<g class="use-row{" over" if over else ""}" data-group="{_e(name)}">'
            f'<text class="name" x="{label - 6}" y="{y + 14}" text-anchor="end">{_e(name)}</text>'
        )
        if row.metric is not None:
            parts.append(
                f'<rect class="bar {colour}" x="{label}" y="{y + 3}" width="{length:.1f}" '
                f'height="{_ROW - 8}"><title>{_e(name)}: {_e(text)}</title></rect>'
            )
        at = label + max(length, _BAR / scale) + 6  # past the bar and the 100% line
        parts.append(
            f'<text class="value{" over" if over else ""}" x="{at:.1f}" y="{y + 14}">'
            f"{_e(text)}</text></g>"
        )
    x = label + _BAR / scale
    parts.append(
        f'<line class="budget full" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}">'
        "<title>100% of the budget</title></line></svg></figure>"
    )
    return "".join(parts)


def _use_label(row: _Use) -> str:
    """``91% of the flops budget`` or ``364% of the flops budget: +263.8% over``."""
    if row.metric is None:
        return "no budget"
    text = f"{use_text(row.use)} of the {row.metric} budget"
    violation = row.violation
    if violation is not None:
        return f"{text}: {over_text(violation)} over"
    return text


@dataclass(frozen=True)
class _Budget:
    """A budget drawn as a vertical line over a group's bar."""

    value: float  # in the chart's metric
    text: str  # as the page writes it
    share: bool  # from a share budget: drawn dashed and taller than the bar


def group_chart(
    result: BudgetResult, colours: Mapping[str, str], metric: str, share_metric: str, title: str
) -> str:
    """Horizontal bars of ``metric`` per group, each budget drawn as a line and written
    beside the bar: ``1.0G · budget 1.1G``. A share budget (``flops_share: 15%``) is drawn
    at that fraction of the model's total, dashed and taller, so that it stays visible
    where it coincides with the absolute budget."""
    assert result.profile is not None
    total = result.profile.total.metric(metric)
    rows = []
    for group in result.groups:
        budgets = []
        if metric in group.budgets:
            limit = group.budgets[metric]
            budgets.append(_Budget(limit, f"budget {human(limit, metric)}", share=False))
        if share_metric in group.budgets:
            share = group.budgets[share_metric]
            budgets.append(
                _Budget(
                    share * total,
                    f"share budget {human(share, share_metric)} = {human(share * total, metric)}",
                    share=True,
                )
            )
        rows.append((group, group.stats.metric(metric), budgets))
    scale = max([1.0] + [value for _, value, _ in rows] + [b.value for *_, bs in rows for b in bs])
    label = label_width(group.name for group, _, _ in rows)
    width, height = label + _BAR + _TEXT, _ROW * max(len(rows), 1) + 4
    parts = [
        f'<figure class="chart group-chart {_e(metric)}"><figcaption>{_e(title)} '
        '<span class="legend">(solid line: budget; dashed: share budget)</span></figcaption>',
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
    ]
    for index, (group, value, budgets) in enumerate(rows):
        y = index * _ROW + 2
        name = group.name
        length = _BAR * value / scale
        over = any(v.metric in (metric, share_metric) for v in group.violations)
        # The label goes past the bar and past its budget lines, never on them.
        label_at = max([length] + [_BAR * budget.value / scale for budget in budgets])
        text = " · ".join([human(value, metric), *(budget.text for budget in budgets)])
        overs = [over_text(v) for v in group.violations if v.metric in (metric, share_metric)]
        if overs:
            text += f": {', '.join(overs)} over"
        colour = "over" if over else colours.get(name, "")
        parts.append(
            f'<g class="group-row{" over" if over else ""}" data-group="{_e(name)}">'
            f'<text class="name" x="{label - 6}" y="{y + 14}" text-anchor="end">{_e(name)}</text>'
            f'<rect class="bar {colour}" data-group="{_e(name)}" '
            f'x="{label}" y="{y + 4}" width="{length:.1f}" height="{_ROW - 8}">'
            f"<title>{_e(name)}: {human(value, metric)} {_e(metric)}</title></rect>"
        )
        for budget in budgets:
            x = label + _BAR * budget.value / scale
            top, bottom = (y, y + _ROW) if budget.share else (y + 2, y + _ROW - 2)
            parts.append(
                f'<line class="budget{" share" if budget.share else ""}" data-group="{_e(name)}" '
                f'x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}">'
                f"<title>{_e(name)}: {_e(budget.text)}</title></line>"
            )
        parts.append(
            f'<text class="value{" over" if over else ""}" x="{label + label_at + 6:.1f}" '
            f'y="{y + 14}">{_e(text)}</text></g>'
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def _with_total(result: BudgetResult) -> tuple[GroupResult, ...]:
    return (*result.groups, *((result.total,) if result.total else ()))
