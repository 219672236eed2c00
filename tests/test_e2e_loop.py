"""The record/check loop a user lives in, end to end: README "Using it" followed
literally, the model the marker captures, unguarded groups and slack budgets.

SegNet below on 2 x 3 x 16 x 16, training mode (a fresh module), fvcore counting (one
multiply-add = 1 flop, a training-mode BatchNorm 5 per element):

  stem  encoder.0 Conv2d(3, 8, 3, stride 2, pad 1) -> 2x8x8x8: 2*8*8*8 * 3*3*3 = 27,648
        encoder.1 BatchNorm2d(8) on 1,024 elements: 5 * 1,024               =  5,120
                                                                      stem = 32,768
  early encoder.3 Conv2d(8, 8, 3, pad 1) -> 2x8x8x8: 2*8*8*8 * 8*3*3       = 73,728
  late  decoder.0 Conv2d(8, 16, 3, stride 2, pad 1) -> 2x16x4x4: 2*16*4*4 * 8*9 = 36,864
  head  decoder.2 Conv2d(16, 4, 1) -> 2x4x4x4: 2*4*4*4 * 16                 =  2,048
  total 32,768 + 73,728 + 36,864 + 2,048 = 145,408

With STEM_STRIDE=1 the stem emits 2x8x16x16: conv 2*8*16*16*27 = 110,592, BatchNorm
5 * 4,096 = 20,480, stem 131,072 (4x). Recorded with 10% headroom, rounded up to 3
significant digits: stem 32,768 x 1.1 = 36,044.8 -> 36.1K; 131,072 / 36,100 = +263.1%.
"""

from __future__ import annotations

import json
import re

import pytest

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

SEGNET = """
import os
from collections import OrderedDict

import torch
from torch import nn


class SegNet(nn.Sequential):
    def __init__(self):
        stride = int(os.environ.get("STEM_STRIDE", "2"))
        super().__init__(OrderedDict(
            encoder=nn.Sequential(
                nn.Conv2d(3, 8, 3, stride, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.ReLU(),
            ),
            decoder=nn.Sequential(
                nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.ReLU(), nn.Conv2d(16, 4, 1),
            ),
        ))


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))
"""

TEST = """
import pytest
import torch
from segnet import SegNet


@pytest.mark.act_budget("segnet")
def test_segnet():
    assert SegNet()(torch.randn(2, 3, 16, 16)).shape[:2] == (2, 4)
"""

# README step 3: the user splits the model where it matters and writes no numbers.
SPLIT = """\
    groups:
      stem: {modules: ["encoder.0", "encoder.1", "encoder.2"]}
      early: {modules: ["encoder.3", "encoder.4"]}
      late:
        modules: ["decoder.0", "decoder.1"]
      head: {modules: ["decoder.2"]}
"""


def run(pytester: pytest.Pytester, *args: str, **env: str) -> pytest.RunResult:
    for key, value in env.items():
        pytester._monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess(*QUIET, *args)


def test_readme_using_it_step_by_step(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(segnet=SEGNET, test_seg=TEST)
    budgets = pytester.path / "budgets.yaml"

    # 2. Record budgets: one group per direct child, with what the test ran.
    run(pytester, "--actbudget-update").assert_outcomes(passed=1)
    text = budgets.read_text()
    assert "  segnet:\n    input: [2, 3, 16, 16]\n    mode: train\n    groups:\n" in text

    # 3. Split into stem/early/late/head, no metrics written; update fills them all in.
    start, end = text.index("    groups:\n"), text.index("    total:")
    budgets.write_text(text[:start] + SPLIT + text[end:])
    filled = run(pytester, "--actbudget-update")
    filled.assert_outcomes(passed=1)
    filled.stdout.fnmatch_lines(["*updated 'segnet': stem.flops 36.1K (new), *"])
    loaded = budgets.read_text()
    # stem 36.1K (above); early 73,728 x 1.1 = 81,100.8 -> 81.2K; late 36,864 x 1.1 =
    # 40,550.4 -> 40.6K; head 2,048 x 1.1 = 2,252.8 -> 2.26K.
    assert 'stem: {modules: ["encoder.0", "encoder.1", "encoder.2"], flops: 36.1K,' in loaded
    assert 'early: {modules: ["encoder.3", "encoder.4"], flops: 81.2K,' in loaded
    assert '        modules: ["decoder.0", "decoder.1"]\n        flops: 40.6K\n' in loaded
    assert 'head: {modules: ["decoder.2"], flops: 2.26K,' in loaded
    ok = run(pytester)
    ok.assert_outcomes(passed=1)
    assert "has no budget" not in ok.stdout.str()  # every group is guarded now

    # 4. The stem 4x more expensive: the stem group fails, and its top modules say why.
    over = run(pytester, STEM_STRIDE="1")
    assert over.ret == pytest.ExitCode.TESTS_FAILED
    over.stdout.fnmatch_lines(
        [
            "act_budget 'segnet': * budgets exceeded (budgets.yaml:*)",
            "  stem *flops *131.1K *36.1K *+263.1%",
            "*top modules in 'stem' by flops: encoder.0 (Conv2d -> 2x8x16x16) 110.6K, "
            "encoder.1 (BatchNorm2d -> 2x8x16x16) 20.5K*",
        ]
    )
    # The table is printed once (under FAILURES); the summary has one line for it.
    table = re.compile(r"\s+group\s+metric\s+measured")
    assert len([line for line in over.stdout.lines if table.match(line)]) == 1
    over.stdout.fnmatch_lines(["*= act budget summary =*", "*", "*", "*", "  15 budgets exceeded*"])

    # 5. The change was intended: update, and the run passes again.
    run(pytester, "--actbudget-update", STEM_STRIDE="1").assert_outcomes(passed=1)
    run(pytester, STEM_STRIDE="1").assert_outcomes(passed=1)


CAPTURE_TESTS = """
import pytest
import torch
from torch import nn
from segnet import Critic, SegNet


@pytest.mark.act_budget("loss-first")
def test_loss_first():
    loss = nn.CrossEntropyLoss()
    loss(torch.randn(2, 4), torch.tensor([0, 1]))
    assert SegNet()(torch.randn(2, 3, 16, 16)).shape == (2, 4, 4, 4)


@pytest.mark.act_budget("with-critic")
def test_with_critic():
    out = SegNet()(torch.randn(2, 3, 16, 16))
    Critic()(out)


@pytest.mark.act_budget("no-params")
def test_no_params():
    nn.ReLU()(torch.randn(2, 3))
"""


def test_the_model_is_captured_not_the_loss(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(segnet=SEGNET, test_capture=CAPTURE_TESTS)
    result = run(pytester, "--actbudget-update", "--actbudget-report", "r.json")
    result.assert_outcomes(passed=3)
    # The loss ran first but has no parameters: SegNet is the model (2 groups, 145,408
    # flops); a test that called nothing with parameters measures its first call.
    result.stdout.fnmatch_lines(["*created entry 'loss-first' (2 groups)"])
    results = {r["name"]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    assert results["loss-first"]["model"] == "SegNet"
    assert results["loss-first"]["total"]["flops"] == 145_408
    assert results["loss-first"]["other_models"] == []
    assert results["no-params"]["model"] == "ReLU"
    # Two models with parameters: the first is measured and the other one is named.
    assert results["with-critic"]["model"] == "SegNet"
    assert results["with-critic"]["other_models"] == ["Critic"]
    note = (
        "measured SegNet, the first model with parameters the test called; it also called "
        "Critic (use the act_budget fixture to budget several models)"
    )
    assert results["with-critic"]["notes"] == [note]
    result.stdout.fnmatch_lines([f"  {note}"])


GUARDS = """\
version: 1
models:
  segnet:
    groups:
      encoder: {modules: ["encoder"], flops: 120K}
      decoder: {modules: ["decoder"]}
    total: {flops: 160K}
"""


def test_unguarded_groups_and_slack_budgets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(segnet=SEGNET, test_seg=TEST)
    (pytester.path / "budgets.yaml").write_text(GUARDS)
    # encoder = stem + early = 32,768 + 73,728 = 106,496 of 120K: 89%, fine. decoder
    # has no budget. total 145,408 of 160K: 91%.
    unguarded = (
        "budgets.yaml:6: entry 'segnet': group 'decoder' has no budget: nothing fails when "
        "it grows; run --actbudget-update"
    )
    normal = run(pytester)
    normal.assert_outcomes(passed=1)
    normal.stdout.fnmatch_lines(["*= act budget summary =*", "1 entry checked: all*", "*"])
    normal.stdout.fnmatch_lines([f"  {unguarded}"])
    strict = run(pytester, "--actbudget-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(
        [
            "act_budget 'segnet': 1 problem under --actbudget-strict (budgets.yaml:3)",
            f"  {unguarded}",
        ]
    )
    strict.stdout.fnmatch_lines(["*= act budget summary =*", "1 entry checked: 1 error"])

    # A budget 3.3x the measurement guards nothing: 145,408 of 480K is 30% < 50%.
    (pytester.path / "budgets.yaml").write_text(
        GUARDS.replace('["decoder"]}', '["decoder"], flops: 40K}').replace("160K", "480K")
    )
    slack = (
        "budgets.yaml:7: entry 'segnet': total flops budget is 3.3x what was measured "
        "(use 30%, below min_use 50%); tighten it with --actbudget-update"
    )
    normal = run(pytester)
    normal.assert_outcomes(passed=1)
    normal.stdout.fnmatch_lines([f"  {slack}"])
    # defaults.min_use moves the line: at 25% the same budget is not slack.
    (pytester.path / "budgets.yaml").write_text(
        GUARDS.replace('["decoder"]}', '["decoder"], flops: 40K}')
        .replace("160K", "480K")
        .replace("version: 1\n", "version: 1\ndefaults: {min_use: 25%}\n")
    )
    assert run(pytester, "--actbudget-strict").ret == pytest.ExitCode.OK


def test_a_stale_entry_under_strict_fails_with_a_red_headline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(segnet=SEGNET, test_seg=TEST)
    run(pytester, "--actbudget-update").assert_outcomes(passed=1)
    budgets = pytester.path / "budgets.yaml"
    budgets.write_text(budgets.read_text() + "  stale:\n    total: {flops: 1M}\n")
    result = run(pytester, "--actbudget-strict", "--color=yes")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout.str())
    assert "all within budget" not in output
    assert "1 entry checked: 1 entry no test checked (strict)" in output
    # The headline is painted red (bold red, "1;31"), never green.
    assert "\x1b[1;31m1 entry checked: 1 entry no test checked (strict)" in result.stdout.str()
