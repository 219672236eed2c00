"""Command line and ini options, read once into a frozen Options (CLI > ini > default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .report import ReportTarget, target

if TYPE_CHECKING:
    from .report.baseline import Baseline

DEFAULT_FILE = "budgets.yaml"


@dataclass(frozen=True)
class Options:
    """Everything the plugin was asked to do in this run."""

    budgets_file: Path
    budgets_file_given: bool  # named with --actbudget-file or the ini: it must exist
    update: bool
    headroom: float | None  # None: take the file's `defaults.headroom`, else 10%
    reports: tuple[ReportTarget, ...]
    strict: bool
    verbose: int
    depth: int | None = None  # of the -v per-layer table; None: every module
    baseline: Path | None = None  # a JSON report of an earlier run to compare with
    # Where pytest was started: file names in messages and reports are relative to it,
    # whatever directory a test moves to.
    start_dir: Path = Path()
    # Why the budgets file is where it is, for the message when it is missing.
    budgets_file_why: str = f"it is {DEFAULT_FILE} in pytest's rootdir"


def add_options(parser: pytest.Parser) -> None:
    """Register the command line flags and ini keys of DESIGN.md."""
    group = parser.getgroup("actbudget", "compute budgets for PyTorch models")
    group.addoption(
        "--actbudget-file",
        default=None,
        metavar="PATH",
        help=f"budgets file (default: {DEFAULT_FILE} in the rootdir) [ini: actbudget_file]",
    )
    group.addoption(
        "--actbudget-update",
        action="store_true",
        default=False,
        help="record budgets from what was measured (measured x (1 + headroom)) "
        "for every entry checked in this run; tests do not fail on budgets",
    )
    group.addoption(
        "--actbudget-headroom",
        default=None,
        metavar="PCT",
        help="headroom for --actbudget-update (default: 10%%) [ini: actbudget_headroom]",
    )
    group.addoption(
        "--actbudget-report",
        action="append",
        default=None,
        metavar="PATH",
        help="write a budget report; format by extension (.json, .md, .html) or by "
        "prefix (md:PATH, json:PATH, html:PATH); repeatable [ini: actbudget_report]",
    )
    group.addoption(
        "--actbudget-strict",
        action="store_true",
        default=None,
        help="also fail on unused entries, uncounted operators, groups without a budget "
        "and slack budgets (use below defaults.min_use) [ini: actbudget_strict]",
    )
    group.addoption(
        "--actbudget-depth",
        default=None,
        metavar="N",
        help="show the -v per-layer table down to depth N (root = 0; default: all) "
        "[ini: actbudget_depth]",
    )
    group.addoption(
        "--actbudget-baseline",
        default=None,
        metavar="PATH",
        help="a JSON report of an earlier run (e.g. main's): every report shows the "
        "change since it per entry and group [ini: actbudget_baseline]",
    )
    parser.addini("actbudget_file", "budgets file, relative to the rootdir", default=None)
    parser.addini("actbudget_headroom", "headroom for --actbudget-update, e.g. 10%", default=None)
    parser.addini(
        "actbudget_report",
        "budget reports to write (.json, .md, .html, or md:PATH ...), one a line",
        type="linelist",
    )
    parser.addini("actbudget_strict", "strict budget checks", type="bool", default=False)
    parser.addini("actbudget_depth", "depth limit of the -v per-layer table", default=None)
    parser.addini(
        "actbudget_baseline", "JSON report of an earlier run to compare with", default=None
    )


def read_options(config: pytest.Config) -> Options:
    """Build Options from the command line, then the ini file, then the defaults.

    Raises pytest.UsageError for a bad headroom or report extension.
    """
    invocation = config.invocation_params.dir
    root = config.rootpath
    cli_file = config.getoption("actbudget_file")
    ini_file = config.getini("actbudget_file")
    if cli_file:
        budgets_file, given = invocation / cli_file, True
        why = (
            f"it was named by --actbudget-file {cli_file} (relative to the directory pytest "
            f"was started in, {invocation})"
        )
    elif ini_file:
        budgets_file, given = root / str(ini_file), True
        why = (
            f"it was named by the ini key actbudget_file = {ini_file} in {config.inipath} "
            f"(relative to the rootdir, {root})"
        )
    else:
        budgets_file, given = root / DEFAULT_FILE, False
        why = (
            f"it is {DEFAULT_FILE} in pytest's rootdir, {root} (pytest picks the rootdir from "
            "the ini file and the arguments; neither --actbudget-file nor the ini key "
            "actbudget_file names another file)"
        )

    headroom_text = config.getoption("actbudget_headroom") or config.getini("actbudget_headroom")
    headroom = None
    if headroom_text:
        from .budgets.units import parse_percent

        try:
            headroom = parse_percent(headroom_text)
        except ValueError as e:
            # The reason already says what to write: one hint, not two.
            raise pytest.UsageError(f"--actbudget-headroom / actbudget_headroom: {e}") from e

    cli_reports = config.getoption("actbudget_report")
    # Ini paths are relative to the ini file's folder, as pytest's own "paths" are.
    ini_base = config.inipath.parent if config.inipath is not None else root
    specs, base = (
        (cli_reports, invocation)
        if cli_reports
        else (
            config.getini("actbudget_report"),
            ini_base,
        )
    )
    try:
        reports = tuple(target(spec, base) for spec in specs)
    except ValueError as e:
        raise pytest.UsageError(f"--actbudget-report / actbudget_report: {e}") from None

    strict = config.getoption("actbudget_strict")
    if strict is None:
        strict = bool(config.getini("actbudget_strict"))
    return Options(
        budgets_file=budgets_file,
        budgets_file_given=given,
        update=bool(config.getoption("actbudget_update")),
        headroom=headroom,
        reports=reports,
        strict=bool(strict),
        verbose=int(config.getoption("verbose") or 0),
        depth=_depth(config),
        baseline=_baseline_path(config, ini_base),
        start_dir=invocation,
        budgets_file_why=why,
    )


def _depth(config: pytest.Config) -> int | None:
    """``--actbudget-depth`` / ``actbudget_depth``: an integer from 0 (root only)."""
    text = config.getoption("actbudget_depth")
    if text is None:
        text = config.getini("actbudget_depth")
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if not text.isdigit():
        raise pytest.UsageError(
            f"--actbudget-depth / actbudget_depth: '{text}' is not a depth; use a whole "
            "number from 0 (the root only), e.g. --actbudget-depth 2"
        )
    return int(text)


def _baseline_path(config: pytest.Config, ini_base: Path) -> Path | None:
    cli = config.getoption("actbudget_baseline")
    if cli:
        return config.invocation_params.dir / str(cli)
    ini = config.getini("actbudget_baseline")
    return ini_base / str(ini) if ini else None


def read_baseline(options: Options) -> Baseline | None:
    """The baseline report the options name, read once; a usage error (exit code 4)
    naming the file when it is missing or not a report of this plugin."""
    if options.baseline is None:
        return None
    from .report.baseline import load_baseline
    from .report.json import ReportFileError

    path = options.baseline
    try:
        shown = str(path.resolve().relative_to(options.start_dir.resolve()))
    except ValueError:
        shown = str(path)
    try:
        return load_baseline(path, shown)
    except ReportFileError as e:
        raise pytest.UsageError(
            f"--actbudget-baseline / actbudget_baseline: {e}; the baseline must be a JSON "
            "report of an earlier run (--actbudget-report PATH.json), e.g. main's kept as "
            "a CI artifact"
        ) from None
