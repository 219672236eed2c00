"""compare() and render() of two report's results (the CLI test runs them end to end)."""

from __future__ import annotations

import dataclasses
import math

from test_report_samples import make_result

from pytest_actbudget.report.diff import Change, compare, render


def test_growth_is_relative_per_group_and_metric() -> None:
    # stride 2 -> 1 in the stem: 4x the elements; see test_report_samples.
    diff = compare([make_result()], [make_result(stem_scale=4)])
    (entry,) = diff.entries
    assert entry.status == "changed"
    stem = {c.metric: c for c in entry.changes if c.group == "stem"}
    assert set(stem) == {"flops", "activations", "act_bytes"}  # params did not change
    assert (stem["flops"].old, stem["flops"].new) == (118_816_768, 475_267_072)
    assert stem["flops"].relative == 3.0
    assert [c.group for c in entry.grown(2.99)] == ["stem", "stem", "stem", "total", "total"]
    # total act_bytes: 6,457,856 -> 4 x 6,422,528 + 32,768 + 2,560 = 25,725,440: +298.4%,
    # just under +299%.
    assert [c.metric for c in entry.grown(2.99) if c.group == "total"] == ["flops", "activations"]


def test_same_results_are_unchanged_and_nothing_grows() -> None:
    diff = compare([make_result()], [make_result()])
    assert [e.status for e in diff.entries] == ["same"]
    assert diff.grown(0.0) == []
    assert render(diff, fail_over=0.0) == (
        "1 entry: 0 changed, 1 unchanged, 0 added, 0 removed\n\nnothing grew by more than 0%\n"
    )


def test_an_entry_of_several_tests_pairs_by_nodeid_first() -> None:
    old = [make_result("a"), make_result("a", nodeid="t.py::other")]
    new = [make_result("a", nodeid="t.py::other", stem_scale=4), make_result("b")]
    diff = compare(old, new)
    assert [(e.name, e.nodeid, e.status) for e in diff.entries] == [
        ("a", "t.py::other", "changed"),
        ("b", "tests/test_models.py::test_stem", "added"),
        ("a", "tests/test_models.py::test_stem", "removed"),
    ]


def test_added_and_removed_groups_are_listed_but_are_not_growth() -> None:
    old = make_result()
    renamed = dataclasses.replace(
        old.groups[1], stats=dataclasses.replace(old.groups[1].stats, name="classifier")
    )
    new = dataclasses.replace(old, groups=(old.groups[0], renamed, old.groups[2]))
    (entry,) = compare([old], [new]).entries
    added, removed = entry.added_groups, entry.removed_groups
    assert ([g.name for g in added], [g.name for g in removed]) == (["classifier"], ["head"])
    assert entry.grown(0.0) == ()
    # The linear layer "4": 40,960 flops = 40,960 / 118,857,728 = 0.03% of the model,
    # 640 activations, 650 params.
    assert (
        "  group 'classifier' added: 41.0K flops (0.0%), 640 activations, 650 params\n"
        "  group 'head' removed: 41.0K flops (0.0%), 640 activations, 650 params\n"
    ) in render(compare([old], [new]))
    # Under --fail-over a group of the new report only is named as not compared.
    assert render(compare([old], [new]), fail_over=0.1).endswith(
        "nothing grew by more than 10%\n"
        "not compared, only in the new report: group 'classifier' of 'stem-cnn' "
        "(each entry's total is compared)\n"
    )


def test_growth_from_zero_is_infinite_and_reads_new() -> None:
    change = Change("stem", "flops", 0, 5)
    assert math.isinf(change.relative) and change.text == "new"
    assert Change("stem", "flops", 0, 0).relative == 0.0
    assert Change("stem", "flops", 200, 150).text == "-25.0%"


def test_entries_match_by_name_when_their_test_moved() -> None:
    old = [make_result("a", nodeid="t.py::one"), make_result("a", nodeid="t.py::two")]
    new = [
        make_result("a", nodeid="t.py::three", stem_scale=4),  # one renamed to three
        make_result("a", nodeid="t.py::two"),
        make_result("b", nodeid="t.py::four"),
    ]
    diff = compare(old, new)
    assert [(e.name, e.old_nodeid, e.nodeid, e.status) for e in diff.entries] == [
        ("a", "t.py::one", "t.py::three", "changed"),
        ("a", None, "t.py::two", "same"),
        ("b", None, "t.py::four", "added"),
    ]
    # The moved test's stem grew +300% (see test_growth_is_relative_per_group_and_metric).
    assert [(c.group, c.metric) for _, c in diff.grown(2.99)][:3] == [
        ("stem", "flops"), ("stem", "activations"), ("stem", "act_bytes")
    ]  # fmt: skip
    text = render(diff, fail_over=2.99)
    assert text.startswith(
        "3 entries: 1 changed, 1 unchanged, 1 added, 0 removed (1 moved to another test)\n\n"
        "a  (t.py::one -> t.py::three)\n"
    )
    assert text.endswith("not compared, only in the new report: entry 'b'\n")


def test_a_moved_unchanged_entry_is_listed_as_moved() -> None:
    diff = compare([make_result(nodeid="t.py::old")], [make_result(nodeid="t.py::new")])
    (entry,) = diff.entries
    assert (entry.status, entry.moved) == ("same", True)
    assert render(diff) == (
        "1 entry: 0 changed, 1 unchanged, 0 added, 0 removed (1 moved to another test)\n\n"
        "stem-cnn  (t.py::old -> t.py::new)  moved, unchanged\n"
    )
