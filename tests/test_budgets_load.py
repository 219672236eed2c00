"""Loading the budgets file: the values it yields and one exact message per mistake."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from pytest_actbudget.budgets.schema import BudgetsFile, GroupBudget, load_budgets, parse_budgets
from pytest_actbudget.errors import BudgetFileError
from pytest_actbudget.results import TensorSpec

DESIGN_EXAMPLE = """\
version: 1
counting:
  flops: fvcore          # fvcore (default) | macs
defaults:
  headroom: 10%
models:
  resnet18-mnist:
    input: [64, 3, 28, 28]            # optional; used by the CLI
    groups:
      stem:  {modules: ["0.0", "0.1", "0.2", "0.3"], flops: 130M, flops_share: 15%}
      early: {modules: ["0.4"], flops: 500M, activations: 1.2M}
      late:  {modules: ["0.5", "0.6", "0.7"], params: 11M}
      head:  {modules: ["1"], params: 600K}
    total: {flops: 2G, params: 12M, act_bytes: 64MiB}
"""

COUNT_HOW = "use a plain number or one with a suffix K, M, G, T (e.g. 130M)"
BYTES_HOW = (
    "use a plain number of bytes or one with a suffix K, M, G, T, KB, MB, GB, TB (x1000) "
    "or KiB, MiB, GiB, TiB (x1024) (e.g. 64MiB)"
)
SHARE_HOW = "use a percentage (e.g. 15%) or a fraction between 0 and 1 (e.g. 0.15)"
PERCENT_HOW = "use a percentage (e.g. 10%) or a fraction (e.g. 0.1)"
NOT_ALLOWED = (
    "is not allowed; a budgets file holds plain YAML values only "
    "(strings, numbers, lists and mappings)"
)
INPUT_HOW = "expected a list of positive integers (e.g. [64, 3, 28, 28]), got"
INPUTS_HOW = (
    "expected a shape ([64, 3, 28, 28]), a list of tensors ([[4, 3, 64, 64], {shape: [4], "
    "dtype: int64}]) or a mapping of positions and keyword names to tensors "
    "({0: [4, 3, 64, 64], mask: {shape: [4, 64], dtype: bool}}), got"
)
MODULES_HOW = 'expected a list of module path patterns (e.g. ["0.*"]), got'
LIST_MODULES = 'list the module path patterns of the group (e.g. modules: ["0.*"])'
TOTAL_KEYS = "valid keys: flops, activations, params, act_bytes, saved_bytes"
ONCE = "each key may appear once"


def write(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "budgets.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def error_of(path: str, *, must_exist: bool = False) -> BudgetFileError:
    with pytest.raises(BudgetFileError) as raised:
        load_budgets(path, must_exist=must_exist)
    return raised.value


def test_design_example(tmp_path: Path) -> None:
    budgets = load_budgets(write(tmp_path, DESIGN_EXAMPLE))
    assert budgets.exists
    assert budgets.counting == "fvcore"
    assert budgets.headroom == 0.1
    entry = budgets.models["resnet18-mnist"]
    assert entry.line == 7  # the line of the 'resnet18-mnist:' key
    assert entry.input == (TensorSpec((64, 3, 28, 28), "float32"),)
    assert entry.allow_uncounted == ()
    assert entry.groups[0] == GroupBudget(
        name="stem",
        modules=("0.0", "0.1", "0.2", "0.3"),
        limits={"flops": 130e6, "flops_share": 0.15},
        line=10,
    )
    assert [(g.name, g.line) for g in entry.groups] == [
        ("stem", 10),
        ("early", 11),
        ("late", 12),
        ("head", 13),
    ]
    assert entry.groups[1].limits == {"flops": 500e6, "activations": 1.2e6}
    assert entry.groups[3].limits == {"params": 600e3}
    # 64 MiB = 64 x 1,048,576 = 67,108,864 bytes
    assert entry.total == {"flops": 2e9, "params": 12e6, "act_bytes": 67_108_864}


def test_minimal_and_optional_parts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        models:
          a:
          b: {total: {params: 1_500_000}}
          c:
            groups:
              g: {modules: ["x.*"], saved_bytes: 1.5KiB, act_share: 0.25}
            allow_uncounted: [aten::max_pool2d]
          "42": {}
        """,
    )
    budgets = load_budgets(path)
    assert budgets.counting == "fvcore" and budgets.headroom is None
    assert list(budgets.models) == ["a", "b", "c", "42"]
    assert budgets.models["a"].groups == () and budgets.models["a"].total == {}
    assert budgets.models["b"].total == {"params": 1_500_000}
    group = budgets.models["c"].groups[0]
    assert group.limits == {"saved_bytes": 1536, "act_share": 0.25}  # 1.5 x 1024
    assert budgets.models["c"].allow_uncounted == ("aten::max_pool2d",)


def test_macs_counting_and_plain_headroom(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ncounting: {flops: macs}\ndefaults: {headroom: 0.25}\n")
    assert load_budgets(path) == BudgetsFile(path, True, "macs", 0.25, {})


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    assert load_budgets(path) == BudgetsFile(path, exists=False)
    error = error_of(path, must_exist=True)
    assert str(error) == f"{path}: no such file; check --actbudget-file / actbudget_file"
    assert (error.path, error.line) == (path, None)


def test_directory(tmp_path: Path) -> None:
    message = (
        f"{tmp_path}: is a directory, not a budgets file; check --actbudget-file / actbudget_file"
    )
    assert str(error_of(str(tmp_path))) == message


def test_a_symlink_loop_cannot_be_read(tmp_path: Path) -> None:
    # Unlike a chmod 000 file, a loop is unreadable for root too.
    loop = tmp_path / "budgets.yaml"
    loop.symlink_to(loop)
    assert str(error_of(str(loop), must_exist=True)) == (
        f"{loop}: cannot read the file (Too many levels of symbolic links); "
        "check --actbudget-file / actbudget_file"
    )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE)
    os.chmod(path, 0)
    assert str(error_of(path)) == (
        f"{path}: cannot read the file (Permission denied); check --actbudget-file / actbudget_file"
    )


def test_the_path_as_given_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "version: 2\n")
    monkeypatch.chdir(tmp_path)
    assert str(error_of("budgets.yaml")).startswith("budgets.yaml:1: version: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # --- the file as a whole
        (
            b"version: 1\nmodels:\n  caf\xe9: {}\n",
            "3: the file is not valid UTF-8 (byte 0xe9); save it as UTF-8",
        ),
        ("", "1: the file is empty; a budgets file starts with 'version: 1'"),
        ("version: 1\nmodels: {}\x07\n", "2: invalid YAML: the character '\\x07' is not allowed"),
        (
            'version: 1\nmodels: {"\\U1e400000": {}}\n',
            "2: invalid YAML: found invalid Unicode character escape code "
            "(while parsing a quoted scalar)",
        ),
        ("version: 1\nmodels: " + "[" * 5000 + "]" * 5000, "1: invalid YAML: nested too deeply"),
        (
            # A key path stays on one line whatever the names hold.
            "version: 1\nmodels:\n  ? |\n    two\n    lines\n  : {total: {flop: 1}}\n",
            "6: models.'two\\nlines\\n'.total.flop: unknown key 'flop'; did you mean 'flops'?",
        ),
        ("# only a comment\n\n", "1: the file is empty; a budgets file starts with 'version: 1'"),
        ("- version: 1\n", "1: expected a mapping with 'version: 1' at the top, got a list"),
        ("just text\n", "1: expected a mapping with 'version: 1' at the top, got 'just text'"),
        ("# budgets\nmodels: {}\n", "2: missing 'version: 1' at the top of the file"),
        (
            "version: 2\n",
            "1: version: unsupported version 2; this pytest-actbudget reads version 1",
        ),
        (
            "version: '1'\n",
            "1: version: unsupported version '1'; this pytest-actbudget reads version 1",
        ),
        (
            "version: 1\n---\nversion: 1\n",
            "2: invalid YAML: expected a single document in the stream but found another document",
        ),
        (
            "version: 1\nmodels: [\n",
            "3: invalid YAML: expected the node content, but found '<stream end>' "
            "(while parsing a flow node)",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: 1}\n  b: 2\n",
            "4: invalid YAML: expected ',' or '}', but got '<scalar>' "
            "(while parsing a flow mapping)",
        ),
        (
            "version: 1\nmodels: !!python/object:os.system {}\n",
            f"2: models: the tag '!!python/object:os.system' {NOT_ALLOWED}",
        ),
        (
            "version: 1\nmodels:\n  a:\n    input: !!python/object/apply:os.getcwd []\n",
            f"4: models.a.input: the tag '!!python/object/apply:os.getcwd' {NOT_ALLOWED}",
        ),
        (
            "version: 1\nmodels: !custom {}\n",
            f"2: models: the tag '!custom' {NOT_ALLOWED}",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: 2001-01-01}}\n",
            f"3: models.a.total.flops: the tag '!!timestamp' {NOT_ALLOWED}",
        ),
        (
            "version: 1\nbase: &b {flops: 1}\nmodels:\n  a: {total: {<<: *b}}\n",
            "4: models.a.total: merge keys (<<) are not supported",
        ),
        # --- duplicate keys, at every level
        (
            "version: 1\nmodels: {}\nversion: 1\n",
            f"3: version: duplicate key 'version' (first at line 1); {ONCE}",
        ),
        (
            "version: 1\nmodels:\n  a: {}\n  b: {}\n  a: {}\n",
            f"5: models.a: duplicate key 'a' (first at line 3); {ONCE}",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      g: {modules: [x], flops: 1, flops: 2}\n",
            f"5: models.a.groups.g.flops: duplicate key 'flops' (first at line 5); {ONCE}",
        ),
        # --- unknown keys
        ("version: 1\nmodel: {}\n", "2: model: unknown key 'model'; did you mean 'models'?"),
        (
            "version: 1\ncolor: red\n",
            "2: color: unknown key 'color'; valid keys: version, counting, defaults, models",
        ),
        (
            "version: 1\nmodels:\n  a: {group: {}}\n",
            "3: models.a.group: unknown key 'group'; did you mean 'groups'?",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      g: {modules: [x], flop: 1}\n",
            "5: models.a.groups.g.flop: unknown key 'flop'; did you mean 'flops'?",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flop: 1}}\n",
            "3: models.a.total.flop: unknown key 'flop'; did you mean 'flops'?",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops_share: 50%}}\n",
            "3: models.a.total.flops_share: 'flops_share' cannot be a budget of the total "
            f"(the total is always 100%); {TOTAL_KEYS}",
        ),
        (
            "version: 1\ndefaults: {head_room: 10%}\n",
            "2: defaults.head_room: unknown key 'head_room'; did you mean 'headroom'?",
        ),
        # --- wrong types
        (
            "version: 1\nmodels: [a, b]\n",
            "2: models: expected a mapping of entry names to entries, got a list",
        ),
        (
            "version: 1\nmodels:\n  7: {}\n",
            "3: models: the key 7 is read as a number; quote it: '7'",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      yes: {modules: [x]}\n",
            "5: models.a.groups: the key yes is read as a boolean; quote it: 'yes'",
        ),
        (
            "version: 1\nmodels:\n  ~: {}\n",
            "3: models: the key ~ is read as null; quote it: '~'",
        ),
        (
            "version: 1\nmodels:\n  ?\n  : {}\n",
            "3: models: a key is empty; write a name before the ':'",
        ),
        (
            "version: 1\nmodels:\n  ? [a]\n  : {}\n",
            "3: models: a key cannot be a list; keys are names (strings)",
        ),
        (
            "version: 1\nmodels:\n  a: [1]\n",
            "3: models.a: expected a mapping (input, mode, groups, total, allow_uncounted), "
            "got a list",
        ),
        (
            "version: 1\ncounting: macs\n",
            "2: counting: expected a mapping (flops: fvcore), got 'macs'",
        ),
        (
            "version: 1\ncounting: {flops: flop}\n",
            "2: counting.flops: 'flop' is not a counting convention; "
            "use fvcore (the default) or macs",
        ),
        (
            "version: 1\ndefaults: {headroom: lots}\n",
            f"2: defaults.headroom: 'lots' is not a percentage; {PERCENT_HOW}",
        ),
        (
            "version: 1\ndefaults: {headroom: -5%}\n",
            "2: defaults.headroom: '-5%' is negative; a budget is a maximum of 0 or more",
        ),
        (
            "version: 1\nmodels:\n  a: {groups: [stem]}\n",
            "3: models.a.groups: expected a mapping of group names to groups, got a list",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      stem: 130M\n",
            "5: models.a.groups.stem: expected a mapping (modules: [...], flops: ...), got '130M'",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      stem: {flops: 1}\n",
            f"5: models.a.groups.stem: missing 'modules'; {LIST_MODULES}",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      stem: {modules: []}\n",
            f"5: models.a.groups.stem.modules: is empty; {LIST_MODULES}",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      stem: {modules: conv1}\n",
            f"5: models.a.groups.stem.modules: {MODULES_HOW} 'conv1'",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      stem:\n        modules: [conv1, 0]\n",
            f"6: models.a.groups.stem.modules: {MODULES_HOW} 0 (quote it: '0')",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      (other): {modules: [x]}\n",
            "5: models.a.groups.(other): the group name '(other)' is reserved; choose another name",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      total: {modules: [x]}\n",
            "5: models.a.groups.total: the group name 'total' is reserved; choose another name",
        ),
        (
            "version: 1\nmodels:\n  a: {input: 64x3x28x28}\n",
            f"3: models.a.input: {INPUTS_HOW} '64x3x28x28'",
        ),
        (
            "version: 1\nmodels:\n  a: {input: []}\n",
            f"3: models.a.input: {INPUTS_HOW} a list",
        ),
        (
            "version: 1\nmodels:\n  a: {input: [64, 0]}\n",
            f"3: models.a.input: {INPUT_HOW} 0",
        ),
        (
            "version: 1\nmodels:\n  a: {input: [64, 3.5]}\n",
            f"3: models.a.input: {INPUT_HOW} 3.5",
        ),
        (
            "version: 1\nmodels:\n  a: {input: [true]}\n",
            f"3: models.a.input: {INPUT_HOW} 'true'",
        ),
        (
            "version: 1\nmodels:\n  a: {allow_uncounted: aten::add}\n",
            "3: models.a.allow_uncounted: expected a list of operator names "
            "(e.g. [aten::max_pool2d]), got 'aten::add'",
        ),
        # --- numbers
        (
            "version: 1\nmodels:\n  a: {total: {flops: -1}}\n",
            "3: models.a.total.flops: -1 is negative; a budget is a maximum of 0 or more",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: .nan}}\n",
            f"3: models.a.total.flops: nan is not a finite number; {COUNT_HOW}",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: .inf}}\n",
            f"3: models.a.total.flops: inf is not a finite number; {COUNT_HOW}",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: yes}}\n",
            f"3: models.a.total.flops: 'yes' is not a number; {COUNT_HOW}",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: }}\n",
            f"3: models.a.total.flops: an empty value is not a number; {COUNT_HOW}",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: [1]}}\n",
            f"3: models.a.total.flops: a list is not a number; {COUNT_HOW}",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {flops: {value: 1}}}\n",
            f"3: models.a.total.flops: a mapping is not a number; {COUNT_HOW}",
        ),
        (
            "version: 1\nmodels:\n  a: {total: {act_bytes: 64Mb}}\n",
            f"3: models.a.total.act_bytes: '64Mb' is not a byte size; {BYTES_HOW}",
        ),
        (
            "version: 1\nmodels:\n  a:\n    groups:\n      g: {modules: [x], flops_share: 150%}\n",
            f"5: models.a.groups.g.flops_share: '150%' is more than 100%; {SHARE_HOW}",
        ),
    ],
)
def test_errors(tmp_path: Path, text: str | bytes, message: str) -> None:
    path = write(tmp_path, text)
    error = error_of(path)
    assert str(error) == f"{path}:{message}"
    assert error.path == path
    assert error.line == int(message.split(":", 1)[0])


def test_design_message_for_a_bad_unit(tmp_path: Path) -> None:
    # The example of the brief, line for line: the bad value sits on line 7.
    path = write(
        tmp_path,
        """\
        version: 1
        models:
          resnet18-mnist:
            groups:
              stem:
                modules: ["0.0"]
                flops: 12X
        """,
    )
    assert str(error_of(path)) == (
        f"{path}:7: models.resnet18-mnist.groups.stem.flops: '12X' is not a number; "
        "use a plain number or one with a suffix K, M, G, T (e.g. 130M)"
    )


def test_python_tags_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(
        tmp_path,
        "version: 1\nmodels: !!python/object/apply:pathlib.Path.touch "
        f'[!!python/object/apply:pathlib.Path ["{marker}"]]\n',
    )
    assert "is not allowed" in str(error_of(path))
    assert not marker.exists()


def test_aliases_are_read_once_per_use(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        models:
          a:
            groups:
              g: {modules: &stem ["0.*"], flops: 1M}
          b:
            groups:
              g: {modules: *stem, flops: 2M}
        """,
    )
    budgets = load_budgets(path)
    assert budgets.models["b"].groups[0].modules == ("0.*",)


ENTRY = (
    "  model-{i:05d}:\n"
    "    input: [64, 3, 28, 28]\n"
    "    groups:\n"
    '      stem: {{modules: ["0.0", "0.1", "0.2", "0.3"], flops: 130M, flops_share: 15%}}\n'
    '      early: {{modules: ["0.4"], flops: 500M, activations: 1.2M}}\n'
    '      late: {{modules: ["0.5", "0.6", "0.7"], params: 11M}}\n'
    '      head: {{modules: ["1"], params: 600K, act_bytes: 1MiB}}\n'
    "    total: {{flops: 2G, params: 12M, act_bytes: 64MiB}}  # a comment\n"
    "    allow_uncounted: [aten::max_pool2d]\n"
)  # 426 bytes per entry


def test_a_file_near_the_size_limit_loads(tmp_path: Path) -> None:
    # 4,900 entries x 426 bytes + 19 ("version: 1\nmodels:\n" header) = 2,087,419 bytes, just
    # under 2 MiB (2,097,152).
    text = "version: 1\nmodels:\n" + "".join(ENTRY.format(i=i) for i in range(4_900))
    assert len(text) == 2_087_419
    path = write(tmp_path, text)
    start = time.perf_counter()
    budgets = load_budgets(path)
    elapsed = time.perf_counter() - start
    assert len(budgets.models) == 4_900
    # Entry i's key is on line 2 (version, models) + 9 lines per entry before it + 1.
    assert budgets.models["model-04899"].line == 2 + 4_899 * 9 + 1
    assert elapsed < 30, f"a 2 MiB budgets file took {elapsed:.1f}s to load"


def test_a_ten_megabyte_file_is_refused_without_parsing(tmp_path: Path) -> None:
    # 25,000 entries x 426 bytes: about 10.7 MB, five times the 2 MiB limit.
    path = write(
        tmp_path, "version: 1\nmodels:\n" + "".join(ENTRY.format(i=i) for i in range(25_000))
    )
    start = time.perf_counter()
    with pytest.raises(BudgetFileError) as e:
        load_budgets(path)
    assert time.perf_counter() - start < 1.0
    assert str(e.value) == (
        f"{path}:1: the file is larger than 2 MiB, the most a budgets file may hold "
        "(thousands of entries); split it with @pytest.mark.act_budget(file=...) or "
        "--actbudget-file"
    )


def _under_a_deep_stack(depth: int, text: str) -> BudgetFileError:
    """Load with ``depth`` frames already on the stack, as a deep pytest run has."""
    if depth:
        return _under_a_deep_stack(depth - 1, text)
    with pytest.raises(BudgetFileError) as raised:
        parse_budgets(text, "budgets.yaml")
    return raised.value


@pytest.mark.parametrize(
    "text",
    [
        "[" * 990 + "]" * 990,  # libyaml composes up to 1,000 levels
        "version: 1\nmodels: " + "[" * 990 + "]" * 990,
        "".join(" " * i + "a:\n" for i in range(990)),
    ],
)
def test_deep_nesting_is_a_budget_file_error(text: str) -> None:
    # The tree check must not recurse per level: 990 levels plus 200 frames of caller
    # would pass Python's default limit of 1,000 and escape as RecursionError.
    error = _under_a_deep_stack(200, text)
    assert str(error).startswith("budgets.yaml:")
