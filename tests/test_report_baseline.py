"""--actbudget-baseline without pytest: this run's results against an earlier report,
in every renderer (numbers of test_report_samples; the e2e test runs it for real).

Before/after: the stem with stride 2 -> 1 has four times the elements, so the stem's
flops 118,816,768 -> 475,267,072 (+300.0%), activations 802,816 -> 3,211,264 (+300.0%),
act_bytes 6,422,528 -> 25,690,112 (+300.0%); params 9,536 unchanged. Total flops
118,857,728 -> 475,308,032 (+299.9%).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from test_report_html import parse, sections
from test_report_json import ENV, validate
from test_report_samples import make_result

from pytest_actbudget.report import html, markdown, terminal
from pytest_actbudget.report import json as json_report
from pytest_actbudget.report.baseline import (
    Baseline,
    Comparison,
    with_comparison,
    without_comparison,
)
from pytest_actbudget.report.json import SCHEMA_PATH
from pytest_actbudget.results import BudgetResult


def renamed_head(result: BudgetResult, name: str) -> BudgetResult:
    head = result.groups[1]
    head = dataclasses.replace(head, stats=dataclasses.replace(head.stats, name=name))
    return dataclasses.replace(result, groups=(result.groups[0], head, result.groups[2]))


def comparison() -> tuple[list[BudgetResult], Comparison]:
    """Baseline: stem-cnn (head named "classifier"), retired. Now: stem-cnn with the
    stride-1 stem and its head named "head", and a new entry fresh."""
    old = [renamed_head(make_result(), "classifier"), make_result("retired")]
    new = [make_result(stem_scale=4, stem_budget=1e9), make_result("fresh")]
    return new, Baseline("main.json", tuple(old)).compare(new)


def test_entries_and_groups_match_by_name_new_and_gone_are_named() -> None:
    new, against = comparison()
    stem_cnn, fresh = (against.of(result) for result in new)
    assert stem_cnn is not None and fresh is not None
    assert fresh.is_new and fresh.summary() == "new entry: not in the baseline"
    assert [result.name for result in against.gone] == ["retired"]
    assert stem_cnn.new_groups == ("head",) and stem_cnn.gone_groups == ("classifier",)
    # stem: flops, activations, act_bytes; total: the same three (see the docstring).
    assert stem_cnn.summary() == "6 metrics changed, new group head, gone group classifier"
    assert against.headline() == (
        "against baseline main.json: 1 entry changed, 1 new, 1 gone or not checked in this "
        "run (retired)"
    )
    assert stem_cnn.rows()[0] == ("stem", "flops", "118.8M", "475.3M", "+300.0%")


def test_terminal_shows_baseline_now_and_change_per_group() -> None:
    new, against = comparison()
    text = terminal.render(new, baseline=against)
    assert text.splitlines()[1] == against.headline()
    assert (
        "  against baseline main.json: 6 metrics changed, new group head, gone group classifier\n"
        "    group  metric       baseline      now   change\n"
        "    stem   flops          118.8M   475.3M  +300.0%\n"
        "    stem   activations    802.8K     3.2M  +300.0%\n"
        "    stem   act_bytes      6.1MiB  24.5MiB  +300.0%\n"
        "    total  flops          118.9M   475.3M  +299.9%\n"
        "    total  activations    803.5K     3.2M  +299.8%\n"
        "    total  act_bytes      6.2MiB  24.5MiB  +298.4%\n"
    ) in text
    assert "  against baseline main.json: new entry: not in the baseline\n" in text


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def test_json_carries_the_baseline_per_entry_and_group(schema: dict[str, Any]) -> None:
    new, against = comparison()
    document = json.loads(json_report.render(new, ENV, against))
    validate(document, schema, schema)
    assert document["baseline"] == {
        "source": "main.json",
        "gone": [{"name": "retired", "nodeid": "tests/test_models.py::test_stem"}],
    }
    stem_cnn, fresh = document["results"]
    assert fresh["baseline"]["status"] == "new" and fresh["baseline"]["total"] is None
    assert all(group["baseline"] is None for group in fresh["groups"])
    entry = stem_cnn["baseline"]
    assert (entry["status"], entry["new_groups"], entry["gone_groups"]) == (
        "changed",
        ["head"],
        ["classifier"],
    )
    assert entry["total"]["flops"] == 118_857_728
    assert entry["total_change"]["flops"] == pytest.approx(475_308_032 / 118_857_728 - 1)
    stem, head, other = stem_cnn["groups"]
    assert stem["baseline"]["metrics"] == {
        "flops": 118_816_768,
        "activations": 802_816,
        "params": 9_536,
        "act_bytes": 6_422_528,
    }
    assert stem["baseline"]["change"] == {
        "flops": 3.0,
        "activations": 3.0,
        "params": 0.0,
        "act_bytes": 3.0,
    }
    assert head["baseline"] is None  # new: the baseline called it "classifier"
    assert other["baseline"]["change"]["flops"] == 0.0
    # Without a baseline, the report has no baseline keys at all.
    plain = json.loads(json_report.render(new, ENV))
    assert "baseline" not in plain and "baseline" not in plain["results"][0]


def test_markdown_shows_the_comparison_and_a_column_for_entries_within_budget() -> None:
    new, against = comparison()
    text = markdown.render(new, against)
    assert text.splitlines()[4] == (
        "against baseline main.json: 1 entry changed, 1 new, 1 gone or not checked in this "
        "run (retired)"
    )
    assert (
        "Against the baseline: 6 metrics changed, new group head, gone group classifier\n\n"
        "| group | metric | baseline | now | change |\n"
        "| :--- | :--- | ---: | ---: | ---: |\n"
        "| stem | flops | 118.8M | 475.3M | +300.0% |\n"
    ) in text
    # Both entries are within budget: the summary table says what changed.
    assert "| max budget use | vs baseline |" in text
    assert (
        "| fresh | Sequential | 118.9M | 803.5K | 10.2K | 85% | new entry: not in the baseline |"
    ) in text


def test_html_shows_the_change_of_every_group_and_the_table_of_changes() -> None:
    new, against = comparison()
    doc = parse(html.render(new, against))
    (headline,) = doc.find("p", "baseline-headline")
    assert headline.text == against.headline()
    by_entry = sections(doc)

    def changes(entry: str) -> dict[str, tuple[str, str]]:
        return {
            e.parents[-1].attrs["data-group"]: (e.classes[1], e.text)
            for e in by_entry[entry]
            if e.tag == "td" and "baseline" in e.classes
        }

    assert changes("stem-cnn") == {
        "stem": ("grew", "flops +300.0%, activations +300.0%, act_bytes +300.0%"),
        "head": ("new", "new"),
        "(other)": ("same", "="),
        "total": ("grew", "flops +299.9%, activations +299.8%, act_bytes +298.4%"),
    }
    assert set(changes("fresh").values()) == {("new", "new")}
    (table,) = [e for e in by_entry["stem-cnn"] if e.tag == "table" and "baseline" in e.classes]
    rows = [e.text for e in doc.find("td") if table in e.parents]
    assert rows[:5] == ["stem", "flops", "118.8M", "475.3M", "+300.0%"]
    # fresh is new: a summary, no table of changes.
    assert not [e for e in by_entry["fresh"] if e.tag == "table" and "baseline" in e.classes]


def test_baseline_parts_stay_self_contained_and_escaped() -> None:
    hostile = '<img src=x onerror=alert(1)> "q" &'
    old = renamed_head(make_result(hostile), "<b>classifier</b>")
    new = [make_result(hostile, stem_scale=4, stem_budget=1e9)]
    against = Baseline(f"<i>{hostile}</i>.json", (old,)).compare(new)
    page = html.render(new, against)
    assert "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "http" not in page and "url(" not in page
    doc = parse(page)
    assert not doc.find("img") and not doc.find("b") and not doc.find("i")
    (headline,) = doc.find("p", "baseline-headline")
    assert headline.text == against.headline()  # shown as text, exactly
    text = markdown.render(new, against)
    assert "<img" not in text and "<b>" not in text
    assert "gone group &lt;b&gt;classifier&lt;/b&gt;" in text


def test_html_shows_the_message_without_the_comparison_it_has_its_own_table() -> None:
    # The stem at 4x (475,267,072 flops) over a 200M budget, against the baseline of
    # comparison(): the failure message ends with the comparison, as the session adds it.
    _, against = comparison()
    over = make_result(stem_scale=4)
    assert over.outcome == "over_budget"
    entry = against.of(over)
    assert entry is not None
    message = with_comparison(over.message, entry, "main.json")
    assert message.startswith(over.message + "\n  against baseline main.json: ")
    assert without_comparison(message) == over.message
    page = html.render([dataclasses.replace(over, message=message)], against)
    (shown,) = parse(page).find("p", "message")
    assert shown.text == over.message
    # Once as the page's headline, once as the entry's table: not a third time.
    assert page.count("against baseline main.json") == 1
    assert page.count("Against the baseline") == 1
