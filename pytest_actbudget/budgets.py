"""The budgets file: types, loading and validation (YAML, ``version: 1``).

Interface contract (implementation in progress): see the docstrings below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

COUNTINGS: tuple[str, ...] = ("fvcore", "macs")
DEFAULT_HEADROOM = 0.10


@dataclass(frozen=True)
class GroupBudget:
    """One group of a model entry: which modules it claims and its maxima."""

    name: str
    modules: tuple[str, ...]  # fnmatch patterns over module paths
    limits: Mapping[str, float]  # metric name -> maximum (shares as fractions 0..1)
    line: int  # 1-based line of the group's key in the file


@dataclass(frozen=True)
class ModelBudget:
    """One entry under ``models:``."""

    name: str
    groups: tuple[GroupBudget, ...]
    total: Mapping[str, float]  # metric -> maximum for the whole model
    input: tuple[int, ...] | None
    allow_uncounted: tuple[str, ...]
    line: int  # 1-based line of the entry's key


@dataclass(frozen=True)
class BudgetsFile:
    """A loaded budgets file. ``exists`` is False for a default file that is not there yet."""

    path: str
    exists: bool
    counting: str = "fvcore"
    headroom: float | None = None  # `defaults.headroom`, None when not set
    models: Mapping[str, ModelBudget] = field(default_factory=dict)


def load_budgets(path: str | Path, *, must_exist: bool = False) -> BudgetsFile:
    """Load and validate a budgets file; raise BudgetFileError with file:line and key path."""
    raise NotImplementedError
