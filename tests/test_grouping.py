"""Grouping: patterns over module paths -> disjoint groups -> sums (pure, no torch)."""

from __future__ import annotations

import pytest
from profiles import layer, toy_profile

from pytest_actbudget.errors import GroupingError
from pytest_actbudget.grouping import auto_groups, group_profile, resolve
from pytest_actbudget.results import ABSOLUTE_METRICS, Profile


def test_auto_groups_are_the_direct_children_of_the_root() -> None:
    assert auto_groups(toy_profile()) == {"0": ("0",), "1": ("1",), "2": ("2",)}


def test_a_group_keeps_only_its_top_most_matches() -> None:
    # "1*" matches "1", "1.0" and "1.1"; "1" holds the other two, so only "1" counts.
    assert resolve(toy_profile(), {"body": ["1*"]}) == {"body": ("1",)}
    # "1.*" matches both convs and not their parent.
    assert resolve(toy_profile(), {"body": ["1.*"]}) == {"body": ("1.0", "1.1")}


def test_group_sums_and_shares_are_derived_from_top_most_modules() -> None:
    stem, body, other = group_profile(toy_profile(), {"stem": ["0.*"], "body": ["1"]})
    # stem = 0.0 + 0.1 = 100 + 10 flops; share 110 / 200 = 0.55
    assert (stem.flops, stem.params, stem.activations) == (110, 320, 40)
    assert stem.flops_share == pytest.approx(0.55)
    # body = "1" alone (its convs are descendants): 80 flops, 40 of 90 activations
    assert (body.flops, body.act_share) == (80, pytest.approx(40 / 90))
    # (other) = total - groups: 200 - 110 - 80 = 10 flops (Linear 5 + the root's add 5),
    # params 3820 - 320 - 3000 = 500; its top-most unclaimed module is "2".
    assert other.name == "(other)"
    assert (other.flops, other.params, other.modules) == (10, 500, ("2",))


def test_group_sums_never_exceed_the_root_total() -> None:
    profile = toy_profile()
    stats = group_profile(profile, auto_groups(profile))
    for metric in ABSOLUTE_METRICS:
        assert sum(s.metric(metric) for s in stats) == profile.total.metric(metric)
        assert all(s.metric(metric) <= profile.total.metric(metric) for s in stats)


def test_no_other_group_when_everything_is_claimed() -> None:
    stats = group_profile(toy_profile(), {"all": [""]})
    assert [s.name for s in stats] == ["all"]
    assert stats[0].flops == 200


def test_a_pattern_that_matches_nothing_names_the_nearest_paths() -> None:
    with pytest.raises(GroupingError) as e:
        resolve(toy_profile(), {"decoder": ["1.3"]})
    assert str(e.value) == (
        "group 'decoder': pattern '1.3' matched no module; nearest: '1.1', '1.0', '1'"
    )


def test_a_module_claimed_through_an_ancestor_names_both_groups() -> None:
    with pytest.raises(GroupingError) as e:
        resolve(toy_profile(), {"stem": ["0"], "conv": ["0.0"]})
    assert str(e.value) == (
        "module '0.0' is claimed by two groups: 'conv' directly and 'stem' through its "
        "ancestor '0'; each module may belong to one group only"
    )


def test_a_module_claimed_directly_by_two_groups_names_both() -> None:
    with pytest.raises(GroupingError, match="'0' is claimed by two groups: 'a' and 'b'"):
        resolve(toy_profile(), {"a": ["0"], "b": ["0*"]})


def test_every_pattern_that_matches_nothing_is_named() -> None:
    with pytest.raises(GroupingError) as e:
        resolve(toy_profile(), {"stem": ["0", "9"], "head": ["3"]})
    message = str(e.value)
    assert "group 'stem': pattern '9' matched no module" in message
    assert "group 'head': pattern '3' matched no module" in message


def test_a_pattern_equal_to_a_module_path_matches_that_module_only() -> None:
    # Module names may hold glob characters: "x*" names one module, not "x1" too.
    profile = Profile(
        model="Sequential",
        inputs=(),
        counting="fvcore",
        layers=(
            layer("", "Sequential", flops=3, leaf=False),
            layer("x*", "Linear", flops=1),
            layer("x1", "Linear", flops=1),
            layer("layer[0]", "Linear", flops=1),
        ),
    )
    groups = auto_groups(profile)
    assert resolve(profile, groups) == {"x*": ("x*",), "x1": ("x1",), "layer[0]": ("layer[0]",)}
    # A pattern that is no module path is a glob as usual.
    assert resolve(profile, {"xs": ["x?"]}) == {"xs": ("x*", "x1")}
