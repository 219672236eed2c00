"""The ``scaling:`` key of a budgets entry: which inputs scale, and the sizes they take.

    scaling:
      inputs: {0: [2, 3]}          # input position or keyword name -> dims that scale together
      sizes: [112, 224, 448]       # the values those dims take

Read from the node tree by :mod:`pytest_actbudget.budgets.schema`; every problem is a
BudgetFileError with ``file:line`` and the key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .safe_yaml import INT, NULL, STR, describe, fail, key_problem, line_of, scalar, unknown_key

if TYPE_CHECKING:
    import yaml

SCALING_KEYS: tuple[str, ...] = ("inputs", "sizes")
_HOW_INPUTS = (
    "map each input that scales (its position, or its keyword name) to the dimensions that "
    "take the size, e.g. inputs: {0: [2, 3]} for H and W of an image"
)
_HOW_SIZES = "list two or more different positive sizes, e.g. sizes: [128, 256, 512, 1024]"


@dataclass(frozen=True)
class ScalingSpec:
    """How an entry's inputs scale: ``inputs`` maps a position (int) or keyword (str) to
    the dimensions that take each of ``sizes``; ``inputs`` is empty when the test
    passes ``scaling=Scaling(make_inputs, sizes)`` itself."""

    inputs: Mapping[int | str, tuple[int, ...]]
    sizes: tuple[int, ...]
    line: int  # 1-based line of the ``scaling`` key
    input_lines: Mapping[int | str, int]  # line of each input's key, for messages


def read_scaling(path: str, key: yaml.Node, node: yaml.Node, keys: tuple[str, ...]) -> ScalingSpec:
    """Read and check one ``scaling:`` mapping."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        fail(path, line_of(node), keys, f"expected a mapping (inputs, sizes), got {describe(node)}")
    inputs: dict[int | str, tuple[int, ...]] = {}
    lines: dict[int | str, int] = {}
    sizes: tuple[int, ...] | None = None
    for part_key, value in node.value:
        if not isinstance(part_key, yaml.ScalarNode) or part_key.tag != STR:
            fail(path, line_of(part_key), keys, key_problem(part_key))
        here = (*keys, part_key.value)
        if part_key.value not in SCALING_KEYS:
            fail(path, line_of(part_key), here, unknown_key(part_key.value, SCALING_KEYS))
        if part_key.value == "inputs":
            inputs, lines = _inputs(path, value, here)
        else:
            sizes = _sizes(path, value, here)
    if sizes is None:
        fail(path, line_of(key), keys, f"missing 'sizes'; {_HOW_SIZES}")
    return ScalingSpec(inputs, sizes, line_of(key), lines)


def _inputs(
    path: str, node: yaml.Node, keys: tuple[str, ...]
) -> tuple[dict[int | str, tuple[int, ...]], dict[int | str, int]]:
    import yaml

    if not isinstance(node, yaml.MappingNode) or not node.value:
        got = "an empty mapping" if isinstance(node, yaml.MappingNode) else describe(node)
        fail(path, line_of(node), keys, f"expected a mapping, got {got}; {_HOW_INPUTS}")
    inputs: dict[int | str, tuple[int, ...]] = {}
    lines: dict[int | str, int] = {}
    for key, value in node.value:
        name: int | str
        if isinstance(key, yaml.ScalarNode) and key.tag == INT and isinstance(scalar(key), int):
            name = scalar(key)
            if isinstance(name, int) and name < 0:
                fail(path, line_of(key), keys, f"input position {name} is negative; {_HOW_INPUTS}")
        elif isinstance(key, yaml.ScalarNode) and key.tag == STR and key.value:
            name = key.value
        else:
            fail(path, line_of(key), keys, f"{describe(key)} is not an input; {_HOW_INPUTS}")
        here = (*keys, str(name))
        if not isinstance(value, yaml.SequenceNode) or not value.value:
            got = describe(value)
            fail(path, line_of(value), here, f"expected a list of dimensions, got {got}")
        dims = []
        for item in value.value:
            dim = scalar(item) if item.tag == INT else None
            if not isinstance(dim, int):
                fail(path, line_of(item), here, f"{describe(item)} is not a dimension index")
            if dim in dims:
                fail(path, line_of(item), here, f"dimension {dim} is listed twice")
            dims.append(dim)
        inputs[name] = tuple(dims)
        lines[name] = line_of(key)
    return inputs, lines


def _sizes(path: str, node: yaml.Node, keys: tuple[str, ...]) -> tuple[int, ...]:
    import yaml

    if not isinstance(node, yaml.SequenceNode) or node.tag == NULL:
        fail(path, line_of(node), keys, f"expected a list, got {describe(node)}; {_HOW_SIZES}")
    sizes: list[int] = []
    for item in node.value:
        size = scalar(item) if item.tag == INT else None
        if not isinstance(size, int) or size <= 0:
            fail(path, line_of(item), keys, f"{describe(item)} is not a positive size")
        if size in sizes:
            fail(path, line_of(item), keys, f"size {size} is listed twice; {_HOW_SIZES}")
        sizes.append(size)
    if len(sizes) < 2:
        count = "lists one size" if sizes else "lists no size"
        fail(
            path,
            line_of(node),
            keys,
            f"{count}; a growth exponent is fitted over two or more sizes: {_HOW_SIZES}",
        )
    return tuple(sizes)
