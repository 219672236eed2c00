"""Budget numbers as people write them: ``130M``, ``1.5G``, ``64MiB``, ``15%``.

Pure functions, no YAML: the loader adds ``file:line`` and the key path to the
``ValueError`` texts raised here.

Arithmetic goes through :class:`decimal.Decimal` so that ``9.41K`` is exactly 9410 and
``format_quantity`` gives back text that parses to the very same float.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, Context, Decimal
from typing import Final

from ..results import ABSOLUTE_METRICS, GROWTH_METRICS, SHARE_METRICS
from ..training import TRAINING_METRICS

#: Absolute metrics measured in bytes; they take binary units too.
BYTES_METRICS: Final = ("act_bytes", "saved_bytes", "train_bytes")
COUNT_METRICS: Final = tuple(
    m for m in ABSOLUTE_METRICS + TRAINING_METRICS if m not in BYTES_METRICS
)

_SI: Final = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_DECIMAL_BYTES: Final = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_BINARY_BYTES: Final = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_BYTE_UNITS: Final = {"B": 1, **_SI, **_DECIMAL_BYTES, **_BINARY_BYTES}

# Wide enough that no division or product below is ever rounded.
_EXACT: Final = Context(prec=200)
_MAX_EXPONENT: Final = 1000
_NUMBER: Final = re.compile(
    r"(?P<num>[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE](?P<exp>[+-]?[0-9]+))?"
    r"\s*(?P<unit>[A-Za-z%]*)"
)

_HOW: Final = {
    "count": "use a plain number or one with a suffix K, M, G, T (e.g. 130M)",
    "bytes": (
        "use a plain number of bytes or one with a suffix K, M, G, T, KB, MB, GB, TB "
        "(x1000) or KiB, MiB, GiB, TiB (x1024) (e.g. 64MiB)"
    ),
    "share": "use a percentage (e.g. 15%) or a fraction between 0 and 1 (e.g. 0.15)",
    "percent": "use a percentage (e.g. 10%) or a fraction (e.g. 0.1)",
    "growth": (
        "use a plain number, the exponent k of metric ~ size^k (e.g. 1.05 for linear, "
        "2.05 for quadratic growth)"
    ),
}
_NOUN: Final = {
    "count": "a number",
    "bytes": "a byte size",
    "share": "a share",
    "percent": "a percentage",
    "growth": "an exponent",
}


def _kind(metric: str) -> str:
    if metric in SHARE_METRICS:
        return "share"
    if metric in BYTES_METRICS:
        return "bytes"
    if metric in COUNT_METRICS:
        return "count"
    if metric in GROWTH_METRICS:
        return "growth"
    known = ", ".join(ABSOLUTE_METRICS + SHARE_METRICS + TRAINING_METRICS + GROWTH_METRICS)
    raise ValueError(f"unknown metric {metric!r}; known metrics: {known}")


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _decimal(value: float) -> Decimal:
    """The decimal a float stands for: its shortest repr, so 0.1 is exactly 0.1."""
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(repr(float(value)))


def _parse(value: object, kind: str) -> Decimal:
    """Any accepted spelling -> an exact non-negative Decimal; units checked per kind."""
    how = _HOW[kind]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        shown = "an empty value" if value is None else _show(value)
        if not isinstance(value, (bool, type(None))):
            shown = "a mapping" if isinstance(value, dict) else f"a {type(value).__name__}"
        raise ValueError(f"{shown} is not {_NOUN[kind]}; {how}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number; {how}")
    if not isinstance(value, str):
        if value < 0:
            raise ValueError(f"{value} is negative; a budget is a maximum of 0 or more")
        number, unit = _decimal(value), ""
    else:
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"{value!r} is negative; a budget is a maximum of 0 or more")
        match = _NUMBER.fullmatch(text)
        if match is None:
            raise ValueError(f"{value!r} is not {_NOUN[kind]}; {how}")
        # A huge exponent would overflow the Decimal context (an ArithmeticError, not
        # a ValueError); anything past float range is refused below anyway.
        if match["exp"] and abs(int(match["exp"])) > _MAX_EXPONENT:
            raise ValueError(f"{value!r} is too large; {how}")
        digits = match["num"].replace("_", "")
        number = Decimal(digits + (f"E{match['exp']}" if match["exp"] else ""))
        unit = match["unit"]
    if kind == "count":
        scale = _SI.get(unit) if unit else 1
    elif kind == "bytes":
        scale = _BYTE_UNITS.get(unit) if unit else 1
    elif kind == "growth":
        scale = None if unit else 1
    else:  # share / percent: '%' or nothing
        scale = 1 if not unit else (None if unit != "%" else 1)
    if scale is None:
        table = _SI if kind == "count" else _BYTE_UNITS
        if kind in ("count", "bytes") and len(unit) == 1 and unit.upper() in table:
            # `12k`: the one mistake with a sure fix; say it rather than list every unit.
            fixed = text[: len(text) - len(unit)].rstrip() + unit.upper()
            raise ValueError(
                f"{value!r} is not {_NOUN[kind]}; the suffixes are upper case: use {fixed}"
            )
        raise ValueError(f"{value!r} is not {_NOUN[kind]}; {how}")
    if kind in ("share", "percent") and unit == "%":
        return _EXACT.divide(number, Decimal(100))
    return _EXACT.multiply(number, Decimal(scale))


def parse_quantity(value: object, metric: str) -> float:
    """A budget as written in the file -> a float (shares as fractions 0..1).

    ``value`` is a YAML int/float or a string such as ``"1_500_000"``, ``"130M"``,
    ``"64MiB"``, ``"15%"``. Raises ValueError (a short reason and what would be valid)
    for negative, non-finite, boolean or malformed values, unknown units and shares
    above 100%.
    """
    kind = _kind(metric)
    number = _parse(value, kind)
    if kind == "share" and number > 1:
        what = f"{value!r}" if isinstance(value, str) else str(value)
        limit = "100%" if isinstance(value, str) and value.strip().endswith("%") else "1 (100%)"
        raise ValueError(f"{what} is more than {limit}; {_HOW['share']}")
    return _to_float(number, value, _HOW[kind])


def _to_float(number: Decimal, value: object, how: str) -> float:
    """The float of an exact Decimal; refuses what only fits as ``inf``."""
    result = float(number)
    if not math.isfinite(result):
        raise ValueError(f"{_show(value)} is too large; {how}")
    return result


def parse_percent(value: object) -> float:
    """A headroom such as ``10%`` or ``0.1`` -> 0.1. A plain number above 1 is refused:
    ``10`` is ambiguous (10% or 1000%?)."""
    number = _parse(value, "percent")
    is_percent = isinstance(value, str) and value.strip().endswith("%")
    if not is_percent and number > 1:
        shown = value.strip() if isinstance(value, str) else str(value)
        raise ValueError(
            f"{shown} is ambiguous as a percentage; write {shown}% or a fraction (e.g. 0.1)"
        )
    return _to_float(number, value, _HOW["percent"])


def format_percent(value: float) -> str:
    """0.1 -> ``10%``: the headroom as written into a new budgets file."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"cannot write {value} as a percentage")
    return _plain(_EXACT.multiply(_decimal(value), Decimal(100))) + "%"


def _plain(number: Decimal) -> str:
    """A Decimal in positional notation without trailing zeros: 520, 1.23, 0.5."""
    text = format(number.normalize(_EXACT), "f")
    return text


def _short_in(number: Decimal, unit: int, max_digits: int = 6) -> str | None:
    """``number / unit`` as text when it is exact and short, else None."""
    quotient = _EXACT.divide(number, Decimal(unit))
    if _EXACT.multiply(quotient, Decimal(unit)) != number:
        return None
    if len(quotient.normalize(_EXACT).as_tuple().digits) > max_digits:
        return None
    return _plain(quotient)


def format_quantity(value: float, metric: str) -> str:
    """The text written into the budgets file: ``520M``, ``9.41K``, ``64MiB``, ``16.5%``.

    Exact: ``parse_quantity(format_quantity(v, m), m) == v`` for every finite v >= 0
    (shares: 0..1).
    """
    kind = _kind(metric)
    if not math.isfinite(value) or value < 0 or isinstance(value, bool):
        raise ValueError(f"cannot write {value!r} as a budget for {metric}")
    number = _decimal(value)
    if kind == "growth":
        return _plain(number)
    if kind == "share":
        if number > 1:
            raise ValueError(f"a share cannot be more than 100%, got {value!r}")
        return _plain(_EXACT.multiply(number, Decimal(100))) + "%"
    if number == 0:
        return "0"
    if kind == "bytes":
        if number < 1024:
            return _plain(number)
        for units in (_BINARY_BYTES, _DECIMAL_BYTES):
            for suffix, unit in reversed(units.items()):
                if number >= unit and (text := _short_in(number, unit)) is not None:
                    return text + suffix
        return _plain(number)
    for suffix, unit in reversed(_SI.items()):
        if number >= unit:
            return _plain(_EXACT.divide(number, Decimal(unit))) + suffix
    return _plain(number)


def _ceil_significant(number: Decimal, digits: int) -> Decimal:
    """Round up to ``digits`` significant digits: 472.13 -> 473 (digits=3)."""
    step = Decimal(1).scaleb(number.adjusted() - digits + 1)
    steps = _EXACT.divide(number, step).to_integral_value(rounding=ROUND_CEILING)
    return _EXACT.multiply(steps, step)


def budget_value(measured: float, headroom: float, metric: str) -> float:
    """The budget recorded for a measurement: ``measured x (1 + headroom)`` rounded up.

    Counts are rounded up to 3 significant digits and to a whole number, bytes to 3
    significant digits of their binary unit (``70.4MiB``), shares to 0.1 percentage
    point and capped at 100%. The result is never below ``measured x (1 + headroom)``
    (with headroom read as the decimal it prints as); 0 stays 0.
    """
    kind = _kind(metric)
    if kind == "growth":
        raise ValueError(f"{metric} is an exponent: its budget is growth_budget(...)")
    for name, number in (("measured", measured), ("headroom", headroom)):
        if isinstance(number, bool) or not math.isfinite(number) or number < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {number!r}")
    target = _EXACT.multiply(_decimal(measured), _EXACT.add(Decimal(1), _decimal(headroom)))
    if target == 0:
        return 0.0
    if kind == "share":
        permille = _EXACT.multiply(target, Decimal(1000)).to_integral_value(ROUND_CEILING)
        return float(_EXACT.divide(min(permille, Decimal(1000)), Decimal(1000)))
    if kind == "bytes":
        unit = next((u for u in reversed(_BINARY_BYTES.values()) if target >= u), 1)
        if unit == 1:
            return float(target.to_integral_value(ROUND_CEILING))
        scaled = _ceil_significant(_EXACT.divide(target, Decimal(unit)), 3)
        return float(_EXACT.multiply(scaled, Decimal(unit)))
    rounded = _ceil_significant(target, 3).to_integral_value(ROUND_CEILING)
    return float(rounded)


def growth_budget(exponent: float, headroom: float) -> float:
    """The budget recorded for a growth exponent: ``exponent + headroom`` (an absolute
    amount), rounded up to two decimals: 2.0 + 0.05 -> 2.05, 1.013 + 0.05 -> 1.07.

    The exponent is first rounded to three decimals, so the floating-point noise of a
    fit (2.0000000004) does not push an exact power law up a step.
    """
    for name, number in (("exponent", exponent), ("headroom", headroom)):
        if isinstance(number, bool) or not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number, got {number!r}")
    if headroom < 0:
        raise ValueError(f"headroom must be >= 0, got {headroom!r}")
    fitted = _decimal(exponent).quantize(Decimal("0.001"), context=_EXACT)
    target = _EXACT.add(fitted, _decimal(headroom))
    rounded = target.quantize(Decimal("0.01"), rounding=ROUND_CEILING, context=_EXACT)
    return max(float(rounded), 0.0)


def parse_growth_headroom(value: object) -> float:
    """``defaults.growth_headroom``: an absolute amount added to measured exponents."""
    if isinstance(value, str) and value.strip().endswith("%"):
        raise ValueError(
            f"{value!r} is a percentage; growth_headroom is an absolute amount added to "
            "the measured exponent (e.g. 0.05)"
        )
    return _to_float(_parse(value, "growth"), value, _HOW["growth"])


def human(value: float, metric: str) -> str:
    """Short display text for reports: ``472.1M``, ``29.4%``, ``1.2MiB``, ``512B``."""
    kind = _kind(metric)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if kind == "share":
        return f"{value * 100:.1f}%"
    if kind == "growth":
        return f"^{value:.2f}"
    sign, size = ("-" if value < 0 else ""), abs(value)
    if kind == "bytes":
        if size < 1024:
            return f"{sign}{size:.0f}B"
        units: dict[str, int] = _BINARY_BYTES
        base = 1024
    else:
        if size < 1000:
            return f"{sign}{size:.0f}" if float(size).is_integer() else f"{sign}{size:.1f}"
        units, base = _SI, 1000
    names = list(units)
    index = 0
    # Pick the unit after rounding, so 999.96K shows as 1.0M rather than 1000.0K.
    while index + 1 < len(names) and round(size / units[names[index]], 1) >= base:
        index += 1
    name = names[index]
    return f"{sign}{size / units[name]:.1f}{name}"
