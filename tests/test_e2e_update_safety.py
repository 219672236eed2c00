"""--actbudget-update end to end: killed, interrupted, failing and parallel runs never
lose or mix up what the budgets file held.

CONFTEST below injects faults at the operating system boundary of the real writer in
the pytest process under test: it wraps ``os.replace`` (the rename that publishes the
new budgets file) to log every write, to SIGKILL the process just before or just after
the rename, or to pause before it so that the test can kill it from outside. Nothing
of pytest-actbudget is replaced.

Model: the small CNN of test_plugin.py; at 1 x 3 x 16 x 16 it costs half of the
70,464 flops of its 2 x 3 x 16 x 16 docstring: stem 16,384, body 18,432, head 416,
total 35,232. An update records x 1.1 rounded up to 3 significant digits:
stem 18,022.4 -> 18.1K, body 20,275.2 -> 20.3K, head 457.6 -> 458, total 38,755.2
-> 38.8K.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml  # noqa: F401
from test_plugin import NETS

from pytest_actbudget.budgets.schema import load_budgets

# `import yaml` above: pytester drops the modules a test imported when it ends, and
# PyYAML's libyaml binding, imported a second time into one process, composes nodes
# without tags; importing it before any test keeps the first import for the session.

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

CONFTEST = """
import errno
import os
import pathlib
import signal
import time

_replace = os.replace
ROLE = "controller"


def pytest_configure(config):
    global ROLE
    if hasattr(config, "workerinput"):  # an xdist worker
        ROLE = config.workerinput["workerid"]


def replace(src, dst, *args, **kwargs):
    if not str(dst).endswith(".yaml"):
        return _replace(src, dst, *args, **kwargs)
    log = os.environ.get("WRITE_LOG")
    if log:
        role = ROLE
        with open(log, "a") as handle:
            handle.write(f"{role} {os.getpid()} {os.path.basename(dst)}\\n")
    when = os.environ.get("KILL_AT")
    if when == "disk-full":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if when == "before-rename":
        os.kill(os.getpid(), signal.SIGKILL)
    pause = float(os.environ.get("PAUSE_BEFORE_RENAME", "0"))
    if pause:
        pathlib.Path("renaming-soon").touch()
        time.sleep(pause)
    _replace(src, dst, *args, **kwargs)
    if when == "after-rename":
        os.kill(os.getpid(), signal.SIGKILL)


os.replace = replace
"""

ONE_TEST = """
import pytest
import torch
from nets import small_cnn


@pytest.mark.act_budget("small-cnn")
def test_small_cnn():
    assert small_cnn()(torch.randn(1, 3, 16, 16)).shape == (1, 10)
"""

# A hand-written file: generous budgets the update lowers, a comment, and 2,000 other
# entries (about 150 KB) that no test checks and that must survive byte for byte.
OLD = (
    "version: 1\n"
    "# hand-written; reviewed by the perf team\n"
    "models:\n"
    "  small-cnn:\n"
    "    groups:\n"
    '      stem: {modules: ["0"], flops: 1M}\n'
    '      body: {modules: ["1"], flops: 1M}\n'
    '      head: {modules: ["2"], flops: 1M}\n'
    "    total: {flops: 10M}\n"
    + "".join(
        f"  other-{i:04d}:  # untouched\n    total: {{flops: {i + 1}K, params: 3M}}\n"
        for i in range(2000)
    )
)
# The update rewrites exactly the four values (module docstring).
NEW = (
    OLD.replace("flops: 1M}\n      body", "flops: 18.1K}\n      body")
    .replace("flops: 1M}\n      head", "flops: 20.3K}\n      head")
    .replace('["2"], flops: 1M}', '["2"], flops: 458}')
    .replace("total: {flops: 10M}", "total: {flops: 38.8K}")
    # What the budgets were recorded with: the test's input, the model's training flag.
    .replace("  small-cnn:\n", "  small-cnn:\n    input: [1, 3, 16, 16]\n    mode: train\n")
)


def temp_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(nets=NETS, test_one=ONE_TEST, conftest=CONFTEST)
    budgets = pytester.path / "budgets.yaml"
    budgets.write_text(OLD)
    budgets.chmod(0o640)
    return pytester


def update(pytester: pytest.Pytester, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET, "--actbudget-update"],
        cwd=pytester.path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_killed_at_the_rename_leaves_the_old_file_or_the_new_one(
    project: pytest.Pytester,
) -> None:
    budgets = project.path / "budgets.yaml"
    assert OLD != NEW and NEW.count("other-") == 2000

    before = update(project, KILL_AT="before-rename")
    assert before.returncode == -signal.SIGKILL
    assert budgets.read_text() == OLD
    assert mode(budgets) == 0o640
    # The complete new text waits in a temp file beside it, that SIGKILL gave no
    # chance to remove; it is hidden and nothing reads it.
    (left,) = temp_files(project.path)
    assert left.startswith(".budgets.yaml.")
    assert (project.path / left).read_text() == NEW

    # The next run is not disturbed by it: the old budgets check and pass.
    checked = project.runpytest_subprocess(*QUIET)
    checked.assert_outcomes(passed=1)

    after = update(project, KILL_AT="after-rename")
    assert after.returncode == -signal.SIGKILL
    assert budgets.read_text() == NEW
    assert mode(budgets) == 0o640
    assert temp_files(project.path) == [left]

    # An update that runs to the end finds nothing to change and writes nothing.
    log = project.path / "writes.log"
    again = update(project, WRITE_LOG=str(log))
    assert again.returncode == 0, again.stdout
    assert budgets.read_text() == NEW
    assert not log.exists()


def test_a_write_that_fails_is_reported_with_the_results(project: pytest.Pytester) -> None:
    """The disk is full at the rename, and a report's folder is a file: both are named
    after the test results (which stay visible, failures included), the run ends as a
    usage error, and the budgets file and its folder are as they were."""
    project.makepyfile(test_fails="def test_fails():\n    assert 1 == 2, 'visible failure'\n")
    budgets = project.path / "budgets.yaml"
    failed_report = project.path / "nets.py" / "r.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET, "--actbudget-update",
         "--actbudget-report", str(failed_report), "--actbudget-report", "ok.md"],
        cwd=project.path,
        env={**os.environ, "KILL_AT": "disk-full"},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"ERROR: {budgets}: cannot write: No space left on device" in lines
    assert f"ERROR: {failed_report}: cannot write the report: File exists" in lines
    assert f"act budget report written to {project.path / 'ok.md'}" in lines
    assert "AssertionError: visible failure" in result.stdout
    assert lines[-1].startswith("=") and "1 failed, 1 passed" in lines[-1]
    assert "Traceback" not in result.stdout + result.stderr
    assert budgets.read_text() == OLD
    assert temp_files(project.path) == []


@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_killed_from_outside_while_writing(project: pytest.Pytester, delay: float) -> None:
    """SIGKILL from another process while the writer pauses before the rename (0.4 s),
    or just after it: the file is the old one or the new one, never a mix."""
    budgets = project.path / "budgets.yaml"
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *QUIET, "--actbudget-update"],
        cwd=project.path,
        env={**os.environ, "PAUSE_BEFORE_RENAME": "0.4"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (project.path / "renaming-soon").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    text = budgets.read_text()
    assert text in (OLD, NEW)
    if delay == 0.0:
        assert text == OLD  # killed in the pause: the rename never happened
    assert load_budgets(budgets).models["other-1999"].total == {"flops": 2000e3, "params": 3e6}
    assert mode(budgets) == 0o640


MANY = """
import pytest
import torch
from nets import small_cnn


@pytest.mark.act_budget
@pytest.mark.parametrize("i", range(50))
def test_many(i):
    small_cnn()(torch.randn(1 + i % 2, 3, 16, 16))
"""


def test_fifty_entries_under_xdist_are_one_write_by_the_controller(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(nets=NETS, test_many=MANY, conftest=CONFTEST)
    log = pytester.path / "writes.log"
    pytester._monkeypatch.setenv("WRITE_LOG", str(log))
    budgets = pytester.path / "budgets.yaml"

    first = pytester.runpytest_subprocess(*QUIET, "-n", "2", "--actbudget-update")
    first.assert_outcomes(passed=50)
    # The wrapper in every process (workers load the conftest too) logged one write.
    (write,) = log.read_text().splitlines()
    assert write.split()[0] == "controller" and write.split()[2] == "budgets.yaml"
    text = budgets.read_text()
    names = sorted(load_budgets(budgets).models)
    assert names == sorted(f"test_many[{i}]" for i in range(50))

    second = pytester.runpytest_subprocess(*QUIET, "-n", "2", "--actbudget-update")
    second.assert_outcomes(passed=50)
    assert budgets.read_text() == text  # byte for byte
    assert len(log.read_text().splitlines()) == 1  # and not even rewritten


OUTCOMES = """
import pathlib
import time

import pytest
import torch
from nets import small_cnn


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


@pytest.mark.act_budget("passes")
def test_passes():
    small_cnn()(torch.randn(1, 3, 16, 16))


@pytest.mark.act_budget("fails")
def test_fails():
    small_cnn()(torch.randn(1, 3, 16, 16))
    assert False, "the body failed after calling the model"


@pytest.mark.act_budget("setup-error")
def test_setup_error(broken_setup):
    small_cnn()(torch.randn(1, 3, 16, 16))


@pytest.mark.act_budget("teardown-error")
def test_teardown_error(broken_teardown):
    small_cnn()(torch.randn(1, 3, 16, 16))


def test_fixture_check_then_fails(act_budget):
    act_budget.check(small_cnn(), torch.randn(1, 3, 16, 16), name="fixture-then-fails")
    assert False, "failed after its check"


@pytest.mark.act_budget("interrupted")
def test_interrupted():
    small_cnn()(torch.randn(1, 3, 16, 16))
    if pathlib.Path("interrupt-me").exists():
        pathlib.Path("waiting-for-ctrl-c").touch()
        time.sleep(60)


@pytest.mark.act_budget("after-interrupt")
def test_after_interrupt():
    small_cnn()(torch.randn(1, 3, 16, 16))
"""

# Entries of the tests of OUTCOMES that do not pass, with budgets no update would
# write: they must come out byte for byte. "interrupted" passes unless interrupted.
KEPT_NAMES = ["fails", "setup-error", "teardown-error", "fixture-then-fails"]
HEADER = "version: 1\nmodels:\n" + "".join(
    f"  {name}:  # keep\n    total: {{flops: 7M}}\n" for name in KEPT_NAMES
)
INTERRUPTED = "  interrupted:  # keep\n    total: {flops: 7M}\n"


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "n2"])
def test_only_tests_that_passed_are_recorded(
    pytester: pytest.Pytester, xdist: tuple[str, ...]
) -> None:
    pytester.makepyfile(nets=NETS, test_outcomes=OUTCOMES)
    budgets = pytester.path / "budgets.yaml"
    budgets.write_text(HEADER + INTERRUPTED)

    result = pytester.runpytest_subprocess(*QUIET, *xdist, "--actbudget-update")
    # Calls that pass: passes, teardown-error, interrupted, after-interrupt (4); fails
    # and fixture-then-fails fail (2); setup-error and teardown-error error (2).
    result.assert_outcomes(passed=4, failed=2, errors=2)
    # "interrupted" passed this time: its total is the measured 38.8K (docstring).
    assert budgets.read_text().startswith(
        HEADER
        + INTERRUPTED.replace("flops: 7M", "flops: 38.8K").replace(
            "# keep\n", "# keep\n    input: [1, 3, 16, 16]\n    mode: train\n"
        )
    )
    assert sorted(load_budgets(budgets).models) == sorted(
        [*KEPT_NAMES, "interrupted", "passes", "after-interrupt"]
    )


def test_ctrl_c_records_only_the_tests_that_finished(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(nets=NETS, test_outcomes=OUTCOMES)
    budgets = pytester.path / "budgets.yaml"
    budgets.write_text(HEADER + INTERRUPTED)
    (pytester.path / "interrupt-me").touch()

    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *QUIET, "--actbudget-update"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (pytester.path / "waiting-for-ctrl-c").exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert b"KeyboardInterrupt" in output
    # Of the tests that finished before Ctrl-C, "passes" passed; "interrupted" was cut
    # short in its body and "after-interrupt" never ran.
    assert budgets.read_text().startswith(HEADER + INTERRUPTED)
    assert sorted(load_budgets(budgets).models) == sorted([*KEPT_NAMES, "interrupted", "passes"])
