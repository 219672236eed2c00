"""pytest-actbudget: compute budgets for the layer groups of PyTorch models.

Importing this package imports neither torch nor fvcore; :func:`measure` loads them on
its first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ActBudgetError, BudgetExceeded, BudgetFileError, MeasurementError

# The measure package is imported here, before anything can import one of its modules:
# importing a submodule binds the package as attribute `measure` of this package, and
# this import binds the function over it, once and for all.
from .measure import measure

if TYPE_CHECKING:
    from .results import BudgetResult, Profile
    from .scaling import Scaling

__version__ = "0.1.0"

__all__ = [
    "ActBudgetError",
    "BudgetExceeded",
    "BudgetFileError",
    "BudgetResult",
    "MeasurementError",
    "Profile",
    "Scaling",
    "__version__",
    "measure",
]


def __getattr__(name: str) -> Any:
    # The result types load on first use: pytest imports this package for every run,
    # budget tests or not, and building the frozen dataclasses costs milliseconds.
    if name in ("BudgetResult", "Profile"):
        from . import results

        return getattr(results, name)
    if name == "Scaling":
        from .scaling import Scaling

        return Scaling
    raise AttributeError(f"module 'pytest_actbudget' has no attribute {name!r}")
