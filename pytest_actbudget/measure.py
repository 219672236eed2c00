"""``pytest_actbudget.measure``: the measurement API under its short module name.

The implementation lives in :mod:`pytest_actbudget.measure_model`. Importing this
submodule makes Python set the package attribute ``pytest_actbudget.measure`` to this
module, hiding the ``measure`` function the package exports; so the module itself is
callable and does what the function does. Importing it does not import torch.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from pytest_actbudget.errors import MeasurementError
from pytest_actbudget.measure_cache import MeasureCache
from pytest_actbudget.measure_model import COUNTINGS, measure
from pytest_actbudget.results import Profile

__all__ = ["COUNTINGS", "MeasureCache", "MeasurementError", "measure"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Profile:
        return measure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
