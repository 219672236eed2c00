"""Reports of budget results: terminal, JSON, Markdown and HTML.

Every renderer is a pure function of the results; this module picks the renderer for a
report path by its extension and writes the file atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the plugin imports FORMATS at start-up: keep this module light
    from pytest_actbudget.results import BudgetResult

__all__ = ["FORMATS", "format_for", "render_for", "write_report"]

#: Report file extensions, one per format.
FORMATS: frozenset[str] = frozenset({".json", ".md", ".html"})


def format_for(path: str | Path) -> str:
    """The format of a report path: ``.json``, ``.md`` or ``.html`` (case-insensitive).

    Raises ValueError naming the valid extensions for any other path, so a typo in
    ``--actbudget-report`` stops the run before the tests do.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        valid = ", ".join(sorted(FORMATS))
        shown = f"'{suffix}'" if suffix else "no extension"
        raise ValueError(
            f"report '{path}': unknown report format ({shown}); the extension picks the "
            f"format, one of {valid}"
        )
    return suffix


def render_for(
    path: str | Path, results: Sequence[BudgetResult], environment: Mapping[str, str]
) -> str:
    """The text of the report that ``path``'s extension asks for."""
    fmt = format_for(path)
    if fmt == ".json":
        from pytest_actbudget.report import json

        return json.render(results, environment)
    if fmt == ".md":
        from pytest_actbudget.report import markdown

        return markdown.render(results)
    from pytest_actbudget.report import html

    return html.render(results)


def write_report(
    path: str | Path, results: Sequence[BudgetResult], environment: Mapping[str, str]
) -> None:
    """Render and write one report, creating parent folders; the write is atomic, so a
    reader never sees half a report."""
    from pytest_actbudget.atomic import write_atomic

    text = render_for(path, results, environment)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
