"""The JSON report (``schema: 1``): what machines diff, and what ``actbudget diff`` reads.

The format is described by ``schema.json`` next to this file (JSON Schema 2020-12).
Every measured value is a JSON number; results keep the caller's order.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_actbudget.errors import ActBudgetError
from pytest_actbudget.results import BudgetResult

if TYPE_CHECKING:
    from pytest_actbudget.report.baseline import Comparison

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "ReportFileError", "environment", "load", "render"]

SCHEMA_VERSION = 1
#: The JSON Schema (draft 2020-12) of this report format, shipped with the package.
SCHEMA_PATH = Path(__file__).with_name("schema.json")

#: Distributions whose versions make numbers comparable between two reports.
_DISTRIBUTIONS: Mapping[str, str] = {
    "torch": "torch",
    "fvcore": "fvcore",
    "pytest_actbudget": "pytest-actbudget",
}


class ReportFileError(ActBudgetError):
    """A file given as a JSON report is unreadable, not a report, or of another schema."""


def render(
    results: Sequence[BudgetResult],
    environment: Mapping[str, str],
    baseline: Comparison | None = None,
) -> str:
    """The report as pretty-printed JSON text ending in a newline; with ``baseline``,
    every result and group also carries its ``baseline`` numbers and change.

    Deterministic: the same results give the same bytes (environment keys sorted,
    operator counts sorted, everything else in the order it has a meaning).
    """
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "environment": dict(sorted(environment.items())),
        "results": [_result(result, baseline) for result in results],
    }
    if baseline is not None:
        document["baseline"] = baseline.to_dict()
    return _dump(document, "") + "\n"


def _result(result: BudgetResult, baseline: Comparison | None) -> dict[str, Any]:
    data = result.to_dict()
    entry = baseline.of(result) if baseline is not None else None
    if entry is not None:
        data["baseline"] = entry.to_dict()
        for group in data["groups"]:
            group["baseline"] = entry.group_dict(group["name"])
    return data


def _dump(value: Any, indent: str) -> str:
    """``json.dumps(indent=2)``, except that lists of plain values (shapes) stay on one
    line, so a layer row reads ``"output_shape": [64, 64, 14, 14]``."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = (f"{inner}{_scalar(str(key))}: {_dump(item, inner)}" for key, item in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list | tuple) and any(
        isinstance(item, dict | list | tuple) for item in value
    ):
        items = (inner + _dump(item, inner) for item in value)
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    # allow_nan=False: a NaN or infinity is not JSON and would break other readers.
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def environment(device: str = "cpu") -> dict[str, str]:
    """Versions that decide the numbers: python, torch, fvcore, this plugin, platform.

    Read from installed package metadata, so torch is not imported. ``device`` is
    where the models ran, as the caller knows it.
    """
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for key, distribution in _DISTRIBUTIONS.items():
        try:
            found[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[key] = "not installed"
    found["device"] = device
    return dict(sorted(found.items()))


def load(path: str | Path) -> list[BudgetResult]:
    """Read a JSON report back into results.

    Raises :class:`ReportFileError` naming the file and what is wrong with it when it
    is unreadable, not JSON, not a pytest-actbudget report, or of another schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ReportFileError(f"{path}: cannot read the report: {error}") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportFileError(
            f"{path}:{error.lineno}: not JSON ({error.msg}); expected a pytest-actbudget "
            "report written with --actbudget-report PATH.json"
        ) from error
    return _results(path, document)


def _results(path: Path, document: Any) -> list[BudgetResult]:
    if not isinstance(document, dict) or "schema" not in document or "results" not in document:
        raise ReportFileError(
            f"{path}: not a pytest-actbudget report: expected a JSON object with keys "
            "'schema', 'environment' and 'results' (written with --actbudget-report PATH.json)"
        )
    if document["schema"] != SCHEMA_VERSION:
        raise ReportFileError(
            f"{path}: report schema {document['schema']!r} is not supported; this "
            f"pytest-actbudget reads schema {SCHEMA_VERSION}"
        )
    entries = document["results"]
    if not isinstance(entries, list):
        raise ReportFileError(f"{path}: 'results' must be a list, not {type(entries).__name__}")
    results = []
    for index, entry in enumerate(entries):
        try:
            results.append(BudgetResult.from_dict(entry))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            name = entry.get("name", "?") if isinstance(entry, dict) else "?"
            raise ReportFileError(
                f"{path}: results[{index}] ({name!r}) is not a valid result: "
                f"{type(error).__name__}: {error}"
            ) from error
    return results
