"""Which aten operators carry the compute a FLOP count is about (pure, no torch).

An uncounted operator of these kinds means compute is missing from the numbers, so
every report shows it first, as a warning, strict or not; other uncounted operators
(elementwise, pooling, indexing) are listed last, as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["compute_kind", "missing_compute"]

_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("attention-like", re.compile(r"attention|multi_head|transformer_(en|de)coder")),
    ("convolution-like", re.compile(r"conv(?!ert)|convolution")),
    (
        "matmul-like",
        re.compile(
            r"mm(_|$)|(^|_|add)mv(_|$)|matmul|(^|_)v?dot$|vecdot|multi_dot|(^|_)inner$|"
            r"(^|_)outer$|(^|_)addr_?$|(^|_)linear$|einsum|tensordot|(^|_)kron$|bilinear$"
        ),
    ),
)


def compute_kind(op: str) -> str | None:
    """``"matmul-like"``, ``"convolution-like"`` or ``"attention-like"`` for an aten
    operator name (``aten::_grouped_mm``), None for any other operator."""
    name = op.removeprefix("aten::")
    return next((kind for kind, pattern in _KINDS if pattern.search(name)), None)


def missing_compute(uncounted: Mapping[str, int]) -> list[str]:
    """One warning per uncounted compute-bearing operator, in name order."""
    return [
        f"{op} x{count} was not counted: {kind}, compute is missing from these numbers"
        for op, count in sorted(uncounted.items())
        if (kind := compute_kind(op)) is not None
    ]
