"""pytest-actbudget: compute budgets for the layer groups of PyTorch models.

Importing this package imports neither torch nor fvcore; :func:`measure` loads them on
its first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ActBudgetError, BudgetExceeded, BudgetFileError, MeasurementError

if TYPE_CHECKING:
    from .results import BudgetResult, Profile

__version__ = "0.1.0"

__all__ = [
    "ActBudgetError",
    "BudgetExceeded",
    "BudgetFileError",
    "BudgetResult",
    "MeasurementError",
    "Profile",
    "__version__",
    "measure",
]


def measure(model: Any, *inputs: Any, counting: str = "fvcore", **forward_kwargs: Any) -> Profile:
    """Measure ``model(*inputs, **forward_kwargs)`` in one fvcore trace.

    Returns a :class:`Profile` with per-module FLOPs, activations, params, output shapes
    and bytes; ``counting`` is ``"fvcore"`` (default) or ``"macs"``.
    """
    from .measure_model import measure as measure_model

    return measure_model(model, *inputs, counting=counting, **forward_kwargs)


def __getattr__(name: str) -> Any:
    # The result types load on first use: pytest imports this package for every run,
    # budget tests or not, and building the frozen dataclasses costs milliseconds.
    if name in ("BudgetResult", "Profile"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'pytest_actbudget' has no attribute {name!r}")
