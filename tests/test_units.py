"""Budget numbers as people write them: parsing, formatting, rounding, display."""

from __future__ import annotations

import pytest

from pytest_actbudget.budgets.units import (
    budget_value,
    format_percent,
    format_quantity,
    human,
    parse_percent,
    parse_quantity,
)

COUNT_HOW = "use a plain number or one with a suffix K, M, G, T (e.g. 130M)"
BYTES_HOW = (
    "use a plain number of bytes or one with a suffix K, M, G, T, KB, MB, GB, TB (x1000) "
    "or KiB, MiB, GiB, TiB (x1024) (e.g. 64MiB)"
)
SHARE_HOW = "use a percentage (e.g. 15%) or a fraction between 0 and 1 (e.g. 0.15)"


@pytest.mark.parametrize(
    ("value", "metric", "expected"),
    [
        (1500000, "flops", 1_500_000),
        ("1_500_000", "flops", 1_500_000),
        (2.5, "params", 2.5),
        ("130M", "flops", 130 * 10**6),
        ("1.5G", "flops", 1_500_000_000),  # 1.5 x 10^9
        ("9.41K", "activations", 9410),  # 9.41 x 1000, exact through Decimal
        ("2T", "flops", 2 * 10**12),
        ("600K", "params", 600_000),
        ("1e3", "flops", 1000),  # YAML 1.1 reads 1e3 as a string: accepted here
        (" 12 M ", "flops", 12_000_000),
        ("64MiB", "act_bytes", 64 * 2**20),  # 67,108,864
        ("1.5KiB", "saved_bytes", 1536),  # 1.5 x 1024
        ("3GB", "act_bytes", 3 * 10**9),
        ("2TiB", "act_bytes", 2 * 2**40),
        ("10M", "act_bytes", 10**7),  # plain SI suffixes are x1000 for bytes too
        ("512B", "act_bytes", 512),
        (4096, "act_bytes", 4096),
        ("15%", "flops_share", 0.15),
        ("15.5%", "act_share", 0.155),
        ("100%", "act_share", 1.0),
        (0.15, "flops_share", 0.15),
        (1, "flops_share", 1.0),
        ("0", "flops", 0),
        (0, "act_share", 0),
    ],
)
def test_parse_quantity(value: object, metric: str, expected: float) -> None:
    assert parse_quantity(value, metric) == expected


@pytest.mark.parametrize(
    ("value", "metric", "message"),
    [
        ("12X", "flops", f"'12X' is not a number; {COUNT_HOW}"),
        ("64MiB", "flops", f"'64MiB' is not a number; {COUNT_HOW}"),
        ("12k", "flops", "'12k' is not a number; the suffixes are upper case: use 12K"),
        ("", "flops", f"'' is not a number; {COUNT_HOW}"),
        ("15%", "act_bytes", f"'15%' is not a byte size; {BYTES_HOW}"),
        ("64Mib", "act_bytes", f"'64Mib' is not a byte size; {BYTES_HOW}"),
        (-1, "flops", "-1 is negative; a budget is a maximum of 0 or more"),
        ("-5M", "flops", "'-5M' is negative; a budget is a maximum of 0 or more"),
        (float("nan"), "flops", f"nan is not a finite number; {COUNT_HOW}"),
        (float("inf"), "params", f"inf is not a finite number; {COUNT_HOW}"),
        ("1e400", "flops", f"'1e400' is too large; {COUNT_HOW}"),
        (10**400, "flops", f"{10**400} is too large; {COUNT_HOW}"),
        (True, "flops", f"True is not a number; {COUNT_HOW}"),
        (None, "flops", f"an empty value is not a number; {COUNT_HOW}"),
        ([1], "flops", f"a list is not a number; {COUNT_HOW}"),
        ("150%", "flops_share", f"'150%' is more than 100%; {SHARE_HOW}"),
        (1.5, "flops_share", f"1.5 is more than 1 (100%); {SHARE_HOW}"),
        ("15", "act_share", f"'15' is more than 1 (100%); {SHARE_HOW}"),
        ("1M", "flops_share", f"'1M' is not a share; {SHARE_HOW}"),
    ],
)
def test_parse_quantity_refuses(value: object, metric: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_quantity(value, metric)
    assert str(raised.value) == message


def test_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric 'flop'; known metrics: flops, "):
        parse_quantity(1, "flop")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10%", 0.1), ("25 %", 0.25), (0.1, 0.1), ("0.1", 0.1), (0, 0.0), ("150%", 1.5), (1, 1.0)],
)
def test_parse_percent(value: object, expected: float) -> None:
    assert parse_percent(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10", "10 is ambiguous as a percentage; write 10% or a fraction (e.g. 0.1)"),
        (10, "10 is ambiguous as a percentage; write 10% or a fraction (e.g. 0.1)"),
        ("ten", "'ten' is not a percentage; use a percentage (e.g. 10%) or a fraction (e.g. 0.1)"),
        ("-10%", "'-10%' is negative; a budget is a maximum of 0 or more"),
        ("10M", "'10M' is not a percentage; use a percentage (e.g. 10%) or a fraction (e.g. 0.1)"),
    ],
)
def test_parse_percent_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_percent(value)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("value", "metric", "text"),
    [
        (520_000_000, "flops", "520M"),
        (1_200_000_000, "flops", "1.2G"),
        (9410, "activations", "9.41K"),
        (0, "flops", "0"),
        (960, "params", "960"),
        (1_234_567, "flops", "1.234567M"),  # exact, never rounded: it must parse back
        (64 * 2**20, "act_bytes", "64MiB"),
        (73_819_750.4, "act_bytes", "70.4MiB"),  # 70.4 x 1,048,576
        (1000, "act_bytes", "1000"),  # below 1 KiB: the exact integer
        (3 * 10**9, "act_bytes", "3GB"),  # not a short multiple of any binary unit
        (123_456_789_012, "saved_bytes", "123456789012"),  # neither: plain
        (0.165, "flops_share", "16.5%"),
        (1.0, "act_share", "100%"),
        (0, "act_share", "0%"),
    ],
)
def test_format_quantity(value: float, metric: str, text: str) -> None:
    assert format_quantity(value, metric) == text
    assert parse_quantity(text, metric) == value


@pytest.mark.parametrize(
    ("measured", "headroom", "metric", "expected"),
    [
        # 472,130,000 x 1.1 = 519,343,000 -> up to 3 significant digits: 520,000,000
        (472_130_000, 0.1, "flops", 520_000_000),
        # 100 x 1.1 = 110 exactly: already 3 digits, stays 110 (no float fuzz to 111)
        (100, 0.1, "flops", 110),
        # 9,408 x 1.1 = 10,348.8 -> 10,400
        (9408, 0.1, "params", 10_400),
        # 7 x 1.25 = 8.75 -> 3 digits is 8.75, then a whole count: 9
        (7, 0.25, "activations", 9),
        (0, 0.1, "flops", 0),
        # 64 MiB x 1.1 = 70.4 MiB exactly -> 70.4 x 1,048,576 = 73,819,750.4
        (64 * 2**20, 0.1, "act_bytes", 73_819_750.4),
        # 1,000,000 B x 1.1 = 1,100,000 B = 1.049... MiB -> 1.05 MiB = 1,101,004.8 B
        (1_000_000, 0.1, "act_bytes", 1.05 * 2**20),
        # 900 B x 1.1 = 990 B: below 1 KiB, whole bytes
        (900, 0.1, "saved_bytes", 990),
        # 0.15 x 1.1 = 0.165 -> 16.5%
        (0.15, 0.1, "flops_share", 0.165),
        # 0.2941 x 1.1 = 0.32351 -> up to 0.1 point: 32.4%
        (0.2941, 0.1, "act_share", 0.324),
        # 0.95 x 1.1 = 1.045 -> capped at 100%
        (0.95, 0.1, "flops_share", 1.0),
    ],
)
def test_budget_value(measured: float, headroom: float, metric: str, expected: float) -> None:
    assert budget_value(measured, headroom, metric) == expected


@pytest.mark.parametrize(
    ("value", "metric", "text"),
    [
        (472_100_000, "flops", "472.1M"),
        (130e6, "flops", "130.0M"),
        (960, "flops", "960"),
        (999_960, "flops", "1.0M"),  # rounds to 1000.0K, so shown in the next unit
        (2.5e12, "flops", "2.5T"),
        (0.294, "flops_share", "29.4%"),
        (1.2 * 2**20, "act_bytes", "1.2MiB"),
        (512, "act_bytes", "512B"),
        (0, "params", "0"),
    ],
)
def test_human(value: float, metric: str, text: str) -> None:
    assert human(value, metric) == text


def test_format_percent() -> None:
    assert format_percent(0.1) == "10%"
    assert format_percent(0.125) == "12.5%"
    assert parse_percent(format_percent(0.125)) == 0.125
