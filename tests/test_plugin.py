"""The plugin end to end, through real pytest runs in subprocesses (pytester).

The model under test (NETS below), input 2 x 3 x 16 x 16, in training mode; fvcore
counts one multiply-add of a conv/linear as one flop, a training-mode BatchNorm as
5 per input element, an adaptive average pool as 1 per input element:

  "0" stem  Conv2d(3, 8, 3, stride 2, pad 1): 2 x 8 x 8 x 8 x 3 x 3 x 3   = 27,648
            BatchNorm2d(8) on 2 x 8 x 8 x 8 = 1,024 elements, x 5       =  5,120
            ReLU                                                         =      0
                                                                 stem   = 32,768
  "1" body  Conv2d(8, 16, 3, stride 2, pad 1): 2 x 16 x 4 x 4 x 8 x 3 x 3 = 36,864
  "2" head  AdaptiveAvgPool2d on 2 x 16 x 4 x 4 = 512; Linear(16, 10): 2 x 16 x 10 = 320
                                                                 head   =    832
  total 32,768 + 36,864 + 832 = 70,464

With STEM_STRIDE=1 the stem conv emits 16 x 16: 2 x 8 x 16 x 16 x 27 = 110,592 and the
BatchNorm 5 x 2 x 8 x 16 x 16 = 20,480, so the stem costs 131,072 flops (4x).
Budgets recorded with 10% headroom round up to 3 significant digits:
stem 32,768 x 1.1 = 36,044.8 -> 36.1K; 131,072 / 36,100 - 1 = +263.1%.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NETS = """
import os
import torch
from torch import nn


def small_cnn():
    stride = int(os.environ.get("STEM_STRIDE", "2"))
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, stride, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.ReLU()),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)),
    )
"""

TESTS = """
import pytest
import torch
from nets import small_cnn


@pytest.mark.act_budget("small-cnn")
def test_small_cnn():
    model = small_cnn()
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.act_budget("other-cnn")
def test_other_cnn():
    model = small_cnn()
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(nets=NETS, test_models=TESTS)
    return pytester


def run(pytester: pytest.Pytester, *args: str, **env: str) -> pytest.RunResult:
    for key, value in env.items():
        pytester._monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_record_pass_fail_and_record_again(project: pytest.Pytester) -> None:
    budgets = project.path / "budgets.yaml"

    recorded = run(project, "--actbudget-update")
    recorded.assert_outcomes(passed=2)
    text = budgets.read_text()
    assert "small-cnn:" in text and "other-cnn:" in text
    # A hand-written comment that every later update must keep.
    budgets.write_text("# reviewed by the perf team\n" + text)

    run(project).assert_outcomes(passed=2)

    over = run(project, "-k", "small_cnn", STEM_STRIDE="1")
    assert over.ret == 1
    over.stdout.fnmatch_lines(
        [
            "*act_budget 'small-cnn': * exceeded (budgets.yaml:*)",
            "*0 * flops * 131.1K * 36.1K * +263.1%*",
            # With each module's output shape: 2 x 8 channels x 16 x 16 at stride 1.
            "*top modules in '0' by flops: 0.0 (Conv2d -> 2x8x16x16) 110.6K, "
            "0.1 (BatchNorm2d -> 2x8x16x16) 20.5K*",
        ]
    )
    assert budgets.read_text().startswith("# reviewed by the perf team\n")

    again = run(project, "--actbudget-update", STEM_STRIDE="1")
    again.assert_outcomes(passed=2)
    assert budgets.read_text().startswith("# reviewed by the perf team\n")
    run(project, STEM_STRIDE="1").assert_outcomes(passed=2)


def test_over_budget_has_its_own_status(project: pytest.Pytester) -> None:
    run(project, "--actbudget-update").assert_outcomes(passed=2)
    result = run(project, "-v", "-k", "small_cnn", STEM_STRIDE="1")
    result.stdout.fnmatch_lines(["*test_small_cnn OVER BUDGET*", "*1 failed*"])
    short = run(project, "-k", "small_cnn", STEM_STRIDE="1")
    short.stdout.fnmatch_lines(["test_models.py B*"])


def test_partial_update_touches_only_selected_entries(project: pytest.Pytester) -> None:
    budgets = project.path / "budgets.yaml"
    run(project, "--actbudget-update").assert_outcomes(passed=2)
    before = budgets.read_text()
    other_before = before[before.index("  other-cnn:") : before.index("  small-cnn:")]

    run(project, "--actbudget-update", "-k", "small_cnn", STEM_STRIDE="1")
    after = budgets.read_text()
    assert after != before
    assert other_before in after  # byte for byte


def test_missing_entry_fails_and_names_the_fix(project: pytest.Pytester) -> None:
    project.path.joinpath("budgets.yaml").write_text("version: 1\nmodels: {}\n")
    result = run(project, "-k", "small_cnn")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*no budget 'small-cnn' in budgets.yaml; record one with `pytest --actbudget-update`*"]
    )


def test_a_marked_test_that_calls_no_model_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.act_budget("nothing")
        def test_nothing():
            assert 1 + 1 == 2
        """
    )
    result = run(pytester, "--actbudget-update")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*act_budget 'nothing': the test called no torch.nn.Module*"])


def test_a_failing_body_gets_no_budget_check_on_top(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_fails="""
        import pytest, torch
        from nets import small_cnn

        @pytest.mark.act_budget("never-recorded")
        def test_fails():
            small_cnn()(torch.randn(2, 3, 16, 16))
            assert False, "the body failed"
        """
    )
    result = run(project, "test_fails.py")
    result.assert_outcomes(failed=1)
    assert "the body failed" in result.stdout.str()
    assert "no budget" not in result.stdout.str()


def test_the_marker_default_name_is_the_test_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(nets=NETS)
    pytester.makepyfile(
        test_param="""
        import pytest, torch
        from nets import small_cnn

        @pytest.mark.act_budget
        @pytest.mark.parametrize("size", [16, 32])
        def test_resnet(size):
            small_cnn()(torch.randn(1, 3, size, size))
        """
    )
    run(pytester, "--actbudget-update").assert_outcomes(passed=2)
    text = pytester.path.joinpath("budgets.yaml").read_text()
    assert "test_resnet[16]" in text and "test_resnet[32]" in text


def test_fixture_checks_and_measures(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_fixture="""
        import os, torch
        from nets import small_cnn

        def test_two(act_budget):
            profile = act_budget.measure(small_cnn(), torch.randn(2, 3, 16, 16))
            # stride 2: 70,464 (module docstring); stride 1: stem 131,072 + body
            # 2 x 16 x 8 x 8 x 8 x 9 = 147,456 + head 2,048 + 320 = 280,896
            stride = os.environ.get("STEM_STRIDE", "2")
            assert profile.total.flops == (70464 if stride == "2" else 280896)
            act_budget.check(small_cnn(), torch.randn(2, 3, 16, 16), name="small-cnn")
        """
    )
    run(project, "--actbudget-update", "test_fixture.py").assert_outcomes(passed=1)
    run(project, "test_fixture.py").assert_outcomes(passed=1)
    failing = run(project, "test_fixture.py", STEM_STRIDE="1")
    failing.assert_outcomes(failed=1)
    failing.stdout.fnmatch_lines(["*act_budget 'small-cnn': * exceeded*"])


def test_summary_section_lists_groups(project: pytest.Pytester) -> None:
    run(project, "--actbudget-update").assert_outcomes(passed=2)
    result = run(project)
    result.stdout.fnmatch_lines(["*act budget summary*", "*small-cnn*"])


def test_disabled_with_no_actbudget(project: pytest.Pytester) -> None:
    result = run(project, "-p", "no:actbudget")
    # Without the plugin the marker is unknown but harmless: both bodies pass.
    result.assert_outcomes(passed=2)
    assert "act budget summary" not in result.stdout.str()


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = (
        "import sys, pytest_actbudget.plugin\n"
        "assert 'torch' not in sys.modules and 'fvcore' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_junit_xml_gets_group_metrics_as_properties(project: pytest.Pytester) -> None:
    import xml.etree.ElementTree as ET

    run(project, "--actbudget-update").assert_outcomes(passed=2)
    run(project, "-k", "small_cnn", "--junitxml=junit.xml").assert_outcomes(passed=1)
    case = (
        ET.parse(project.path / "junit.xml").getroot().find(".//testcase[@name='test_small_cnn']")
    )
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    # Group "0" (the stem) = 32,768 flops of the module docstring; total 70,464.
    assert props["actbudget.small-cnn.0.flops"] == "32768"
    assert props["actbudget.small-cnn.total.flops"] == "70464"
    assert props["actbudget.small-cnn.outcome"] == "passed"


def test_ini_options_are_read_and_the_command_line_wins(project: pytest.Pytester) -> None:
    project.makeini(
        """
        [pytest]
        actbudget_file = conf/budgets.yaml
        actbudget_headroom = 50%
        actbudget_report = out/from-ini.json
        """
    )
    project.mkdir("conf")
    run(project, "--actbudget-update", "-k", "small_cnn").assert_outcomes(passed=1)
    text = (project.path / "conf" / "budgets.yaml").read_text()
    # stem 32,768 x 1.5 = 49,152 -> 49.2K (3 significant digits, rounded up)
    assert "flops: 49.2K" in text
    assert (project.path / "out" / "from-ini.json").exists()

    # The command line wins: 10% headroom -> 36,044.8 -> 36.1K, report elsewhere.
    run(
        project,
        "--actbudget-update",
        "-k",
        "small_cnn",
        "--actbudget-headroom",
        "10%",
        "--actbudget-report",
        "cli.json",
    ).assert_outcomes(passed=1)
    assert "flops: 36.1K" in (project.path / "conf" / "budgets.yaml").read_text()
    assert (project.path / "cli.json").exists()


def test_bad_headroom_and_report_extension_are_usage_errors(project: pytest.Pytester) -> None:
    bad = run(project, "--actbudget-headroom", "lots")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--actbudget-headroom / actbudget_headroom:*"])
    ext = run(project, "--actbudget-report", "out.txt")
    assert ext.ret == pytest.ExitCode.USAGE_ERROR
    ext.stderr.fnmatch_lines(
        [
            "*--actbudget-report / actbudget_report: report '*out.txt': unknown report format "
            "('.txt'); the extension picks the format, one of .htm, .html, .json, .md, or a "
            "prefix names it: md:PATH, json:PATH, html:PATH"
        ]
    )


def test_marker_and_fixture_in_one_test(project: pytest.Pytester) -> None:
    # The fixture's own trace must not be taken for the test's first model call.
    project.makepyfile(
        test_both="""
        import pytest, torch
        from nets import small_cnn

        @pytest.mark.act_budget("small-cnn")
        def test_both(act_budget):
            model, x = small_cnn(), torch.randn(2, 3, 16, 16)
            # Before the test's own call: 70,464 flops, or 280,896 with STEM_STRIDE=1
            # (module docstring and test_fixture_checks_and_measures).
            assert act_budget.measure(model, x).total.flops in (70464, 280896)
            assert model(x).shape == (2, 10)
        """
    )
    run(project, "--actbudget-update", "test_both.py").assert_outcomes(passed=1)
    run(project, "test_both.py").assert_outcomes(passed=1)
    over = run(project, "test_both.py", STEM_STRIDE="1")
    over.assert_outcomes(failed=1)
    over.stdout.fnmatch_lines(["*act_budget 'small-cnn': * exceeded*"])


def test_unittest_methods_are_checked_too(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_unit="""
        import unittest
        import pytest, torch
        from nets import small_cnn

        class TestModels(unittest.TestCase):
            @pytest.mark.act_budget("small-cnn")
            def test_small_cnn(self):
                self.assertEqual(small_cnn()(torch.randn(2, 3, 16, 16)).shape, (2, 10))

            @pytest.mark.act_budget("never-recorded")
            def test_failing_body(self):
                small_cnn()(torch.randn(2, 3, 16, 16))
                self.fail("the body failed")
        """
    )
    run(project, "--actbudget-update", "test_unit.py", "-k", "small_cnn").assert_outcomes(passed=1)
    result = run(project, "test_unit.py", STEM_STRIDE="1")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert "act_budget 'small-cnn':" in output and "exceeded" in output
    # A failing body gets no budget check on top ("never-recorded" has no entry).
    assert "the body failed" in output and "no budget 'never-recorded'" not in output


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ("act_budget(123)", "the name must be a non-empty string, not 123"),
        ('act_budget("x", fille="b.yaml")', "unexpected argument(s) fille"),
        ('act_budget("x", file=7)', "file= must be a path string, not 7"),
    ],
)
def test_bad_marker_arguments_are_usage_errors(
    pytester: pytest.Pytester, marker: str, problem: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked():
            pass
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*test_bad_marker_arguments_are_usage_errors.py::test_marked: "
            f"@pytest.mark.act_budget: {problem}; use*"
        ]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_test_that_changes_directory_keeps_its_budget_file_name(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_chdir="""
        import pytest, torch
        from nets import small_cnn

        @pytest.mark.act_budget("small-cnn")
        def test_small_cnn(tmp_path, monkeypatch):
            monkeypatch.chdir(tmp_path)
            small_cnn()(torch.randn(2, 3, 16, 16))
        """
    )
    run(project, "--actbudget-update", "test_chdir.py").assert_outcomes(passed=1)
    result = run(project, "test_chdir.py", "--actbudget-report", "r.json")
    result.assert_outcomes(passed=1)
    (entry,) = json.loads((project.path / "r.json").read_text())["results"]
    assert entry["budget_file"] == "budgets.yaml"


def test_xdist_without_budget_tests_ignores_the_budgets_file_like_a_serial_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    pytester.path.joinpath("budgets.yaml").write_text("version: 1\nmodels: [oops]\n")
    assert run(pytester).ret == 0
    assert run(pytester, "-n", "2").ret == 0


def test_a_marked_test_that_calls_no_model_is_in_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.act_budget("nothing")
        def test_nothing():
            pass
        """
    )
    run(pytester, "--actbudget-report", "r.json").assert_outcomes(failed=1)
    (entry,) = json.loads((pytester.path / "r.json").read_text())["results"]
    assert (entry["name"], entry["outcome"]) == ("nothing", "error")
    assert entry["message"].startswith("act_budget 'nothing': the test called no torch.nn.Module")
