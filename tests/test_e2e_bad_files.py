"""Bad budgets files end to end: real pytest runs stop as one usage error.

The loader's exact messages are pinned in test_budgets_load.py; here every case goes
through a whole pytest run (serial, with --actbudget-update, and under xdist -n 2) and
must end with exit code 4 (pytest.ExitCode.USAGE_ERROR), print ONE message that starts
with ``file:line`` and names the key path, show no traceback and no plugin frame, run
nothing the file asks for, and leave every file of the project byte for byte as it was
(no temp file left behind, nothing created).

The test module of each run imports torch inside the test body: a run stopped by a bad
file never gets there, so each run costs a pytest start-up, not a torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_plugin import NETS

# Never run: every case stops the session before the first test.
TESTS = """
import pytest


@pytest.mark.act_budget("small-cnn")
def test_small_cnn():
    import torch
    from nets import small_cnn

    small_cnn()(torch.randn(2, 3, 16, 16))


def test_plain():
    pass
"""

MARKER_FILE_TEST = """
import pytest


@pytest.mark.act_budget("small-cnn", file="other.yaml")
def test_with_its_own_file():
    import torch
    from nets import small_cnn

    small_cnn()(torch.randn(2, 3, 16, 16))
"""

GOOD = "version: 1\nmodels: {}\n"
# The hypothesis plugin costs half a second of start-up and plays no part here.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


@dataclass(frozen=True)
class Case:
    files: dict[str, bytes]  # relative path -> content written before the run
    where: str  # the file named by the message, relative to the project
    message: str  # after "ERROR: <project>/<where>", an fnmatch pattern
    args: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)  # more test modules


def budgets(text: bytes) -> dict[str, bytes]:
    return {"budgets.yaml": text}


CASES = {
    # The flow sequence opened on line 3 is still open when the text ends on line 4.
    "syntax error": Case(
        budgets(b"version: 1\nmodels:\n  small-cnn: {groups: [\n"),
        "budgets.yaml",
        ":4: invalid YAML: *",
    ),
    "python tag": Case(
        budgets(
            b"version: 1\nmodels:\n"
            b'  small-cnn: !!python/object/apply:os.system ["echo pwned > pwned.txt"]\n'
        ),
        "budgets.yaml",
        ":3: models.small-cnn: the tag '!!python/object/apply:os.system' is not allowed*",
    ),
    "duplicate key": Case(
        budgets(
            b"version: 1\nmodels:\n  small-cnn:\n    total: {flops: 1M}\n"
            b"  small-cnn:\n    total: {flops: 2M}\n"
        ),
        "budgets.yaml",
        ":5: models.small-cnn: duplicate key 'small-cnn' (first at line 3)*",
    ),
    "unknown key": Case(
        budgets(
            b"version: 1\nmodels:\n  small-cnn:\n    groups:\n"
            b'      stem: {modules: ["0"], flopz: 1M}\n'
        ),
        "budgets.yaml",
        ":5: models.small-cnn.groups.stem.flopz: unknown key 'flopz'; did you mean 'flops'?",
    ),
    "negative number": Case(
        budgets(b"version: 1\nmodels:\n  small-cnn:\n    total: {flops: -5}\n"),
        "budgets.yaml",
        ":4: models.small-cnn.total.flops: -5 is negative*",
    ),
    "bad unit": Case(
        budgets(
            b"version: 1\nmodels:\n  small-cnn:\n    groups:\n"
            b'      stem: {modules: ["0"], act_bytes: 3MB/s}\n'
        ),
        "budgets.yaml",
        ":5: models.small-cnn.groups.stem.act_bytes: '3MB/s' is not a byte size*",
    ),
    "wrong version": Case(
        budgets(b"version: 2\nmodels: {}\n"),
        "budgets.yaml",
        ":1: version: unsupported version 2*",
    ),
    "empty file": Case(budgets(b""), "budgets.yaml", ":1: the file is empty*"),
    "a list": Case(budgets(b"- version: 1\n"), "budgets.yaml", ":1: *got a list"),
    # 0xff is the first byte of line 3.
    "invalid utf-8": Case(
        budgets(b"version: 1\nmodels:\n  \xffsmall: {}\n"),
        "budgets.yaml",
        ":3: the file is not valid UTF-8 (byte 0xff)*",
    ),
    "ini actbudget_file": Case(
        {
            "pytest.ini": b"[pytest]\nactbudget_file = cfg/b.yaml\n",
            "cfg/b.yaml": b"version: 1\nmodels:\n  small-cnn:\n    total: {params: 12XB}\n",
        },
        "cfg/b.yaml",
        ":4: models.small-cnn.total.params: '12XB' is not a number*",
    ),
    "a folder": Case(
        {"cfg/readme.txt": b"not a budgets file\n"},
        "cfg",
        ": is a directory, not a budgets file; check --actbudget-file / actbudget_file",
        args=("--actbudget-file", "cfg"),
    ),
    "marker file=": Case(
        {
            "budgets.yaml": GOOD.encode(),
            "other.yaml": b"version: 1\nmodels:\n  small-cnn:\n    total: {flops: 1M, flopz: 2}\n",
        },
        "other.yaml",
        ":4: models.small-cnn.total.flopz: unknown key 'flopz'; did you mean 'flops'?",
        extra={"test_marker_file": MARKER_FILE_TEST},
    ),
}

MODES = {
    "serial": (),
    "update": ("--actbudget-update",),
    "n2-update": ("-n", "2", "--actbudget-update"),
}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the project but Python's caches and pytester's own files."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not path.relative_to(root).parts[0].startswith(("runpytest-", "stdout", "stderr"))
    }


def assert_one_usage_error(result: pytest.RunResult, message: str) -> None:
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1, output
    assert errors[0].startswith("ERROR: ")
    result.stderr.fnmatch_lines([message])
    for forbidden in ("Traceback", "INTERNALERROR", "pytest_actbudget", 'File "'):
        assert forbidden not in output, output


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_budgets_file_is_one_usage_error(
    pytester: pytest.Pytester, case: str, mode: str
) -> None:
    spec = CASES[case]
    pytester.makepyfile(nets=NETS, test_models=TESTS, **spec.extra)
    for name, data in spec.files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    before = snapshot(pytester.path)

    result = pytester.runpytest_subprocess(*QUIET, *MODES[mode], *spec.args)

    assert_one_usage_error(result, f"ERROR: {pytester.path / spec.where}{spec.message}")
    assert snapshot(pytester.path) == before
    assert "pwned" not in result.stdout.str()


@pytest.mark.parametrize("mode", ["serial", "n2"])
def test_a_missing_file_named_on_the_command_line(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(nets=NETS, test_models=TESTS)
    before = snapshot(pytester.path)
    args = ("-n", "2") if mode == "n2" else ()
    result = pytester.runpytest_subprocess(*QUIET, "--actbudget-file", "nope.yaml", *args)
    assert_one_usage_error(
        result,
        f"ERROR: {pytester.path.resolve() / 'nope.yaml'}: the budgets file does not exist; it "
        "was named by --actbudget-file nope.yaml (relative to the directory pytest was started "
        f"in, {pytester.path}). Check the path, or create the file with "
        "`pytest --actbudget-update`",
    )
    assert snapshot(pytester.path) == before
