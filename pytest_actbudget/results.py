"""Frozen result types shared by every stage: measure -> group -> check -> report.

Everything here is plain data with derived properties and a JSON form
(``to_dict`` / ``from_dict``), which is also how results travel from xdist workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pytest_actbudget.opkinds import missing_compute

from .training import TRAINING_METRICS, TrainingSpec

#: Absolute metrics: measured per module (inclusive of descendants) and summed per group.
ABSOLUTE_METRICS: tuple[str, ...] = ("flops", "activations", "params", "act_bytes", "saved_bytes")
#: Share metrics: a group's fraction of the model's total (0..1).
SHARE_METRICS: tuple[str, ...] = ("flops_share", "act_share")
METRICS: tuple[str, ...] = ABSOLUTE_METRICS + SHARE_METRICS
#: The metric each share is a fraction of.
SHARE_OF: Mapping[str, str] = {"flops_share": "flops", "act_share": "activations"}
#: Growth exponents (entries with ``scaling:``): how a metric grows with the input size.
GROWTH_METRICS: tuple[str, ...] = (
    "flops_growth",
    "activations_growth",
    "act_bytes_growth",
    "saved_bytes_growth",
)
#: The metric each growth exponent is fitted to.
GROWTH_OF: Mapping[str, str] = {metric: metric.removesuffix("_growth") for metric in GROWTH_METRICS}

Outcome = Literal["passed", "over_budget", "no_budget", "error"]
#: FLOP counting conventions (``counting.flops`` in the budgets file).
COUNTINGS: tuple[str, ...] = ("fvcore", "macs")
OTHER_GROUP = "(other)"
TOTAL_GROUP = "total"


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one tensor (dtype as torch names it, without ``torch.``);
    ``name`` is the forward's keyword for a keyword input, None for a positional one."""

    shape: tuple[int, ...]
    dtype: str
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(shape=tuple(data["shape"]), dtype=data["dtype"], name=data.get("name"))


@dataclass(frozen=True)
class LayerStats:
    """One module of a measured model. Every number includes the module's descendants,
    as fvcore's ``by_module()`` does; the root ``""`` holds the model's totals."""

    path: str
    type: str
    output_shape: tuple[int, ...] | None  # first tensor output of the first call
    output_dtype: str | None
    params: int  # shared parameters counted once
    trainable: int  # params with requires_grad
    flops: int
    activations: int
    act_bytes: int  # bytes of outputs of the innermost calls in this subtree, over all calls
    saved_bytes: int  # bytes autograd saved for backward during this subtree's forward
    calls: int  # forward calls during the measurement; 0 for a module never called
    leaf: bool  # innermost: ran no child module (never called: has no child modules)
    # With a training step only (``Profile.training``), else None:
    backward_flops: int | None = None  # multiply-adds of the backward work it created
    train_bytes: int | None = None  # params + grads + optimizer state + saved_bytes

    @property
    def train_flops(self) -> int | None:
        """Forward flops + backward_flops; None without a training step."""
        return None if self.backward_flops is None else self.flops + self.backward_flops

    @property
    def depth(self) -> int:
        return 0 if not self.path else self.path.count(".") + 1

    def metric(self, name: str) -> int:
        value: int = getattr(self, name)
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": self.type,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "output_dtype": self.output_dtype,
            "params": self.params,
            "trainable": self.trainable,
            "flops": self.flops,
            "activations": self.activations,
            "act_bytes": self.act_bytes,
            "saved_bytes": self.saved_bytes,
            "calls": self.calls,
            "leaf": self.leaf,
            **(
                {name: self.metric(name) for name in TRAINING_METRICS}
                if self.backward_flops is not None
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerStats:
        shape = data.get("output_shape")
        return cls(
            path=data["path"],
            type=data["type"],
            output_shape=tuple(shape) if shape is not None else None,
            output_dtype=data.get("output_dtype"),
            params=data["params"],
            trainable=data["trainable"],
            flops=data["flops"],
            activations=data["activations"],
            act_bytes=data["act_bytes"],
            saved_bytes=data.get("saved_bytes", 0),
            calls=data.get("calls", 1),
            leaf=data.get("leaf", True),
            backward_flops=data.get("backward_flops"),
            train_bytes=data.get("train_bytes"),
        )


@dataclass(frozen=True)
class SharedParam:
    """One parameter tensor reachable under several names (tied weights: GPT-2's
    ``lm_head.weight`` is ``transformer.wte.weight``). Every module's ``params``
    counts it once; a group counts it only if it is the first in forward order."""

    names: tuple[str, ...]  # in named_parameters() order
    numel: int

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "numel": self.numel}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SharedParam:
        return cls(names=tuple(data["names"]), numel=data["numel"])


@dataclass(frozen=True)
class Profile:
    """Everything measured about one (model, inputs) pair.

    ``layers`` holds the root first, then every module in forward (first-call) order,
    then modules that were never called, in ``named_modules()`` order.
    """

    model: str  # class name of the root module
    inputs: tuple[TensorSpec, ...]
    counting: str  # "fvcore" | "macs"
    layers: tuple[LayerStats, ...]
    uncounted_ops: Mapping[str, int] = field(default_factory=dict)
    mode: str | None = None  # "train" | "eval": the root module's training flag
    shared_params: tuple[SharedParam, ...] = ()
    traced_on: str = "meta"  # "meta", or the device of the real tensors it traced
    meta_fallback: str | None = None  # why the meta trace could not serve, when it did not
    training: TrainingSpec | None = None  # set when a training step was measured

    @property
    def measured_metrics(self) -> tuple[str, ...]:
        """The absolute metrics every layer of this profile has."""
        return ABSOLUTE_METRICS + (TRAINING_METRICS if self.training is not None else ())

    @property
    def total(self) -> LayerStats:
        return self.layer("")

    @cached_property
    def _by_path(self) -> dict[str, LayerStats]:
        return {layer.path: layer for layer in self.layers}

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(layer.path for layer in self.layers)

    def layer(self, path: str) -> LayerStats:
        return self._by_path[path]

    def has_layer(self, path: str) -> bool:
        return path in self._by_path

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "counting": self.counting,
            "layers": [layer.to_dict() for layer in self.layers],
            "uncounted_ops": dict(sorted(self.uncounted_ops.items())),
            "mode": self.mode,
            "shared_params": [shared.to_dict() for shared in self.shared_params],
            "traced_on": self.traced_on,
            "meta_fallback": self.meta_fallback,
            "training": self.training.to_dict() if self.training is not None else None,
        }

    def __str__(self) -> str:
        """The per-layer table (fastai ``learn.summary`` style), as ``-v`` shows it."""
        from .report.terminal import profile_text

        return profile_text(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            model=data["model"],
            inputs=tuple(TensorSpec.from_dict(spec) for spec in data["inputs"]),
            counting=data["counting"],
            layers=tuple(LayerStats.from_dict(layer) for layer in data["layers"]),
            uncounted_ops=dict(data.get("uncounted_ops", {})),
            mode=data.get("mode"),
            shared_params=tuple(
                SharedParam.from_dict(shared) for shared in data.get("shared_params", [])
            ),
            traced_on=data.get("traced_on", "meta"),
            meta_fallback=data.get("meta_fallback"),
            training=TrainingSpec.from_dict(data["training"]) if data.get("training") else None,
        )


@dataclass(frozen=True)
class GroupStats:
    """The measured numbers of one layer group: sums over its top-most matched modules."""

    name: str
    patterns: tuple[str, ...]
    modules: tuple[str, ...]  # top-most matched module paths, in forward order
    flops: int
    activations: int
    params: int
    act_bytes: int
    saved_bytes: int
    flops_share: float
    act_share: float
    # (parameter name, group that counts it) for each shared tensor this group holds
    # but another group counts (see SharedParam)
    shared: tuple[tuple[str, str], ...] = ()
    # With a training step only, else None (see LayerStats):
    backward_flops: int | None = None
    train_flops: int | None = None
    train_bytes: int | None = None

    def metric(self, name: str) -> float:
        value: float = getattr(self, name)
        return value

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics this group has: METRICS, and the training ones when measured."""
        return METRICS + (TRAINING_METRICS if self.backward_flops is not None else ())

    @property
    def metrics(self) -> dict[str, float]:
        return {name: self.metric(name) for name in self.metric_names}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupStats:
        metrics = data["metrics"]
        return cls(
            name=data["name"],
            patterns=tuple(data.get("patterns", data["modules"])),
            modules=tuple(data["modules"]),
            shared=tuple((name, owner) for name, owner in data.get("shared", {}).items()),
            **{name: metrics.get(name, 0) for name in METRICS},
            **{name: metrics.get(name) for name in TRAINING_METRICS},
        )


@dataclass(frozen=True)
class Violation:
    """One exceeded budget."""

    group: str  # a group name, or "total"
    metric: str
    measured: float
    budget: float

    @property
    def is_share(self) -> bool:
        return self.metric in SHARE_METRICS

    @property
    def is_growth(self) -> bool:
        return self.metric in GROWTH_METRICS

    @property
    def over(self) -> float:
        """How far over: a fraction of the budget, percentage points for shares, the
        difference of the exponents for growth."""
        if self.is_growth:
            return self.measured - self.budget
        if self.is_share:
            return (self.measured - self.budget) * 100.0
        if self.budget == 0:
            return float("inf")
        return self.measured / self.budget - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "measured": self.measured, "budget": self.budget}


@dataclass(frozen=True)
class GroupResult:
    """A group's numbers, the budgets set for it and the ones it exceeded."""

    stats: GroupStats
    budgets: Mapping[str, float] = field(default_factory=dict)
    violations: tuple[Violation, ...] = ()

    @property
    def name(self) -> str:
        return self.stats.name

    def budget_use(self, metric: str) -> float | None:
        """measured / budget for one metric, None when it has no budget."""
        budget = self.budgets.get(metric)
        if budget is None:
            return None
        measured = self.stats.metric(metric)
        if budget == 0:
            return float("inf") if measured > 0 else 0.0
        return measured / budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "patterns": list(self.stats.patterns),
            "modules": list(self.stats.modules),
            "shared": dict(self.stats.shared),
            "metrics": {
                name: _plain(name, self.stats.metric(name)) for name in self.stats.metric_names
            },
            "budgets": {name: _plain(name, value) for name, value in self.budgets.items()},
            "violations": [
                {
                    "metric": v.metric,
                    "measured": _plain(v.metric, v.measured),
                    "budget": _plain(v.metric, v.budget),
                }
                for v in self.violations
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupResult:
        name = data["name"]
        return cls(
            stats=GroupStats.from_dict(data),
            budgets=dict(data.get("budgets", {})),
            violations=tuple(
                Violation(name, v["metric"], v["measured"], v["budget"])
                for v in data.get("violations", [])
            ),
        )


@dataclass(frozen=True)
class GrowthResult:
    """How one metric of one group grows over the sizes of a scaling check.

    ``exponent`` is the slope k of the least-squares fit of log(value) against
    log(size); None when the metric is 0 at some size (``zero_at`` says where).
    """

    group: str  # a group name, "(other)" or "total"
    metric: str  # a growth metric: flops_growth, ...
    sizes: tuple[int, ...]
    values: tuple[float, ...]  # the fitted metric at each size
    exponent: float | None
    budget: float | None = None

    @property
    def zero_at(self) -> int | None:
        """The first size at which the metric is 0 (no exponent then)."""
        return next((s for s, v in zip(self.sizes, self.values, strict=True) if v == 0), None)

    @property
    def violation(self) -> Violation | None:
        """The exceeded budget, if the exponent is over it."""
        if self.budget is None or self.exponent is None:
            return None
        if self.exponent <= self.budget + GROWTH_TOLERANCE:
            return None
        return Violation(self.group, self.metric, self.exponent, self.budget)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "metric": self.metric,
            "sizes": list(self.sizes),
            "values": [_plain(GROWTH_OF[self.metric], v) for v in self.values],
            "exponent": self.exponent,
            "budget": self.budget,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GrowthResult:
        return cls(
            group=data["group"],
            metric=data["metric"],
            sizes=tuple(data["sizes"]),
            values=tuple(data["values"]),
            exponent=data.get("exponent"),
            budget=data.get("budget"),
        )


#: A fitted exponent equal to its budget up to floating-point noise is not over it.
GROWTH_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BudgetResult:
    """The outcome of checking one model against one budget entry."""

    name: str
    nodeid: str
    outcome: Outcome
    counting: str
    profile: Profile | None = None
    groups: tuple[GroupResult, ...] = ()  # "(other)" last when something is unclaimed
    total: GroupResult | None = None  # the whole model, named "total"; None without a profile
    budget_file: str | None = None
    budget_line: int | None = None
    message: str = ""  # the failure text for every outcome but "passed"
    growth: tuple[GrowthResult, ...] = ()  # with scaling: per group and growth metric
    #: What a reader should know that does not fail a normal run: groups without a
    #: budget, slack budgets, other models the test called (``--actbudget-strict``
    #: fails on the first two).
    notes: tuple[str, ...] = ()
    other_models: tuple[str, ...] = ()  # classes of other models with parameters called

    @property
    def violations(self) -> tuple[Violation, ...]:
        found = [v for group in self.groups for v in group.violations]
        if self.total is not None:
            found.extend(self.total.violations)
        found.extend(v for g in self.growth if (v := g.violation) is not None)
        return tuple(found)

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def location(self) -> str:
        """``budgets.yaml:4`` — where the entry is, or the file alone."""
        if self.budget_file is None:
            return ""
        return f"{self.budget_file}:{self.budget_line}" if self.budget_line else self.budget_file

    def group_of(self, path: str) -> str | None:
        """The group a module belongs to (through itself or an ancestor); None for the
        ancestors of claimed modules, which span several groups."""
        for group in self.groups:
            for module in group.stats.modules:
                if module == "" or path == module or path.startswith(module + "."):
                    return group.name
        return None

    def to_dict(self) -> dict[str, Any]:
        profile = self.profile
        data: dict[str, Any] = {
            "name": self.name,
            "nodeid": self.nodeid,
            "model": profile.model if profile else None,
            "inputs": [spec.to_dict() for spec in profile.inputs] if profile else [],
            "counting": self.counting,
            "outcome": self.outcome,
            "message": self.message,
            "warnings": missing_compute(profile.uncounted_ops) if profile else [],
            "budget_file": self.budget_file,
            "budget_line": self.budget_line,
            "total": (
                {name: profile.total.metric(name) for name in profile.measured_metrics}
                if profile
                else {}
            ),
            "total_budgets": (
                {k: _plain(k, v) for k, v in self.total.budgets.items()} if self.total else {}
            ),
            "total_violations": (
                [v.to_dict() for v in self.total.violations] if self.total else []
            ),
            "groups": [group.to_dict() for group in self.groups],
            "layers": [
                {**layer.to_dict(), "group": self.group_of(layer.path)}
                for layer in (profile.layers if profile else ())
            ],
            "uncounted_ops": dict(sorted(profile.uncounted_ops.items())) if profile else {},
            "mode": profile.mode if profile else None,
            "notes": list(self.notes),
            "other_models": list(self.other_models),
            "shared_params": (
                [shared.to_dict() for shared in profile.shared_params] if profile else []
            ),
            "traced_on": profile.traced_on if profile else None,
            "meta_fallback": profile.meta_fallback if profile else None,
            "training": (
                profile.training.to_dict() if profile is not None and profile.training else None
            ),
        }
        if self.growth:
            data["growth"] = [g.to_dict() for g in self.growth]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BudgetResult:
        # A result carries its profile's fields at its own top level.
        profile = Profile.from_dict(data) if data.get("model") is not None else None
        total = None
        if profile is not None:
            total = GroupResult(
                stats=total_stats(profile),
                budgets=dict(data.get("total_budgets", {})),
                violations=tuple(
                    Violation(TOTAL_GROUP, v["metric"], v["measured"], v["budget"])
                    for v in data.get("total_violations", [])
                ),
            )
        return cls(
            name=data["name"],
            nodeid=data["nodeid"],
            outcome=data["outcome"],
            counting=data["counting"],
            profile=profile,
            groups=tuple(GroupResult.from_dict(group) for group in data.get("groups", [])),
            total=total,
            budget_file=data.get("budget_file"),
            budget_line=data.get("budget_line"),
            message=data.get("message", ""),
            growth=tuple(GrowthResult.from_dict(g) for g in data.get("growth", [])),
            notes=tuple(data.get("notes", ())),
            other_models=tuple(data.get("other_models", ())),
        )


def total_stats(profile: Profile) -> GroupStats:
    """The whole model as one group named ``total``."""
    root = profile.total
    return GroupStats(
        name=TOTAL_GROUP,
        patterns=("",),
        modules=("",),
        flops=root.flops,
        activations=root.activations,
        params=root.params,
        act_bytes=root.act_bytes,
        saved_bytes=root.saved_bytes,
        flops_share=1.0,
        act_share=1.0,
        backward_flops=root.backward_flops,
        train_flops=root.train_flops,
        train_bytes=root.train_bytes,
    )


def _plain(metric: str, value: float) -> float | int:
    """Budgets and measurements as JSON numbers: integers for counts, floats for shares."""
    if metric in SHARE_METRICS:
        return float(value)
    return int(value) if float(value).is_integer() else float(value)
