"""Layer groups: glob patterns over module paths -> disjoint module sets -> GroupStats.

Pure functions over a :class:`~pytest_actbudget.results.Profile`; no torch, no pytest.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

from .errors import GroupingError
from .results import OTHER_GROUP, GroupStats, Profile

GroupPatterns = Mapping[str, Sequence[str]]


def auto_groups(profile: Profile) -> dict[str, tuple[str, ...]]:
    """One group per direct child of the root module, named by its path."""
    return {layer.path: (layer.path,) for layer in profile.layers if layer.depth == 1}


def ancestors(path: str) -> Iterable[str]:
    """Strict ancestors of a module path, nearest first, ending with the root ``""``."""
    while path:
        path = path.rpartition(".")[0]
        yield path


def is_within(path: str, top: str) -> bool:
    """True when ``path`` is ``top`` or one of its descendants."""
    return top == "" or path == top or path.startswith(top + ".")


def resolve(profile: Profile, groups: GroupPatterns) -> dict[str, tuple[str, ...]]:
    """Map each group to its top-most matched module paths, in forward order.

    A matched module includes its descendants, so a match below another match of the
    same group is dropped. Raises GroupingError naming every pattern that matches
    nothing (with the nearest paths), and for a module claimed by two groups.
    """
    paths = profile.paths
    known = set(paths)
    resolved: dict[str, tuple[str, ...]] = {}
    unmatched: list[str] = []
    first: str | None = None
    for name, patterns in groups.items():
        matched: set[str] = set()
        for pattern in patterns:
            hits = match(pattern, paths, known)
            if not hits:
                unmatched.append(_no_match_message(name, pattern, paths))
                first = first or name
            matched |= hits
        resolved[name] = tuple(
            path
            for path in paths
            if path in matched and not any(a in matched for a in ancestors(path))
        )
    if unmatched:
        raise GroupingError("; ".join(unmatched), group=first)
    _reject_overlaps(resolved)
    return resolved


def match(pattern: str, paths: Sequence[str], known: set[str]) -> set[str]:
    """The paths a pattern claims: the module of that exact path when there is one
    (module names may hold ``*``, ``?`` or ``[``), else every fnmatch hit."""
    if pattern in known:
        return {pattern}
    return {path for path in paths if fnmatchcase(path, pattern)}


def group_profile(profile: Profile, groups: GroupPatterns) -> tuple[GroupStats, ...]:
    """GroupStats for every group, plus ``(other)`` for whatever no group claims.

    ``(other)`` is the model total minus the claimed groups, so it also holds the work
    done directly in a container's own forward (a residual add, a flatten).
    """
    resolved = resolve(profile, groups)
    total = profile.total
    deductions, notes = shared_counted_once(profile, resolved)
    stats = [
        _stats(profile, name, tuple(groups[name]), modules, deductions[name], notes[name])
        for name, modules in resolved.items()
    ]
    claimed = {path for modules in resolved.values() for path in modules}
    leftovers = _unclaimed_tops(profile, claimed)
    sums = {
        metric: total.metric(metric) - sum(int(s.metric(metric)) for s in stats)
        for metric in profile.measured_metrics
    }
    if leftovers or any(value > 0 for value in sums.values()):
        other = {metric: max(value, 0) for metric, value in sums.items()}
        stats.append(
            GroupStats(
                name=OTHER_GROUP,
                patterns=(),
                modules=leftovers,
                flops_share=_share(other["flops"], total.flops),
                act_share=_share(other["activations"], total.activations),
                flops=other["flops"],
                activations=other["activations"],
                params=other["params"],
                act_bytes=other["act_bytes"],
                saved_bytes=other["saved_bytes"],
                # None without a training step, as every group's
                backward_flops=other.get("backward_flops"),
                train_flops=other.get("train_flops"),
                train_bytes=other.get("train_bytes"),
            )
        )
    return tuple(stats)


def shared_counted_once(
    profile: Profile, resolved: Mapping[str, tuple[str, ...]]
) -> tuple[Counter[str], dict[str, list[tuple[str, str]]]]:
    """Shared parameter tensors counted once, in the group of their first holder in
    forward order (``(other)`` when no group claims that holder).

    Returns the params to take off each group's sum (a group's modules count the
    tensor once each) and, per group, ``(name, group that counts it)`` for the shared
    tensors it holds but does not count.
    """
    order = {path: index for index, path in enumerate(profile.paths)}
    deductions: Counter[str] = Counter()
    notes: dict[str, list[tuple[str, str]]] = {name: [] for name in resolved}
    for shared in profile.shared_params:
        holders = sorted(
            ((name.rpartition(".")[0], name) for name in shared.names),
            key=lambda holder: order.get(holder[0], len(order)),
        )
        tops: dict[str, set[str]] = {}
        named: dict[str, str] = {}
        for holder, name in holders:
            for group, modules in resolved.items():
                for top in modules:
                    if is_within(holder, top):
                        tops.setdefault(group, set()).add(top)
                        named.setdefault(group, name)
        first = holders[0][0]
        owner = next(
            (
                group
                for group, modules in resolved.items()
                if any(is_within(first, t) for t in modules)
            ),
            OTHER_GROUP,
        )
        for group, holding in tops.items():
            deductions[group] += shared.numel * (len(holding) - (group == owner))
            if group != owner:
                notes[group].append((named[group], owner))
    return deductions, notes


def _stats(
    profile: Profile,
    name: str,
    patterns: tuple[str, ...],
    modules: tuple[str, ...],
    shared_params: int = 0,
    shared: Sequence[tuple[str, str]] = (),
) -> GroupStats:
    sums = {
        metric: sum(profile.layer(path).metric(metric) for path in modules)
        for metric in profile.measured_metrics
    }
    sums["params"] -= shared_params
    total = profile.total
    return GroupStats(
        name=name,
        patterns=patterns,
        modules=modules,
        flops_share=_share(sums["flops"], total.flops),
        act_share=_share(sums["activations"], total.activations),
        shared=tuple(shared),
        **sums,
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _unclaimed_tops(profile: Profile, claimed: set[str]) -> tuple[str, ...]:
    """Top-most modules that no group claims and that hold no claimed module."""
    if "" in claimed:
        return ()
    holders = {a for path in claimed for a in ancestors(path)}
    return tuple(
        layer.path
        for layer in profile.layers
        if layer.path
        and layer.path not in claimed
        and layer.path not in holders
        and layer.path.rpartition(".")[0] in holders | {""}
    )


def _reject_overlaps(resolved: Mapping[str, tuple[str, ...]]) -> None:
    owner: dict[str, str] = {}
    for name, modules in resolved.items():
        for path in modules:
            owner.setdefault(path, name)
    for name, modules in resolved.items():
        for path in modules:
            if owner[path] != name:
                raise GroupingError(
                    f"module '{path}' is claimed by two groups: '{owner[path]}' and '{name}'; "
                    "each module may belong to one group only",
                    group=name,
                )
            for above in ancestors(path):
                other = owner.get(above)
                if other is not None and other != name:
                    raise GroupingError(
                        f"module '{path}' is claimed by two groups: '{name}' directly and "
                        f"'{other}' through its ancestor '{above or '(root)'}'; "
                        "each module may belong to one group only",
                        group=name,
                    )


def _no_match_message(group: str, pattern: str, paths: Sequence[str]) -> str:
    candidates = [path for path in paths if path]
    nearest = difflib.get_close_matches(pattern, candidates, n=3, cutoff=0.0)
    hint = (
        ", ".join(f"'{path}'" for path in nearest) if nearest else "(the model has no submodules)"
    )
    return f"group '{group}': pattern '{pattern}' matched no module; nearest: {hint}"
