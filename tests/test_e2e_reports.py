"""Report options end to end (real pytest runs): ``md:PATH``, appending to
``$GITHUB_STEP_SUMMARY``, ``.htm``, and ``--actbudget-depth`` with its ini key.

The model and its hand-derived numbers are test_plugin's (small_cnn, 70,464 flops).
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from test_plugin import NETS, TESTS, run


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(nets=NETS, test_models=TESTS)
    return pytester


def test_markdown_by_prefix_is_appended_to_the_step_summary(project: pytest.Pytester) -> None:
    summary = project.path / "runner" / "step_summary_0c1d"  # no extension, as on GitHub
    summary.parent.mkdir()
    summary.write_text("## unit tests\n\n12 passed\n", encoding="utf-8")
    result = run(
        project,
        "--actbudget-update",
        "--actbudget-report",
        f"md:{summary}",
        "--actbudget-report",
        "out/budget.htm",
        GITHUB_STEP_SUMMARY=str(summary),
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [f"act budget report appended to {summary}", "act budget report written to */budget.htm"]
    )
    text = summary.read_text(encoding="utf-8")
    # The earlier step's summary stays first; ours follows after a blank line.
    assert text.startswith("## unit tests\n\n12 passed\n\n## act budget summary\n")
    # small_cnn: total 70,464 flops (test_plugin's docstring).
    assert "| total | 70.5K | 100.0% |" in text
    page = (project.path / "out" / "budget.htm").read_text(encoding="utf-8")
    parser = HTMLParser()
    parser.feed(page)  # parses as HTML
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page


def _layer_rows(stdout: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(stdout) if "output shape" in line)
    rows = []
    for line in stdout[start + 1 :]:
        if line.strip().startswith("total params"):
            break
        rows.append(line.split()[0])
    return rows


def test_depth_limits_the_verbose_layer_table_from_the_command_line_and_the_ini(
    project: pytest.Pytester,
) -> None:
    # No budgets file: the checks fail as "no budget", and the summary still shows the
    # measured layers. small_cnn: the root, 3 children and 3 + 2 + 3 grandchildren.
    project.makeini("[pytest]\nactbudget_depth = 0\n")
    ini = run(project, "-v", "-k", "small_cnn")
    assert _layer_rows(ini.stdout.lines) == ["(root)"]
    ini.stdout.fnmatch_lines(["*; 11 modules below depth 0 not shown"])
    cli = run(project, "-v", "-k", "small_cnn", "--actbudget-depth", "1")  # CLI over ini
    assert _layer_rows(cli.stdout.lines) == ["(root)", "0", "1", "2"]
    cli.stdout.fnmatch_lines(
        [
            "*a container's numbers include its descendants; the leaf rows add up to the "
            "total; 8 modules below depth 1 not shown",
            # 8 x 3 x 3 x 3 + 2 x 8 + 16 x 8 x 3 x 3 + 16 x 10 + 10 = 216 + 16 + 1,152 + 170
            "  total params 1,554  trainable 1,554  non-trainable 0",
            "  total flops 70.5K  activations *  act_bytes *",
        ]
    )


def test_a_bad_depth_is_a_usage_error(project: pytest.Pytester) -> None:
    bad = run(project, "--actbudget-depth", "two")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        ["*--actbudget-depth / actbudget_depth: 'two' is not a depth; use a whole number*"]
    )


def test_a_baseline_shows_growth_in_every_report(project: pytest.Pytester) -> None:
    import json

    from test_report_html import parse
    from test_report_json import validate

    from pytest_actbudget.report.json import SCHEMA_PATH

    main = run(project, "--actbudget-update", "--actbudget-report", "main.json")
    main.assert_outcomes(passed=2)
    baseline = json.loads((project.path / "main.json").read_text(encoding="utf-8"))
    # As if main had named things differently: an entry and a group this run does not
    # have, so this run's "other-cnn" and its group "2" are new.
    small, other = baseline["results"]  # in collection order
    other["name"] = "retired-cnn"
    small["groups"][2]["name"] = "classifier"
    (project.path / "main.json").write_text(json.dumps(baseline), encoding="utf-8")

    pr = run(
        project,
        "--actbudget-baseline",
        "main.json",
        "--actbudget-report",
        "pr.json",
        "--actbudget-report",
        "pr.md",
        "--actbudget-report",
        "pr.html",
        STEM_STRIDE="1",
    )
    assert pr.ret == pytest.ExitCode.TESTS_FAILED  # the stem went over its budget
    # Stem "0": 32,768 -> 131,072 flops, +300.0% (test_plugin's docstring), in the
    # failure message and in the summary; with stride 1 the stem hands "1" four times
    # the elements too: 9 metrics of "0", "1" and the total changed.
    pr.stdout.fnmatch_lines(
        [
            "*act_budget 'small-cnn': * exceeded (budgets.yaml:*)",
            "*against baseline main.json: 9 metrics changed, new group 2, gone group classifier",
            "*group  metric * baseline * now * change",
            "*0 * flops * 32.8K * 131.1K * +300.0%",
        ]
    )
    pr.stdout.fnmatch_lines(
        [
            "against baseline main.json: 1 entry changed, 1 new, 1 gone or not checked in "
            "this run (retired-cnn)",
            "*other-cnn*",
            "*against baseline main.json: new entry: not in the baseline",
        ]
    )
    report = json.loads((project.path / "pr.json").read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validate(report, schema, schema)
    assert report["baseline"]["gone"][0]["name"] == "retired-cnn"
    by_name = {result["name"]: result for result in report["results"]}
    assert by_name["other-cnn"]["baseline"]["status"] == "new"
    small_cnn = by_name["small-cnn"]
    stem = small_cnn["groups"][0]
    assert stem["baseline"]["metrics"]["flops"] == 32_768
    assert stem["baseline"]["change"]["flops"] == 3.0  # 131,072 / 32,768 - 1
    assert small_cnn["groups"][2]["baseline"] is None  # "2": new
    assert "against baseline main.json" in small_cnn["message"]
    text = (project.path / "pr.md").read_text(encoding="utf-8")
    assert "| 0 | flops | 32.8K | 131.1K | +300.0% |" in text
    doc = parse((project.path / "pr.html").read_text(encoding="utf-8"))
    assert any(e.text.startswith("flops +300.0%") for e in doc.find("td", "baseline"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "main.json: cannot read the report"),
        ("version: 1\nmodels: {}\n", "main.json:1: not JSON"),
        ('{"schema": 1, "environment": {}}', "main.json: not a pytest-actbudget report"),
    ],
)
def test_a_bad_baseline_is_a_usage_error_naming_the_file(
    project: pytest.Pytester, content: str | None, message: str
) -> None:
    if content is not None:
        (project.path / "main.json").write_text(content, encoding="utf-8")
    bad = run(project, "--actbudget-baseline", "main.json")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines([f"ERROR: --actbudget-baseline / actbudget_baseline: *{message}*"])
    assert "Traceback" not in bad.stderr.str() + bad.stdout.str()
