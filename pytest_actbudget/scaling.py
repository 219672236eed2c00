"""Scaling checks: measure a model at every size of its entry's ``scaling:`` and fit
how each group's metrics grow.

:class:`Scaling` is public: ``act_budget.check(model, *inputs, scaling=Scaling(make_inputs,
sizes))`` for models whose inputs cannot be made by resizing the test's own. Importing
this module imports neither torch nor fvcore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ActBudgetError, MeasurementError
from .grouping import group_profile
from .results import TOTAL_GROUP, GroupStats, GrowthResult, Profile, total_stats

if TYPE_CHECKING:
    from .budgets.schema import ModelBudget

__all__ = ["Scaling", "ScalingError", "measure_growth"]

Measure = Callable[[Any, Sequence[Any], dict[str, Any]], Profile]


class ScalingError(ActBudgetError):
    """A scaling check could not run: no sizes, sizes that disagree with the entry's,
    an input or dimension the test's inputs lack, or a model that fails at one size."""


@dataclass(frozen=True)
class Scaling:
    """How to build a model's inputs at each size of a scaling check.

    ``make_inputs(size)`` returns the inputs for one size: a tuple of positional
    inputs, a dict of keyword inputs, or one input. ``sizes`` default to the entry's
    ``scaling.sizes``; given both, they must agree (the exponent depends on them).
    """

    make_inputs: Callable[[int], Any]
    sizes: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if not callable(self.make_inputs):
            raise TypeError(
                f"Scaling(make_inputs, sizes): make_inputs must be a function of the size, "
                f"not {type(self.make_inputs).__name__}"
            )
        if self.sizes is not None:
            sizes = tuple(self.sizes)
            valid = all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
            if not valid or len(set(sizes)) != len(sizes) or len(sizes) < 2:
                raise ValueError(
                    f"Scaling(make_inputs, sizes): sizes must be two or more different "
                    f"positive integers, e.g. [128, 256, 512, 1024]; got {list(sizes)}"
                )
            object.__setattr__(self, "sizes", sizes)

    def inputs_at(self, size: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(positional, keyword) inputs for one size."""
        made = self.make_inputs(size)
        if isinstance(made, tuple) and not hasattr(made, "_fields"):
            return made, {}
        if isinstance(made, dict):
            return (), dict(made)
        return (made,), {}


def growth_applies(entry: ModelBudget | None, scaling: Scaling | None) -> bool:
    """Whether a check measures growth: the entry declares ``scaling:`` or the test
    passed a Scaling."""
    return scaling is not None or (entry is not None and entry.scaling is not None)


def measure_growth(
    measure: Measure,
    model: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    name: str,
    entry: ModelBudget | None,
    scaling: Scaling | None,
    patterns: Mapping[str, Sequence[str]],
    display: str,
) -> tuple[GrowthResult, ...]:
    """Measure ``model`` at every size and fit every group's growth exponents.

    Raises ScalingError, with the file:line and key of the entry's ``scaling`` where
    there is one, for anything that stops a size from being measured.
    """
    spec = entry.scaling if entry is not None else None
    where = f"{display}:{spec.line}: models.{name}.scaling" if spec is not None else display
    sizes = _sizes(name, spec, scaling, where)
    stats: list[list[GroupStats]] = []
    for size in sizes:
        if scaling is not None:
            size_args, size_kwargs = scaling.inputs_at(size)
        else:
            size_args, size_kwargs = _resized(name, args, kwargs, entry, size, display)
        try:
            profile = measure(model, size_args, size_kwargs)
        except MeasurementError as e:
            raise ScalingError(
                f"act_budget '{name}' at size {size} ({where}.sizes): {e}; every size "
                "must be one the model accepts (e.g. a multiple of its patch size, at most "
                "its maximum length): change the sizes or the model"
            ) from None
        stats.append([*group_profile(profile, dict(patterns)), total_stats(profile)])
    from .growth import growth_of

    limits: dict[str, Mapping[str, float]] = {}
    if entry is not None:
        limits = {group.name: group.growth for group in entry.groups}
        limits[TOTAL_GROUP] = entry.total_growth
    return growth_of(sizes, stats, limits)


def _sizes(name: str, spec: Any, scaling: Scaling | None, where: str) -> tuple[int, ...]:
    given = tuple(scaling.sizes) if scaling is not None and scaling.sizes is not None else None
    if spec is not None and given is not None and given != spec.sizes:
        raise ScalingError(
            f"act_budget '{name}': the test's Scaling sizes {list(given)} differ from the "
            f"entry's {list(spec.sizes)} ({where}.sizes); growth exponents depend on the "
            "sizes, so give them in one place (leave Scaling's sizes out to use the entry's)"
        )
    if given is not None:
        return given
    if spec is None:
        raise ScalingError(
            f"act_budget '{name}': Scaling(make_inputs) without sizes, and the entry has no "
            f"'scaling: {{sizes: [...]}}' in {where}; pass Scaling(make_inputs, sizes=[...])"
        )
    sizes: tuple[int, ...] = spec.sizes
    return sizes


def _resized(
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    entry: ModelBudget | None,
    size: int,
    display: str,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    assert entry is not None and entry.scaling is not None
    spec = entry.scaling
    if not spec.inputs:
        raise ScalingError(
            f"{display}:{spec.line}: models.{name}.scaling: no 'inputs', so the plugin cannot "
            "make the inputs of each size; add inputs: {0: [1]} (input position or keyword -> "
            "dimensions that take the size), or pass scaling=Scaling(make_inputs) to "
            "act_budget.check"
        )
    from .measure.scaling import ScalingInputError, resized_inputs

    try:
        return resized_inputs(args, kwargs, spec.inputs, size)
    except ScalingInputError as e:
        line = spec.input_lines.get(e.key, spec.line)
        raise ScalingError(f"{display}:{line}: models.{name}.scaling.inputs.{e.key}: {e}") from None
