"""Entries remember what they were recorded with (`input:`, `mode:`), end to end:
failures say what changed, the CLI reproduces the test's numbers, one entry cannot be
recorded from two different inputs, and a missing budgets file says where and why.

SegNet is tests/test_e2e_loop.py's model (2 x 3 x 16 x 16: 145,408 flops). Tagger
below, on tokens 4 x 12 (int64) and a keyword `mask` 4 x 12 (float32), in eval mode:
the embedding costs 0; BatchNorm1d(16) in eval 2 per element, 2 x 4 x 16 x 12 = 1,536
(in training it would be 5 per element, 3,840); Linear(16, 5) 4 x 12 x 16 x 5 = 3,840.
Eval total 1,536 + 3,840 = 5,376.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_e2e_loop import QUIET, SEGNET, TEST, run

TAGGER = """
import torch
from torch import nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.norm = nn.BatchNorm1d(16)
        self.head = nn.Linear(16, 5)

    def forward(self, tokens, mask=None):
        x = self.embed(tokens) * mask.unsqueeze(-1)
        return self.head(self.norm(x.transpose(1, 2)).transpose(1, 2))
"""

TAGGER_TEST = """
import pytest
import torch
from tagger import Tagger


@pytest.mark.act_budget("tagger")
def test_tagger():
    model = Tagger().eval()
    out = model(torch.zeros(4, 12, dtype=torch.long), mask=torch.ones(4, 12))
    assert out.shape == (4, 12, 5)
"""


def test_keyword_inputs_and_eval_mode_round_trip_into_the_cli(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(tagger=TAGGER, test_tagger=TAGGER_TEST)
    recorded = run(pytester, "--actbudget-update", "--actbudget-report", "test.json")
    recorded.assert_outcomes(passed=1)
    text = (pytester.path / "budgets.yaml").read_text()
    assert "    input: {0: {shape: [4, 12], dtype: int64}, mask: [4, 12]}\n" in text
    assert "    mode: eval\n" in text
    # A second update with the same test changes nothing: the input reads back equal.
    run(pytester, "--actbudget-update").stdout.fnmatch_lines(["*unchanged: 'tagger'"])

    command = [sys.executable, "-m", "pytest_actbudget", "profile", "tagger:Tagger"]
    cli = subprocess.run(
        [*command, "--name", "tagger", "--json"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    (from_cli,) = json.loads(cli.stdout)["results"]
    (from_test,) = json.loads((pytester.path / "test.json").read_text())["results"]
    assert from_test["total"]["flops"] == 5_376  # eval mode, module docstring
    assert from_cli["total"] == from_test["total"]
    assert from_cli["inputs"] == from_test["inputs"] == [
        {"shape": [4, 12], "dtype": "int64"},
        {"shape": [4, 12], "dtype": "float32", "name": "mask"},
    ]
    assert from_cli["mode"] == from_test["mode"] == "eval"
    assert [g["metrics"] for g in from_cli["groups"]] == [
        g["metrics"] for g in from_test["groups"]
    ]


SIZED = """
import os
import pytest
import torch
from segnet import SegNet


@pytest.mark.act_budget("segnet")
def test_segnet():
    size = int(os.environ.get("SIZE", "16"))
    SegNet()(torch.randn(2, 3, size, size))
"""


def test_an_input_change_is_said_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(segnet=SEGNET, test_seg=SIZED)
    run(pytester, "--actbudget-update").assert_outcomes(passed=1)
    # 32 px is 4x the pixels: every conv grows 4x, past every 10% headroom.
    result = run(pytester, SIZE="32")
    result.assert_outcomes(failed=1)
    # (Plain `in`: fnmatch would read the brackets as character classes.)
    assert (
        "\nact_budget 'segnet': recorded with input [2, 3, 16, 16] train, now input "
        "[2, 3, 32, 32] train; 9 budgets exceeded (budgets.yaml:9)\n"
    ) in result.stdout.str()
    # The update records the new input in place.
    updated = run(pytester, "--actbudget-update", SIZE="32").stdout.str()
    assert "updated 'segnet': input [2, 3, 16, 16] -> [2, 3, 32, 32], " in updated
    assert "    input: [2, 3, 32, 32]\n" in (pytester.path / "budgets.yaml").read_text()


TWO_SIZES = """
import pytest
import torch
from segnet import SegNet


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.act_budget("segnet")
def test_sizes(size):
    SegNet()(torch.randn(2, 3, size, size))
"""


def test_one_entry_from_two_inputs_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(segnet=SEGNET, test_sizes=TWO_SIZES)
    result = run(pytester, "--actbudget-update")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert (
        "ERROR: budgets.yaml: entry 'segnet' was checked with different inputs or modes: "
        "test_sizes.py::test_sizes[16] with input [2, 3, 16, 16] train; "
        "test_sizes.py::test_sizes[32] with input [2, 3, 32, 32] train. One entry "
        "records one input and mode, so nothing was recorded for it; give each test its "
        "own entry name"
    ) in result.stdout.str()
    assert not (pytester.path / "budgets.yaml").exists()


def test_a_subfolder_run_says_which_file_it_looked_for(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("tests")
    (sub / "segnet.py").write_text(SEGNET)
    (sub / "test_seg.py").write_text(TEST)
    (pytester.path / "budgets.yaml").write_text("version: 1\nmodels: {}\n")
    pytester._monkeypatch.chdir(sub)
    result = pytester.runpytest_subprocess(*QUIET, "test_seg.py")
    result.assert_outcomes(failed=1)
    where = sub.resolve()
    result.stdout.fnmatch_lines(
        [
            f"no budget 'segnet': {where / 'budgets.yaml'} does not exist; to create it, run "
            "`pytest --actbudget-update`",
            f"  it is budgets.yaml in pytest's rootdir, {sub} (pytest picks the rootdir from "
            "the ini file and the arguments; *). If the file is elsewhere, run pytest where it "
            "is, or point to it with --actbudget-file PATH *",
        ]
    )
