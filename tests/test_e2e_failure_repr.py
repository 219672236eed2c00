"""How a failed budget reads in pytest's own outputs: the violation table once, under
FAILURES; its headline alone in the short test summary, on CI (where pytest would
otherwise repeat a whole string failure there) and under xdist (whose reports travel
serialized); the headline as junitxml's failure message.

Model and numbers: NETS of test_plugin.py. With STEM_STRIDE=1 the stem costs 131,072
flops (4x its 32,768 at stride 2) against the budget 36.1K written below: one budget
exceeded, +263.1% (131,072 / 36,100 - 1).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from test_plugin import NETS

BUDGETS = """\
version: 1
models:
  small-cnn:
    groups:
      stem: {modules: ["0"], flops: 36.1K}
"""

TEST = """
import pytest
import torch
from nets import small_cnn


@pytest.mark.act_budget("small-cnn")
def test_small_cnn():
    assert small_cnn()(torch.randn(2, 3, 16, 16)).shape == (2, 10)
"""

HEADLINE = "act_budget 'small-cnn': 1 budget exceeded (budgets.yaml:3)"


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "n2"])
def test_the_table_once_and_the_headline_in_the_short_summary(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    pytester.makepyfile(nets=NETS, test_models=TEST)
    pytester.path.joinpath("budgets.yaml").write_text(BUDGETS)
    pytester._monkeypatch.setenv("STEM_STRIDE", "1")
    pytester._monkeypatch.setenv("CI", "true")

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--junitxml=junit.xml", *workers
    )

    assert result.ret == 1
    out = result.stdout.str()
    # The header of the violation table: once, in the test's failure.
    assert out.count("group  metric  measured  budget  over") == 1, out
    assert out.count("stem   flops   131.1K    36.1K   +263.1%") == 1, out
    summary = out.split("short test summary info", 1)[1]
    assert f"OVER BUDGET test_models.py::test_small_cnn - {HEADLINE}" in summary
    assert "group  metric" not in summary
    failure = ET.parse(pytester.path / "junit.xml").find(".//failure")
    assert failure is not None
    assert failure.get("message") == HEADLINE
    assert "+263.1%" in (failure.text or "")
