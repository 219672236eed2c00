"""Errors raised by pytest-actbudget.

Every error owns its text: the message is one paragraph that names what was wrong,
where (file:line and key path for budgets files) and what would be valid.
"""

from __future__ import annotations


class ActBudgetError(Exception):
    """Base class of every error pytest-actbudget raises on purpose."""


class BudgetFileError(ActBudgetError):
    """A budgets file is missing, unreadable or invalid.

    ``str(error)`` is the whole message, starting with ``file:line:``.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class GroupingError(ActBudgetError):
    """Group patterns do not fit the model: overlapping groups or a pattern matching nothing.

    ``group`` is the (first) group at fault, so that the message can point at its line.
    """

    def __init__(self, message: str, group: str | None = None) -> None:
        super().__init__(message)
        self.group = group


class MeasurementError(ActBudgetError):
    """A model could not be measured (its forward raised, or it cannot be traced)."""


class BudgetExceeded(AssertionError):
    """A checked model went over one or more of its budgets.

    The message is the violation table; ``result`` is the full
    :class:`~pytest_actbudget.results.BudgetResult`.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class NoBudget(AssertionError):
    """A checked model has no entry in the budgets file."""


class NoModelCalled(AssertionError):
    """A test marked with ``act_budget`` finished without calling any ``nn.Module``."""
