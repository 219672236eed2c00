"""Inline SVG bar charts for the HTML report: per group with budget lines, per layer.

Plain SVG elements with ``<title>`` tooltips: they render without any script and
carry their exact numbers for whoever hovers or parses them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from pytest_actbudget.report.format import human
from pytest_actbudget.results import BudgetResult

__all__ = ["group_chart", "layer_chart"]

_LABEL = 150  # px for the group / layer label column
_BAR = 250  # px for the longest bar of a group chart (two charts fit side by side)
_ROW = 20  # px per group row
_COLUMN = 170  # px per metric column of the layer chart
_LAYER_ROW = 16  # px per layer row


def escape(text: object) -> str:
    """Escape for HTML text and attribute values alike."""
    return html.escape(str(text), quote=True)


_e = escape


@dataclass(frozen=True)
class _Budget:
    """A budget drawn as a vertical line over a group's bar."""

    value: float  # in the chart's metric
    label: str
    share: bool  # drawn dashed: it comes from a share budget


def group_chart(result: BudgetResult, metric: str, share_metric: str, title: str) -> str:
    """Horizontal bars of ``metric`` per group, each group's budget drawn as a line.

    A share budget (``flops_share: 15%``) is drawn at that fraction of the model's
    total, dashed, so both kinds of budget sit on the same axis as the bar.
    """
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
                _Budget(share * total, f"budget {human(share, share_metric)}", share=True)
            )
        rows.append((group.name, group.stats.metric(metric), budgets))
    scale = max([1.0] + [value for _, value, _ in rows] + [b.value for *_, bs in rows for b in bs])
    height = _ROW * max(len(rows), 1) + 4
    width = _LABEL + _BAR + 80
    parts = [
        f'<figure class="chart group-chart {_e(metric)}"><figcaption>{_e(title)} '
        '<span class="legend">(line: budget, dashed: share budget)</span></figcaption>',
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
    ]
    for index, (name, value, budgets) in enumerate(rows):
        y = index * _ROW + 2
        length = _BAR * value / scale
        over = any(value > budget.value for budget in budgets)
        # The value's label goes past the bar and past its budget lines, never on them.
        label_at = max([length] + [_BAR * budget.value / scale for budget in budgets])
        parts.append(
            f'<text x="{_LABEL - 6}" y="{y + 13}" text-anchor="end">{_e(_short(name, 22))}</text>'
            f'<rect class="bar{" over" if over else ""}" data-group="{_e(name)}" '
            f'x="{_LABEL}" y="{y + 2}" width="{length:.1f}" height="{_ROW - 6}">'
            f"<title>{_e(name)}: {human(value, metric)} {_e(metric)}</title></rect>"
            f'<text x="{_LABEL + label_at + 5:.1f}" y="{y + 13}">{human(value, metric)}</text>'
        )
        for budget in budgets:
            x = _LABEL + _BAR * budget.value / scale
            parts.append(
                f'<line class="budget{" share" if budget.share else ""}" data-group="{_e(name)}" '
                f'x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + _ROW - 1}">'
                f"<title>{_e(name)}: {_e(budget.label)}</title></line>"
            )
    parts.append("</svg></figure>")
    return "".join(parts)


def layer_chart(result: BudgetResult) -> str:
    """Leaf modules in forward order, with bars for flops, activations and params side
    by side, each scaled to its own largest layer: the picture of large early
    activations and parameters growing later."""
    assert result.profile is not None
    leaves = [layer for layer in result.profile.layers if layer.leaf and layer.calls]
    metrics = ("flops", "activations", "params")
    peaks = {metric: max([1] + [layer.metric(metric) for layer in leaves]) for metric in metrics}
    label = _LABEL + 110
    height = _LAYER_ROW * (len(leaves) + 1) + 4
    width = label + _COLUMN * len(metrics)
    parts = [
        '<figure class="chart layer-chart"><figcaption>Per layer, in forward order '
        "(leaf modules; each column scaled to its largest layer)</figcaption>",
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="per-layer chart">',
    ]
    for column, metric in enumerate(metrics):
        parts.append(f'<text x="{label + column * _COLUMN}" y="12">{metric}</text>')
    for index, layer in enumerate(leaves, start=1):
        y = index * _LAYER_ROW + 2
        name = layer.path or f"({layer.type})"
        parts.append(
            f'<text x="{label - 6}" y="{y + 11}" text-anchor="end">'
            f"{_e(_short(name, 24))} {_e(_short(layer.type, 14))}<title>{_e(name)} "
            f"({_e(layer.type)})</title></text>"
        )
        for column, metric in enumerate(metrics):
            value = layer.metric(metric)
            length = (_COLUMN - 60) * value / peaks[metric]
            x = label + column * _COLUMN
            parts.append(
                f'<rect class="bar {metric}" data-layer="{_e(name)}" x="{x}" y="{y + 2}" '
                f'width="{length:.1f}" height="{_LAYER_ROW - 4}"><title>{_e(name)}: '
                f"{human(value, metric)} {metric}</title></rect>"
                f'<text x="{x + length + 3:.1f}" y="{y + 11}">{human(value, metric)}</text>'
            )
    parts.append("</svg></figure>")
    return "".join(parts)


def _short(text: str, width: int) -> str:
    """Keep the end of a long name: the last path components say the most."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]
