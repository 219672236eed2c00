"""Where the trace ran: ``traced_on``/``meta_fallback`` in the JSON report (valid against
schema.json, read back), and a line in the terminal summary for a fallback."""

from __future__ import annotations

import dataclasses
import json

from test_report_json import validate
from test_report_samples import make_result

from pytest_actbudget.report import terminal
from pytest_actbudget.report.json import SCHEMA_PATH, environment, render
from pytest_actbudget.results import BudgetResult

_REASON = "in gate (Branch): RuntimeError: Tensor.item() cannot be called on meta tensors"


def _fallback() -> BudgetResult:
    result = make_result()
    assert result.profile is not None
    profile = dataclasses.replace(result.profile, traced_on="cpu", meta_fallback=_REASON)
    return dataclasses.replace(result, profile=profile)


def test_json_says_where_the_trace_ran_and_why() -> None:
    document = json.loads(render([make_result(), _fallback()], environment()))
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validate(document, schema, schema)
    on_meta, fallback = document["results"]
    assert (on_meta["traced_on"], on_meta["meta_fallback"]) == ("meta", None)
    assert (fallback["traced_on"], fallback["meta_fallback"]) == ("cpu", _REASON)
    read_back = BudgetResult.from_dict(fallback).profile
    assert read_back is not None
    assert (read_back.traced_on, read_back.meta_fallback) == ("cpu", _REASON)


def test_terminal_marks_entries_traced_on_real_tensors() -> None:
    mark = f"  traced on cpu, not meta: {_REASON}"
    assert mark in terminal.render([_fallback()]).splitlines()
    assert "traced on" not in terminal.render([make_result()])
