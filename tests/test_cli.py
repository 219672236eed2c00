"""The ``actbudget`` command: profile, init and diff, run as a real process.

The model module written for these tests (``tinynet``):

    Sequential(
      0: Conv2d(3, 8, 3, padding=1, bias=False),   # on 2x3x16x16 -> 2x8x16x16
      1: ReLU(),
      2: Sequential(0: Conv2d(8, 16, 3, stride=2, padding=1), 1: ReLU()),  # -> 2x16x8x8
      3: Flatten(),                                  # -> 2x1024
      4: Linear(1024, 10))                           # -> 2x10

Hand-derived numbers (fvcore: one multiply-add = 1 flop, activations = conv/linear outputs):
- "0": params 8*3*3*3 = 216; output 2*8*16*16 = 4,096 elements, each 3*3*3 = 27 MACs:
  flops 110,592; activations 4,096.
- "2.0": params 16*8*3*3 + 16 = 1,168; output 2*16*8*8 = 2,048 elements x 8*3*3 = 72 MACs:
  flops 147,456; activations 2,048.
- "4": params 1024*10 + 10 = 10,250; flops 2*1024*10 = 20,480; activations 20.
- total: params 216 + 1,168 + 10,250 = 11,634; flops 278,528; activations 6,164.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from test_report_json import validate
from test_report_samples import make_result

from pytest_actbudget.budgets.schema import load_budgets
from pytest_actbudget.cli import main
from pytest_actbudget.report.diff_formats import DIFF_SCHEMA_PATH
from pytest_actbudget.report.json import render
from pytest_actbudget.results import TensorSpec

TINYNET = textwrap.dedent(
    """
    import torch
    from torch import nn

    def make():
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()),
            nn.Flatten(),
            nn.Linear(1024, 10),
        )

    model = make()

    def broken():
        raise RuntimeError("no weights here")

    def embedder():
        return nn.Embedding(100, 4)

    not_a_model = 42
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tinynet.py").write_text(TINYNET, encoding="utf-8")
    return tmp_path


def actbudget(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_actbudget", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_profile_prints_layers_and_group_shares(project: Path) -> None:
    run = actbudget(project, "profile", "tinynet:make", "--input", "2,3,16,16")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Sequential(2x3x16x16 float32)  fvcore  from tinynet:make"
    rows = {line.split()[0]: line.split() for line in lines[3:11]}
    assert rows["0"] == ["0", "Conv2d", "2", "x", "8", "x", "16", "x", "16", "216", "216",
                         "110.6K", "4.1K", "0"]  # fmt: skip
    assert rows["2.0"][:2] == ["2.0", "Conv2d"]
    assert rows["2.0"][-5:] == ["1,168", "1,168", "147.5K", "2.0K", "2"]
    assert rows["(root)"][-4:] == ["11,634", "11,634", "278.5K", "6.2K"]
    assert lines[11] == "  total params 11,634  trainable 11,634  non-trainable 0"
    assert lines[13] == ""
    groups = {line.split()[0]: line.split() for line in lines[15:]}
    # Automatic groups: one per child of the root. Shares: 110,592 / 278,528 = 39.7%,
    # 147,456 / 278,528 = 52.9%, 20,480 / 278,528 = 7.4%.
    assert groups["0"][:3] == ["0", "110.6K", "39.7%"]
    assert groups["2"][:3] == ["2", "147.5K", "52.9%"]
    assert groups["4"][:3] == ["4", "20.5K", "7.4%"]
    assert groups["total"][:3] == ["total", "278.5K", "100.0%"]


def test_profile_json_is_a_report_with_the_hand_derived_numbers(project: Path) -> None:
    run = actbudget(project, "profile", "tinynet:model", "--input", "2,3,16,16", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["schema"] == 1
    (result,) = report["results"]
    assert result["total"]["flops"] == 278_528
    assert result["total"]["params"] == 11_634
    assert result["total"]["activations"] == 6_164
    layers = {layer["path"]: layer for layer in result["layers"]}
    assert [layer["path"] for layer in result["layers"]] == [
        "", "0", "1", "2", "2.0", "2.1", "3", "4"
    ]  # fmt: skip
    assert layers["0"]["output_shape"] == [2, 8, 16, 16]
    assert (layers["0"]["flops"], layers["2.0"]["flops"], layers["4"]["flops"]) == (
        110_592,
        147_456,
        20_480,
    )
    assert [group["name"] for group in result["groups"]] == ["0", "1", "2", "3", "4"]


def test_profile_depth_limits_the_layer_table(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    assert main(["profile", "tinynet:make", "--input", "2,3,16,16", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].endswith("; 2 modules below depth 1 not shown")  # 2.0 and 2.1
    modules = [line.split()[0] for line in lines[3:9]]
    assert modules == ["(root)", "0", "1", "2", "3", "4"]  # no 2.0 / 2.1 at depth 2


def test_profile_training_adds_the_training_step(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    assert main(["profile", "tinynet:make", "--input", "2,3,16,16", "--training", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    # No file: sgd, no optimizer state. Backward MACs: "0", the first layer, its weight
    # gradient only = its forward 110,592; "2.0" both gradients 2 x 147,456 = 294,912;
    # "4" 2 x 20,480 = 40,960; total 446,464.
    assert result["training"] == {"optimizer": "sgd", "grad_dtype": None, "state_dtype": "float32"}
    layers = {layer["path"]: layer for layer in result["layers"]}
    assert [layers[p]["backward_flops"] for p in ("0", "2.0", "4")] == [110_592, 294_912, 40_960]
    total = result["total"]
    assert total["backward_flops"] == 446_464
    assert total["train_flops"] == 278_528 + 446_464
    # 11,634 float32 params and as many gradients: 2 x 46,536 bytes, plus what was saved
    assert total["train_bytes"] == 93_072 + total["saved_bytes"]
    assert main(["profile", "tinynet:make", "--input", "2,3,16,16", "--training"]) == 0
    assert "training step (optimizer sgd, grads as params, state float32)" in (
        capsys.readouterr().out
    )


def test_profile_builds_integer_inputs_for_embeddings(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    assert main(["profile", "tinynet:embedder", "--input", "8,5", "--dtype", "int64"]) == 0
    out = capsys.readouterr().out
    # Embedding(100, 4): 400 params; output 8x5x4.
    assert out.splitlines()[0].startswith("Embedding(8x5 int64)")
    assert "8 x 5 x 4" in out and "400" in out


def test_a_user_error_is_one_line_without_traceback(project: Path) -> None:
    run = actbudget(project, "profile", "nosuchpkg.models:make", "--input", "1,3,8,8")
    assert run.returncode == 2
    assert run.stderr == (
        "actbudget profile: error: cannot import 'nosuchpkg.models': No module named 'nosuchpkg'\n"
    )
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["tinynet:mak", "--input", "1,3,16,16"],
            "module 'tinynet' has no attribute 'mak'; nearest: make",
        ),
        (["tinynet", "--input", "1"], "'tinynet': expected PKG.MODULE:FACTORY, e.g."),
        (
            ["tinynet:make", "--input", "1,3,x"],
            "--input '1,3,x': expected a comma-separated list of positive integers, "
            "e.g. --input 64,3,28,28",
        ),
        (["tinynet:make", "--input", "1,0,4"], "--input '1,0,4': expected a comma-separated"),
        (["tinynet:make", "--input", "1,3", "--dtype", "float33"], "--dtype 'float33' (did you"),
        (["tinynet:broken", "--input", "1"], "calling 'tinynet:broken' raised RuntimeError: no"),
        (["tinynet:not_a_model", "--input", "1"], "'tinynet:not_a_model' is a int, not a model"),
        (
            ["tinynet:make", "--input", "1,5,16,16"],
            "could not measure Sequential: its forward raised RuntimeError: Given groups=1",
        ),
        (["tinynet:make", "--input", "1,3,16,16", "--depth", "-1"], "--depth -1: expected 0"),
    ],
)
def test_profile_errors(
    capsys: pytest.CaptureFixture[str],
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    assert main(["profile", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"actbudget profile: error: {message}")
    assert err.count("\n") == 1


# -- diff ---------------------------------------------------------------------------


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Path, Path]:
    """Before and after a stem change: stride 2 -> 1 makes the stem's output 28x28, four
    times the elements, so its flops, activations and act_bytes grow by +300%."""
    env = {"python": "3", "torch": "2", "fvcore": "0", "pytest_actbudget": "0"}
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(render([make_result(), make_result("other")], env), encoding="utf-8")
    new.write_text(
        render([make_result(stem_scale=4, stem_budget=1e9), make_result("other")], env),
        encoding="utf-8",
    )
    return old, new


def test_diff_names_the_stem_group_and_its_growth(reports: tuple[Path, Path]) -> None:
    old, new = reports
    run = actbudget(old.parent, "diff", str(old), str(new), "--fail-over", "10%")
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "2 entries: 1 changed, 1 unchanged, 0 added, 0 removed"
    # stem flops: 118,816,768 -> 4 x = 475,267,072 (+300.0%); params unchanged (9,536).
    assert "  stem             flops            118.8M     475.3M   +300.0% !" in lines
    assert "  stem             activations      802.8K       3.2M   +300.0% !" in lines
    assert not any(line.split()[:2] == ["stem", "params"] for line in lines if line.strip())
    # total flops: 118,857,728 -> 475,308,032: +299.9%.
    assert "  total            flops            118.9M     475.3M   +299.9% !" in lines
    assert "6 metric(s) grew by more than 10%:" in lines
    assert "  stem-cnn stem flops +300.0%" in lines


def test_diff_without_threshold_reports_and_exits_0(
    capsys: pytest.CaptureFixture[str], reports: tuple[Path, Path]
) -> None:
    old, new = reports
    assert main(["diff", str(old), str(new)]) == 0
    assert "+300.0%" in capsys.readouterr().out
    assert main(["diff", str(old), str(new), "--fail-over", "400%"]) == 0
    assert "nothing grew by more than 400%" in capsys.readouterr().out
    assert main(["diff", str(new), str(old), "--fail-over", "0"]) == 0  # shrinking is fine


def test_diff_lists_added_and_removed_entries(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env = {"python": "3"}
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(render([make_result("gone")], env), encoding="utf-8")
    new.write_text(render([make_result("fresh")], env), encoding="utf-8")
    assert main(["diff", str(old), str(new), "--fail-over", "0%"]) == 0
    out = capsys.readouterr().out
    assert "fresh  (tests/test_models.py::test_stem)  added" in out
    assert "gone  (tests/test_models.py::test_stem)  removed" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version: 1\n", "not JSON"),
        ('{"schema": 7, "results": []}', "report schema 7 is not supported"),
    ],
)
def test_diff_of_an_unreadable_report_exits_2(
    capsys: pytest.CaptureFixture[str], reports: tuple[Path, Path], content: str, message: str
) -> None:
    old, _ = reports
    bad = old.with_name("bad.json")
    bad.write_text(content, encoding="utf-8")
    assert main(["diff", str(old), str(bad)]) == 2
    assert message in capsys.readouterr().err


def test_diff_rejects_an_ambiguous_threshold(
    capsys: pytest.CaptureFixture[str], reports: tuple[Path, Path]
) -> None:
    old, new = reports
    assert main(["diff", str(old), str(new), "--fail-over", "10"]) == 2
    assert "--fail-over '10': 10 is ambiguous as a percentage" in capsys.readouterr().err


def test_usage_errors_from_argparse_exit_2_and_help_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profile", "tinynet:make", "--depth", "x"]) == 2
    assert "argument --depth: invalid int value: 'x'" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "profile" in capsys.readouterr().out


def test_the_console_script_points_at_main() -> None:
    (script,) = [ep for ep in metadata.entry_points(group="console_scripts")
                 if ep.name == "actbudget"]  # fmt: skip
    assert script.value == "pytest_actbudget.cli:main"


# -- init ---------------------------------------------------------------------------


def test_init_writes_a_starter_entry_with_automatic_groups(project: Path) -> None:
    run = actbudget(
        project, "init", "tinynet:make", "--input", "2,3,16,16", "--name", "tiny", "--file",
        "conf/budgets.yaml",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    budgets = load_budgets(project / "conf" / "budgets.yaml", must_exist=True)
    entry = budgets.models["tiny"]
    assert entry.input == (TensorSpec((2, 3, 16, 16), "float32"),)
    assert entry.mode == "train"  # as the factory made it
    assert [(g.name, g.modules) for g in entry.groups] == [
        ("0", ("0",)), ("1", ("1",)), ("2", ("2",)), ("3", ("3",)), ("4", ("4",))
    ]  # fmt: skip
    limits = {g.name: g.limits for g in entry.groups}
    # measured x 1.1, rounded up to 3 significant digits: conv "0" 110,592 flops ->
    # 121,651.2 -> 122,000; "2.0" 147,456 -> 162,201.6 -> 163,000; params 216 -> 237.6 -> 238.
    assert limits["0"]["flops"] == 122_000
    assert limits["0"]["params"] == 238
    assert limits["2"]["flops"] == 163_000
    # total: 278,528 flops -> 306,380.8 -> 307,000; 11,634 params -> 12,797.4 -> 12,800.
    assert entry.total["flops"] == 307_000
    assert entry.total["params"] == 12_800
    assert run.stdout.splitlines() == [
        "created conf/budgets.yaml",
        "conf/budgets.yaml: created entry 'tiny' (5 groups)",
        "budgets = measured x (1 + 10% headroom), rounded up",
    ]


def test_init_refuses_an_existing_entry_unless_forced(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    (project / "budgets.yaml").write_text(
        "version: 1\nmodels:\n  # the tiny one\n  tiny:\n    total: {flops: 1}\n",
        encoding="utf-8",
    )
    args = ["init", "tinynet:make", "--input", "2,3,16,16", "--name", "tiny"]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "actbudget init: error: budgets.yaml:4: entry 'tiny' exists already; pass --force "
        "to re-record its budgets from this measurement\n"
    )
    assert main([*args, "--force", "--headroom", "0%"]) == 0
    # An existing entry keeps its shape and comments: its one budget is re-recorded,
    # 278,528 flops rounded up to 3 significant digits.
    assert (project / "budgets.yaml").read_text(encoding="utf-8") == (
        "version: 1\nmodels:\n  # the tiny one\n  tiny:\n    input: [2, 3, 16, 16]\n"
        "    mode: train\n    total: {flops: 279K}\n"
    )
    assert main([*args[:-1], "other", "--counting", "macs"]) == 2
    assert "counts flops as 'fvcore'; --counting macs would mix units" in capsys.readouterr().err


# -- the budgets entry: `input:`, groups and counting ---------------------------------

# Hand-made groups for tinynet; every budget 1 so that `init --force` must rewrite each.
# "2*" matches "2", "2.0" and "2.1": the top-most match is "2".
GROUPED = """\
version: 1
models:
  tiny:
    input: [2, 3, 16, 16]
    groups:
      stem: {modules: ["0", "1"], flops: 1, flops_share: 10%}
      late: {modules: ["2*"], flops: 1, activations: 1}
      head: {modules: ["4"], params: 1}
    total: {flops: 1, params: 1}
  no-input:
    total: {flops: 1}
"""


@pytest.fixture
def grouped(project: Path) -> Path:
    (project / "budgets.yaml").write_text(GROUPED, encoding="utf-8")
    return project


def _group_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    start = lines.index("") + 2  # the blank line, then the group table's header
    return {line.split()[0]: line.split() for line in lines[start:]}


def test_profile_with_name_takes_the_entry_input_and_groups(grouped: Path) -> None:
    run = actbudget(grouped, "profile", "tinynet:make", "--name", "tiny")
    assert run.returncode == 0, run.stderr  # over every budget of 1: profile only shows it
    lines = run.stdout.splitlines()
    # The shape comes from the entry's `input: [2, 3, 16, 16]`.
    assert lines[0] == "Sequential(2x3x16x16 float32)  fvcore  from tinynet:make  entry 'tiny'"
    groups = _group_rows(run.stdout)
    assert list(groups) == ["stem", "late", "head", "(other)", "total"]
    # stem = "0" + "1": 110,592 + 0 flops, 110,592 / 278,528 = 39.7%; late = "2":
    # 147,456 -> 52.9%; head = "4": 20,480 -> 7.4%; (other) = Flatten "3": 0 flops.
    assert groups["stem"][:3] == ["stem", "110.6K", "39.7%"]
    assert groups["late"][:3] == ["late", "147.5K", "52.9%"]
    assert groups["head"][:3] == ["head", "20.5K", "7.4%"]
    assert groups["(other)"][:3] == ["(other)", "0", "0.0%"]
    # The budgets are shown: stem flops 110,592 / budget 1 = 11,059,200%, over.
    assert groups["stem"][-2:] == ["11059200%", "!"]
    # The layer table names each layer's group.
    assert lines[7].split()[0] == "2.0" and lines[7].split()[-1] == "late"


def test_profile_with_file_takes_its_counting_and_help_says_so(project: Path) -> None:
    (project / "macs.yaml").write_text(
        "version: 1\ncounting:\n  flops: macs\nmodels: {}\n", encoding="utf-8"
    )
    run = actbudget(project, "profile", "tinynet:make", "--input", "2,3,16,16", "--file",
                    "macs.yaml")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "Sequential(2x3x16x16 float32)  macs  from tinynet:make"
    # Automatic groups without --name; only conv and linear count, as fvcore does here:
    # "0" 110,592 of 278,528 = 39.7%.
    assert _group_rows(run.stdout)["0"][:3] == ["0", "110.6K", "39.7%"]
    # Without --file / --name no budgets file is read (none would exist here anyway).
    run = actbudget(project, "profile", "tinynet:make", "--input", "2,3,16,16")
    assert run.stdout.splitlines()[0].split("  ")[1] == "fvcore"
    help_text = " ".join(actbudget(project, "profile", "--help").stdout.split())
    assert (
        "FLOP convention (default: the budgets file's `counting.flops` when --name or "
        "--file is given, else fvcore)"
    ) in help_text


def test_profile_with_name_and_another_counting_shows_groups_without_budgets(
    grouped: Path,
) -> None:
    run = actbudget(grouped, "profile", "tinynet:make", "--name", "tiny", "--counting", "macs")
    assert run.returncode == 0, run.stderr
    groups = _group_rows(run.stdout)
    assert groups["stem"] == ["stem", "110.6K", "39.7%", "████", "4.1K", "216", "32.0KiB"]
    assert "use" not in run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["profile", "tinynet:make"],
            "actbudget profile: error: no input shape: pass --input SHAPE "
            "(e.g. --input 64,3,28,28), or --name NAME of a budgets entry with `input:`\n",
        ),
        (
            ["profile", "tinynet:make", "--name", "no-input"],
            "actbudget profile: error: budgets.yaml:10: entry 'no-input' has no `input:`: "
            "pass --input SHAPE, or add `input: [N, C, H, W]` to the entry\n",
        ),
        (
            ["init", "tinynet:make", "--name", "fresh"],
            "actbudget init: error: no input shape: pass --input SHAPE "
            "(e.g. --input 64,3,28,28); entry 'fresh' is not in budgets.yaml yet, so it has "
            "no `input:` to take\n",
        ),
        (
            ["init", "tinynet:make", "--name", "no-input", "--force"],
            "actbudget init: error: budgets.yaml:10: entry 'no-input' has no `input:`: "
            "pass --input SHAPE, or add `input: [N, C, H, W]` to the entry\n",
        ),
        (
            ["profile", "tinynet:make", "--name", "tinny"],
            "actbudget profile: error: budgets.yaml: no entry 'tinny'; nearest: tiny\n",
        ),
    ],
)
def test_without_an_input_shape_the_error_says_where_to_give_one(
    capsys: pytest.CaptureFixture[str],
    grouped: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(grouped)
    monkeypatch.syspath_prepend(str(grouped))
    assert main(args) == 2
    assert capsys.readouterr().err == message


def test_init_force_rerecords_every_budget_of_a_hand_grouped_entry(grouped: Path) -> None:
    run = actbudget(grouped, "init", "tinynet:make", "--name", "tiny", "--force",
                    "--headroom", "0%")  # fmt: skip
    assert run.returncode == 0, run.stderr
    # Measured on the entry's `input:` with its own groups, rounded up to 3 significant
    # digits: stem 110,592 flops -> 111K, share 110,592 / 278,528 = 0.39706 -> 39.8%;
    # late 147,456 -> 148K, activations 2,048 -> 2.05K; head params 10,250 -> 10.3K;
    # total 278,528 flops -> 279K, 11,634 params -> 11.7K.
    text = (grouped / "budgets.yaml").read_text(encoding="utf-8")
    assert text == (
        "version: 1\n"
        "models:\n"
        "  tiny:\n"
        "    input: [2, 3, 16, 16]\n"
        "    mode: train\n"
        "    groups:\n"
        '      stem: {modules: ["0", "1"], flops: 111K, flops_share: 39.8%}\n'
        '      late: {modules: ["2*"], flops: 148K, activations: 2.05K}\n'
        '      head: {modules: ["4"], params: 10.3K}\n'
        "    total: {flops: 279K, params: 11.7K}\n"
        "  no-input:\n"
        "    total: {flops: 1}\n"
    )
    assert run.stdout.splitlines()[0] == (
        "budgets.yaml: updated 'tiny': mode train (new), stem.flops 1 -> 111K, "
        "stem.flops_share 10% -> 39.8%, "
        "late.flops 1 -> 148K, late.activations 1 -> 2.05K, head.params 1 -> 10.3K, "
        "total.flops 1 -> 279K, total.params 1 -> 11.7K"
    )


def test_init_force_with_patterns_that_do_not_fit_is_a_usage_error(project: Path) -> None:
    (project / "budgets.yaml").write_text(
        "version: 1\nmodels:\n  tiny:\n    groups:\n      stem: {modules: ['9'], flops: 1}\n",
        encoding="utf-8",
    )
    run = actbudget(project, "init", "tinynet:make", "--input", "2,3,16,16", "--name", "tiny",
                    "--force")  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("actbudget init: error: ") and "'9'" in run.stderr
    assert run.stderr.count("\n") == 1


def test_diff_follows_an_entry_whose_test_moved(tmp_path: Path) -> None:
    env = {"python": "3"}
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(render([make_result()], env), encoding="utf-8")
    moved = make_result(stem_scale=4, nodeid="tests/test_new.py::test_stem")
    new.write_text(render([moved], env), encoding="utf-8")
    run = actbudget(tmp_path, "diff", str(old), str(new), "--fail-over", "10%")
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == (
        "1 entry: 1 changed, 0 unchanged, 0 added, 0 removed (1 moved to another test)"
    )
    assert lines[2] == (
        "stem-cnn  (tests/test_models.py::test_stem -> tests/test_new.py::test_stem)"
    )
    # stem flops 118,816,768 -> 475,267,072: +300.0%, as in the unmoved case above.
    assert "  stem-cnn stem flops +300.0%" in lines


def test_diff_formats_md_for_a_pull_request_and_json_for_tools(
    capsys: pytest.CaptureFixture[str], reports: tuple[Path, Path]
) -> None:
    old, new = reports
    assert main(["diff", str(old), str(new), "--format", "md"]) == 0
    text = capsys.readouterr().out
    # stem flops 118,816,768 -> 475,267,072: +300.0%; total flops +299.9%.
    assert text.startswith(
        "**act budget: 2 groups grew more than 5%: stem-cnn/stem flops +300.0%, "
        "stem-cnn/total flops +299.9%**\n"
    )
    assert "| stem-cnn | stem | flops | 118.8M | 475.3M | +300.0% ⚠️ |" in text
    assert "other" not in text.split("\n\n")[1]  # unchanged: not listed
    # --fail-over sets the headline's threshold and the exit status in every format.
    assert main(["diff", str(old), str(new), "--format", "json", "--fail-over", "10%"]) == 1
    document = json.loads(capsys.readouterr().out)
    schema = json.loads(DIFF_SCHEMA_PATH.read_text())
    validate(document, schema, schema)
    assert document["threshold"] == 0.1
    assert document["counts"] == {"changed": 1, "same": 1, "added": 0, "removed": 0}
    assert document["grown"][0] == {
        "entry": "stem-cnn",
        "nodeid": "tests/test_models.py::test_stem",
        "group": "stem",
        "metric": "flops",
        "old": 118_816_768,
        "new": 475_267_072,
        "change": 3.0,
    }
    assert main(["diff", str(old), str(new), "--format", "yaml"]) == 2
    assert "invalid choice: 'yaml'" in capsys.readouterr().err
