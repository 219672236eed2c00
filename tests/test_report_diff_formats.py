"""``actbudget diff --format md|json`` renderers (numbers of test_report_samples:
the stride-1 stem grows +300.0% in flops, activations and act_bytes; the total's flops
+299.9%, activations +299.8%, act_bytes +298.4%)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_report_json import SchemaError, validate
from test_report_samples import make_result

from pytest_actbudget.report.diff import compare
from pytest_actbudget.report.diff_formats import (
    DIFF_SCHEMA_PATH,
    growth_headline,
    json_text,
    markdown,
)


def stem_change() -> list:  # type: ignore[type-arg]
    old = [make_result(), make_result("steady"), make_result("retired")]
    new = [make_result(stem_scale=4, stem_budget=1e9), make_result("steady"), make_result("fresh")]
    return [old, new]


def test_markdown_is_a_headline_then_changed_groups_largest_growth_first() -> None:
    old, new = stem_change()
    text = markdown(compare(old, new))
    lines = text.splitlines()
    assert lines[0] == (
        "**act budget: 2 groups grew more than 5%: stem-cnn/stem flops +300.0%, "
        "stem-cnn/total flops +299.9%**"
    )
    assert lines[2:6] == [
        "| entry | group | metric | before | after | change |",
        "| :--- | :--- | :--- | ---: | ---: | ---: |",
        "| stem-cnn | stem | flops | 118.8M | 475.3M | +300.0% ⚠️ |",
        "| stem-cnn | stem | activations | 802.8K | 3.2M | +300.0% ⚠️ |",
    ]
    # The total (+299.9% at most) after the stem (+300.0%); unchanged groups and the
    # unchanged entry are not listed.
    groups = [line.split(" | ")[1] for line in lines[4:10]]
    assert groups == ["stem", "stem", "stem", "total", "total", "total"]
    assert "steady" not in text.split("\n\n")[1]
    assert "- entry fresh is new (not in the old report)" in lines
    assert "- entry retired is gone (not in the new report)" in lines
    assert lines[-1] == "1 entry unchanged."


def test_the_threshold_decides_what_the_headline_calls_growth() -> None:
    old, new = stem_change()
    diff = compare(old, new)
    # The stem's +300.0% is past 299.95%; the total's +299.9% is not.
    assert growth_headline(diff.entries, 2.9995) == (
        "1 group grew more than 299.95%: stem-cnn/stem flops +300.0%"
    )
    assert growth_headline(diff.entries, 5.0) == (
        "no group grew more than 500% (2 changed less or shrank)"
    )
    same = compare(old[:1], old[:1])
    assert growth_headline(same.entries, 0.05) == "no group grew more than 5%"


def test_markdown_names_new_and_gone_groups_and_escapes_names() -> None:
    old = make_result("a|b")
    head = dataclasses.replace(
        old.groups[1], stats=dataclasses.replace(old.groups[1].stats, name="<b>head</b>")
    )
    new = dataclasses.replace(old, groups=(old.groups[0], head, old.groups[2]))
    text = markdown(compare([old], [new]))
    assert "- group a\\|b/&lt;b&gt;head&lt;/b&gt; is new" in text
    assert "- group a\\|b/head is gone" in text
    assert "<b>" not in text


def test_json_has_counts_every_entry_and_what_grew() -> None:
    old, new = stem_change()
    document = json.loads(json_text(compare(old, new), threshold=0.05))
    schema = json.loads(DIFF_SCHEMA_PATH.read_text())
    validate(document, schema, schema)
    assert document["schema"] == 1 and document["threshold"] == 0.05
    assert document["counts"] == {"changed": 1, "same": 1, "added": 1, "removed": 1}
    entry = document["entries"][0]
    assert (entry["name"], entry["status"]) == ("stem-cnn", "changed")
    assert entry["changes"][0] == {
        "group": "stem",
        "metric": "flops",
        "old": 118_816_768,
        "new": 475_267_072,
        "change": 3.0,
    }
    assert [(g["group"], g["metric"]) for g in document["grown"]][:2] == [
        ("stem", "flops"),
        ("stem", "activations"),
    ]
    assert document["headline"].startswith("2 groups grew more than 5%")


def test_the_schema_rejects_what_the_json_never_has() -> None:
    # The validator and the schema are strict enough to catch a renamed or missing key.
    old, new = stem_change()
    document = json.loads(json_text(compare(old, new), threshold=0.05))
    schema = json.loads(DIFF_SCHEMA_PATH.read_text())
    renamed = {**document, "entries": [{**document["entries"][0], "state": "changed"}]}
    missing = {k: v for k, v in document.items() if k != "grown"}
    with pytest.raises(SchemaError, match="entries"):
        validate(renamed, schema, schema)
    with pytest.raises(SchemaError, match="grown"):
        validate(missing, schema, schema)
