"""The budgets file (YAML, ``version: 1``): its types, and reading a node tree into them.

Every key is checked against the schema of DESIGN.md: unknown keys (with a
did-you-mean), wrong types, bad units and negative numbers are a
:class:`BudgetFileError` whose message starts ``FILE:LINE:`` and names the key path.
How the text becomes a safe node tree is :mod:`pytest_actbudget.budgets.safe_yaml`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..results import (
    ABSOLUTE_METRICS,
    COUNTINGS,
    GROWTH_METRICS,
    METRICS,
    OTHER_GROUP,
    SHARE_METRICS,
    TOTAL_GROUP,
    TensorSpec,
)
from ..training import TRAINING_METRICS, TrainingSpec
from .inputs import DTYPES, MODES
from .safe_yaml import (
    INT,
    NULL,
    STR,
    compose,
    describe,
    fail,
    gc_paused,
    key_problem,
    line_of,
    read_text,
    scalar,
    unknown_key,
)
from .scaling import ScalingSpec, read_scaling
from .training import TrainingReader
from .units import parse_growth_headroom, parse_percent, parse_quantity

if TYPE_CHECKING:
    import yaml

DEFAULT_HEADROOM = 0.10
DEFAULT_GROWTH_HEADROOM = 0.05  # absolute, added to a measured exponent
#: What update fills into a group (or ``total``) that lists no metric.
DEFAULT_METRICS: tuple[str, ...] = ("flops", "activations", "params", "act_bytes")
#: A budget used less than this is slack: it guards nothing.
DEFAULT_MIN_USE = 0.50
VERSION = 1

TOP_KEYS: tuple[str, ...] = ("version", "counting", "defaults", "models")
DEFAULTS_KEYS: tuple[str, ...] = ("headroom", "metrics", "min_use", "growth_headroom", "training")
DEFAULT_KEYS = DEFAULTS_KEYS
ENTRY_KEYS: tuple[str, ...] = (
    "input",
    "mode",
    "groups",
    "total",
    "allow_uncounted",
    "scaling",
    "training",
)
GROUP_KEYS: tuple[str, ...] = ("modules", *METRICS, *TRAINING_METRICS, *GROWTH_METRICS)
TOTAL_KEYS: tuple[str, ...] = (*ABSOLUTE_METRICS, *TRAINING_METRICS)
RESERVED_GROUPS: tuple[str, ...] = (OTHER_GROUP, TOTAL_GROUP)


@dataclass(frozen=True)
class GroupBudget:
    """One group of a model entry: which modules it claims and its maxima."""

    name: str
    modules: tuple[str, ...]  # fnmatch patterns over module paths
    limits: Mapping[str, float]  # metric name -> maximum (shares as fractions 0..1)
    line: int  # 1-based line of the group's key in the file
    growth: Mapping[str, float] = field(default_factory=dict)  # flops_growth -> max exponent


@dataclass(frozen=True)
class ModelBudget:
    """One entry under ``models:``."""

    name: str
    groups: tuple[GroupBudget, ...]
    total: Mapping[str, float]  # metric -> maximum for the whole model
    input: tuple[TensorSpec, ...] | None  # `input:`, as recorded by update
    allow_uncounted: tuple[str, ...]
    line: int  # 1-based line of the entry's key
    scaling: ScalingSpec | None = None
    total_growth: Mapping[str, float] = field(default_factory=dict)
    mode: str | None = None  # `mode:` train | eval
    total_line: int | None = None  # line of `total:`, when the entry has one
    training: TrainingSpec | None = None  # `training:` (with defaults.training); None: off

    def line_of(self, group: str) -> int:
        """The line of a group (or ``total``) of this entry, else the entry's line."""
        if group == TOTAL_GROUP:
            return self.total_line or self.line
        return next((g.line for g in self.groups if g.name == group), self.line)


@dataclass(frozen=True)
class BudgetsFile:
    """A loaded budgets file. ``exists`` is False for a default file that is not there yet."""

    path: str
    exists: bool
    counting: str = "fvcore"
    headroom: float | None = None  # `defaults.headroom`, None when not set
    models: Mapping[str, ModelBudget] = field(default_factory=dict)
    growth_headroom: float = DEFAULT_GROWTH_HEADROOM  # `defaults.growth_headroom`
    metrics: tuple[str, ...] = DEFAULT_METRICS  # `defaults.metrics`
    min_use: float = DEFAULT_MIN_USE  # `defaults.min_use`
    training: TrainingSpec = field(default_factory=TrainingSpec)  # `defaults.training`

    def training_for(self, entry: ModelBudget | None, asked: bool) -> TrainingSpec | None:
        """How a check costs its training step: the entry's ``training:``; else, when
        the check asks for one (``check(..., training=True)``), the file's defaults;
        else None (no training step)."""
        if entry is not None and entry.training is not None:
            return entry.training
        return self.training if asked else None

    def headroom_for(self, given: float | None) -> float:
        """The headroom an update uses: the one given (option, ini, CLI flag), else the
        file's ``defaults.headroom``, else 10%."""
        if given is not None:
            return given
        return self.headroom if self.headroom is not None else DEFAULT_HEADROOM


def load_budgets(path: str | Path, *, must_exist: bool = False) -> BudgetsFile:
    """Load and validate a budgets file; raise BudgetFileError with file:line and key path.

    A missing file is ``BudgetsFile(path, exists=False)``, or an error when
    ``must_exist`` (the user named the file explicitly).
    """
    name = str(path)
    text = read_text(Path(path), name, must_exist=must_exist)
    if text is None:
        return BudgetsFile(path=name, exists=False)
    return parse_budgets(text, name)


def parse_budgets(text: str, path: str) -> BudgetsFile:
    """Validate the text of a budgets file; ``path`` only names it in messages."""
    return parse_tree(text, path)[0]


def parse_tree(text: str, path: str) -> tuple[BudgetsFile, yaml.Node | None]:
    """The validated file and the node tree it was read from (for in-place edits)."""
    with gc_paused():
        root = compose(text, path)
        return _Reader(path).file(root), root


class _Reader(TrainingReader):
    """Turns a checked node tree into a BudgetsFile, or raises with file:line/key."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.training_defaults = TrainingSpec()

    def fail(self, node: yaml.Node, keys: tuple[str, ...], message: str) -> NoReturn:
        fail(self.path, line_of(node), keys, message)

    def items(
        self, node: yaml.Node, keys: tuple[str, ...], allowed: tuple[str, ...], what: str
    ) -> Iterator[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping (an empty value counts as empty);
        with ``allowed``, other keys are errors."""
        import yaml

        if node.tag == NULL:
            return
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, keys, f"expected {what}, got {describe(node)}")
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != STR:
                self.fail(key, keys, key_problem(key))
            if allowed and key.value not in allowed:
                self.fail(key, (*keys, key.value), unknown_key(key.value, allowed))
            yield key.value, key, value

    def file(self, root: yaml.Node | None) -> BudgetsFile:
        import yaml

        if root is None:
            fail(self.path, 1, (), "the file is empty; a budgets file starts with 'version: 1'")
        if not isinstance(root, yaml.MappingNode):
            self.fail(
                root, (), f"expected a mapping with 'version: 1' at the top, got {describe(root)}"
            )
        top = {name: value for name, _, value in self.items(root, (), TOP_KEYS, "")}
        version = top.get("version")
        if version is None:
            self.fail(root, (), "missing 'version: 1' at the top of the file")
        if version.tag != INT or scalar(version) != VERSION:
            self.fail(
                version,
                ("version",),
                f"unsupported version {describe(version)}; this pytest-actbudget reads "
                f"version {VERSION}",
            )
        counting = "fvcore"
        for _, _, value in self.items(
            top.get("counting", _EMPTY), ("counting",), ("flops",), "a mapping (flops: fvcore)"
        ):
            if value.tag != STR or value.value not in COUNTINGS:
                self.fail(
                    value,
                    ("counting", "flops"),
                    f"{describe(value)} is not a counting convention; use fvcore (the "
                    "default) or macs",
                )
            counting = value.value
        headroom = None
        growth_headroom = DEFAULT_GROWTH_HEADROOM
        metrics = DEFAULT_METRICS
        min_use = DEFAULT_MIN_USE
        for key, _, value in self.items(
            top.get("defaults", _EMPTY),
            ("defaults",),
            DEFAULT_KEYS,
            "a mapping (headroom: 10%, metrics: [...], min_use: 50%)",
        ):
            here = ("defaults", key)
            if key == "metrics":
                metrics = self.metric_names(value, here)
                continue
            if key == "training":
                self.training_defaults = self.training_defaults_of(value)
                continue
            try:
                if key == "growth_headroom":
                    growth_headroom = parse_growth_headroom(scalar(value))
                    continue
                share = parse_percent(scalar(value))
            except ValueError as e:
                self.fail(value, here, str(e))
            if key == "headroom":
                headroom = share
            elif share > 1:
                self.fail(value, here, f"{describe(value)} is over 100%; use e.g. 50%")
            else:
                min_use = share
        models = {
            name: self.entry(name, key, value)
            for name, key, value in self.items(
                top.get("models", _EMPTY), ("models",), (), "a mapping of entry names to entries"
            )
        }
        return BudgetsFile(
            self.path,
            True,
            counting,
            headroom,
            models,
            growth_headroom,
            metrics,
            min_use,
            self.training_defaults,
        )

    def metric_names(self, node: yaml.Node, keys: tuple[str, ...]) -> tuple[str, ...]:
        names = self.strings(node, keys, "metric names (e.g. [flops, activations])")
        if not names:
            self.fail(node, keys, f"is empty; list some of {', '.join(METRICS)}")
        for item, name in zip(node.value, names, strict=True):
            if name not in METRICS:
                self.fail(item, keys, unknown_key(name, METRICS))
        return names

    def entry(self, name: str, key: yaml.Node, node: yaml.Node) -> ModelBudget:
        keys = ("models", name)
        what = "a mapping (input, mode, groups, total, allow_uncounted)"
        groups: list[GroupBudget] = []
        total: dict[str, float] = {}
        total_growth: dict[str, float] = {}
        scaling: ScalingSpec | None = None
        growth_key: tuple[yaml.Node, tuple[str, ...]] | None = None  # the first X_growth
        inputs: tuple[TensorSpec, ...] | None = None
        mode: str | None = None
        total_line: int | None = None
        allowed: tuple[str, ...] = ()
        training: TrainingSpec | None = None
        training_budgets: list[tuple[yaml.Node, tuple[str, ...]]] = []
        for part, part_key, value in self.items(node, keys, ENTRY_KEYS, what):
            here = (*keys, part)
            if part == "training":
                training = self.entry_training(value, here)
            elif part == "input":
                inputs = self.inputs(value, here)
            elif part == "mode":
                if value.tag != STR or value.value not in MODES:
                    self.fail(
                        value,
                        here,
                        f"{describe(value)} is not a mode; use train or eval (the root "
                        "module's training flag when it was measured)",
                    )
                mode = value.value
            elif part == "allow_uncounted":
                allowed = self.strings(value, here, "operator names (e.g. [aten::max_pool2d])")
            elif part == "scaling":
                scaling = read_scaling(self.path, part_key, value, here)
            elif part == "groups":
                what_groups = "a mapping of group names to groups"
                for group, group_key, group_value in self.items(value, here, (), what_groups):
                    read = self.group(
                        group, group_key, group_value, (*here, group), training_budgets
                    )
                    groups.append(read)
                    if read.growth and growth_key is None:
                        growth_key = (group_key, (*here, group, next(iter(read.growth))))
            else:
                total_line = line_of(part_key)
                for metric, metric_key, limit in self.items(
                    value, here, (), "a mapping of metric: budget"
                ):
                    if metric in SHARE_METRICS:
                        self.fail(
                            metric_key,
                            (*here, metric),
                            f"{metric!r} cannot be a budget of the total (the total is "
                            f"always 100%); valid keys: {', '.join(ABSOLUTE_METRICS)}",
                        )
                    if metric in GROWTH_METRICS:
                        total_growth[metric] = self.quantity(limit, (*here, metric), metric)
                        growth_key = growth_key or (metric_key, (*here, metric))
                        continue
                    if metric not in TOTAL_KEYS:
                        self.fail(
                            metric_key,
                            (*here, metric),
                            unknown_key(metric, TOTAL_KEYS + GROWTH_METRICS),
                        )
                    if metric in TRAINING_METRICS:
                        training_budgets.append((metric_key, (*here, metric)))
                    total[metric] = self.quantity(limit, (*here, metric), metric)
        if growth_key is not None and scaling is None:
            node_at, keys_at = growth_key
            self.fail(
                node_at,
                keys_at,
                "a growth budget needs the entry to say how its inputs scale: add "
                "'scaling: {inputs: {0: [1]}, sizes: [128, 256, 512]}' to the entry "
                "(input position or keyword -> dimensions that take each size)",
            )
        if training is None and training_budgets:
            self.untrained_budget(*training_budgets[0])
        return ModelBudget(
            name,
            tuple(groups),
            total,
            inputs,
            allowed,
            line_of(key),
            mode=mode,
            total_line=total_line,
            scaling=scaling,
            total_growth=total_growth,
            training=training,
        )

    def group(
        self,
        name: str,
        key: yaml.Node,
        node: yaml.Node,
        keys: tuple[str, ...],
        training_budgets: list[tuple[yaml.Node, tuple[str, ...]]],
    ) -> GroupBudget:
        import yaml

        if name in RESERVED_GROUPS:
            self.fail(key, keys, f"the group name {name!r} is reserved; choose another name")
        how = 'list the module path patterns of the group (e.g. modules: ["0.*"])'
        if not isinstance(node, yaml.MappingNode):
            self.fail(
                node, keys, f"expected a mapping (modules: [...], flops: ...), got {describe(node)}"
            )
        modules: tuple[str, ...] | None = None
        limits: dict[str, float] = {}
        growth: dict[str, float] = {}
        for part, part_key, value in self.items(node, keys, GROUP_KEYS, ""):
            if part in TRAINING_METRICS:
                training_budgets.append((part_key, (*keys, part)))
            if part == "modules":
                modules = self.strings(value, (*keys, part), 'module path patterns (e.g. ["0.*"])')
                if not modules:
                    self.fail(value, (*keys, part), f"is empty; {how}")
            elif part in GROWTH_METRICS:
                growth[part] = self.quantity(value, (*keys, part), part)
            else:
                limits[part] = self.quantity(value, (*keys, part), part)
        if modules is None:
            self.fail(key, keys, f"missing 'modules'; {how}")
        return GroupBudget(name, modules, limits, line_of(key), growth)

    def quantity(self, node: yaml.Node, keys: tuple[str, ...], metric: str) -> float:
        try:
            return parse_quantity(scalar(node), metric)
        except ValueError as e:
            self.fail(node, keys, str(e))

    def strings(self, node: yaml.Node, keys: tuple[str, ...], what: str) -> tuple[str, ...]:
        import yaml

        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, keys, f"expected a list of {what}, got {describe(node)}")
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode) or item.tag != STR:
                hint = f" (quote it: '{item.value}')" if isinstance(item, yaml.ScalarNode) else ""
                self.fail(item, keys, f"expected a list of {what}, got {describe(item)}{hint}")
        return tuple(str(item.value) for item in node.value)

    def inputs(self, node: yaml.Node, keys: tuple[str, ...]) -> tuple[TensorSpec, ...]:
        """``input:``: one shape, a list of tensors, or a mapping of positions and
        keyword names to tensors (see budgets/inputs.py)."""
        import yaml

        if isinstance(node, yaml.SequenceNode) and node.value:
            if all(isinstance(item, yaml.ScalarNode) for item in node.value):
                return (TensorSpec(self.dims(node, keys, allow_empty=False), "float32"),)
            return tuple(self.tensor(item, keys) for item in node.value)
        if isinstance(node, yaml.MappingNode) and node.value:
            positional: dict[int, TensorSpec] = {}
            named: list[TensorSpec] = []
            for key, value in node.value:
                if key.tag == INT and isinstance(scalar(key), int) and scalar(key) >= 0:
                    positional[scalar(key)] = self.tensor(value, (*keys, key.value))
                elif key.tag == STR and key.value.isidentifier():
                    spec = self.tensor(value, (*keys, key.value))
                    named.append(TensorSpec(spec.shape, spec.dtype, key.value))
                else:
                    self.fail(
                        key,
                        keys,
                        f"{describe(key)} is neither an input position (0, 1, ...) nor a "
                        "keyword name of the forward",
                    )
            if sorted(positional) != list(range(len(positional))):
                listed = ", ".join(str(p) for p in sorted(positional))
                self.fail(node, keys, f"positions {listed}: expected 0, 1, ... with none left out")
            return (*(positional[p] for p in sorted(positional)), *named)
        self.fail(node, keys, f"{_INPUT_HOW}, got {describe(node)}")

    def tensor(self, node: yaml.Node, keys: tuple[str, ...]) -> TensorSpec:
        """One tensor of ``input:``: ``[dims]`` (float32) or ``{shape: [dims], dtype: X}``."""
        import yaml

        if isinstance(node, yaml.SequenceNode):
            return TensorSpec(self.dims(node, keys, allow_empty=False), "float32")
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, keys, f"{_INPUT_HOW}, got {describe(node)}")
        found = {name: value for name, _, value in self.items(node, keys, ("shape", "dtype"), "")}
        if "shape" not in found:
            self.fail(node, keys, "missing 'shape' (e.g. {shape: [4, 128], dtype: int64})")
        shape = self.dims(found["shape"], (*keys, "shape"), allow_empty=True)
        dtype = found.get("dtype")
        if dtype is None:
            return TensorSpec(shape, "float32")
        if dtype.tag != STR or dtype.value not in DTYPES:
            self.fail(
                dtype,
                (*keys, "dtype"),
                f"{describe(dtype)} is not a dtype; use one of {', '.join(DTYPES)}",
            )
        return TensorSpec(shape, dtype.value)

    def dims(self, node: yaml.Node, keys: tuple[str, ...], *, allow_empty: bool) -> tuple[int, ...]:
        import yaml

        how = "expected a list of positive integers (e.g. [64, 3, 28, 28])"
        if not isinstance(node, yaml.SequenceNode) or not (node.value or allow_empty):
            self.fail(node, keys, f"{how}, got {describe(node)}")
        dims = []
        for item in node.value:
            value = scalar(item) if item.tag == INT else None
            if not isinstance(value, int) or value <= 0:
                self.fail(item, keys, f"{how}, got {describe(item)}")
            dims.append(value)
        return tuple(dims)


_INPUT_HOW = (
    "expected a shape ([64, 3, 28, 28]), a list of tensors ([[4, 3, 64, 64], {shape: [4], "
    "dtype: int64}]) or a mapping of positions and keyword names to tensors "
    "({0: [4, 3, 64, 64], mask: {shape: [4, 64], dtype: bool}})"
)


class _Empty:
    """Stands for an absent optional mapping: iterates as empty."""

    tag = NULL


_EMPTY: Any = _Empty()
