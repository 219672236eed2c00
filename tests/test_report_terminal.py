"""The ``act budget summary`` terminal section (hand-built results, no torch).

Numbers are those of tests/test_report_samples.py (a resnet18-style stem on 64x3x28x28).
"""

from __future__ import annotations

import dataclasses
import re

import pytest
from test_report_samples import make_result, sample_results

from pytest_actbudget.report.format import bar, headline, use_text
from pytest_actbudget.report.terminal import render

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_violations_come_first_then_the_callers_order() -> None:
    text = render(sample_results())
    headers = [line.split("  ")[0] for line in text.splitlines() if line and line[0] != " "]
    # sample_results() lists stem-ok first; over budget, error and no budget go before it.
    assert headers == [
        "4 entries checked: 1 over budget, 1 error, 1 without budget",
        "stem-over",
        "broken",
        "unlisted",
        "stem-ok",
    ]


def test_an_entry_over_budget_reads_header_violation_groups_and_total() -> None:
    text = render([make_result("stem-over", stem_budget=100e6)])
    # stem = conv + bn: flops 118,013,952 + 802,816 = 118,816,768 -> 118.8M, which is
    # 1.188 x the 100M budget: +18.8%, use 119%. Share: 118,816,768 / 118,857,728 = 99.97%
    # -> 100.0% and a full bar. activations 802,816 -> 802.8K; params 9,408 + 128 = 9,536
    # -> 9.5K; act_bytes 2 x 3,211,264 = 6,422,528 = 6.125 MiB -> 6.1MiB.
    # head: 40,960 flops (0.03% -> 0.0%), 640 activations, 650 params of a 1000 budget: 65%.
    # (other): pool + flatten, 2 x 16,384 = 32,768 bytes = 32.0KiB, no budget.
    # total: 10,186 params of a 12,000 budget -> 85%; act_bytes 6,457,856 -> 6.2MiB.
    assert text.splitlines() == [
        "1 entry checked: 1 over budget",
        "",
        "stem-over  OVER BUDGET  Sequential(64x3x28x28 float32)  fvcore  budgets.yaml:4",
        "  tests/test_models.py::test_stem",
        # One line per failed entry; the violation table is the test's failure text.
        "  1 budget exceeded, most: stem flops 118.8M > budget 100.0M (+18.8%); the table is "
        "in the test's failure, under FAILURES",
        "  group       flops   share             activations    params  act_bytes    use",
        "  stem       118.8M  100.0% ██████████       802.8K      9.5K     6.1MiB   119% !",
        "  head        41.0K    0.0%                     640       650     2.5KiB    65%",
        "  (other)         0    0.0%                       0         0    32.0KiB      -",
        "  total      118.9M  100.0% ██████████       803.5K     10.2K     6.2MiB    85%",
        "  uncounted operators: aten::adaptive_avg_pool2d x1, aten::add_ x2",
    ]


def test_error_and_missing_budget_show_their_message() -> None:
    text = render(sample_results())
    assert "broken  ERROR  fvcore\n  tests/test_models.py::test_broken\n" in text
    assert "  cannot measure 'broken': mat1 and mat2 shapes cannot be multiplied\n" in text
    assert "unlisted  NO BUDGET  Sequential(64x3x28x28 float32)  fvcore  budgets.yaml\n" in text
    assert "  no budget 'unlisted' in budgets.yaml; record one with" in text


def test_verbose_adds_the_learn_summary_style_layer_table() -> None:
    result = make_result()
    assert "output shape" not in render([result])
    lines = render([result], verbose=True).splitlines()
    start = lines.index(next(line for line in lines if "output shape" in line))
    assert lines[start - 1] == (
        "  a container's numbers include its descendants; the leaf rows add up to the total"
    )
    # Root first, then modules in forward order, paths indented by depth (all depth 1 here).
    # conv: 3*64*7*7 = 9,408 params, 118,013,952 flops -> 118.0M, 802,816 activations.
    # Trainable is a count on every row. Footer: params 9,408 + 128 + 650 = 10,186, all
    # trainable; flops 118,857,728; activations 803,456; act_bytes 6,457,856 B = 6.2MiB.
    assert lines[start:] == [
        "  module  type               output shape       params  trainable   flops"
        "  activations  group",
        "  (root)  Sequential         64 x 10            10,186     10,186  118.9M       803.5K",
        "  0       Conv2d             64 x 64 x 14 x 14   9,408      9,408  118.0M       802.8K"
        "  stem",
        "  1       BatchNorm2d        64 x 64 x 14 x 14     128        128  802.8K            0"
        "  stem",
        "  2       AdaptiveAvgPool2d  64 x 64 x 1 x 1         0          0       0            0"
        "  (other)",
        "  3       Flatten            64 x 64                 0          0       0            0"
        "  (other)",
        "  4       Linear             64 x 10               650        650   41.0K          640"
        "  head",
        "  total params 10,186  trainable 10,186  non-trainable 0",
        "  total flops 118.9M  activations 803.5K  act_bytes 6.2MiB",
    ]


def test_layer_table_indents_by_depth_and_counts_frozen_params() -> None:
    result = make_result(names=("stem.conv", "stem.bn", "head.pool", "head.flat", "head.fc"))
    profile = result.profile
    assert profile is not None
    layers = list(profile.layers)
    layers[0] = dataclasses.replace(layers[0], trainable=10_186 - 9_408)
    layers[1] = dataclasses.replace(layers[1], trainable=0)  # a frozen conv
    layers[5] = dataclasses.replace(layers[5], calls=0)  # a head that never ran
    result = dataclasses.replace(result, profile=dataclasses.replace(profile, layers=tuple(layers)))
    lines = render([result], verbose=True).splitlines()
    rows = {line.split()[0]: line.split() for line in lines[-8:-2]}
    assert lines[-7].startswith("    stem.conv  Conv2d")
    assert rows["stem.conv"][-5:-3] == ["9,408", "0"]
    assert rows["(root)"][-4:-2] == ["10,186", "778"]
    assert "(not called)" in lines[-3]
    # 10,186 params, 778 trainable, 9,408 frozen.
    assert lines[-2] == "  total params 10,186  trainable 778  non-trainable 9,408"


def test_depth_limits_the_layer_table_and_says_what_it_hides() -> None:
    result = make_result(names=("stem.conv", "stem.bn", "head.pool", "head.flat", "head.fc"))
    # Depth 0 keeps the root only; the five depth-2 modules are counted in the note.
    lines = render([result], verbose=True, depth=0).splitlines()
    start = lines.index(next(line for line in lines if "output shape" in line))
    assert lines[start - 1].endswith("; 5 modules below depth 0 not shown")
    assert [line.split()[0] for line in lines[start + 1 :]] == ["(root)", "total", "total"]


def test_colour_is_off_by_default_and_changes_nothing_but_escape_codes() -> None:
    results = sample_results()
    plain = render(results, verbose=True)
    coloured = render(results, verbose=True, color=True)
    assert "\x1b" not in plain
    assert "\x1b[1;31mOVER BUDGET\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_lines_stay_narrow_with_long_names() -> None:
    long_names = (
        "encoder.layers.11.self_attention.query_key_value",
        "encoder.layers.11.self_attention.dense",
        "encoder.final_layernorm_with_a_long_name",
        "decoder.flatten",
        "decoder.classifier_head_projection",
    )
    result = make_result("a-very-long-entry-name-for-a-transformer", names=long_names)
    long_group = dataclasses.replace(
        result.groups[0],
        stats=dataclasses.replace(result.groups[0].stats, name="g" * 40),
    )
    result = dataclasses.replace(result, groups=(long_group, *result.groups[1:]))
    text = render([result], verbose=True)
    table_start = text.index("  module")
    assert max(len(line) for line in text[:table_start].splitlines()[3:]) <= 100
    # Eight columns: the layer table is wider, but capped (module 28, type 18, group 14).
    assert max(len(line) for line in text[table_start:].splitlines()) <= 125
    assert "  ggggggggggggggggggggggg… " in text  # group names cut at 24 columns
    assert "…ion.query_key_value  Conv2d" in text  # paths keep their informative end


@pytest.mark.parametrize(
    ("fraction", "width", "expected"),
    [
        (0.0, 4, "    "),
        (0.5, 4, "██  "),
        # 0.3125 x 4 cells x 8 eighths = 10 eighths: one full block and a quarter block.
        (0.3125, 4, "█▎  "),
        (1.7, 4, "████"),  # clipped: a share above 100% cannot be drawn wider
        (float("nan"), 4, "    "),
    ],
)
def test_bar_uses_eighth_blocks_in_a_fixed_width(
    fraction: float, width: int, expected: str
) -> None:
    assert bar(fraction, width) == expected


def test_headline_counts_each_outcome() -> None:
    assert headline([]) == "0 entries checked: all within budget"
    assert headline([make_result()]) == "1 entry checked: all within budget"


def test_a_violation_that_rounds_to_its_budget_shows_exact_numbers() -> None:
    # 10,186 params against 10,180 both read 10.2K; exact numbers show why it failed:
    # 10,186 / 10,180 - 1 = 0.06% -> +0.1%.
    text = render([make_result(total_budgets={"params": 10_180})])
    assert "  1 budget exceeded, most: total params 10,186 > budget 10,180 (+0.1%);" in text


@pytest.mark.parametrize(
    ("use", "text"),
    [(None, "-"), (0.934, "93%"), (1.0, "100%"), (1.0017, "100.2%"), (1.188, "119%")],
)
def test_budget_use_never_reads_100_percent_when_over(use: float | None, text: str) -> None:
    assert use_text(use) == text


def test_names_from_user_code_cannot_break_lines_or_drive_the_terminal() -> None:
    from dataclasses import replace

    from test_report_samples import sample_results

    result = replace(sample_results()[0], name="evil\nname\x1b[31m", nodeid="t.py::x\r")
    text = render([result])
    # The newline, carriage return and ESC are shown escaped, on the header's line.
    assert "evil\\nname\\x1b[31m" in text
    assert "t.py::x\\r" in text
    assert "\x1b" not in text and "\r" not in text
