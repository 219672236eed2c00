"""Hand-built results for the renderer tests (no torch): a small CNN measured by hand.

The model is ``Sequential(Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
BatchNorm2d(64), AdaptiveAvgPool2d(1), Flatten(), Linear(64, 10))`` on a 64x3x28x28
float32 input, so its numbers are those of resnet18's stem on MNIST:

- conv "0": output 64x64x14x14 = 802,816 elements; params 64*3*7*7 = 9,408;
  flops (fvcore, one multiply-add = 1) = 802,816 * 3*7*7 = 118,013,952;
  activations = its output elements = 802,816; act_bytes = 802,816 * 4 = 3,211,264.
- batchnorm "1": params 2*64 = 128; flops (fvcore counts 1 per element) = 802,816;
  activations 0 (not a conv/matmul); act_bytes 3,211,264.
- pool "2": output 64x64x1x1; flops 0 here; act_bytes 64*64*4 = 16,384.
- flatten "3": output 64x64; act_bytes 16,384.
- linear "4": params 64*10 + 10 = 650; flops 64*64*10 = 40,960; activations 64*10 = 640;
  act_bytes 640*4 = 2,560.

Root "": params 9,408+128+650 = 10,186; flops 118,013,952+802,816+40,960 = 118,857,728;
activations 802,816+640 = 803,456; act_bytes 3,211,264*2+16,384*2+2,560 = 6,457,856.

``stem_scale=4`` models the stem with stride 1 (output 28x28, four times the elements):
conv flops 472,055,808, bn flops 3,211,264, activations 3,211,264, bytes x4.

Groups: stem = ["0", "1"], head = ["4"], (other) = the unclaimed "2" and "3".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pytest_actbudget.results import (
    BudgetResult,
    GroupResult,
    GroupStats,
    LayerStats,
    Profile,
    TensorSpec,
    Violation,
    total_stats,
)


def layer(path: str, type_: str, shape: tuple[int, ...] | None, **numbers: int) -> LayerStats:
    return LayerStats(
        path=path,
        type=type_,
        output_shape=shape,
        output_dtype="float32" if shape is not None else None,
        params=numbers.get("params", 0),
        trainable=numbers.get("trainable", numbers.get("params", 0)),
        flops=numbers.get("flops", 0),
        activations=numbers.get("activations", 0),
        act_bytes=numbers.get("act_bytes", 0),
        saved_bytes=numbers.get("saved_bytes", 0),
        calls=numbers.get("calls", 1),
        leaf=bool(numbers.get("leaf", 1)),
    )


def make_profile(
    *,
    stem_scale: int = 1,
    model: str = "Sequential",
    names: Sequence[str] = ("0", "1", "2", "3", "4"),
) -> Profile:
    """The stem CNN above; ``names`` renames the five module paths (for escaping tests)."""
    s = stem_scale
    hw = 14 if s == 1 else 28
    conv, bn, pool, flat, fc = names
    leaves = (
        layer(
            conv,
            "Conv2d",
            (64, 64, hw, hw),
            params=9408,
            flops=118_013_952 * s,
            activations=802_816 * s,
            act_bytes=3_211_264 * s,
        ),
        layer(
            bn,
            "BatchNorm2d",
            (64, 64, hw, hw),
            params=128,
            flops=802_816 * s,
            act_bytes=3_211_264 * s,
        ),
        layer(pool, "AdaptiveAvgPool2d", (64, 64, 1, 1), act_bytes=16_384),
        layer(flat, "Flatten", (64, 64), act_bytes=16_384),
        layer(fc, "Linear", (64, 10), params=650, flops=40_960, activations=640, act_bytes=2_560),
    )
    root = layer(
        "",
        model,
        (64, 10),
        params=sum(leaf.params for leaf in leaves),
        flops=sum(leaf.flops for leaf in leaves),
        activations=sum(leaf.activations for leaf in leaves),
        act_bytes=sum(leaf.act_bytes for leaf in leaves),
        leaf=0,
    )
    return Profile(
        model=model,
        inputs=(TensorSpec((64, 3, 28, 28), "float32"),),
        counting="fvcore",
        layers=(root, *leaves),
        uncounted_ops={"aten::adaptive_avg_pool2d": 1, "aten::add_": 2},
    )


def group(
    profile: Profile, name: str, modules: Sequence[str], budgets: Mapping[str, float] | None = None
) -> GroupResult:
    """A group summed over its (top-most, disjoint) modules, checked against budgets."""
    total = profile.total
    sums = {
        metric: sum(profile.layer(m).metric(metric) for m in modules)
        for metric in ("flops", "activations", "params", "act_bytes", "saved_bytes")
    }
    stats = GroupStats(
        name=name,
        patterns=tuple(modules),
        modules=tuple(modules),
        flops_share=sums["flops"] / total.flops if total.flops else 0.0,
        act_share=sums["activations"] / total.activations if total.activations else 0.0,
        **sums,
    )
    limits = dict(budgets or {})
    violations = tuple(
        Violation(name, metric, stats.metric(metric), limit)
        for metric, limit in limits.items()
        if stats.metric(metric) > limit
    )
    return GroupResult(stats=stats, budgets=limits, violations=violations)


def make_result(
    name: str = "stem-cnn",
    *,
    stem_budget: float = 200e6,
    stem_scale: int = 1,
    nodeid: str = "tests/test_models.py::test_stem",
    names: Sequence[str] = ("0", "1", "2", "3", "4"),
    model: str = "Sequential",
    total_budgets: Mapping[str, float] | None = None,
) -> BudgetResult:
    """A checked entry: over budget when the stem's flops exceed ``stem_budget``."""
    profile = make_profile(stem_scale=stem_scale, names=names, model=model)
    conv, bn, pool, flat, fc = names
    groups = (
        group(profile, "stem", (conv, bn), {"flops": stem_budget}),
        group(profile, "head", (fc,), {"params": 1000}),
        group(profile, "(other)", (pool, flat)),
    )
    total_budgets = dict(total_budgets or {"params": 12_000})
    total = GroupResult(
        stats=total_stats(profile),
        budgets=total_budgets,
        violations=tuple(
            Violation("total", metric, total_stats(profile).metric(metric), limit)
            for metric, limit in total_budgets.items()
            if total_stats(profile).metric(metric) > limit
        ),
    )
    over = any(g.violations for g in groups) or bool(total.violations)
    return BudgetResult(
        name=name,
        nodeid=nodeid,
        outcome="over_budget" if over else "passed",
        counting="fvcore",
        profile=profile,
        groups=groups,
        total=total,
        budget_file="budgets.yaml",
        budget_line=4,
        message="act_budget 'stem-cnn': 1 budget exceeded" if over else "",
    )


def error_result() -> BudgetResult:
    """A model whose forward failed: no profile, only a message."""
    return BudgetResult(
        name="broken",
        nodeid="tests/test_models.py::test_broken",
        outcome="error",
        counting="fvcore",
        message="cannot measure 'broken': mat1 and mat2 shapes cannot be multiplied",
    )


def no_budget_result() -> BudgetResult:
    """Measured, but the budgets file has no entry for it."""
    profile = make_profile()
    return BudgetResult(
        name="unlisted",
        nodeid="tests/test_models.py::test_unlisted",
        outcome="no_budget",
        counting="fvcore",
        profile=profile,
        total=GroupResult(stats=total_stats(profile)),
        budget_file="budgets.yaml",
        message="no budget 'unlisted' in budgets.yaml; record one with `pytest --actbudget-update`",
    )


def sample_results() -> list[BudgetResult]:
    """Passed first on purpose: renderers must put the violations first."""
    return [
        make_result("stem-ok", stem_budget=200e6),
        make_result("stem-over", stem_budget=100e6, nodeid="tests/test_models.py::test_over"),
        error_result(),
        no_budget_result(),
    ]
