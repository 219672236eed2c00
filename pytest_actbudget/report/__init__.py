"""Reports of budget results: terminal, JSON, Markdown and HTML.

Every renderer is a pure function of the results; this module picks the renderer for a
report path (``md:PATH`` / ``json:PATH`` / ``html:PATH``, else its extension) and
writes the file: atomically, or appended to for GitHub's job summary file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the plugin imports FORMATS at start-up: keep this module light
    from pytest_actbudget.report.baseline import Comparison
    from pytest_actbudget.results import BudgetResult

__all__ = [
    "FORMATS",
    "STEP_SUMMARY",
    "ReportTarget",
    "format_for",
    "render_for",
    "target",
    "write_report",
]

#: Report formats, named by their main extension.
FORMATS: frozenset[str] = frozenset({".json", ".md", ".html"})
#: File extensions (lower case) and the format each one picks.
_EXTENSIONS: Mapping[str, str] = {".json": ".json", ".md": ".md", ".html": ".html", ".htm": ".html"}
#: ``md:PATH``: a prefix that names the format whatever the extension.
_PREFIXES: Mapping[str, str] = {"md:": ".md", "json:": ".json", "html:": ".html"}
#: The environment variable with GitHub Actions' job summary file (Markdown, appended to).
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class ReportTarget:
    """A report to write: where, and in which format (``.json``, ``.md``, ``.html``)."""

    path: Path
    format: str

    def __str__(self) -> str:
        return str(self.path)

    @property
    def appends(self) -> bool:
        """Markdown for ``$GITHUB_STEP_SUMMARY`` is added to what earlier steps wrote."""
        return self.format == ".md" and _is_step_summary(self.path)


def target(spec: str | Path, base: Path | None = None) -> ReportTarget:
    """The report a path names: ``md:PATH``, ``json:PATH`` or ``html:PATH`` pick the
    format, else the extension does (``.json``, ``.md``, ``.html``/``.htm``, any case);
    the file named by ``$GITHUB_STEP_SUMMARY`` is Markdown. A relative path is taken
    from ``base`` when given.

    Raises ValueError naming what is valid, so that a typo in ``--actbudget-report``
    stops the run before the tests do.
    """
    text = str(spec)
    fmt = None
    for prefix, named in _PREFIXES.items():
        if text.lower().startswith(prefix):
            fmt, text = named, text[len(prefix) :]
            break
    if not text:
        raise ValueError(f"report '{spec}': no path after the format prefix; e.g. md:out/r.md")
    path = Path(text) if base is None else base / text
    if fmt is None:
        fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None and _is_step_summary(path):
        fmt = ".md"
    if fmt is None:
        valid = ", ".join(sorted(_EXTENSIONS))
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise ValueError(
            f"report '{spec}': unknown report format ({shown}); the extension picks the "
            f"format, one of {valid}, or a prefix names it: md:PATH, json:PATH, html:PATH"
        )
    return ReportTarget(path, fmt)


def format_for(path: str | Path | ReportTarget) -> str:
    """The format of a report path: ``.json``, ``.md`` or ``.html``; ValueError for a
    path that names none (see :func:`target`)."""
    return path.format if isinstance(path, ReportTarget) else target(path).format


def render_for(
    path: str | Path | ReportTarget,
    results: Sequence[BudgetResult],
    environment: Mapping[str, str],
    baseline: Comparison | None = None,
) -> str:
    """The text of the report that ``path`` asks for (against ``baseline`` if given)."""
    fmt = format_for(path)
    if fmt == ".json":
        from pytest_actbudget.report import json

        return json.render(results, environment, baseline)
    if fmt == ".md":
        from pytest_actbudget.report import markdown

        return markdown.render(results, baseline)
    from pytest_actbudget.report import html

    return html.render(results, baseline)


def write_report(
    path: str | Path | ReportTarget,
    results: Sequence[BudgetResult],
    environment: Mapping[str, str],
    baseline: Comparison | None = None,
) -> None:
    """Render and write one report, creating parent folders. The write is atomic, so a
    reader never sees half a report; Markdown for ``$GITHUB_STEP_SUMMARY`` is appended
    in one write, after a blank line, as GitHub expects of every step."""
    from pytest_actbudget.atomic import write_atomic

    report = path if isinstance(path, ReportTarget) else target(path)
    text = render_for(report, results, environment, baseline)
    report.path.parent.mkdir(parents=True, exist_ok=True)
    if report.appends:
        with open(report.path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if handle.tell() else "") + text)
        return
    write_atomic(report.path, text)


def _is_step_summary(path: Path) -> bool:
    summary = os.environ.get(STEP_SUMMARY)
    if not summary:
        return False
    try:
        return os.path.realpath(path) == os.path.realpath(summary)
    except (OSError, ValueError):
        return False
