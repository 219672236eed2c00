"""The budgets file: types, loading and validation (YAML, ``version: 1``).

The file is composed into YAML nodes (never constructed into Python objects by
PyYAML), so every value keeps its line and no tag can run code. Values are built
here with ``yaml.safe_load`` semantics; everything else is a :class:`BudgetFileError`
naming ``file:line`` and the key path.
"""

from __future__ import annotations

import difflib
import gc
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import yaml

from .errors import BudgetFileError
from .results import ABSOLUTE_METRICS, METRICS, OTHER_GROUP, SHARE_METRICS, TOTAL_GROUP
from .units import parse_percent, parse_quantity

COUNTINGS: tuple[str, ...] = ("fvcore", "macs")
DEFAULT_HEADROOM = 0.10
VERSION = 1

TOP_KEYS: tuple[str, ...] = ("version", "counting", "defaults", "models")
ENTRY_KEYS: tuple[str, ...] = ("input", "groups", "total", "allow_uncounted")
GROUP_KEYS: tuple[str, ...] = ("modules", *METRICS)
RESERVED_GROUPS: tuple[str, ...] = (OTHER_GROUP, TOTAL_GROUP)


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

    A missing file is ``BudgetsFile(path, exists=False)`` unless ``must_exist`` (the
    user named the file), in which case it is an error too.
    """
    name = str(path)
    text = read_budgets_text(Path(path), name, must_exist=must_exist)
    if text is None:
        return BudgetsFile(path=name, exists=False)
    return parse_budgets(text, name)


def parse_budgets(text: str, path: str) -> BudgetsFile:
    """Validate the text of a budgets file; ``path`` is only used in messages."""
    root = compose_budgets(text, path)
    return _Validator(path).file(root)


_Keys = tuple[str | int, ...]
_Items = list[tuple[str, yaml.ScalarNode, yaml.Node]]


class _Validator:
    """Turns a composed (and pre-checked) node tree into a BudgetsFile, or raises."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node, keys: _Keys, message: str) -> NoReturn:
        _fail(self.path, node.start_mark.line + 1, keys, message)

    def mapping(self, node: yaml.Node, keys: _Keys, allowed: tuple[str, ...], what: str) -> _Items:
        """(name, key node, value node) of a mapping; an empty value is an empty mapping.
        With ``allowed``, any other key is an error with a did-you-mean."""
        if _is_null(node):
            return []
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, keys, f"expected {what}, got {_describe(node)}")
        items = []
        for key, value in node.value:
            name = self.name(key, keys, "key")
            if allowed and name not in allowed:
                self.fail(key, (*keys, name), _unknown_key(name, allowed))
            items.append((name, key, value))
        return items

    def name(self, key: yaml.Node, keys: _Keys, what: str) -> str:
        if not isinstance(key, yaml.ScalarNode) or key.tag != _STR:
            if isinstance(key, yaml.ScalarNode):
                shown = key.value or "(empty)"
                hint = f"; quote it: '{key.value}'" if key.value else ""
                message = f"the {what} {shown} is {_kind(key)}, not a string{hint}"
            else:
                message = f"the {what} is {_kind(key)}, not a string"
            self.fail(key, keys, message)
        return str(key.value)

    def file(self, root: yaml.Node | None) -> BudgetsFile:
        if root is None:
            _fail(self.path, 1, (), "the file is empty; a budgets file starts with 'version: 1'")
        if not isinstance(root, yaml.MappingNode):
            got = _describe(root)
            self.fail(root, (), f"expected a mapping with 'version: 1' at the top, got {got}")
        items = {name: value for name, _, value in self.mapping(root, (), TOP_KEYS, "")}
        version = items.get("version")
        if version is None:
            _fail(self.path, 1, (), "missing 'version: 1' at the top of the file")
        if not (isinstance(version, yaml.ScalarNode) and version.tag == _INT):
            self.fail(version, ("version",), f"expected the number 1, got {_describe(version)}")
        if version.value != "1":
            message = f"unsupported version {version.value}; this pytest-actbudget reads version 1"
            self.fail(version, ("version",), message)
        counting, headroom = "fvcore", None
        for _, _, value in self.mapping(
            items.get("counting", _EMPTY), ("counting",), ("flops",), "a mapping (flops: fvcore)"
        ):
            counting = self.choice(value, ("counting", "flops"), COUNTINGS)
        for _, _, value in self.mapping(
            items.get("defaults", _EMPTY), ("defaults",), ("headroom",), "a mapping (headroom: 10%)"
        ):
            headroom = self.number(value, ("defaults", "headroom"), None)
        models: dict[str, ModelBudget] = {}
        entries = self.mapping(items.get("models", _EMPTY), ("models",), (), "a mapping of entries")
        for _, key, value in entries:
            name = self.name(key, ("models",), "entry name")
            models[name] = self.entry(name, key, value)
        return BudgetsFile(self.path, True, counting, headroom, models)

    def entry(self, name: str, key: yaml.Node, node: yaml.Node) -> ModelBudget:
        keys = ("models", name)
        items = self.mapping(node, keys, ENTRY_KEYS, "a mapping (input, groups, total)")
        groups: list[GroupBudget] = []
        total: dict[str, float] = {}
        shape: tuple[int, ...] | None = None
        allowed: tuple[str, ...] = ()
        for field_name, _, value in items:
            here = (*keys, field_name)
            if field_name == "input":
                shape = self.input(value, here)
            elif field_name == "allow_uncounted":
                allowed = self.strings(value, here, "operator names (e.g. [aten::max_pool2d])")
            elif field_name == "groups":
                for _, group_key, group in self.mapping(value, here, (), "a mapping of groups"):
                    group_name = self.name(group_key, here, "group name")
                    groups.append(self.group(group_name, group_key, group, (*here, group_name)))
            else:
                for metric, metric_key, limit in self.mapping(
                    value, here, (), "a mapping (flops: ..., params: ...)"
                ):
                    if metric not in ABSOLUTE_METRICS:
                        self.fail(metric_key, (*here, metric), _bad_total_key(metric))
                    total[metric] = self.number(limit, (*here, metric), metric)
        return ModelBudget(
            name=name,
            groups=tuple(groups),
            total=total,
            input=shape,
            allow_uncounted=allowed,
            line=key.start_mark.line + 1,
        )

    def group(self, name: str, key: yaml.Node, node: yaml.Node, keys: _Keys) -> GroupBudget:
        if name in RESERVED_GROUPS:
            self.fail(key, keys, f"the group name {name!r} is reserved; choose another name")
        if not isinstance(node, yaml.MappingNode):
            got = _describe(node)
            self.fail(node, keys, f"expected a mapping (modules: [...], flops: ...), got {got}")
        modules: tuple[str, ...] | None = None
        limits: dict[str, float] = {}
        for field_name, _, value in self.mapping(node, keys, GROUP_KEYS, ""):
            here = (*keys, field_name)
            if field_name == "modules":
                modules = self.strings(value, here, 'module path patterns (e.g. ["0.*"])')
                if not modules:
                    self.fail(value, here, "is empty; list at least one module path pattern")
            else:
                limits[field_name] = self.number(value, here, field_name)
        if modules is None:
            self.fail(
                key, keys, "missing 'modules'; list the group's module paths (e.g. [\"0.*\"])"
            )
        return GroupBudget(name=name, modules=modules, limits=limits, line=key.start_mark.line + 1)

    def number(self, node: yaml.Node, keys: _Keys, metric: str | None) -> float:
        """A budget of ``metric`` or, with ``metric=None``, a percentage.

        The text as written goes to units.py whatever YAML resolved it to, so that
        ``0100`` is a hundred (not YAML 1.1 octal) and ``0.1`` is exactly a tenth."""
        try:
            if not isinstance(node, yaml.ScalarNode):
                raise ValueError(f"{_describe(node)} is not a number")
            value = None if node.tag == _NULL else str(node.value)
            return parse_percent(value) if metric is None else parse_quantity(value, metric)
        except ValueError as e:
            self.fail(node, keys, str(e))

    def choice(self, node: yaml.Node, keys: _Keys, choices: tuple[str, ...]) -> str:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value in choices):
            self.fail(node, keys, f"{_describe(node)} is not one of: {', '.join(choices)}")
        return str(node.value)

    def strings(self, node: yaml.Node, keys: _Keys, what: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, keys, f"expected a list of {what}, got {_describe(node)}")
        found = []
        for index, item in enumerate(node.value):
            if not isinstance(item, yaml.ScalarNode) or item.tag != _STR:
                hint = f"; quote it: '{item.value}'" if isinstance(item, yaml.ScalarNode) else ""
                self.fail(item, (*keys, index), f"expected a string, got {_describe(item)}{hint}")
            found.append(str(item.value))
        return tuple(found)

    def input(self, node: yaml.Node, keys: _Keys) -> tuple[int, ...]:
        how = "expected a list of positive integers (e.g. [64, 3, 28, 28])"
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.fail(node, keys, f"{how}, got {_describe(node)}")
        dims = []
        for index, item in enumerate(node.value):
            text = item.value if isinstance(item, yaml.ScalarNode) and item.tag == _INT else ""
            if not _DIGITS.fullmatch(text) or int(text.replace("_", "")) == 0:
                self.fail(item, (*keys, index), f"{how}, got {_describe(item)}")
            dims.append(int(text.replace("_", "")))
        return tuple(dims)


def _unknown_key(name: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key {name!r}; did you mean {close[0]!r}?"
    return f"unknown key {name!r}; valid keys are: {', '.join(allowed)}"


def _bad_total_key(name: str) -> str:
    if name in SHARE_METRICS:
        return (
            f"{name!r} cannot be a budget of the total (its share is always 100%); "
            f"valid keys are: {', '.join(ABSOLUTE_METRICS)}"
        )
    return _unknown_key(name, ABSOLUTE_METRICS)


# -- reading and composing ---------------------------------------------------------

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _NULL = _TAG + "str", _TAG + "int", _TAG + "null"
# Tags a plain YAML document resolves to; anything else (``!!python/object``, ``!!set``,
# a local ``!tag``) is refused before a value is looked at. Nothing is ever constructed.
_PLAIN_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_SAFE_TAGS = _PLAIN_TAGS | {_TAG + "seq", _TAG + "map"}
_EMPTY = yaml.ScalarNode(_NULL, "")
_DIGITS = re.compile(r"[0-9][0-9_]*")
# libyaml composes about five times faster than the pure-Python parser; both give the
# same nodes and marks (character offsets), so the writer can edit by them either way.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_budgets_text(
    path: Path, name: str | None = None, *, must_exist: bool = True
) -> str | None:
    """The file's text, decoded as UTF-8; None when it is missing and not ``must_exist``."""
    name = str(path) if name is None else name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not must_exist:
            return None
        raise BudgetFileError(
            f"{name}: no such file (named by --actbudget-file, the actbudget_file ini option "
            "or a marker's file=); check the path, or record budgets with --actbudget-update",
            path=name,
        ) from None
    except IsADirectoryError:
        raise BudgetFileError(f"{name}: is a directory, not a budgets file", path=name) from None
    except OSError as e:
        reason = e.strerror or str(e)
        raise BudgetFileError(f"{name}: cannot be read: {reason}", path=name) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise BudgetFileError(
            f"{name}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save the file as UTF-8",
            path=name,
            line=line,
        ) from None


def compose_budgets(text: str, path: str) -> yaml.Node | None:
    """YAML nodes of the text, with syntax, tags, aliases and duplicate keys checked.

    None for an empty document. Nothing is constructed, so no tag can run code.
    """
    was_enabled = gc.isenabled()
    # Composing allocates millions of small objects for a large file and none of them
    # are garbage; the cyclic collector would otherwise take 80% of the time.
    gc.disable()
    try:
        root = yaml.compose(text, Loader=_LOADER)  # compose never constructs objects
        if root is not None:
            _precheck(root, text, path)
        return root
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = ", ".join(part for part in (e.context, e.problem) if part) or "syntax error"
        _fail(path, line, (), f"not valid YAML: {problem}", cause=e)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        shown = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
        _fail(path, line, (), f"not valid YAML: the character {shown} is not allowed", cause=e)
    except yaml.YAMLError as e:
        _fail(path, 1, (), f"not valid YAML: {e}", cause=e)
    except RecursionError as e:
        _fail(path, 1, (), "not valid YAML: nested too deeply", cause=e)
    finally:
        if was_enabled:
            gc.enable()


def _precheck(root: yaml.Node, text: str, path: str) -> None:
    """Refuse what safe_load would refuse or silently resolve: unknown tags, aliases,
    duplicate and non-scalar keys. Iterative, so a deep file cannot overflow the stack."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, _Keys]] = [(root, ())]
    while stack:
        node, keys = stack.pop()
        if id(node) in seen:
            # Composed aliases are the anchored node itself; a second visit is an alias.
            line = _alias_line(text) or node.start_mark.line + 1
            _fail(path, line, keys, "aliases (*name) are not supported; write the value out")
        seen.add(id(node))
        if node.tag not in _SAFE_TAGS:
            short = node.tag.replace(_TAG, "!!")
            line = node.start_mark.line + 1
            _fail(path, line, keys, f"the tag {short} is not allowed; use plain YAML values")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*keys, i)) for i, item in reversed(list(enumerate(node.value))))
        elif isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            children: list[tuple[yaml.Node, _Keys]] = []
            for key, value in node.value:
                line = key.start_mark.line + 1
                if key.tag == _TAG + "merge":
                    _fail(path, line, keys, "merge keys (<<) are not supported; write the keys out")
                if not isinstance(key, yaml.ScalarNode) or key.tag not in _PLAIN_TAGS:
                    what = "a tagged value" if isinstance(key, yaml.ScalarNode) else _describe(key)
                    _fail(path, line, keys, f"a key must be plain text, not {what}")
                if id(key) in seen:
                    _fail(
                        path, _alias_line(text) or line, keys, "aliases (*name) are not supported"
                    )
                seen.add(id(key))
                if key.value in first:
                    _fail(
                        path,
                        line,
                        (*keys, key.value),
                        f"duplicate key {key.value!r} (first at line {first[key.value]})",
                    )
                first[key.value] = line
                children.append((value, (*keys, key.value)))
            stack.extend(reversed(children))


def _alias_line(text: str) -> int | None:
    """Line of the first alias; only looked for once an alias is known to be there."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
            return int(event.start_mark.line) + 1
    return None  # pragma: no cover - called only when there is one


def _fail(
    path: str, line: int, keys: _Keys, message: str, *, cause: BaseException | None = None
) -> NoReturn:
    key = _keypath(keys)
    text = f"{path}:{line}: {key + ': ' if key else ''}{message}"
    raise BudgetFileError(" ".join(text.split("\n")), path=path, line=line) from cause


def _keypath(keys: _Keys) -> str:
    """``models.resnet18.groups.stem.flops``, ``models.x.input[2]``; a name with a dot
    or a space is quoted so the path stays unambiguous."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
            continue
        part = key if key and not re.search(r"[.\s\[\]'\"]", key) else repr(key)
        out += f".{part}" if out else part
    return out


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = str(node.value)
    shown = repr(value if len(value) <= 40 else value[:37] + "...")
    kind = node.tag.replace(_TAG, "")
    if kind == "null":
        return "an empty value" if value in ("", "~", "null", "Null", "NULL") else shown
    if kind == "str":
        return f"the string {shown}"
    if kind in ("int", "float"):
        return f"the number {value}" if len(value) <= 40 else f"the number {shown}"
    if kind == "bool":
        return f"the boolean {value}"
    return f"the {kind} {shown}"


def _kind(node: yaml.Node) -> str:
    """What a node is, in a word or two: a number, a list, an empty value."""
    if not isinstance(node, yaml.ScalarNode):
        return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
    kinds = {"int": "a number", "float": "a number", "bool": "a boolean", "null": "an empty value"}
    return kinds.get(node.tag.replace(_TAG, ""), "a date" if "timestamp" in node.tag else "text")


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL
