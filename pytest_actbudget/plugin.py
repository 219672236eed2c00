"""pytest hooks of pytest-actbudget: options, marker, fixture, report hooks, xdist.

Every hook delegates to the BudgetSession kept in ``config.stash``, created the first
time a test needs it: a run without budget tests imports neither it nor torch/fvcore.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from .errors import BudgetFileError, NoModelCalled
from .fixture import ActBudget
from .options import Options, add_options, read_baseline, read_options

if TYPE_CHECKING:
    from .report.baseline import Baseline
    from .session import BudgetSession

KEY = pytest.StashKey["BudgetSession"]()
OPTIONS = pytest.StashKey[Options]()
BASELINE: pytest.StashKey[Baseline | None] = pytest.StashKey()
PARTIAL = pytest.StashKey[bool]()  # not every test of the suite was collected and run
CALL_PASSED = pytest.StashKey[bool]()
MARKER = "act_budget"
USAGE_ERROR_KEY = "actbudget_usage_error"
WIRE_KEY = "actbudget"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name=None, *, file=None): measure the first model the test calls and "
        "check it against budget entry `name` (default: the test's name)",
    )
    config.stash[OPTIONS] = read_options(config)
    config.stash[BASELINE] = read_baseline(config.stash[OPTIONS])
    config.stash[PARTIAL] = _names_files_or_tests(config)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    try:
        _usage_errors(lambda: _prepare(config, items))
    except pytest.UsageError as e:
        if hasattr(config, "workeroutput"):
            # An xdist worker cannot stop the run: the controller raises it again
            # (pytest_testnodedown) so that the run ends as one usage error, exit code 4.
            config.workeroutput[USAGE_ERROR_KEY] = str(e)
        raise


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        config = items[0].config
        config.stash[PARTIAL] = True
        if (budget_session := _active(config)) is not None:
            budget_session.full_run = False


@pytest.fixture
def act_budget(request: pytest.FixtureRequest) -> ActBudget:
    """Explicit budget checks: ``act_budget.check(model, *inputs, name=...)`` and
    ``act_budget.measure(model, *inputs)``."""
    return ActBudget(_session(request.config), request.node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return (yield)
    from .measure.capture import FirstCallRecorder

    with FirstCallRecorder() as recorder:
        yield
    # unittest.TestCase failures do not raise here: pytest keeps them on the item.
    if not getattr(item, "_excinfo", None):
        _check_recorded(item, recorder.call)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    budget_session = _active(item.config)
    if budget_session is None:
        return report
    if call.when == "teardown":
        # Recorded only when the body and the teardown passed: a test that errors in
        # teardown is not a passing test, whatever its call phase said.
        passed = item.stash.get(CALL_PASSED, False) and report.passed
        budget_session.test_finished(item.nodeid, passed=passed)
    if call.when != "call":
        return report
    item.stash[CALL_PASSED] = report.passed
    if call.excinfo is not None:
        from .longrepr import failure_longrepr
        from .session import error_text

        failure = error_text(call.excinfo.value)
        if failure is not None:
            text, report.actbudget_outcome = failure  # type: ignore[attr-defined]
            path, line, _ = item.location
            report.longrepr = failure_longrepr(text, path, (line or 0) + 1)
    return report


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    if (
        report.when == "call"
        and report.failed
        and getattr(report, "actbudget_outcome", "") == "over_budget"
    ):
        # Category "failed" (as pytest-memray does): the FAILURES section, the short
        # summary and the exit code treat it as the failure it is.
        return "failed", "B", ("OVER BUDGET", {"red": True})
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", {})
    if output.get(USAGE_ERROR_KEY):
        raise pytest.UsageError(output[USAGE_ERROR_KEY])
    data = output.get(WIRE_KEY)
    if data:
        _session(node.config).merge_wire(data)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    budget_session = _active(config)
    if hasattr(config, "workeroutput"):
        if budget_session is not None:
            config.workeroutput[WIRE_KEY] = budget_session.to_wire()
        return
    if exitstatus == pytest.ExitCode.USAGE_ERROR:
        return  # a bad budgets file or option: write nothing, report nothing
    if budget_session is None and not config.stash[OPTIONS].reports:
        return
    stopped = exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldfail or session.shouldstop
    status = _session(config).finish(stopped_early=bool(stopped))
    if status is not None and (status == pytest.ExitCode.USAGE_ERROR or session.exitstatus == 0):
        session.exitstatus = status


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    budget_session = _active(config)
    if budget_session is None or hasattr(config, "workeroutput"):
        return
    color = terminalreporter.hasmarkup and "NO_COLOR" not in os.environ
    lines = budget_session.summary(color=color, exitstatus=exitstatus)
    if lines:
        terminalreporter.write_sep("=", "act budget summary")
    for text, red in lines:
        terminalreporter.write_line(text, red=red)


def _check_recorded(item: pytest.Item, call: Any) -> None:
    __tracebackhide__ = True
    name, file = _marker_args(item)
    budget_session = _session(item.config)
    if call is None:
        raise NoModelCalled(budget_session.no_model_called(item.nodeid, name, file))
    from .session import junit_properties

    result = budget_session.check(
        item.nodeid, call.module, call.args, call.kwargs, name=name, file=file, others=call.others
    )
    item.user_properties.extend(junit_properties(result))


def _describe(item: pytest.Item) -> tuple[str, bool, str | None, str | None]:
    if item.get_closest_marker(MARKER) is None:
        return (item.nodeid, MARKER in getattr(item, "fixturenames", ()), None, None)
    return (item.nodeid, True, *_marker_args(item))


def _prepare(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = [_describe(item) for item in items]
    options = config.stash[OPTIONS]
    if any(uses for _, uses, _, _ in tests) or options.update or options.strict:
        _session(config).prepare(tests)


def _marker_args(item: pytest.Item) -> tuple[str, str | None]:
    """(entry name, budgets file) of the item's marker; a usage error for anything else."""
    marker = item.get_closest_marker(MARKER)
    assert marker is not None
    unknown = sorted(set(marker.kwargs) - {"name", "file"})
    name = marker.args[0] if marker.args else marker.kwargs.get("name", item.name)
    file = marker.kwargs.get("file")
    problem = ""
    if len(marker.args) > 1 or unknown:
        extra = ", ".join([repr(a) for a in marker.args[1:]] + unknown)
        problem = f"unexpected argument(s) {extra}"
    elif not isinstance(name, str) or not name:
        problem = f"the name must be a non-empty string, not {name!r}"
    elif file is not None and not isinstance(file, str):
        problem = f"file= must be a path string, not {file!r}"
    if problem:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER}: {problem}; "
            f'use @pytest.mark.{MARKER}("entry-name", file="budgets.yaml") (both optional)'
        )
    return name, file


def _names_files_or_tests(config: pytest.Config) -> bool:
    """Test files or node ids on the command line: the tests of other files were not
    collected, so a budget entry unchecked in this run may still be in use (folders
    count as a full run)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False
    here = config.invocation_params.dir
    return any("::" in arg or not (here / arg).is_dir() for arg in config.args)


def _session(config: pytest.Config) -> BudgetSession:
    """The run's BudgetSession, created when a test first needs it."""
    found = config.stash.get(KEY, None)
    if found is None:
        from .session import BudgetSession

        found = BudgetSession(
            config.stash[OPTIONS],
            worker=hasattr(config, "workerinput"),
            baseline=config.stash.get(BASELINE, None),
        )
        found.full_run = not config.stash[PARTIAL]
        config.stash[KEY] = found
    return found


def _active(config: pytest.Config) -> BudgetSession | None:
    return config.stash.get(KEY, None)


def _usage_errors(action: Any) -> Any:
    """Run ``action``; a bad budgets file becomes a usage error (exit code 4)."""
    try:
        return action()
    except BudgetFileError as e:
        raise pytest.UsageError(str(e)) from None
