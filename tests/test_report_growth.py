"""Growth exponents in the reports: terminal table, Markdown table, HTML table and chart.

The numbers: attention flops 2048 n^2 (^2.00, over its budget ^1.05), mlp flops 4096 n
(^1.00 within ^1.05), at n = 128 and 256: 33,554,432 -> 134,217,728 and 524,288 ->
1,048,576. Nothing was saved for backward (an eval forward), so saved_bytes is left out.
"""

from __future__ import annotations

import re

from profiles import toy_profile

from pytest_actbudget.report import html, markdown, terminal
from pytest_actbudget.report.growth_chart import growth_chart
from pytest_actbudget.results import BudgetResult, GrowthResult

SIZES = (128, 256)


def _growth(
    group: str, flops: tuple[float, float], k: float, budget: float | None
) -> list[GrowthResult]:
    return [
        GrowthResult(group, "flops_growth", SIZES, flops, k, budget),
        GrowthResult(group, "activations_growth", SIZES, (0, 0), None),
        GrowthResult(group, "act_bytes_growth", SIZES, (1024, 2048), 1.0),
        GrowthResult(group, "saved_bytes_growth", SIZES, (0, 0), None),
    ]


RESULT = BudgetResult(
    name="decoder<1>",
    nodeid="t.py::t",
    outcome="over_budget",
    counting="fvcore",
    profile=toy_profile(),
    growth=(
        *_growth("attention", (2048 * 128**2, 2048 * 256**2), 2.0, 1.05),
        *_growth("mlp", (4096 * 128, 4096 * 256), 1.0, 1.05),
    ),
)


def test_terminal_growth_table() -> None:
    from pytest_actbudget.report.growth import terminal_lines
    from pytest_actbudget.report.style import Palette

    assert terminal_lines(RESULT, Palette(False)) == [
        "  growth over sizes 128, 256 (exponent k of metric ~ size^k / budget)",
        "  group              flops  activations  act_bytes",
        "  attention  ^2.00 / ^1.05            0      ^1.00 !",
        "  mlp        ^1.00 / ^1.05            0      ^1.00",
    ]
    assert "most: attention flops_growth ^2.00 > budget ^1.05 (+0.95)" in terminal.render([RESULT])


def test_markdown_growth_table() -> None:
    text = markdown.render([RESULT])
    assert (
        "Growth over sizes 128, 256 (exponent k of metric ~ size^k, measured / budget):\n\n"
        "| group | flops | activations | act\\_bytes |\n"
        "| :--- | ---: | ---: | ---: |\n"
        "| attention | **^2.00 / ^1.05** ❌ | 0 | ^1.00 |\n"
        "| mlp | ^1.00 / ^1.05 | 0 | ^1.00 |\n"
    ) in text
    assert "| decoder&lt;1&gt; | attention | flops_growth | ^2.00 | ^1.05 | +0.95 |" in text


def test_html_growth_chart() -> None:
    page = html.render([RESULT])
    assert '<table class="growth"><tr><th>group</th><th class=num>flops</th>' in page
    assert '<tr class="over"><td>attention</td><td class="num">^2.00 / ^1.05</td>' in page
    chart = growth_chart(RESULT)
    assert chart in page
    assert chart.count("<polyline") == 2  # one line per group with an exponent
    assert chart.count('class="budget-slope"') == 2  # each budget drawn beside it
    assert 'class="measured over"' in chart  # attention is over its budget
    assert "attention flops grow as size^2.00 (budget ^1.05) from 128 to 256" in chart
    assert not re.search(r"https?:|<script", chart)
    assert growth_chart(BudgetResult("x", "", "passed", "fvcore")) == ""
