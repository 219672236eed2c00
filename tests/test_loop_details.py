"""The smaller points of the record/check loop: the `input:` syntax both ways,
`defaults.metrics`, hints that name the fix once, `str(profile)`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_actbudget import measure
from pytest_actbudget.budgets.inputs import input_text
from pytest_actbudget.budgets.schema import load_budgets, parse_budgets
from pytest_actbudget.budgets.units import parse_quantity
from pytest_actbudget.budgets.write import MeasuredEntry, update_budgets
from pytest_actbudget.cli import main
from pytest_actbudget.errors import BudgetFileError
from pytest_actbudget.results import TensorSpec

F32 = "float32"


@pytest.mark.parametrize(
    ("text", "specs"),
    [
        ("[64, 3, 28, 28]", (TensorSpec((64, 3, 28, 28), F32),)),
        (
            "[[4, 3, 64, 64], {shape: [4], dtype: int64}]",
            (TensorSpec((4, 3, 64, 64), F32), TensorSpec((4,), "int64")),
        ),
        ("[{shape: [2, 8], dtype: int64}]", (TensorSpec((2, 8), "int64"),)),
        (
            "{0: [4, 3, 64, 64], mask: {shape: [4, 64], dtype: bool}}",
            (TensorSpec((4, 3, 64, 64), F32), TensorSpec((4, 64), "bool", "mask")),
        ),
        ("{x: {shape: [], dtype: float32}}", (TensorSpec((), F32, "x"),)),
        ("{input_ids: [2, 5]}", (TensorSpec((2, 5), F32, "input_ids"),)),
    ],
)
def test_input_text_reads_back(text: str, specs: tuple[TensorSpec, ...]) -> None:
    loaded = parse_budgets(f"version: 1\nmodels:\n  m:\n    input: {text}\n", "b.yaml")
    assert loaded.models["m"].input == specs
    assert input_text(specs) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{0: [2], 2: [2]}", "models.m.input: positions 0, 2: expected 0, 1, ... with none"),
        ("[{shape: [2], dtype: int65}]", "models.m.input.dtype: 'int65' is not a dtype; use"),
        ("{not-a-name: [2]}", "models.m.input: 'not-a-name' is neither an input position"),
        ("[{dtype: int64}]", "models.m.input: missing 'shape' (e.g. {shape: [4, 128], dtype:"),
    ],
)
def test_bad_inputs_name_the_key(text: str, message: str) -> None:
    with pytest.raises(BudgetFileError) as raised:
        parse_budgets(f"version: 1\nmodels:\n  m:\n    input: {text}\n", "b.yaml")
    assert str(raised.value).startswith(f"b.yaml:4: {message}")


def test_mode_is_train_or_eval() -> None:
    with pytest.raises(BudgetFileError) as raised:
        parse_budgets("version: 1\nmodels:\n  m:\n    mode: training\n", "b.yaml")
    assert str(raised.value) == (
        "b.yaml:4: models.m.mode: 'training' is not a mode; use train or eval (the root "
        "module's training flag when it was measured)"
    )


def test_defaults_metrics_choose_what_update_fills_in(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "version: 1\ndefaults:\n  metrics: [flops, flops_share]\nmodels:\n"
        '  m:\n    groups:\n      a: {modules: ["a"]}\n'
    )
    # a: 1,000 flops x 1.1 = 1.1K; share 0.25 x 1.1 = 27.5%; the total takes only the
    # absolute ones: 4,000 x 1.1 = 4.4K.
    measured = {"flops": 1000, "flops_share": 0.25, "params": 7}
    entry = MeasuredEntry("m", {"a": measured}, {"a": ("a",)}, {"flops": 4000}, None)
    budgets = load_budgets(path)
    update_budgets(path, [entry], 0.1, metrics=budgets.metrics)
    assert path.read_text().endswith(
        '      a: {modules: ["a"], flops: 1.1K, flops_share: 27.5%}\n    total: {flops: 4.4K}\n'
    )
    with pytest.raises(BudgetFileError, match="unknown key 'flop'; did you mean 'flops'"):
        parse_budgets("version: 1\ndefaults:\n  metrics: [flop]\n", "b.yaml")


def test_a_lower_case_suffix_is_answered_with_the_upper_case_one() -> None:
    with pytest.raises(ValueError) as raised:
        parse_quantity("12k", "flops")
    assert str(raised.value) == "'12k' is not a number; the suffixes are upper case: use 12K"


def test_the_headroom_hint_is_given_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--actbudget-headroom", "20")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --actbudget-headroom / actbudget_headroom: 20 is ambiguous as a "
            "percentage; write 20% or a fraction (e.g. 0.1)"
        ]
    )
    assert result.stderr.str().count("0.1") == 1


def test_a_file_path_is_answered_with_the_dotted_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "mynet/models.py:segnet", "--input", "1,3,8,8"]) == 2
    assert capsys.readouterr().err == (
        "actbudget profile: error: 'mynet/models.py:segnet': 'mynet/models.py' is a file path, "
        "not a module; name the module as Python imports it (from the current directory): "
        "'mynet.models:segnet'\n"
    )


def test_str_of_a_profile_is_the_layer_table() -> None:
    # Conv2d(3, 4, 3) on 1 x 3 x 8 x 8 -> 1 x 4 x 6 x 6: 4 x 6 x 6 x 27 = 3,888 flops,
    # 4 x 27 + 4 = 112 params.
    profile = measure(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8))
    lines = str(profile).splitlines()
    assert lines[0] == "Sequential(1x3x8x8 float32)  fvcore"
    assert any(line.split()[:4] == ["module", "type", "output", "shape"] for line in lines)
    row = next(line for line in lines if line.strip().startswith("0 "))
    assert row.split()[:8] == ["0", "Conv2d", "1", "x", "4", "x", "6", "x"]
    assert "112" in row and "3.9K" in row
