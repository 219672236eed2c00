"""Growth exponents as text: the failure line and the per-group table of every report.

``attention flops grow as size^2.00 (budget ^1.05) from 128 to 1024: 33.6M -> 2.1G``
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pytest_actbudget.budgets.units import human
from pytest_actbudget.report.style import Palette
from pytest_actbudget.results import GROWTH_METRICS, GROWTH_OF, BudgetResult, GrowthResult

__all__ = [
    "columns",
    "exponent_text",
    "growth_line",
    "growth_rows",
    "html_table",
    "markdown_lines",
    "sizes_text",
    "terminal_lines",
]


def columns(result: BudgetResult) -> tuple[str, ...]:
    """The growth metrics a table shows: all but ``saved_bytes_growth`` when nothing was
    saved for backward at any size (an eval or no-grad forward), unless it is budgeted."""
    shown = []
    for metric in GROWTH_METRICS:
        found = [g for g in result.growth if g.metric == metric]
        if metric == "saved_bytes_growth" and not any(
            any(g.values) or g.budget is not None for g in found
        ):
            continue
        if found:
            shown.append(metric)
    return tuple(shown)


def exponent_text(growth: GrowthResult) -> str:
    """``^2.00``, with the budget when there is one (``^2.00 / ^2.05``); ``0 at 128``
    for a metric that is 0 at some size."""
    if growth.exponent is None:
        return f"0 at {growth.zero_at}" if any(growth.values) else "0"
    text = human(growth.exponent, growth.metric)
    if growth.budget is not None:
        text += f" / {human(growth.budget, growth.metric)}"
    return text


def sizes_text(sizes: Sequence[int]) -> str:
    """``128, 256, 512, 1024``."""
    return ", ".join(str(size) for size in sizes)


def growth_line(growth: GrowthResult) -> str:
    """The failure line of one growth budget (or the measured growth, without one)."""
    metric = GROWTH_OF[growth.metric]
    low, high = min(growth.sizes), max(growth.sizes)
    at_low = growth.values[growth.sizes.index(low)]
    at_high = growth.values[growth.sizes.index(high)]
    if growth.exponent is None:
        shape = f"is 0 at size {growth.zero_at}, so it has no exponent"
    else:
        shape = f"grow as size{human(growth.exponent, growth.metric)}"
    budget = f" (budget {human(growth.budget, growth.metric)})" if growth.budget is not None else ""
    return (
        f"{growth.group} {metric} {shape}{budget} from {low} to {high}: "
        f"{human(at_low, metric)} -> {human(at_high, metric)}"
    )


def growth_rows(result: BudgetResult) -> list[tuple[str, dict[str, GrowthResult]]]:
    """(group, its growth results by metric), in the result's group order."""
    rows: dict[str, dict[str, GrowthResult]] = {}
    for growth in result.growth:
        rows.setdefault(growth.group, {})[growth.metric] = growth
    return list(rows.items())


def terminal_lines(result: BudgetResult, palette: Palette, indent: str = "  ") -> list[str]:
    """The growth table of one entry: ``^measured / ^budget`` per group and metric."""
    if not result.growth:
        return []
    shown = columns(result)
    cells = [
        (group, [exponent_text(by_metric[m]) if m in by_metric else "-" for m in shown])
        for group, by_metric in growth_rows(result)
    ]
    overs = [
        [by_metric.get(m) is not None and by_metric[m].violation is not None for m in shown]
        for _, by_metric in growth_rows(result)
    ]
    heads = [GROWTH_OF[m] for m in shown]
    name_width = max(len("group"), *(len(group) for group, _ in cells))
    widths = [max(len(h), *(len(row[i]) for _, row in cells)) for i, h in enumerate(heads)]
    sizes = sizes_text(result.growth[0].sizes)
    lines = [
        indent
        + palette.paint(
            f"growth over sizes {sizes} (exponent k of metric ~ size^k / budget)", "dim"
        ),
        indent
        + palette.paint(
            "  ".join(
                [
                    f"{'group':<{name_width}}",
                    *(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)),
                ]
            ).rstrip(),
            "dim",
        ),
    ]
    for (group, row), over in zip(cells, overs, strict=True):
        parts = [f"{group:<{name_width}}"]
        for text, width, bad in zip(row, widths, over, strict=True):
            parts.append(palette.paint(f"{text:>{width}}", "bad") if bad else f"{text:>{width}}")
        line = "  ".join(parts).rstrip()
        lines.append(indent + line + (" !" if any(over) else ""))
    return lines


def markdown_lines(result: BudgetResult, escape: Callable[[str], str]) -> list[str]:
    """The growth table of one entry for the Markdown report (empty without growth)."""
    if not result.growth:
        return []
    shown = columns(result)
    heads = ["group", *(escape(GROWTH_OF[m]) for m in shown)]
    lines = [
        f"Growth over sizes {sizes_text(result.growth[0].sizes)} (exponent k of metric ~ "
        "size^k, measured / budget):",
        "",
        "| " + " | ".join(heads) + " |",
        "| :--- |" + " ---: |" * len(shown),
    ]
    for group, by_metric in growth_rows(result):
        cells = []
        for metric in shown:
            found = by_metric.get(metric)
            text = exponent_text(found) if found is not None else "-"
            over = found is not None and found.violation is not None
            cells.append(f"**{escape(text)}** ❌" if over else escape(text))
        lines.append("| " + " | ".join([escape(group), *cells]) + " |")
    return [*lines, ""]


def html_table(result: BudgetResult, escape: Callable[[object], str]) -> str:
    """The growth table of one entry for the HTML report (empty without growth)."""
    if not result.growth:
        return ""
    shown = columns(result)
    head = "".join(f"<th class=num>{escape(GROWTH_OF[m])}</th>" for m in shown)
    rows = []
    for group, by_metric in growth_rows(result):
        over = any(g.violation is not None for g in by_metric.values())
        cells = "".join(
            f'<td class="num">{escape(exponent_text(by_metric[m]) if m in by_metric else "-")}</td>'
            for m in shown
        )
        rows.append(f'<tr class="{"over" if over else "ok"}"><td>{escape(group)}</td>{cells}</tr>')
    caption = (
        f"Growth over sizes {sizes_text(result.growth[0].sizes)} "
        "(exponent k of metric ~ size^k, measured / budget)"
    )
    return (
        f'<p class="meta">{escape(caption)}</p><table class="growth">'
        f"<tr><th>group</th>{head}</tr>{''.join(rows)}</table>"
    )
