"""pytest hooks of pytest-actbudget: options, marker, fixture, report hooks, xdist.

Every hook delegates to the BudgetSession kept in ``config.stash``. Importing this
module imports neither torch nor fvcore.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from .errors import BudgetFileError, NoModelCalled
from .fixture import ActBudget
from .options import add_options, read_options
from .session import WIRE_KEY, BudgetSession, error_text, junit_properties

KEY = pytest.StashKey[BudgetSession]()
MARKER = "act_budget"
USAGE_ERROR_KEY = "actbudget_usage_error"
CALL_PASSED = pytest.StashKey[bool]()
WRITE_ERRORS = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name=None, *, file=None): measure the first model the test calls and "
        "check it against budget entry `name` (default: the test's name)",
    )
    worker = hasattr(config, "workerinput")
    config.stash[KEY] = BudgetSession(read_options(config), worker=worker)
    if _names_files_or_tests(config):
        config.stash[KEY].full_run = False


def pytest_sessionstart(session: pytest.Session) -> None:
    budget_session = session.config.stash[KEY]
    if _is_xdist_controller(session.config):
        # The controller never collects: validate the budgets file here so that a bad
        # file stops the run as a usage error before any worker starts.
        _usage_errors(lambda: budget_session.budgets(str(budget_session.options.budgets_file)))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    tests = [_describe(item) for item in items]
    try:
        config.stash[KEY].prepare(tests)
    except BudgetFileError as e:
        if hasattr(config, "workeroutput"):
            # An xdist worker cannot stop the run: the controller raises it again
            # (pytest_testnodedown) so that the run ends as one usage error, exit code 4.
            config.workeroutput[USAGE_ERROR_KEY] = str(e)
        raise pytest.UsageError(str(e)) from None


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[KEY].full_run = False


@pytest.fixture
def act_budget(request: pytest.FixtureRequest) -> ActBudget:
    """Explicit budget checks: ``act_budget.check(model, *inputs, name=...)`` and
    ``act_budget.measure(model, *inputs)``."""
    return ActBudget(request.config.stash[KEY], request.node)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return (yield)
    from .measure_capture import FirstCallRecorder

    with FirstCallRecorder() as recorder:
        outcome = yield
    _check_recorded(pyfuncitem, marker, recorder.call)
    return outcome


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    budget_session = item.config.stash[KEY]
    if call.when == "teardown":
        # Recorded only when the body and the teardown passed: a test that errors in
        # teardown is not a passing test, whatever its call phase said.
        passed = item.stash.get(CALL_PASSED, False) and report.passed
        budget_session.test_finished(item.nodeid, passed=passed)
    if call.when != "call":
        return report
    item.stash[CALL_PASSED] = report.passed
    if call.excinfo is not None:
        failure = error_text(call.excinfo.value)
        if failure is not None:
            report.longrepr, report.actbudget_outcome = failure  # type: ignore[attr-defined]
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
        node.config.stash[KEY].merge_wire(data)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    budget_session = config.stash[KEY]
    if budget_session.worker:
        config.workeroutput[WIRE_KEY] = budget_session.to_wire()  # type: ignore[attr-defined]
        return
    if exitstatus == pytest.ExitCode.USAGE_ERROR:
        return  # a bad budgets file or option: write nothing, report nothing
    if exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldfail or session.shouldstop:
        budget_session.full_run = False  # stopped early (Ctrl-C, -x, --maxfail)
    # A file that cannot be written is reported with the results (an exception raised
    # here would cut pytest's own summary, the failures of this run included) and ends
    # the run as a usage error.
    errors = config.stash.setdefault(WRITE_ERRORS, [])
    try:
        budget_session.write_updates()
    except BudgetFileError as e:
        errors.append(str(e))
    errors.extend(_write_reports(budget_session))
    if errors:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
    if budget_session.find_strict_problems() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    budget_session = config.stash[KEY]
    if budget_session.worker:
        return
    results = budget_session.results
    lines = [line for s in budget_session.update_summaries for line in s.lines()]
    errors = config.stash.get(WRITE_ERRORS, [])
    if not results and not lines and not budget_session.strict_problems and not errors:
        return
    from .report import terminal

    color = terminalreporter.hasmarkup and "NO_COLOR" not in os.environ
    terminalreporter.write_sep("=", "act budget summary")
    if results:
        text = terminal.render(results, verbose=budget_session.options.verbose > 0, color=color)
        terminalreporter.write_line(text)
    for line in lines:
        terminalreporter.write_line(line)
    for problem in budget_session.strict_problems:
        terminalreporter.write_line(problem, red=True)
    for error in errors:
        terminalreporter.write_line(f"ERROR: {error}", red=True)
    for path in budget_session.options.reports:
        if not any(error.startswith(f"{path}: ") for error in errors):
            terminalreporter.write_line(f"act budget report written to {path}")


def _check_recorded(item: pytest.Function, marker: pytest.Mark, call: Any) -> None:
    __tracebackhide__ = True
    name = marker.args[0] if marker.args else marker.kwargs.get("name", item.name)
    if call is None:
        raise NoModelCalled(
            f"act_budget '{name}': the test called no torch.nn.Module, so there was nothing "
            "to measure; call the model in the test body, or use the act_budget fixture"
        )
    budget_session = item.config.stash[KEY]
    result = budget_session.check(
        item.nodeid, call.module, call.args, call.kwargs, name=name, file=marker.kwargs.get("file")
    )
    item.user_properties.extend(junit_properties(result))


def _describe(item: pytest.Item) -> tuple[str, bool, str | None, str | None]:
    marker = item.get_closest_marker(MARKER)
    uses_fixture = MARKER in getattr(item, "fixturenames", ())
    if marker is None:
        return (item.nodeid, uses_fixture, None, None)
    name = marker.args[0] if marker.args else marker.kwargs.get("name", item.name)
    return (item.nodeid, True, name, marker.kwargs.get("file"))


def _write_reports(budget_session: BudgetSession) -> list[str]:
    """Write every report asked for; one message per report that could not be written."""
    if not budget_session.options.reports:
        return []
    from .report import write_report
    from .report.json import environment

    env = environment()
    errors = []
    for path in budget_session.options.reports:
        try:
            write_report(path, budget_session.results, env)
        except OSError as e:
            errors.append(f"{path}: cannot write the report: {e.strerror or e}")
    return errors


def _names_files_or_tests(config: pytest.Config) -> bool:
    """Test files or node ids on the command line: the tests of other files were not
    collected, so a budget entry unchecked in this run may still be in use (folders
    count as a full run)."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False
    here = config.invocation_params.dir
    return any("::" in arg or not (here / arg).is_dir() for arg in config.args)


def _is_xdist_controller(config: pytest.Config) -> bool:
    if hasattr(config, "workerinput"):
        return False
    numprocesses = config.getoption("numprocesses", default=None)
    return bool(numprocesses) and config.getoption("dist", default="no") != "no"


def _usage_errors(action: Any) -> Any:
    """Run ``action``; a bad budgets file becomes a usage error (exit code 4)."""
    try:
        return action()
    except BudgetFileError as e:
        raise pytest.UsageError(str(e)) from None
