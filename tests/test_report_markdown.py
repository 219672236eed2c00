"""The Markdown report ($GITHUB_STEP_SUMMARY, PR comments): numbers of test_report_samples."""

from __future__ import annotations

import re

import pytest
from test_report_samples import error_result, make_result, sample_results

from pytest_actbudget.report.markdown import escape, render


def test_headline_then_violations_then_one_table_per_entry() -> None:
    text = render(sample_results())
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "## act budget summary",
        "### Over budget",
        "### stem-over — OVER BUDGET",
        "### broken — ERROR",
        "### unlisted — NO BUDGET",
        "### Within budget",
        "#### stem-ok — passed",
    ]
    assert "**4 entries checked: 1 over budget, 1 error, 1 without budget**" in text
    # stem: 118,816,768 flops against 100M: +18.8% (see test_report_samples for the sums).
    assert (
        "| entry | group | metric | measured | budget | over |\n"
        "| :--- | :--- | :--- | ---: | ---: | ---: |\n"
        "| stem-over | stem | flops | 118.8M | 100.0M | +18.8% |\n"
    ) in text


def test_entry_table_shows_groups_total_and_budget_use() -> None:
    text = render([make_result("stem-over", stem_budget=100e6)])
    # use: stem 118,816,768 / 100M = 119% (over, marked); head 650 / 1000 params = 65%;
    # total 10,186 / 12,000 params = 85%; (other) has no budget.
    # act_bytes: stem 3,211,264 x 2 = 6,422,528 B = 6.1MiB; head 2,560 B = 2.5KiB;
    # (other) 16,384 x 2 = 32.0KiB; total 6,457,856 B = 6.2MiB.
    assert (
        "| group | flops | share | activations | params | act_bytes | budget use |\n"
        "| :--- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| stem | 118.8M | 100.0% | 802.8K | 9.5K | 6.1MiB | **119%** ❌ |\n"
        "| head | 41.0K | 0.0% | 640 | 650 | 2.5KiB | 65% |\n"
        "| (other) | 0 | 0.0% | 0 | 0 | 32.0KiB | - |\n"
        "| total | 118.9M | 100.0% | 803.5K | 10.2K | 6.2MiB | 85% |\n"
    ) in text
    # The offending group's heaviest modules: conv 118,013,952 flops, bn 802,816.
    # With each one's output shape: 64 x 64 x 14 x 14 (">" escaped for Markdown).
    assert (
        "\n- top modules in 'stem' by flops: 0 (Conv2d -&gt; 64x64x14x14) 118.0M, "
        "1 (BatchNorm2d -&gt; 64x64x14x14) 802.8K\n"
    ) in text
    assert "Sequential on 64x3x28x28 float32 · counting: fvcore · budgets: budgets.yaml:4" in text
    assert "Uncounted operators: aten::adaptive\\_avg\\_pool2d x1, aten::add\\_ x2" in text


def test_entries_within_budget_share_one_table_and_fold_their_groups() -> None:
    text = render([make_result("a"), make_result("b", stem_budget=100e6), make_result("c")])
    # max budget use of a passed entry: stem 118.8M / 200M = 59%, head 65%, total
    # 10,186 / 12,000 params = 85% -> 85%.
    assert (
        "### Within budget\n\n"
        "| entry | model | flops | activations | params | max budget use |\n"
        "| :--- | :--- | ---: | ---: | ---: | ---: |\n"
        "| a | Sequential | 118.9M | 803.5K | 10.2K | 85% |\n"
        "| c | Sequential | 118.9M | 803.5K | 10.2K | 85% |\n\n"
        "<details><summary>Groups of each entry within budget</summary>\n\n#### a — passed\n"
    ) in text
    assert text.index("### b — OVER BUDGET") < text.index("### Within budget")
    assert text.endswith("</details>\n")


def test_errors_show_their_message_as_a_quote() -> None:
    text = render([error_result()])
    assert "> cannot measure 'broken': mat1 and mat2 shapes cannot be multiplied\n" in text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("a|b", "a\\|b"),
        ("`code` *em* _u_ [l](x)", "\\`code\\` \\*em\\* \\_u\\_ \\[l\\](x)"),
        ("one\ntwo\r\nthree", "one two three"),
        ('A & "B"', "A &amp; &quot;B&quot;"),
        ("résumé-ß", "résumé-ß"),
    ],
)
def test_escape_makes_user_strings_inert(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


def test_hostile_names_cannot_break_tables_or_inject_html() -> None:
    hostile = "<img src=x onerror=alert(1)>|`x`\n# heading"
    result = make_result(
        hostile,
        stem_budget=100e6,
        nodeid="tests/t.py::test[<b>|</b>]",
        names=("stem|conv", "stem.bn", "p", "f", "fc"),
    )
    text = render([result])
    assert "<img" not in text and "<b>" not in text
    assert "\n# heading" not in text
    header = 0
    for line in text.splitlines():
        pipes = len(re.findall(r"(?<!\\)\|", line))
        if not line.startswith("|"):
            header = 0
        elif not header:
            header = pipes
        else:
            # Every table row has exactly as many unescaped pipes as its header.
            assert pipes == header, line
