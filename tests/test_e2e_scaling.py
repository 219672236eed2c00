"""Scaling budgets end to end: real pytest runs (pytester subprocesses), serial and xdist.

The decoder below, on token ids of shape 1 x n, width 16, two blocks of windowed
attention (16 tokens a window, 2 heads of 8) and an MLP 16 -> 64 -> 16. Per block:

  attention  qkv n x 16 x 48 + out n x 16 x 16 = 1024 n; scores and values
             2 x (2 heads x n x 8 x window) = 32 n x window: 512 n windowed, 32 n^2
             global (WINDOW=0)
  mlp        n x 16 x 64 + n x 64 x 16 = 2048 n
  head       Linear(16, 50): 800 n;  the embedding counts 0

At the test's own n = 16 a window is the whole sequence, so windowed and global
attention cost the same there (1536 x 16 = 24,576 per block): only growth tells them
apart. Over sizes 16, 32, 64, 128 windowed attention is exactly linear (^1.00, recorded
as 1.05); global attention is 1024 n + 32 n^2 per block: 24,576 / 65,536 / 196,608 /
655,360 for both blocks x 2, slope (1.5 x log2(655,360 / 24,576) + 0.5 x
log2(196,608 / 65,536)) / 5 = (1.5 x 4.737 + 0.5 x 1.585) / 5 = 1.58.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_report_json import validate

from pytest_actbudget.report.json import SCHEMA_PATH

NETS = """
import os
import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x):
        batch, length, width = x.shape
        window = int(os.environ.get("WINDOW", "16")) or length
        x = x.reshape(batch * length // window, window, width)
        chunks, tokens, _ = x.shape
        q, k, v = (
            t.view(chunks, tokens, self.heads, width // self.heads).transpose(1, 2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(chunks, tokens, width)).reshape(
            batch, length, width
        )


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.attn = Attention(width, 2)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


class Decoder(nn.Module):
    def __init__(self, vocab=50, width=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList([Block(width) for _ in range(2)])
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(x)
"""

TESTS = """
import pytest
import torch
from nets import Decoder


@pytest.mark.act_budget("decoder")
def test_decoder():
    model = Decoder().eval()
    with torch.no_grad():
        assert model(torch.randint(0, 50, (1, 16))).shape == (1, 16, 50)
"""

BUDGETS = """\
version: 1
models:
  decoder:
    scaling:
      inputs: {0: [1]}  # token ids: dimension 1 (the sequence) scales
      sizes: [16, 32, 64, 128]
    groups:
      attention: {modules: ["blocks.*.attn"]}
      mlp: {modules: ["blocks.*.mlp"]}
      rest: {modules: ["embed", "head"]}
    total: {flops: 1M}
"""


def run(pytester: pytest.Pytester, *args: str, **env: str) -> pytest.RunResult:
    for key, value in env.items():
        pytester._monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(nets=NETS, test_models=TESTS)
    (pytester.path / "budgets.yaml").write_text(BUDGETS)
    return pytester


def _results(path: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads(path.read_text())["results"]
    return results


def test_record_pass_go_quadratic_fail_update_pass(project: pytest.Pytester) -> None:
    budgets = project.path / "budgets.yaml"
    recorded = run(project, "--actbudget-update")
    recorded.assert_outcomes(passed=1)
    # Every group listed no growth budget: each gets flops_growth and act_bytes_growth,
    # measured ^1.00 (all linear while windowed) + 0.05. The total lists flops only.
    # Total flops at n = 16: 2 x (1536 + 2048) x 16 + 800 x 16 = 127,488 x 1.1 -> 141K.
    text = budgets.read_text()
    assert (
        'attention: {modules: ["blocks.*.attn"], flops_growth: 1.05, act_bytes_growth: 1.05}'
        in text
    )
    assert 'mlp: {modules: ["blocks.*.mlp"], flops_growth: 1.05, act_bytes_growth: 1.05}' in text
    assert "total: {flops: 141K}" in text
    assert "# token ids: dimension 1 (the sequence) scales" in text

    run(project).assert_outcomes(passed=1)

    report = project.path / "report.json"
    failed = run(project, f"--actbudget-report={report}", WINDOW="0")
    failed.assert_outcomes(failed=1)
    assert failed.ret == 1
    output = failed.stdout.str()
    # Only attention's flops grow faster; its flops at n = 16 did not change.
    assert "act_budget 'decoder': 1 budget exceeded (budgets.yaml:3)" in output
    assert "attention  flops_growth  ^1.58     ^1.05   +0.53" in output
    # 2 blocks x (1024 x 16 + 32 x 16^2) = 49,152 (49.2K); x (1024 x 128 + 32 x 128^2)
    # = 1,310,720 (1.3M).
    assert (
        "attention flops grow as size^1.58 (budget ^1.05) from 16 to 128: 49.2K -> 1.3M" in output
    )
    assert "OVER BUDGET" in output
    document = json.loads(report.read_text())
    schema = json.loads(SCHEMA_PATH.read_text())
    validate(document, schema, schema)
    (result,) = document["results"]
    assert result["outcome"] == "over_budget"
    over = [
        (g["group"], g["metric"])
        for g in result["growth"]
        if g["exponent"] is not None and g["budget"] is not None and g["exponent"] > g["budget"]
    ]
    assert over == [("attention", "flops_growth")]
    attention = next(
        g for g in result["growth"] if (g["group"], g["metric"]) == ("attention", "flops_growth")
    )
    assert attention["values"] == [2 * (1024 * n + 32 * n * n) for n in (16, 32, 64, 128)]

    # xdist: the workers' results make the same report.
    parallel = project.path / "parallel.json"
    run(project, f"--actbudget-report={parallel}", "-n", "2", WINDOW="0").assert_outcomes(failed=1)
    assert _results(parallel) == _results(report)

    updated = run(project, "--actbudget-update", WINDOW="0")
    updated.assert_outcomes(passed=1)
    assert "attention.flops_growth 1.05 -> 1.63" in updated.stdout.str()  # 1.58 + 0.05
    run(project, WINDOW="0").assert_outcomes(passed=1)


def test_fixture_scaling_and_a_size_the_model_rejects(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_models="""
import torch
from nets import Decoder
from pytest_actbudget import Scaling


def test_made_inputs(act_budget):
    scaling = Scaling(lambda n: torch.randint(0, 50, (1, n)))
    result = act_budget.check(Decoder(), torch.randint(0, 50, (1, 16)), name="decoder",
                              scaling=scaling)
    growth = {(g.group, g.metric): g.exponent for g in result.growth}
    assert round(growth[("mlp", "flops_growth")], 6) == 1.0


def test_bad_size(act_budget):
    scaling = Scaling(lambda n: torch.randint(0, 50, (1, n + 8)))  # 24, 40, ...: not windows
    act_budget.check(Decoder(), torch.randint(0, 50, (1, 16)), name="decoder", scaling=scaling)
"""
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*act_budget 'decoder' at size 16 (budgets.yaml:4: models.decoder.scaling.sizes): "
            "could not measure Decoder: its forward raised RuntimeError*"
        ]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("sizes: [16, 32, 64, 128]", "sizes: [16]"),
            "budgets.yaml:6: models.decoder.scaling.sizes: lists one size; a growth exponent "
            "is fitted over two or more sizes*",
        ),
        (
            (
                "    scaling:\n      inputs: {0: [1]}  # token ids: dimension 1 (the sequence) "
                "scales\n      sizes: [16, 32, 64, 128]\n",
                "",
            ),
            "budgets.yaml:5: models.decoder.groups.attention.flops_growth: a growth budget "
            "needs the entry to say how its inputs scale*",
        ),
    ],
)
def test_bad_scaling_in_the_file_is_a_usage_error(
    project: pytest.Pytester, edit: tuple[str, str], message: str
) -> None:
    budgets = project.path / "budgets.yaml"
    text = BUDGETS.replace('["blocks.*.attn"]}', '["blocks.*.attn"], flops_growth: 1.05}')
    budgets.write_text(text.replace(*edit))
    result = run(project)
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"*{message}"])


def test_a_dimension_the_inputs_lack_fails_the_test(project: pytest.Pytester) -> None:
    budgets = project.path / "budgets.yaml"
    budgets.write_text(BUDGETS.replace("inputs: {0: [1]}", "inputs: {0: [2]}"))
    result = run(project)
    result.assert_outcomes(failed=1)
    assert (
        "\nbudgets.yaml:5: models.decoder.scaling.inputs.0: input 0 has 2 dimension(s) "
        "(shape [1, 16]), so dimension 2 does not exist; valid dimensions: 0 to 1\n"
    ) in result.stdout.str()
