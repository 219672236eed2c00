"""Property tests: the loader never fails with anything but BudgetFileError, units
round-trip, and an update always writes a file that loads back to what was meant.

Examples are derandomized and their number fixed, so CI runs the same cases every time.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_actbudget.budgets.schema import BudgetsFile, load_budgets, parse_budgets
from pytest_actbudget.budgets.units import budget_value, format_quantity, parse_quantity
from pytest_actbudget.budgets.write import MeasuredEntry, update_budgets
from pytest_actbudget.errors import BudgetFileError
from pytest_actbudget.results import ABSOLUTE_METRICS, METRICS, SHARE_METRICS, TensorSpec

FIXED = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


# -- units ---------------------------------------------------------------------------

headrooms = st.one_of(st.sampled_from([0.0, 0.05, 0.1, 0.25, 1.0]), st.floats(0, 3))
counts = st.one_of(st.integers(0, 10**15), st.floats(0, 1e15, allow_nan=False))


@FIXED
@given(
    metric=st.sampled_from(METRICS),
    amount=counts,
    share=st.floats(0, 1),
    headroom=headrooms,
)
def test_budget_values_round_trip_through_their_text(
    metric: str, amount: float, share: float, headroom: float
) -> None:
    measured = share if metric in SHARE_METRICS else amount
    budget = budget_value(measured, headroom, metric)
    assert parse_quantity(format_quantity(budget, metric), metric) == budget
    if metric in SHARE_METRICS:
        assert budget <= 1.0
        if measured * (1 + headroom) <= 1.0:
            assert budget >= measured * (1 + headroom) * (1 - 1e-12)
    else:
        assert budget >= measured * (1 + headroom) * (1 - 1e-12)  # never below: rounded up
        # ... and not much above: 3 significant digits cost at most 1% (or 1 unit).
        assert budget <= max(measured * (1 + headroom) * 1.01, measured * (1 + headroom) + 1)


@FIXED
@given(
    metric=st.sampled_from(ABSOLUTE_METRICS),
    value=st.one_of(st.integers(0, 2**60), st.floats(0, 1e300, allow_nan=False)),
)
def test_any_absolute_value_round_trips(metric: str, value: float) -> None:
    assert parse_quantity(format_quantity(value, metric), metric) == float(value)


@FIXED
@given(metric=st.sampled_from(SHARE_METRICS), value=st.floats(0, 1))
def test_any_share_round_trips(metric: str, value: float) -> None:
    assert parse_quantity(format_quantity(value, metric), metric) == value


# -- the loader on random and mutated files ------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
quantities = st.one_of(
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["130M", "1.5G", "64MiB", "15%", "0.15", "12X", "-1", "1_000", "", "150%"]),
    st.booleans(),
    st.none(),
)
groups = st.dictionaries(
    st.one_of(names, st.sampled_from(["stem", "(other)", "total"])),
    st.dictionaries(
        st.sampled_from([*METRICS, "modules", "flop"]),
        st.one_of(quantities, st.lists(st.one_of(names, st.integers()), max_size=3)),
        max_size=4,
    ),
    max_size=3,
)
entries = st.fixed_dictionaries(
    {},
    optional={
        "input": st.lists(st.integers(-1, 64), max_size=4),
        "groups": groups,
        "total": st.dictionaries(st.sampled_from([*METRICS, "x"]), quantities, max_size=3),
        "allow_uncounted": st.lists(st.one_of(names, st.integers()), max_size=2),
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([1, 1, 1, 2, "1", None]),
        "counting": st.fixed_dictionaries({"flops": st.sampled_from(["fvcore", "macs", "x"])}),
        "defaults": st.fixed_dictionaries({"headroom": quantities}),
        "models": st.dictionaries(names, st.one_of(entries, st.none()), max_size=3),
    },
)
# Characters that change YAML structure when dropped into a file at random.
SPICE = st.sampled_from(
    [
        *":-{}[],#&*!|>'\"%@`?\n\t ",
        *("  ", "\n  ", "!!python/object ", "<<", "*a", "&a ", "? ", "~", "1e400", "0x"),
        *("!!int ", "!!float ", "!!str ", "!!null ", "!!bool "),
    ]
)


def _loads_or_refuses(text: str) -> BudgetsFile | None:
    """What every input must do: load, or raise BudgetFileError with a located message."""
    try:
        return parse_budgets(text, "budgets.yaml")
    except BudgetFileError as e:
        assert str(e).startswith("budgets.yaml:")
        assert e.path == "budgets.yaml"
        assert "\n" not in str(e)  # one paragraph
        return None


@FIXED
@given(document=documents)
def test_random_documents_load_or_raise_budget_file_error(document: dict[str, object]) -> None:
    _loads_or_refuses(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))


@FIXED
@given(
    document=documents,
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3), SPICE), max_size=4),
)
def test_mutated_documents_load_or_raise_budget_file_error(
    document: dict[str, object], edits: list[tuple[int, int, str]]
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, default_flow_style=None)
    for at, drop, spice in edits:
        at %= len(text) + 1
        text = text[:at] + spice + text[at + drop :]
    _loads_or_refuses(text)


@FIXED
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200))
def test_random_text_loads_or_raises_budget_file_error(text: str) -> None:
    _loads_or_refuses(text)


@settings(FIXED, max_examples=100)
@given(data=st.binary(max_size=120), valid=st.booleans())
def test_random_bytes_on_disk(folder: Path, data: bytes, valid: bool) -> None:
    path = folder / "bytes.yaml"
    path.write_bytes((b"version: 1\nmodels:\n" if valid else b"") + data)
    try:
        load_budgets(path, must_exist=True)
    except BudgetFileError as e:
        assert str(e).startswith(f"{path}")


# -- updates -------------------------------------------------------------------------

measurements = st.fixed_dictionaries(
    {m: st.floats(0, 1) if m in SHARE_METRICS else st.integers(0, 10**13) for m in METRICS}
)
any_names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=10
)
measured_entries = st.builds(
    lambda name, groups, total, shape: MeasuredEntry(
        name=name,
        groups={group: values for group, (_, values) in groups.items()},
        group_modules={group: patterns for group, (patterns, _) in groups.items()},
        total={m: total[m] for m in ABSOLUTE_METRICS},
        input=(TensorSpec(shape, "float32"),) if shape is not None else None,
    ),
    any_names,
    st.dictionaries(
        any_names.filter(lambda g: g not in ("(other)", "total")),
        st.tuples(st.lists(any_names, min_size=1, max_size=3).map(tuple), measurements),
        max_size=3,
    ),
    measurements,
    st.one_of(st.none(), st.lists(st.integers(1, 512), min_size=1, max_size=4).map(tuple)),
)


@settings(FIXED, max_examples=100)
@given(
    entries=st.lists(measured_entries, max_size=3, unique_by=lambda e: e.name),
    headroom=headrooms,
    indent=st.sampled_from([1, 2, 4]),
)
def test_updates_write_what_they_mean(
    folder: Path, entries: list[MeasuredEntry], headroom: float, indent: int
) -> None:
    path = folder / "update.yaml"
    kept = " " * indent
    path.write_text(
        f"version: 1\nmodels:\n{kept}kept:  # hand comment\n{kept}{kept}total: {{flops: 1G}}\n",
        encoding="utf-8",
    )
    entries = [e for e in entries if e.name != "kept"]
    update_budgets(path, entries, headroom)
    loaded = load_budgets(path)
    assert list(loaded.models) == ["kept", *(e.name for e in entries)]
    assert loaded.models["kept"].total == {"flops": 1e9}
    for entry in entries:
        budget = loaded.models[entry.name]
        assert budget.input == entry.input
        assert [g.name for g in budget.groups] == list(entry.group_modules)
        for group in budget.groups:
            assert group.modules == entry.group_modules[group.name]
            for metric, limit in group.limits.items():
                measured = entry.groups[group.name][metric]
                assert limit == budget_value(measured, headroom, metric)
                assert not math.isnan(limit)
    # The same measurements again: nothing to change.
    again = update_budgets(path, entries, headroom)
    assert again.changes == () and again.created == ()


# -- updates of hand-written files: an exact oracle ----------------------------------
#
# A hand-written file is rendered from a template twice: once with the values as the
# user spelled them, once with the values an update must leave. The update has to
# produce the second text byte for byte: comments, blank lines, quoting, flow and
# block styles, the entries it was not given and the values that did not change.

spellings = st.sampled_from(["plain", "unit", "single", "double"])

_Layout = list[tuple[str, list[tuple[str, bool]]]]
_Values = dict[tuple[str, str, str], tuple[float, str]]


@st.composite
def hand_written(draw: st.DrawFn) -> tuple[int, _Layout, _Values]:
    """(indent, [(entry, [(group, block style)])], {(entry, group, metric): (value, spelling)})."""
    indent = draw(st.sampled_from([2, 4]))
    layout = []
    values: _Values = {}
    for e in range(draw(st.integers(1, 3))):
        entry = f"model-{e}"
        groups = [(f"g{g}", draw(st.booleans())) for g in range(draw(st.integers(0, 3)))]
        layout.append((entry, groups))
        for group, _ in [*groups, ("total", False)]:
            allowed = ABSOLUTE_METRICS if group == "total" else METRICS
            # At least one metric each: a group or total that lists none is filled with
            # the default metrics (test_budgets_write.py), which this oracle leaves out.
            metrics = st.lists(st.sampled_from(allowed), unique=True, min_size=1, max_size=3)
            for metric in draw(metrics):
                if metric in SHARE_METRICS:
                    value = draw(st.integers(0, 1000)) / 1000
                else:
                    value = float(draw(st.integers(0, 10**12)))
                values[entry, group, metric] = (value, draw(spellings))
    return indent, layout, values


def _spell(value: float, metric: str, spelling: str) -> str:
    if spelling == "unit" or metric in SHARE_METRICS:
        text = format_quantity(value, metric)
    else:
        text = str(int(value))
    return {"single": f"'{text}'", "double": f'"{text}"'}.get(spelling, text)


def _render(indent: int, layout: _Layout, values: _Values, original: _Values) -> str:
    """The file's text; comments quote the ``original`` values, as a user's would."""
    one, two, three = (" " * (indent * n) for n in (1, 2, 3))
    lines = ["# Budgets, by hand.", "version: 1", "models:", f"{one}# entries below"]
    for entry, groups in layout:
        lines += ["", f"{one}{entry}:  # about {entry}"]
        mine = {k[1:]: v for k, v in values.items() if k[0] == entry}
        if groups:
            lines.append(f"{two}groups:")
        for group, block in groups:
            metrics = [(m, _spell(v, m, s)) for (g, m), (v, s) in mine.items() if g == group]
            if block:
                lines.append(f"{three}{group}:")
                lines.append(f'{three}{one}modules: ["{group}.*"]  # patterns')
                for metric, text in metrics:
                    was = _spell(original[entry, group, metric][0], metric, "plain")
                    lines.append(f"{three}{one}{metric}: {text}   # was {was}")
            else:
                fields = ", ".join([f'modules: ["{group}.*"]', *(f"{m}: {t}" for m, t in metrics)])
                lines.append(f"{three}{group}: {{{fields}}}")
        total = [(m, _spell(v, m, s)) for (g, m), (v, s) in mine.items() if g == "total"]
        if total:
            lines.append(f"{two}total: {{{', '.join(f'{m}: {t}' for m, t in total)}}}")
    return "\n".join(lines) + "\n# the end\n"


@settings(FIXED, max_examples=100)
@given(
    file=hand_written(),
    data=st.data(),
    headroom=headrooms,
)
def test_updates_change_exactly_the_recorded_values(
    folder: Path, file: tuple[int, _Layout, _Values], data: st.DataObject, headroom: float
) -> None:
    indent, layout, values = file
    measured_entries = []
    expected = dict(values)
    for entry, groups in layout:
        if not data.draw(st.booleans(), label=f"update {entry}"):
            continue
        measured_groups = {
            group: data.draw(measurements, label=f"{entry}.{group}")
            for group, _ in groups
            if data.draw(st.booleans(), label=f"measure {entry}.{group}")
        }
        total = data.draw(measurements, label=f"{entry}.total")
        measured_entries.append(MeasuredEntry(entry, measured_groups, {}, total, None))
        for (name, group, metric), (old, _) in values.items():
            source = total if group == "total" else measured_groups.get(group)
            if name != entry or source is None:
                continue
            new = budget_value(source[metric], headroom, metric)
            if new != old:  # an unchanged budget keeps its spelling
                expected[name, group, metric] = (new, "unit")
    path = folder / "hand.yaml"
    path.write_text(_render(indent, layout, values, values), encoding="utf-8")
    summary = update_budgets(path, measured_entries, headroom)
    assert path.read_text(encoding="utf-8") == _render(indent, layout, expected, values)
    assert set(summary.changed) | set(summary.unchanged) == {e.name for e in measured_entries}
    assert summary.created == ()
    again = update_budgets(path, measured_entries, headroom)
    assert again.changes == () and again.changed == ()
    assert path.read_text(encoding="utf-8") == _render(indent, layout, expected, values)


@FIXED
@given(
    document=documents,
    style=st.sampled_from([None, False, True]),
    indent=st.sampled_from([2, 3, 4]),
    entries=st.lists(measured_entries, max_size=3, unique_by=lambda e: e.name),
    reuse=st.lists(st.integers(0, 5), max_size=3),
    crlf=st.booleans(),
)
def test_any_valid_file_is_updated_or_refused_cleanly(
    folder: Path,
    document: dict[str, object],
    style: bool | None,
    indent: int,
    entries: list[MeasuredEntry],
    reuse: list[int],
    crlf: bool,
) -> None:
    """Random files as yaml.safe_dump writes them (block, flow, mixed), updated with
    new and existing names: the update succeeds and is idempotent, or it refuses with
    its own error, never with a 'this is a bug' error or anything else."""
    text = yaml.safe_dump(
        document, allow_unicode=True, sort_keys=False, default_flow_style=style, indent=indent
    )
    if crlf:
        text = text.replace("\n", "\r\n")
    loaded = _loads_or_refuses(text)
    if loaded is None:
        return
    names = list(loaded.models)
    for i, pick in enumerate(reuse[: len(entries)]):
        if names:  # measure an entry the file already has
            entries[i] = replace(entries[i], name=names[pick % len(names)])
    path = folder / "valid.yaml"
    path.write_bytes(text.encode("utf-8"))
    try:
        update_budgets(path, entries, 0.1)
    except BudgetFileError as e:
        assert "bug" not in str(e)
        assert path.read_bytes() == text.encode("utf-8")  # refused: untouched
        return
    assert list(load_budgets(path).models)[: len(names)] == names
    assert update_budgets(path, entries, 0.1).changes == ()
