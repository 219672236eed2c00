"""Tied weights and uncounted compute in real pytest runs: every report says which
group counts a shared tensor, and shows an uncounted compute-bearing operator first,
as a warning, without --actbudget-strict.

MODELS below: TiedLM is wte Embedding(10, 4) (40 params), block Linear(4, 4) (20),
lm_head Linear(4, 10, bias=False) tied to wte (its 40 counted once): total 60.
On ids (1, 3): block 3 x 4 x 4 = 48 MACs, lm_head 3 x 4 x 10 = 120, total 168.
FusedMM multiplies (2, 4) by a (4, 8) parameter through the custom operator
zoo::fused_mm, which no FLOP handle knows: 2 x 4 x 8 = 64 MACs missing, total 0.
"""

from __future__ import annotations

import json

import pytest

from pytest_actbudget.report.markdown import escape

MODELS = """
import torch
from torch import nn


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(10, 4)
        self.block = nn.Linear(4, 4)
        self.lm_head = nn.Linear(4, 10, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        return self.lm_head(self.block(self.wte(ids)))


@torch.library.custom_op("zoo::fused_mm", mutates_args=())
def fused_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b


@fused_mm.register_fake
def _(a, b):
    return a.new_empty(a.shape[0], b.shape[1])


class FusedMM(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 8))

    def forward(self, x):
        return fused_mm(x, self.w)
"""

TESTS = """
import pytest
import torch
from models import FusedMM, TiedLM


@pytest.mark.act_budget("tied")
def test_tied():
    assert TiedLM()(torch.tensor([[1, 2, 3]])).shape == (1, 3, 10)


@pytest.mark.act_budget("fused")
def test_fused():
    assert FusedMM()(torch.randn(2, 4)).shape == (2, 8)
"""

BUDGETS = """
version: 1
models:
  tied:
    groups:
      head: {modules: [lm_head], params: 100}
      embed: {modules: [wte], params: 100}
      block: {modules: [block], params: 100}
  fused:
    total: {flops: 1000}
"""

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def test_shared_tensors_and_missing_compute_in_every_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(models=MODELS, test_models=TESTS)
    pytester.makefile(".yaml", budgets=BUDGETS)
    result = pytester.runpytest_subprocess(
        *QUIET, "--actbudget-report", "r.json", "--actbudget-report", "r.md",
        "--actbudget-report", "r.html",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "2 entries checked: all within budget; 1 with uncounted compute" in out
    warning = (
        "zoo::fused_mm x1 was not counted: matmul-like, compute is missing from these numbers"
    )
    fused = out[out.index("fused  passed") :]
    # first in the entry: right after the header and the test id
    assert fused.splitlines()[2].strip() == warning
    assert "group 'head' shares lm_head.weight; its params are counted in 'embed'" in out

    data = {r["name"]: r for r in json.loads((pytester.path / "r.json").read_text())["results"]}
    assert data["fused"]["warnings"] == [warning]
    assert data["fused"]["total"]["flops"] == 0  # the 64 MACs are the missing compute
    assert data["tied"]["warnings"] == []
    groups = {g["name"]: g for g in data["tied"]["groups"]}
    assert {name: g["metrics"]["params"] for name, g in groups.items()} == {
        "head": 0,
        "embed": 40,
        "block": 20,
    }
    assert groups["head"]["shared"] == {"lm_head.weight": "embed"}
    assert data["tied"]["total"]["params"] == 60
    assert data["tied"]["total"]["flops"] == 168
    assert data["tied"]["shared_params"] == [
        {"names": ["wte.weight", "lm_head.weight"], "numel": 40}
    ]

    markdown = (pytester.path / "r.md").read_text()
    # at the top, under the headline, and again in the entry
    assert markdown.index(f"> ⚠️ fused: {escape(warning)}") < markdown.index("| entry")
    assert markdown.count(escape(warning)) == 2
    assert escape("group 'head' shares lm_head.weight") in markdown
    html = (pytester.path / "r.html").read_text()
    assert warning in html and "group &#x27;head&#x27; shares lm_head.weight" in html
