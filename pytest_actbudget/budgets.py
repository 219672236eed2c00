"""The budgets file: types, loading and validation (YAML, ``version: 1``).

The text is *composed* into YAML nodes, never constructed by PyYAML: every value keeps
its line, duplicate keys are visible, and no tag (``!!python/object`` ...) can build an
object. Scalars are then read here with ``yaml.safe_load`` semantics. Anything wrong
is a :class:`BudgetFileError` whose message starts ``FILE:LINE:`` and names the key.

``yaml`` is imported inside the functions: a pytest run without budget tests never
pays for it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import BudgetFileError
from .results import ABSOLUTE_METRICS, METRICS, OTHER_GROUP, SHARE_METRICS, TOTAL_GROUP
from .units import parse_percent, parse_quantity

if TYPE_CHECKING:
    import yaml

COUNTINGS: tuple[str, ...] = ("fvcore", "macs")
#: A budgets file is hand-edited code: a bigger one is a mistake or an attack.
MAX_FILE_BYTES = 2 * 1024**2
DEFAULT_HEADROOM = 0.10
VERSION = 1

TOP_KEYS: tuple[str, ...] = ("version", "counting", "defaults", "models")
ENTRY_KEYS: tuple[str, ...] = ("input", "groups", "total", "allow_uncounted")
GROUP_KEYS: tuple[str, ...] = ("modules", *METRICS)
RESERVED_GROUPS: tuple[str, ...] = (OTHER_GROUP, TOTAL_GROUP)

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_SAFE_TAGS = frozenset({STR, INT, FLOAT, BOOL, NULL, _TAG + "seq", _TAG + "map"})


@dataclass(frozen=True)
class GroupBudget:
    """One group of a model entry: which modules it claims and its maxima."""

    name: str
    modules: tuple[str, ...]  # fnmatch patterns over module paths
    limits: Mapping[str, float]  # metric name -> maximum (shares as fractions 0..1)
    line: int  # 1-based line of the group's key in the file


@dataclass(frozen=True)
class ModelBudget:
    """One entry under ``models:``."""

    name: str
    groups: tuple[GroupBudget, ...]
    total: Mapping[str, float]  # metric -> maximum for the whole model
    input: tuple[int, ...] | None
    allow_uncounted: tuple[str, ...]
    line: int  # 1-based line of the entry's key


@dataclass(frozen=True)
class BudgetsFile:
    """A loaded budgets file. ``exists`` is False for a default file that is not there yet."""

    path: str
    exists: bool
    counting: str = "fvcore"
    headroom: float | None = None  # `defaults.headroom`, None when not set
    models: Mapping[str, ModelBudget] = field(default_factory=dict)


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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A node tree is millions of small objects and no cycles: the cyclic collector
    would run hundreds of times for nothing (a 10 MB file: 25 s with it, 6 s without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fail(path: str, line: int | None, keys: tuple[str, ...], message: str) -> NoReturn:
    """Raise the one-paragraph error ``FILE:LINE: key.path: message``."""
    where = f"{path}:{line}" if line is not None else path
    # A key may hold any character; a line break must not split the paragraph.
    shown = (k if k.isprintable() else repr(k) for k in keys)
    key = f"{'.'.join(shown)}: " if keys else ""
    text = f"{where}: {key}{message}"
    raise BudgetFileError(" ".join(text.splitlines()), path=path, line=line)


def read_text(path: Path, name: str, *, must_exist: bool) -> str | None:
    """The file's text, None when it is missing and may be; errors for the rest."""
    hint = "check --actbudget-file / actbudget_file"
    if path.is_dir():
        fail(name, None, (), f"is a directory, not a budgets file; {hint}")
    try:
        with path.open("rb") as stream:
            # Read one byte past the limit: enough to refuse a huge (or endless) file
            # without holding it in memory or spending seconds parsing it.
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        if must_exist:
            fail(name, None, (), f"no such file; {hint}")
        return None
    except OSError as e:
        fail(name, None, (), f"cannot read the file ({e.strerror or e}); {hint}")
    if len(data) > MAX_FILE_BYTES:
        fail(
            name,
            1,
            (),
            f"the file is larger than {MAX_FILE_BYTES // 1024**2} MiB, the most a budgets "
            "file may hold (thousands of entries); split it with @pytest.mark.act_budget("
            "file=...) or --actbudget-file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        byte = data[e.start : e.start + 1].hex()
        fail(name, line, (), f"the file is not valid UTF-8 (byte 0x{byte}); save it as UTF-8")


def compose(text: str, path: str) -> yaml.Node | None:
    """YAML text -> node tree (None for an empty document), with only safe tags and
    no duplicate keys anywhere."""
    import yaml

    # libyaml when PyYAML was built with it: ~10x faster on big files, same nodes. Its
    # messages are terse, so a file it refuses is parsed again to explain the mistake.
    fast = getattr(yaml, "CSafeLoader", None)
    try:
        root = yaml.compose(text, Loader=fast or yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError) as first:
        if fast is not None:
            try:
                yaml.compose(text, Loader=yaml.SafeLoader)
            except (yaml.YAMLError, RecursionError) as e:
                _invalid(e, text, path)
            except (ValueError, OverflowError):
                pass  # PyYAML's scanner trips on what libyaml reported well: "\U1e400000"
        _invalid(first, text, path)
    except (ValueError, OverflowError) as e:  # pure-Python PyYAML only, as above
        fail(path, 1, (), f"invalid YAML: {e}")
    if root is not None:
        _check_tree(root, path)
    return root


def _invalid(error: Exception, text: str, path: str) -> NoReturn:
    """A parser's error as ``FILE:LINE: invalid YAML: ...``."""
    import yaml

    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        problem = error.problem or "syntax error"
        if error.context and problem.startswith("but "):  # "expected X" + "but found Y"
            problem = f"{error.context} {problem}"
        elif error.context:
            problem = f"{problem} ({error.context})"
        fail(path, mark.line + 1 if mark else 1, (), f"invalid YAML: {problem}")
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        char = error.character  # a str from PyYAML, a code point from libyaml
        shown = repr(char if isinstance(char, str) else chr(char))
        fail(path, line, (), f"invalid YAML: the character {shown} is not allowed")
    if isinstance(error, RecursionError):
        fail(path, 1, (), "invalid YAML: nested too deeply")
    fail(path, 1, (), f"invalid YAML: {error}")


def _check_tree(root: yaml.Node, path: str) -> None:
    """Refuse tags outside plain YAML and duplicate keys, in document order."""
    import yaml

    seen: set[int] = set()  # aliases share collections; check each once
    # An explicit stack, not recursion: libyaml composes 1,000 levels deep, more than
    # Python's recursion limit leaves under pytest. A task is a node to check, or a
    # duplicate key found on the way, kept in document order so the first problem in
    # the file is the one reported.
    tasks: list[tuple[yaml.Node, tuple[str, ...], yaml.Node | None]] = [(root, (), None)]
    while tasks:
        node, keys, earlier = tasks.pop()
        if earlier is not None:
            fail(
                path,
                line_of(node),
                keys,
                f"duplicate key {node.value!r} (first at line {line_of(earlier)}); "
                "each key may appear once",
            )
        if node.tag == _TAG + "merge":
            fail(path, line_of(node), keys, "merge keys (<<) are not supported")
        if node.tag not in _SAFE_TAGS:
            tag = node.tag.replace(_TAG, "!!")
            fail(
                path,
                line_of(node),
                keys,
                f"the tag {tag!r} is not allowed; a budgets file holds plain YAML values "
                "only (strings, numbers, lists and mappings)",
            )
        if isinstance(node, yaml.ScalarNode) or id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, tuple[str, ...], yaml.Node | None]] = []
        if isinstance(node, yaml.SequenceNode):
            children = [(item, keys, None) for item in node.value]
        else:
            first: dict[tuple[str, str], yaml.Node] = {}
            for key, value in node.value:
                here = keys
                if isinstance(key, yaml.ScalarNode):
                    here = (*keys, key.value)
                    found = first.setdefault((key.tag, key.value), key)
                    if found is not key:
                        children.append((key, here, found))
                children += [(key, keys, None), (value, here, None)]
        tasks.extend(reversed(children))


def line_of(node: yaml.Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


def describe(node: yaml.Node) -> str:
    """A node as a message shows it: ``'abc'``, ``12``, ``a list``, ``an empty value``."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL:
        return "an empty value"
    if node.tag in (INT, FLOAT):
        return str(node.value)
    return repr(node.value)


def scalar(node: yaml.Node) -> Any:
    """A scalar node's value as ``yaml.safe_load`` builds it; lists and mappings as
    ``[]`` / ``{}`` (only ever shown in messages)."""
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return []
    if isinstance(node, yaml.MappingNode):
        return {}
    try:
        if node.tag == INT:
            return _constructor().construct_yaml_int(node)  # 0x1F, 1_000, 1:30 as safe_load
        if node.tag == FLOAT:
            return _constructor().construct_yaml_float(node)  # .inf, .nan, 1.5e+3
    except ValueError:
        return node.value  # '!!int abc': shown as written, then refused as not a number
    if node.tag == NULL:
        return None
    return node.value  # a string; a boolean shows as written ('yes'), not as a number


@functools.cache
def _constructor() -> Any:
    """SafeLoader's scalar constructors, called per node (``construct_object`` would
    keep every node alive in its cache)."""
    import yaml

    return yaml.constructor.SafeConstructor()


def _key_problem(key: yaml.Node) -> str:
    """Why a key that is not a string cannot name anything, and how to fix it."""
    import yaml

    if not isinstance(key, yaml.ScalarNode):
        return f"a key cannot be {describe(key)}; keys are names (strings)"
    if key.tag == NULL and not key.value:
        return "a key is empty; write a name before the ':'"
    kind = {INT: "a number", FLOAT: "a number", BOOL: "a boolean", NULL: "null"}[key.tag]
    return f"the key {key.value} is read as {kind}; quote it: '{key.value}'"


def unknown_key(name: str, allowed: tuple[str, ...]) -> str:
    """``unknown key 'flop'; did you mean 'flops'?`` or the list of valid keys."""
    import difflib  # only a wrong file pays for it

    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key {name!r}; did you mean {close[0]!r}?"
    return f"unknown key {name!r}; valid keys: {', '.join(allowed)}"


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
                self.fail(key, keys, _key_problem(key))
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
        for _, _, value in self.items(
            top.get("defaults", _EMPTY), ("defaults",), ("headroom",), "a mapping (headroom: 10%)"
        ):
            try:
                headroom = parse_percent(scalar(value))
            except ValueError as e:
                self.fail(value, ("defaults", "headroom"), str(e))
        models = {
            name: self.entry(name, key, value)
            for name, key, value in self.items(
                top.get("models", _EMPTY), ("models",), (), "a mapping of entry names to entries"
            )
        }
        return BudgetsFile(self.path, True, counting, headroom, models)

    def entry(self, name: str, key: yaml.Node, node: yaml.Node) -> ModelBudget:
        keys = ("models", name)
        what = "a mapping (input, groups, total, allow_uncounted)"
        groups: list[GroupBudget] = []
        total: dict[str, float] = {}
        shape: tuple[int, ...] | None = None
        allowed: tuple[str, ...] = ()
        for part, _, value in self.items(node, keys, ENTRY_KEYS, what):
            here = (*keys, part)
            if part == "input":
                shape = self.shape(value, here)
            elif part == "allow_uncounted":
                allowed = self.strings(value, here, "operator names (e.g. [aten::max_pool2d])")
            elif part == "groups":
                what_groups = "a mapping of group names to groups"
                for group, group_key, group_value in self.items(value, here, (), what_groups):
                    groups.append(self.group(group, group_key, group_value, (*here, group)))
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
                    if metric not in ABSOLUTE_METRICS:
                        self.fail(
                            metric_key, (*here, metric), unknown_key(metric, ABSOLUTE_METRICS)
                        )
                    total[metric] = self.quantity(limit, (*here, metric), metric)
        return ModelBudget(name, tuple(groups), total, shape, allowed, line_of(key))

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
        for part, _, value in self.items(node, keys, GROUP_KEYS, ""):
            if part == "modules":
                modules = self.strings(value, (*keys, part), 'module path patterns (e.g. ["0.*"])')
                if not modules:
                    self.fail(value, (*keys, part), f"is empty; {how}")
            else:
                limits[part] = self.quantity(value, (*keys, part), part)
        if modules is None:
            self.fail(key, keys, f"missing 'modules'; {how}")
        return GroupBudget(name, modules, limits, line_of(key))

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
