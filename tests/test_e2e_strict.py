"""--actbudget-strict end to end: unused entries, patterns that match nothing and
uncounted operators, from the command line and from the ini file.

Model NAMED below, input 2 x 3 x 16 x 16, training mode. fvcore counts (as in
test_plugin.py): stem conv 2 x 8 x 8 x 8 x 27 = 27,648 + BatchNorm 5 x 1,024 = 5,120
(stem 32,768); body conv at stride 1 on the pooled 4 x 4: 2 x 16 x 4 x 4 x 8 x 9 =
36,864; head pool 512 + linear 320 = 832; total 70,464, far below every 1M budget.
It runs three operators that no flop handle counts, once each: aten::max_pool2d,
aten::sigmoid and aten::softmax. (The training-mode BatchNorm's integer
num_batches_tracked += 1 is bookkeeping, counted as zero and not listed.)

The budgets are tight, so that no budget is slack (used below the default min_use of
50%): stem 32,768 of 36K (91%); rest = body + head = 36,864 + 832 = 37,696 of 41K (92%);
the total 70,464 of 77K (92%).
"""

from __future__ import annotations

import pytest

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

NAMED = """
from collections import OrderedDict

from torch import nn


def named_cnn():
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)
        ),
        body=nn.Sequential(nn.Conv2d(8, 16, 3, 1, 1, bias=False), nn.Sigmoid()),
        head=nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10), nn.Softmax(-1)
        ),
    ))
"""

TESTS = """
import pytest
import torch
from named import named_cnn


@pytest.mark.act_budget("named-cnn")
def test_named():
    named_cnn()(torch.randn(2, 3, 16, 16))


@pytest.mark.act_budget("partly-allowed")
def test_partly():
    named_cnn()(torch.randn(2, 3, 16, 16))


@pytest.mark.act_budget("none-allowed")
def test_none():
    named_cnn()(torch.randn(2, 3, 16, 16))


@pytest.mark.act_budget("typo")
def test_typo():
    named_cnn()(torch.randn(2, 3, 16, 16))


def test_plain():
    pass
"""

BUDGETS = """\
version: 1
models:
  named-cnn:
    allow_uncounted: [aten::max_pool2d, aten::sigmoid, aten::softmax]
    groups:
      stem: {modules: ["stem"], flops: 36K}
      rest: {modules: ["body", "head"], flops: 41K}
  partly-allowed:
    allow_uncounted: [aten::max_pool2d]
    total: {flops: 77K}
  none-allowed:
    total: {flops: 77K}
  typo:
    groups:
      stem: {modules: ["stme.*"], flops: 1M}
  unused-a:
    total: {flops: 1M}
  unused-b:
    total: {flops: 1M}
"""

# Each uncounted-operator problem names the entry and its line, and gives the whole
# `allow_uncounted:` line to paste (what the entry allows already, then the rest).
UNCOUNTED = {
    "test_partly": [
        "act_budget 'partly-allowed': 1 problem under --actbudget-strict (budgets.yaml:8)",
        "  budgets.yaml:8: entry 'partly-allowed': 2 operator(s) were not counted, so their "
        "cost is in no budget: aten::sigmoid x1, aten::softmax x1; to accept that, put this "
        "line in the entry:",
        "      allow_uncounted: [aten::max_pool2d, aten::sigmoid, aten::softmax]",
    ],
    "test_none": [
        "act_budget 'none-allowed': 1 problem under --actbudget-strict (budgets.yaml:11)",
        "  budgets.yaml:11: entry 'none-allowed': 3 operator(s) were not counted, so their "
        "cost is in no budget: aten::max_pool2d x1, aten::sigmoid x1, aten::softmax x1; to "
        "accept that, put this line in the entry:",
        "      allow_uncounted: [aten::max_pool2d, aten::sigmoid, aten::softmax]",
    ],
}
# A pattern that matches nothing is reported at its group's line (15), not the entry's.
TYPO = (
    "act_budget 'typo' (budgets.yaml:15): group 'stem': pattern 'stme.*' matched no "
    "module; nearest: 'stem*"
)
UNUSED = [
    "budgets.yaml:16: entry 'unused-a' was not checked by any test (--actbudget-strict); "
    "remove it or mark a test with it",
    "budgets.yaml:18: entry 'unused-b' was not checked by any test (--actbudget-strict); "
    "remove it or mark a test with it",
]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(named=NAMED, test_strict=TESTS)
    pytester.path.joinpath("budgets.yaml").write_text(BUDGETS)
    return pytester


def unused_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "was not checked by any test" in line]


def assert_strict_full_run(result: pytest.RunResult) -> None:
    """Everything strict finds in a full run: 3 failing tests and both unused entries."""
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=3)
    for test, message in UNCOUNTED.items():
        result.stdout.fnmatch_lines([f"*_ {test} _*", *message])
    result.stdout.fnmatch_lines(["*_ test_typo _*", TYPO])
    assert unused_lines(result) == UNUSED
    # The headline counts the failures, the strict ones too: never "all within budget".
    result.stdout.fnmatch_lines(
        ["*= act budget summary =*", "4 entries checked: 3 errors, 2 entries no test checked*"]
    )


@pytest.mark.parametrize("how", ["cli", "ini-true", "ini-false-cli-true", "cli-n2"])
def test_strict_full_run(project: pytest.Pytester, how: str) -> None:
    args: tuple[str, ...] = ("--actbudget-strict",)
    if how == "ini-true":
        project.makeini("[pytest]\nactbudget_strict = true\n")
        args = ()
    elif how == "ini-false-cli-true":
        project.makeini("[pytest]\nactbudget_strict = false\n")
    elif how == "cli-n2":
        args = ("--actbudget-strict", "-n", "2")
    assert_strict_full_run(project.runpytest_subprocess(*QUIET, *args))


def test_not_strict_by_default(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(*QUIET)
    # Uncounted operators are listed, not failed; the typo fails in any mode.
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*_ test_typo _*", TYPO])
    assert unused_lines(result) == []
    result.stdout.fnmatch_lines(
        ["*uncounted operators: aten::max_pool2d x1, aten::sigmoid x1, aten::softmax x1*"]
    )


@pytest.mark.parametrize(
    "selection",
    [("-k", "named or plain"), ("test_strict.py::test_named",), ("test_strict.py",)],
    ids=["k", "node-id", "file"],
)
def test_unused_entries_are_not_checked_in_a_partial_run(
    project: pytest.Pytester, selection: tuple[str, ...]
) -> None:
    result = project.runpytest_subprocess(*QUIET, "--actbudget-strict", *selection)
    if selection[0] == "test_strict.py":
        result.assert_outcomes(passed=2, failed=3)
    else:
        assert result.ret == pytest.ExitCode.OK
    assert unused_lines(result) == []


def test_a_folder_on_the_command_line_is_a_full_run(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(*QUIET, "--actbudget-strict", ".", "-k", "plain")
    # -k deselects: still partial. Without it, the folder is the whole suite.
    assert unused_lines(result) == []
    assert (
        unused_lines(project.runpytest_subprocess(*QUIET, "--actbudget-strict", str(project.path)))
        == UNUSED
    )


def test_every_unmatched_pattern_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(named=NAMED, test_strict=TESTS)
    pytester.path.joinpath("budgets.yaml").write_text(
        "version: 1\nmodels:\n  typo:\n    groups:\n"
        '      stem: {modules: ["stme.*"], flops: 1M}\n'
        '      head: {modules: ["haed"], flops: 1M}\n'
    )
    result = pytester.runpytest_subprocess(*QUIET, "--actbudget-strict", "-k", "typo")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "'stme.*' matched no module" in output and "'haed' matched no module" in output
