"""Serial, `-n 0` and `-n 2` runs give the same budgets file, reports and summary.

Workers send their results through xdist's own channel (workeroutput); only the
controller writes files. Model: the small CNN of test_plugin.py (70,464 flops at
2 x 3 x 16 x 16: stem 32,768, body 36,864, head 832).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_plugin import NETS, TESTS

MODES = {"serial": (), "n0": ("-n", "0"), "n2": ("-n", "2")}


@pytest.fixture(params=sorted(MODES))
def plugin_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    return MODES[request.param]


def _results(path: Any) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    assert data["schema"] == 1
    results: list[dict[str, Any]] = data["results"]
    return results


def _summary(output: str) -> str:
    start = output.index("act budget summary")
    return output[start:].split("\n=", 1)[0]


def test_update_reports_and_summary_match_a_serial_run(
    pytester: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(nets=NETS, test_models=TESTS)
    recorded = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--actbudget-update", *plugin_args
    )
    recorded.assert_outcomes(passed=2)
    budgets = pytester.path.joinpath("budgets.yaml").read_text()

    checked = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--actbudget-report",
        "out/r.json",
        "--actbudget-report",
        "out/r.md",
        "--actbudget-report",
        "out/r.html",
        *plugin_args,
    )
    checked.assert_outcomes(passed=2)
    results = _results(pytester.path / "out" / "r.json")
    # Collection order, whatever worker ran which test.
    assert [r["name"] for r in results] == ["small-cnn", "other-cnn"]
    assert results[0]["total"]["flops"] == 70464
    # 1 x 3 x 16 x 16 is half the batch: 70,464 / 2 = 35,232.
    assert results[1]["total"]["flops"] == 35232
    markdown = (pytester.path / "out" / "r.md").read_text()
    html = (pytester.path / "out" / "r.html").read_text()

    # The serial run is the reference for every mode.
    reference = pytester.mkdir("reference")
    reference.joinpath("nets.py").write_text(NETS)
    reference.joinpath("test_models.py").write_text(TESTS)
    where = (str(reference), "--rootdir", str(reference))
    pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *where, "--actbudget-update"
    ).assert_outcomes(passed=2)
    serial = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        *where,
        *(f"--actbudget-report={reference / name}" for name in ("r.json", "r.md", "r.html")),
    )
    serial.assert_outcomes(passed=2)
    assert reference.joinpath("budgets.yaml").read_text() == budgets
    reference_results = _results(reference / "r.json")
    for mine, theirs in zip(results, reference_results, strict=True):
        mine.pop("nodeid"), theirs.pop("nodeid")
        mine.pop("budget_file"), theirs.pop("budget_file")
        assert mine["groups"] == theirs["groups"]
        assert mine["layers"] == theirs["layers"]
    assert markdown.count("small-cnn") == reference.joinpath("r.md").read_text().count("small-cnn")
    assert html.count("<svg") == reference.joinpath("r.html").read_text().count("<svg")
    summary = _summary(checked.stdout.str())
    assert "small-cnn" in summary and "other-cnn" in summary


def test_two_hundred_marked_tests_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        nets=NETS,
        test_many="""
        import pytest, torch
        from nets import small_cnn

        @pytest.mark.act_budget
        @pytest.mark.parametrize("i", range(200))
        def test_many(i):
            # Batch 1 + i % 3: flops 35,232 x (1 + i % 3).
            assert small_cnn()(torch.randn(1 + i % 3, 3, 16, 16)).shape[1] == 10
        """,
    )
    update = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--actbudget-update", "-n", "2"
    )
    update.assert_outcomes(passed=200)
    budgets = pytester.path.joinpath("budgets.yaml").read_text()
    assert budgets.count("test_many[") == 200

    parallel = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--actbudget-report", "par.json"
    )
    parallel.assert_outcomes(passed=200)
    serial = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--actbudget-report", "ser.json"
    )
    serial.assert_outcomes(passed=200)
    par, ser = _results(pytester.path / "par.json"), _results(pytester.path / "ser.json")
    assert len(par) == len(ser) == 200
    assert [r["name"] for r in par] == [f"test_many[{i}]" for i in range(200)]
    assert [r["total"] for r in par] == [r["total"] for r in ser]
    assert [r["total"]["flops"] for r in par[:3]] == [35232, 70464, 105696]
    # A second update changes nothing, byte for byte.
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "--actbudget-update", "-n", "2")
    assert pytester.path.joinpath("budgets.yaml").read_text() == budgets
