"""The budgets file: safe YAML reading (``safe_yaml``), the schema and its types
(``schema``), numbers and units (``units``) and in-place updates (``write``)."""

from __future__ import annotations

from pytest_actbudget.budgets.schema import (
    BudgetsFile,
    GroupBudget,
    ModelBudget,
    load_budgets,
    parse_budgets,
)

__all__ = ["BudgetsFile", "GroupBudget", "ModelBudget", "load_budgets", "parse_budgets"]
