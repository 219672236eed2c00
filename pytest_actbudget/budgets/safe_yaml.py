"""Reading the budgets file's YAML safely: bytes -> text -> node tree, and the
one-paragraph ``FILE:LINE: key.path: message`` errors.

The text is *composed* into nodes, never constructed by PyYAML, so no tag can build an
object; scalars are read with ``yaml.safe_load`` semantics by :func:`scalar`. ``yaml``
is imported inside the functions: a pytest run without budget tests never pays for it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import BudgetFileError

if TYPE_CHECKING:
    import yaml

#: A budgets file is hand-edited code: a bigger one is a mistake or an attack.
MAX_FILE_BYTES = 2 * 1024**2

_TAG = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_SAFE_TAGS = frozenset({STR, INT, FLOAT, BOOL, NULL, _TAG + "seq", _TAG + "map"})


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


def key_problem(key: yaml.Node) -> str:
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


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")


def yaml_key(name: str) -> str:
    """A name as a YAML key: plain when that reads back as the same string
    (``resnet18-mnist``), double-quoted otherwise (``"0"``, ``"yes"``, ``"a: b"``)."""
    import yaml

    # The pattern admits no YAML syntax, so safe_load only decides str vs 1.5/yes/null.
    if _PLAIN_NAME.fullmatch(name) and yaml.safe_load(name) == name:
        return name
    return yaml_quoted(name)


def yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly ``text``: printable
    characters as they are, everything else (and line breaks) escaped."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif (
            0x20 <= code <= 0x7E
            or (
                0xA0 <= code <= 0xFFFD
                and code not in (0x2028, 0x2029, 0xFEFF)
                and not 0xD800 <= code <= 0xDFFF
            )
            or code >= 0x10000
        ):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'
