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
        training: bool = False,
        **forward_kwargs: Any,
    ) -> BudgetResult:
        """Measure ``model(*inputs, **forward_kwargs)`` and check it against budget entry
        ``name`` (default: the test's name) of the budgets file (or ``file``).

        With ``scaling=Scaling(make_inputs, sizes)`` the model is also measured with
        ``make_inputs(size)`` at every size, for the entry's growth budgets.
        ``training=True`` also measures one training step (``backward_flops``,
        ``train_flops``, ``train_bytes``) with the entry's ``training:`` settings, or the
        file's ``defaults.training``; an entry with ``training:`` always gets one."""
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
            training=training,
        )
        self._item.user_properties.extend(junit_properties(result))
        return result

    def measure(
        self,
        model: Any,
        *inputs: Any,
        counting: str | None = None,
        training: bool = False,
        **forward_kwargs: Any,
    ) -> Profile:
        """Measure without checking, in the budgets file's counting convention by default;
        ``training=True`` adds a training step costed by the file's ``defaults.training``."""
        budgets = self._session.budgets(str(self._session.options.budgets_file))
        spec = budgets.training if training else None
        return self._session.measure(
            model, inputs, forward_kwargs, counting or budgets.counting, spec
        )
