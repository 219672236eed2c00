"""Terminal colour: the one place ANSI escape codes live.

The caller decides whether colour is on (the plugin turns it off for ``NO_COLOR`` or a
terminal without markup); everything else paints through a :class:`Palette`, whose
"off" state returns text unchanged so plain output is byte-for-byte the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Role = Literal["bad", "good", "warn", "dim", "bold", "bar"]

_CODES: Mapping[Role, str] = {
    "bad": "1;31",  # over budget, errors
    "good": "32",  # within budget
    "warn": "33",  # no budget, uncounted operators
    "dim": "2",  # secondary text: node ids, structural rows
    "bold": "1",  # entry names, headers
    "bar": "36",  # share bars
}

_OUTCOME_ROLES: Mapping[str, Role] = {"passed": "good", "over_budget": "bad", "error": "bad"}


class Palette:
    """Paints text with a role's colour when colour is on, else leaves it as it is."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def paint(self, text: str, role: Role) -> str:
        """``text`` wrapped in the role's ANSI code (padding must be applied before)."""
        if not self.color or not text:
            return text
        return f"\x1b[{_CODES[role]}m{text}\x1b[0m"

    def outcome(self, text: str, outcome: str) -> str:
        """An outcome word in the colour of its outcome."""
        return self.paint(text, _OUTCOME_ROLES.get(outcome, "warn"))
