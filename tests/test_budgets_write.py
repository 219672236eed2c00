"""Recording budgets: created files, in-place updates that keep every other byte,
idempotence, atomic writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_actbudget.atomic import write_atomic
from pytest_actbudget.budgets.schema import load_budgets
from pytest_actbudget.budgets.write import (
    BudgetChange,
    MeasuredEntry,
    UpdateSummary,
    update_budgets,
)
from pytest_actbudget.errors import BudgetFileError
from pytest_actbudget.results import TensorSpec


def measured(flops: float, activations: float, params: float, act_bytes: float) -> dict[str, float]:
    """All METRICS of one group; the shares are arbitrary but fixed."""
    return {
        "flops": flops,
        "activations": activations,
        "params": params,
        "act_bytes": act_bytes,
        "saved_bytes": 0,
        "flops_share": 0.15,
        "act_share": 0.2941,
    }


# The stem of the fastai ResNet-18 on 64x3x28x28: conv1 (3->64, 7x7, stride 2) emits
# 64x64x14x14 = 802,816 elements; its MACs are 802,816 x 3 x 7 x 7 = 118,013,952;
# params 64 x 3 x 7 x 7 = 9,408; float32 output bytes 802,816 x 4 = 3,211,264.
STEM = measured(118_013_952, 802_816, 9408, 3_211_264)
# The head: Linear(512, 10, no bias) on 64 rows: 64 x 512 x 10 = 327,680 MACs, 640
# output elements, 5,120 params, 2,560 bytes.
HEAD = measured(327_680, 640, 5120, 2560)
TOTAL = {"flops": 118_341_632, "activations": 803_456, "params": 14_528, "act_bytes": 3_213_824}
ENTRY = MeasuredEntry(
    name="resnet18-mnist",
    groups={"0": STEM, "1": HEAD},
    group_modules={"0": ("0",), "1": ("1",)},
    total={**TOTAL, "saved_bytes": 0},
    input=(TensorSpec((64, 3, 28, 28), "float32"),),
)
# With 10% headroom, each value x 1.1 rounded up to 3 significant digits:
#   118,013,952 x 1.1 = 129,815,347.2 -> 130M      802,816 x 1.1 = 883,097.6 -> 884K
#   9,408 x 1.1 = 10,348.8 -> 10.4K                 3,211,264 B x 1.1 = 3.3687 MiB -> 3.37MiB
#   327,680 x 1.1 = 360,448 -> 361K                 640 x 1.1 = 704 -> 704
#   5,120 x 1.1 = 5,632 -> 5.64K                    2,560 B x 1.1 = 2.75 KiB -> 2.75KiB
#   total: 118,341,632 x 1.1 = 130,175,795.2 -> 131M; 803,456 x 1.1 = 883,801.6 -> 884K;
#          14,528 x 1.1 = 15,980.8 -> 16K; 3,213,824 B x 1.1 = 3.3714 MiB -> 3.38MiB
NEW_ENTRY = """\
  resnet18-mnist:
    input: [64, 3, 28, 28]
    groups:
      "0": {modules: ["0"], flops: 130M, activations: 884K, params: 10.4K, act_bytes: 3.37MiB}
      "1": {modules: ["1"], flops: 361K, activations: 704, params: 5.64K, act_bytes: 2.75KiB}
    total: {flops: 131M, activations: 884K, params: 16K, act_bytes: 3.38MiB}
"""


def test_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    summary = update_budgets(path, [ENTRY], 0.1)
    assert path.read_text(encoding="utf-8") == (
        "# Compute budgets checked by pytest-actbudget; record them with\n"
        "# `pytest --actbudget-update` (comments and order here are kept).\n"
        "version: 1\n"
        "counting:\n  flops: fvcore\n"
        "defaults:\n  headroom: 10%\n"
        "models:\n" + NEW_ENTRY
    )
    assert summary.created_file
    assert summary.created == ("resnet18-mnist",)
    assert summary.lines() == [
        f"created {path}",
        f"{path}: created entry 'resnet18-mnist' (2 groups)",
    ]
    assert BudgetChange("resnet18-mnist", "0", "flops", None, 130e6) in summary.changes
    loaded = load_budgets(path)
    assert loaded.headroom == 0.1
    assert loaded.models["resnet18-mnist"].groups[0].limits == {
        "flops": 130e6,
        "activations": 884e3,
        "params": 10_400,
        "act_bytes": 3.37 * 2**20,
    }


def test_creates_with_macs_counting(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    update_budgets(path, [], 0.25, counting="macs")
    assert load_budgets(path).counting == "macs"
    assert "  headroom: 25%\n" in path.read_text(encoding="utf-8")


HAND_WRITTEN = """\
version: 1
# Budgets for the demo models. Keep the stem cheap!
defaults: {headroom: 10%}
models:
  resnet18-mnist:   # the fastai example
    input: [64, 3, 28, 28]
    total: {params: 12M, flops: "1G"}

    groups:
      # conv1 + bn1 + relu + maxpool
      "0":
        flops: 1_500_000   # hand-set, deliberately tight
        modules: ["0"]
        activations: 1.2M
      "1": {modules: ["1"]}
  other-model:
    groups:
      all: {modules: ["*"], flops: 1G}   # untouched
"""


FILLED_BEFORE = '"1": {modules: ["1"]}'
FILLED_AFTER = (
    '"1": {modules: ["1"], flops: 361K, activations: 704, params: 5.64K, act_bytes: 2.75KiB}'
)


def test_updates_values_in_place_and_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    summary = update_budgets(path, [ENTRY], 0.1)
    # Only the values of listed metrics change (130M, 884K for "0"; 16K and 131M for
    # the total); "1" lists no metric, so it gets the default four (the numbers of
    # NEW_ENTRY); other-model was not measured; `input:` is what was measured.
    assert path.read_text(encoding="utf-8") == HAND_WRITTEN.replace(
        'total: {params: 12M, flops: "1G"}', "total: {params: 16K, flops: 131M}"
    ).replace("flops: 1_500_000 ", "flops: 130M ").replace(
        "activations: 1.2M", "activations: 884K"
    ).replace(FILLED_BEFORE, FILLED_AFTER)
    assert summary.changed == ("resnet18-mnist",)
    assert not summary.created_file and summary.created == ()
    assert summary.lines() == [
        f"{path}: updated 'resnet18-mnist': 0.flops 1.5M -> 130M, "
        "0.activations 1.2M -> 884K, 1.flops 361K (new), 1.activations 704 (new), "
        "1.params 5.64K (new), 1.act_bytes 2.75KiB (new), total.params 12M -> 16K, "
        "total.flops 1G -> 131M"
    ]


def test_unchanged_values_keep_their_spelling_and_no_write(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    text = HAND_WRITTEN.replace("flops: 1_500_000", "flops: 130_000_000")
    text = text.replace("activations: 1.2M", "activations: 884_000")
    text = text.replace('total: {params: 12M, flops: "1G"}', 'total: {params: "16_000"}')
    text = text.replace(FILLED_BEFORE, FILLED_AFTER)
    path.write_text(text, encoding="utf-8")
    before = path.stat()
    summary = update_budgets(path, [ENTRY], 0.1)
    assert summary.unchanged == ("resnet18-mnist",) and summary.changes == ()
    assert summary.lines() == [f"{path}: unchanged: 'resnet18-mnist'"]
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.read_text(encoding="utf-8") == text


def test_second_update_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    update_budgets(path, [ENTRY], 0.1)
    first = path.read_bytes()
    inode = path.stat().st_ino
    summary = update_budgets(path, [ENTRY], 0.1)
    assert path.read_bytes() == first
    assert path.stat().st_ino == inode  # not even rewritten
    assert summary.changed == () and summary.unchanged == ("resnet18-mnist",)


def test_new_entry_goes_after_the_last_one_and_its_comments(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        HAND_WRITTEN + "    # disabled: {modules: [x]}\n\n# the end\n", encoding="utf-8"
    )
    new = MeasuredEntry("new", {"g": STEM}, {"g": ("0",)}, {}, None)
    summary = update_budgets(path, [new], 0.1)
    # The indented comment belongs to other-model and stays with it; the top-level
    # "# the end" stays last.
    assert path.read_text(encoding="utf-8") == (
        HAND_WRITTEN
        + "    # disabled: {modules: [x]}\n"
        + "  new:\n    groups:\n"
        + '      g: {modules: ["0"], flops: 130M, activations: 884K, params: 10.4K, '
        + "act_bytes: 3.37MiB}\n"
        + "\n# the end\n"
    )
    assert summary.created == ("new",) and summary.lines() == [
        f"{path}: created entry 'new' (1 group)"
    ]


def test_appends_new_entry_with_the_files_indent(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    existing = textwrap.dedent(
        """\
        version: 1
        models:
            kept:   # four-space indent
                groups:
                    a: {modules: ["a"], flops: 1G}
                # a comment that belongs to 'kept'
        # a comment about what follows models
        """
    )
    path.write_text(existing, encoding="utf-8")
    summary = update_budgets(path, [ENTRY], 0.1)
    expected = existing.replace(
        "# a comment about what follows models\n",
        "    resnet18-mnist:\n"
        "        input: [64, 3, 28, 28]\n"
        "        groups:\n"
        '            "0": {modules: ["0"], flops: 130M, activations: 884K, params: 10.4K, '
        "act_bytes: 3.37MiB}\n"
        '            "1": {modules: ["1"], flops: 361K, activations: 704, params: 5.64K, '
        "act_bytes: 2.75KiB}\n"
        "        total: {flops: 131M, activations: 884K, params: 16K, act_bytes: 3.38MiB}\n"
        "# a comment about what follows models\n",
    )
    assert path.read_text(encoding="utf-8") == expected
    assert summary.created == ("resnet18-mnist",)
    assert list(load_budgets(path).models) == ["kept", "resnet18-mnist"]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("version: 1\n", "version: 1\nmodels:\n"),
        ("version: 1", "version: 1\nmodels:\n"),  # no final line break
        ("version: 1\nmodels:\n", "version: 1\nmodels:\n"),
        ("version: 1\nmodels:   # none yet\n", "version: 1\nmodels:   # none yet\n"),
        ("version: 1\nmodels: ~\n", "version: 1\nmodels: \n"),
        ("version: 1\nmodels: {}\n# end\n", "version: 1\nmodels: \n"),
    ],
)
def test_first_entry_into_an_empty_models(tmp_path: Path, before: str, after: str) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(before, encoding="utf-8")
    update_budgets(path, [ENTRY], 0.1)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(after + NEW_ENTRY)
    assert list(load_budgets(path).models) == ["resnet18-mnist"]


def test_windows_line_endings_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_bytes(HAND_WRITTEN.replace("\n", "\r\n").encode())
    new = MeasuredEntry("new", {"g": STEM}, {"g": ("0",)}, {}, None)
    update_budgets(path, [ENTRY, new], 0.1)
    data = path.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert data.endswith(
        b'  new:\r\n    groups:\r\n      g: {modules: ["0"], flops: 130M, activations: 884K, '
        b"params: 10.4K, act_bytes: 3.37MiB}\r\n"
    )


def test_permission_bits_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    path.chmod(0o640)
    update_budgets(path, [ENTRY], 0.1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["budgets.yaml"]  # no temp left


def test_names_that_need_quotes(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    odd = MeasuredEntry(
        name='test_resnet[224] "quoted" é: yes',
        groups={"yes": STEM, "1.5": HEAD},
        group_modules={"yes": ("layer*.0", "a\tb"), "1.5": ("null",)},
        total={},
        input=None,
    )
    update_budgets(path, [odd], 0.0)
    entry = load_budgets(path).models[odd.name]
    assert [(g.name, g.modules) for g in entry.groups] == [
        ("yes", ("layer*.0", "a\tb")),
        ("1.5", ("null",)),
    ]


def test_flow_style_models_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    text = 'version: 1\nmodels: {a: {groups: {g: {modules: ["0"], flops: 1G}}}}\n'
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BudgetFileError) as raised:
        update_budgets(path, [ENTRY], 0.1)
    assert str(raised.value) == (
        f"{path}:2: models: cannot add 'resnet18-mnist': 'models' is written in flow "
        "style ({...}), which cannot be edited in place; write 'models:' as a block "
        "mapping (one entry per line) or add the entries by hand. Nothing was written."
    )
    assert path.read_text(encoding="utf-8") == text
    # Updating an existing entry of a flow mapping works: values are replaced in place.
    flow = MeasuredEntry("a", {"g": STEM}, {"g": ("0",)}, {}, None)
    update_budgets(path, [flow], 0.1)
    assert path.read_text(encoding="utf-8") == text.replace("1G", "130M")


def test_an_invalid_file_is_never_touched(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    text = "version: 1\nmodels:\n  resnet18-mnist: {groups: {g: {modules: [a], flops: 12X}}}\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BudgetFileError, match=r"budgets.yaml:3: .*'12X' is not a number"):
        update_budgets(path, [ENTRY], 0.1)
    assert path.read_text(encoding="utf-8") == text


def test_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    text = (
        "version: 1\nmodels:\n  a: {groups: {g: {modules: [a], flops: &f 1G}}}\n"
        "  b: {groups: {g: {modules: [a], flops: *f}}}\n"
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BudgetFileError, match="alias"):
        update_budgets(path, [MeasuredEntry("b", {"g": STEM}, {}, {}, None)], 0.1)
    assert path.read_text(encoding="utf-8") == text


def test_write_atomic_follows_symlinks_and_honours_umask(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    old = os.umask(0o027)
    try:
        write_atomic(link, "a: 1\n")
    finally:
        os.umask(old)
    assert link.is_symlink() and real.read_text() == "a: 1\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # 0o666 & ~0o027


KILLED_AT_FSYNC = """
import os, signal, sys
from pytest_actbudget.atomic import write_atomic
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    os.kill(os.getpid(), signal.SIGKILL)  # the new text is on disk, not yet renamed
os.fsync = fsync
write_atomic(sys.argv[1], "version: 1\\nmodels:\\n  half: {}\\n")
"""


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", KILLED_AT_FSYNC, str(path)], check=False)
    assert done.returncode == -9
    assert path.read_text(encoding="utf-8") == HAND_WRITTEN


def test_summary_lines_for_an_unwritten_update() -> None:
    summary = UpdateSummary("b.yaml", False, (), (), ("x", "y"), ())
    assert summary.lines() == ["b.yaml: unchanged: 'x', 'y'"]
    assert not summary.written


def test_a_byte_order_mark_is_kept(tmp_path: Path) -> None:
    # libyaml's marks skip the BOM while Python's count it: the edit must land on the
    # value either way. STEM flops 118,013,952 x 1.1 -> 130M (derived above).
    path = tmp_path / "budgets.yaml"
    path.write_bytes("\ufeffversion: 1\nmodels:\n  e:\n    total: {flops: 1}\n".encode())
    update_budgets(path, [MeasuredEntry("e", {}, {}, {"flops": 118_013_952}, None)], 0.1)
    assert (
        path.read_bytes() == "\ufeffversion: 1\nmodels:\n  e:\n    total: {flops: 130M}\n".encode()
    )


def test_classic_mac_line_endings_are_kept(tmp_path: Path) -> None:
    # Lone CRs are YAML line breaks too; the new entry goes after 'a', before 'defaults'.
    path = tmp_path / "budgets.yaml"
    path.write_bytes(
        b"version: 1\rmodels:\r  a:\r    total: {flops: 1}\rdefaults: {headroom: 5%}\r"
    )
    new = MeasuredEntry("new", {"g": STEM}, {"g": ("0",)}, {}, None)
    update_budgets(path, [new], 0.1)
    assert path.read_bytes() == (
        b"version: 1\rmodels:\r  a:\r    total: {flops: 1}\r  new:\r    groups:\r"
        b'      g: {modules: ["0"], flops: 130M, activations: 884K, params: 10.4K, '
        b"act_bytes: 3.37MiB}\rdefaults: {headroom: 5%}\r"
    )


def test_a_group_named_like_a_reserved_one_is_renamed(tmp_path: Path) -> None:
    # A model whose child module is called 'total' gets an automatic group 'total',
    # which the file reserves for the whole model: it is written as 'total_'.
    path = tmp_path / "budgets.yaml"
    entry = MeasuredEntry("m", {"total": HEAD}, {"total": ("total",)}, {}, None)
    update_budgets(path, [entry], 0.1)
    groups = load_budgets(path).models["m"].groups
    assert [(g.name, g.modules) for g in groups] == [("total_", ("total",))]
    assert groups[0].limits["flops"] == 361_000  # 327,680 x 1.1 = 360,448 -> 361K


def test_the_last_measurement_of_a_name_wins(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    first = MeasuredEntry("m", {}, {}, {"params": 100}, None)
    second = MeasuredEntry("m", {}, {}, {"params": 200}, None)
    summary = update_budgets(path, [first, second], 0.1)
    assert summary.created == ("m",)
    assert load_budgets(path).models["m"].total == {"params": 220}  # 200 x 1.1


def test_a_file_that_is_one_flow_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text("{version: 1, models: {}}\n", encoding="utf-8")
    new = MeasuredEntry("new", {}, {}, {"params": 1}, None)
    with pytest.raises(BudgetFileError) as raised:
        update_budgets(path, [new], 0.1)
    assert str(raised.value) == (
        f"{path}:1: models: cannot add 'new': the file is one flow mapping ({{...}}), which "
        "cannot be edited in place; write 'models:' as a block mapping (one entry per line) "
        "or add the entries by hand. Nothing was written."
    )
    assert path.read_text(encoding="utf-8") == "{version: 1, models: {}}\n"


def test_summary_lines_stay_one_line_per_entry() -> None:
    change = BudgetChange("two\nlines", "total", "params", 100.0, 220.0)
    summary = UpdateSummary("b.yaml", False, (), ("two\nlines",), ("tab\there",), (change,))
    assert summary.lines() == [
        "b.yaml: updated 'two\\nlines': total.params 100 -> 220",
        "b.yaml: unchanged: 'tab\\there'",
    ]
