"""The log-log growth chart of the HTML report: one line per group, its budget beside it.

Plain SVG, no script: on log-log axes a power law is a straight line whose slope is its
exponent, so a group's measured line and its budgeted slope (dashed, from the same
first point) read side by side. Every point carries its numbers in a ``<title>``.
"""

from __future__ import annotations

import math

from pytest_actbudget.budgets.units import human
from pytest_actbudget.report.html_charts import escape as _e
from pytest_actbudget.results import GROWTH_OF, BudgetResult, GrowthResult

__all__ = ["growth_chart"]

_WIDTH, _MIN_HEIGHT = 420, 240
_LEGEND_ROW = 15
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 120, 12, 28  # the legend sits on the right
_COLOURS = ("#0969da", "#bf8700", "#8250df", "#1a7f37", "#cf222e", "#57606a", "#bc4c00")


def growth_chart(result: BudgetResult, metric: str = "flops_growth") -> str:
    """The chart of ``metric`` for one entry; empty when no group has an exponent."""
    lines = [g for g in result.growth if g.metric == metric and g.exponent is not None]
    if not lines:
        return ""
    sizes = lines[0].sizes
    xs = [math.log(s) for s in sizes]
    x_low, x_high = min(xs), max(xs)
    ys: list[float] = []
    for g in lines:
        ys += [math.log(v) for v in g.values]
        if g.budget is not None:
            ys.append(_budget_end(g, x_low, x_high))
    y_low, y_high = min(ys), max(ys)
    if y_high - y_low < 1e-9:
        y_low, y_high = y_low - 1, y_high + 1
    height = max(_MIN_HEIGHT, _TOP + _BOTTOM + _LEGEND_ROW * (len(lines) + 1))
    inner_w, inner_h = _WIDTH - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x_low) / (x_high - x_low) * inner_w

    def py(y: float) -> float:
        return _TOP + (y_high - y) / (y_high - y_low) * inner_h

    base = GROWTH_OF[metric]
    parts = [
        f'<svg class="growth" width="{_WIDTH}" height="{height}" role="img" '
        f'aria-label="{_e(base)} against input size, log-log">',
        f'<rect class="track" x="{_LEFT}" y="{_TOP}" width="{inner_w}" height="{inner_h}"/>',
    ]
    for size, x in zip(sizes, xs, strict=True):
        parts.append(f'<text x="{px(x):.1f}" y="{height - 10}" text-anchor="middle">{size}</text>')
    for y in (y_low, y_high):
        parts.append(
            f'<text x="{_LEFT - 4}" y="{py(y) + 4:.1f}" text-anchor="end">'
            f"{_e(human(math.exp(y), base))}</text>"
        )
    for index, g in enumerate(lines):
        colour = _COLOURS[index % len(_COLOURS)]
        points = " ".join(
            f"{px(x):.1f},{py(math.log(v)):.1f}" for x, v in zip(xs, g.values, strict=True)
        )
        over = g.violation is not None
        parts.append(
            f'<polyline class="measured{" over" if over else ""}" fill="none" '
            f'stroke="{colour}" stroke-width="{3 if over else 2}" points="{points}">'
            f"<title>{_e(_caption(g))}</title></polyline>"
        )
        for size, x, v in zip(sizes, xs, g.values, strict=True):
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(math.log(v)):.1f}" r="2.5" fill="{colour}">'
                f"<title>{_e(f'{g.group} {base} at {size}: {human(v, base)}')}</title></circle>"
            )
        if g.budget is not None:
            y0 = math.log(g.values[0]) - g.budget * (xs[0] - x_low)
            parts.append(
                f'<line class="budget-slope" x1="{px(x_low):.1f}" y1="{py(y0):.1f}" '
                f'x2="{px(x_high):.1f}" y2="{py(_budget_end(g, x_low, x_high)):.1f}" '
                f'stroke="{colour}" stroke-dasharray="5 3" stroke-width="1.5">'
                f"<title>{_e(f'{g.group} budget ^{g.budget:.2f}')}</title></line>"
            )
        label = f"{g.group} {human(g.exponent or 0.0, metric)}"
        if g.budget is not None:
            label += f" / {human(g.budget, metric)}"
        legend_y = _TOP + 12 + index * _LEGEND_ROW
        parts.append(
            f'<text x="{_WIDTH - _RIGHT + 8}" y="{legend_y}" fill="{colour}">{_e(label)}</text>'
        )
    parts.append("</svg>")
    caption = f"{base} against input size (log-log; dashed: the budgeted slope)"
    return f"<figure><figcaption>{_e(caption)}</figcaption>{''.join(parts)}</figure>"


def _budget_end(growth: GrowthResult, x_low: float, x_high: float) -> float:
    """log of the metric at the largest size if it grew exactly at its budget from the
    first measured point."""
    assert growth.budget is not None
    first = math.log(growth.values[0]) - growth.budget * (math.log(growth.sizes[0]) - x_low)
    return first + growth.budget * (x_high - x_low)


def _caption(growth: GrowthResult) -> str:
    from pytest_actbudget.report.growth import growth_line

    return growth_line(growth)
