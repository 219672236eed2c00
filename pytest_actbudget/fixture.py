"""The ``act_budget`` fixture object: explicit checks and measurements in a test."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from .results import BudgetResult, Profile
    from .scaling import Scaling
    from .session import BudgetSession


class ActBudget:
    """Bound to one test. ``check`` raises BudgetExceeded on a violation."""

    def __init__(self, session: BudgetSession, item: pytest.Item) -> None:
        self._session = session
        self._item = item

    def check(
        self,
        model: Any,
        *inputs: Any,
        name: str | None = None,
        file: str | None = None,
        scaling: Scaling | None = None,
        **forward_kwargs: Any,
    ) -> BudgetResult:
        """Measure ``model(*inputs, **forward_kwargs)`` and check it against budget entry
        ``name`` (default: the test's name) of the budgets file (or ``file``).

        With ``scaling=Scaling(make_inputs, sizes)`` the model is also measured with
        ``make_inputs(size)`` at every size, for the entry's growth budgets."""
        __tracebackhide__ = True
        from .session import junit_properties

        result = self._session.check(
            self._item.nodeid,
            model,
            inputs,
            forward_kwargs,
            name=name if name is not None else self._item.name,
            file=file,
            scaling=scaling,
        )
        self._item.user_properties.extend(junit_properties(result))
        return result

    def measure(
        self, model: Any, *inputs: Any, counting: str | None = None, **forward_kwargs: Any
    ) -> Profile:
        """Measure without checking, in the budgets file's counting convention by default."""
        if counting is None:
            counting = self._session.budgets(str(self._session.options.budgets_file)).counting
        return self._session.measure(model, inputs, forward_kwargs, counting)
