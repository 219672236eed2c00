"""Reading ``training:`` (an entry's, and ``defaults.training``) from the budgets file.

``training: true`` turns a training step on with the file's defaults; a mapping
``{optimizer: adam, grad_dtype: bfloat16, state_dtype: float32}`` turns it on with
those keys over the defaults; ``false`` (or no key) leaves it off.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NoReturn

from ..training import DTYPE_BYTES, OPTIMIZER_STATES, TRAINING_KEYS, TrainingSpec
from .safe_yaml import BOOL, NULL, STR, describe, fail, key_problem, line_of, unknown_key

if TYPE_CHECKING:
    import yaml

__all__ = ["TrainingReader"]

_MAPPING_EXAMPLE = "{optimizer: adam, grad_dtype: bfloat16, state_dtype: float32}"


class TrainingReader:
    """The ``training:`` part of the budgets file reader (mixed into it)."""

    path: str
    training_defaults: TrainingSpec

    def training_defaults_of(self, node: yaml.Node) -> TrainingSpec:
        """``defaults.training``: a mapping of the keys every training entry starts from."""
        import yaml

        keys = ("defaults", "training")
        if not isinstance(node, yaml.MappingNode):
            self._fail(
                node,
                keys,
                f"expected a mapping like {_MAPPING_EXAMPLE}, got {describe(node)}; an entry "
                "turns its training step on with `training: true`",
            )
        return self._spec(node, keys, TrainingSpec())

    def entry_training(self, node: yaml.Node, keys: tuple[str, ...]) -> TrainingSpec | None:
        """An entry's ``training:``: true, false, or a mapping over the file's defaults."""
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.tag == BOOL:
            on = node.value.lower() in ("true", "yes", "on", "y")
            return self.training_defaults if on else None
        if not isinstance(node, yaml.MappingNode):
            self._fail(
                node,
                keys,
                f"expected true, false or a mapping like {_MAPPING_EXAMPLE}, got {describe(node)}",
            )
        return self._spec(node, keys, self.training_defaults)

    def untrained_budget(self, key: yaml.Node, keys: tuple[str, ...]) -> NoReturn:
        """A training-step budget in an entry that measures no training step."""
        self._fail(
            key,
            keys,
            f"{keys[-1]!r} is a training-step budget, and this entry measures no training "
            "step; add `training: true` (or a mapping like "
            f"{_MAPPING_EXAMPLE}) to the entry, or remove the budget",
        )

    def _spec(
        self, node: yaml.MappingNode, keys: tuple[str, ...], base: TrainingSpec
    ) -> TrainingSpec:
        values: dict[str, str] = {}
        for key, value in node.value:
            if key.tag != STR:
                self._fail(key, keys, key_problem(key))
            name = key.value
            here = (*keys, name)
            if name not in TRAINING_KEYS:
                self._fail(key, here, unknown_key(name, TRAINING_KEYS))
            valid = OPTIMIZER_STATES if name == "optimizer" else DTYPE_BYTES
            if value.tag == NULL or value.tag != STR or value.value not in valid:
                what = "optimizer" if name == "optimizer" else "dtype"
                self._fail(
                    value,
                    here,
                    f"{describe(value)} is not a valid {what}; use one of: {', '.join(valid)}",
                )
            values[name] = value.value
        return dataclasses.replace(base, **values)

    def _fail(self, node: yaml.Node, keys: tuple[str, ...], message: str) -> NoReturn:
        fail(self.path, line_of(node), keys, message)
