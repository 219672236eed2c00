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
)
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
from .units import parse_growth_headroom, parse_percent, parse_quantity

if TYPE_CHECKING:
    import yaml

DEFAULT_HEADROOM = 0.10
DEFAULT_GROWTH_HEADROOM = 0.05  # absolute, added to a measured exponent
VERSION = 1

TOP_KEYS: tuple[str, ...] = ("version", "counting", "defaults", "models")
ENTRY_KEYS: tuple[str, ...] = ("input", "groups", "total", "allow_uncounted", "scaling")
GROUP_KEYS: tuple[str, ...] = ("modules", *METRICS, *GROWTH_METRICS)
DEFAULTS_KEYS: tuple[str, ...] = ("headroom", "growth_headroom")
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
    input: tuple[int, ...] | None
    allow_uncounted: tuple[str, ...]
    line: int  # 1-based line of the entry's key
    scaling: ScalingSpec | None = None
    total_growth: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetsFile:
    """A loaded budgets file. ``exists`` is False for a default file that is not there yet."""

    path: str
    exists: bool
    counting: str = "fvcore"
    headroom: float | None = None  # `defaults.headroom`, None when not set
    models: Mapping[str, ModelBudget] = field(default_factory=dict)
    growth_headroom: float = DEFAULT_GROWTH_HEADROOM  # `defaults.growth_headroom`

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


class _Reader:
    """Turns a checked node tree into a BudgetsFile, or raises with file:line/key."""

    def __init__(self, path: str) -> None:
        self.path = path

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
        for part, _, value in self.items(
            top.get("defaults", _EMPTY), ("defaults",), DEFAULTS_KEYS, "a mapping (headroom: 10%)"
        ):
            try:
                if part == "growth_headroom":
                    growth_headroom = parse_growth_headroom(scalar(value))
                else:
                    headroom = parse_percent(scalar(value))
            except ValueError as e:
                self.fail(value, ("defaults", part), str(e))
        models = {
            name: self.entry(name, key, value)
            for name, key, value in self.items(
                top.get("models", _EMPTY), ("models",), (), "a mapping of entry names to entries"
            )
        }
        return BudgetsFile(self.path, True, counting, headroom, models, growth_headroom)

    def entry(self, name: str, key: yaml.Node, node: yaml.Node) -> ModelBudget:
        keys = ("models", name)
        what = "a mapping (input, groups, total, allow_uncounted)"
        groups: list[GroupBudget] = []
        total: dict[str, float] = {}
        total_growth: dict[str, float] = {}
        scaling: ScalingSpec | None = None
        growth_key: tuple[yaml.Node, tuple[str, ...]] | None = None  # the first X_growth
        shape: tuple[int, ...] | None = None
        allowed: tuple[str, ...] = ()
        for part, part_key, value in self.items(node, keys, ENTRY_KEYS, what):
            here = (*keys, part)
            if part == "input":
                shape = self.shape(value, here)
            elif part == "allow_uncounted":
                allowed = self.strings(value, here, "operator names (e.g. [aten::max_pool2d])")
            elif part == "scaling":
                scaling = read_scaling(self.path, part_key, value, here)
            elif part == "groups":
                what_groups = "a mapping of group names to groups"
                for group, group_key, group_value in self.items(value, here, (), what_groups):
                    read = self.group(group, group_key, group_value, (*here, group))
                    groups.append(read)
                    if read.growth and growth_key is None:
                        growth_key = (group_key, (*here, group, next(iter(read.growth))))
            else:
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
                    if metric not in ABSOLUTE_METRICS:
                        self.fail(
                            metric_key,
                            (*here, metric),
                            unknown_key(metric, ABSOLUTE_METRICS + GROWTH_METRICS),
                        )
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
        return ModelBudget(
            name,
            tuple(groups),
            total,
            shape,
            allowed,
            line_of(key),
            scaling=scaling,
            total_growth=total_growth,
        )

    def group(
        self, name: str, key: yaml.Node, node: yaml.Node, keys: tuple[str, ...]
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
        for part, _, value in self.items(node, keys, GROUP_KEYS, ""):
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

    def shape(self, node: yaml.Node, keys: tuple[str, ...]) -> tuple[int, ...]:
        import yaml

        how = "expected a list of positive integers (e.g. [64, 3, 28, 28])"
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.fail(node, keys, f"{how}, got {describe(node)}")
        dims = []
        for item in node.value:
            value = scalar(item) if item.tag == INT else None
            if not isinstance(value, int) or value <= 0:
                self.fail(item, keys, f"{how}, got {describe(item)}")
            dims.append(value)
        return tuple(dims)


class _Empty:
    """Stands for an absent optional mapping: iterates as empty."""

    tag = NULL


_EMPTY: Any = _Empty()
