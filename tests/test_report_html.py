"""The HTML report: one self-contained file; charts and escaping checked by parsing it."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

import pytest
from test_report_samples import make_result, sample_results

from pytest_actbudget.report.html import render

HOSTILE = "<script>alert(1)</script> \"quoted\" 'single' & ünïcödé"


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parents: tuple[Element, ...]) -> None:
        self.tag, self.attrs, self.parents = tag, attrs, parents
        self.text = ""

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def within(self, cls: str) -> bool:
        return any(cls in parent.classes for parent in self.parents)


class Collect(HTMLParser):
    """Every element with its attributes, text and ancestors."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, tuple(self.stack))
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.stack[-1].text += data

    def find(self, tag: str, cls: str | None = None) -> list[Element]:
        return [e for e in self.elements if e.tag == tag and (cls is None or cls in e.classes)]


def parse(text: str) -> Collect:
    parser = Collect()
    parser.feed(text)
    parser.close()
    return parser


def sections(doc: Collect) -> dict[str, list[Element]]:
    """Elements per entry section, keyed by the entry's heading text."""
    found: dict[str, list[Element]] = {}
    for section in doc.find("section", "entry"):
        inside = [e for e in doc.elements if section in e.parents]
        heading = next(e for e in inside if e.tag == "h2")
        found[heading.text.strip()] = inside
    return found


def test_the_file_is_self_contained() -> None:
    text = render(sample_results())
    doc = parse(text)
    assert text.startswith("<!DOCTYPE html>")
    assert not doc.find("script") and not doc.find("link") and not doc.find("img")
    # No URL of any kind: nothing to fetch when the file is opened offline.
    assert "http" not in text and "//" not in text.replace("</", "") and "url(" not in text
    assert all(a.attrs["href"].startswith("#") for a in doc.find("a"))
    assert len(doc.find("style")) == 1


def test_violations_come_first_and_link_to_their_entry() -> None:
    doc = parse(render(sample_results()))
    (violations,) = [e for e in doc.find("section") if e.attrs.get("id") == "violations"]
    cells = [e.text for e in doc.elements if e.tag == "td" and violations in e.parents]
    assert cells[:6] == ["", "stem", "flops", "118.8M", "100.0M", "+18.8%"]
    link = next(e for e in doc.find("a") if violations in e.parents)
    assert link.text == "stem-over" and link.attrs["href"] == "#entry-0"
    entries = [e.attrs["id"] for e in doc.find("section", "entry")]
    assert entries == ["entry-0", "entry-1", "entry-2", "entry-3"]


def texts_outside_tooltips(doc: Collect) -> list[str]:
    """Text a reader sees without hovering: everything but ``<title>`` elements."""
    return [e.text for e in doc.elements if e.tag != "title" and e.text.strip()]


def test_group_charts_draw_bars_and_budget_lines() -> None:
    doc = parse(render([make_result("stem-ok", stem_budget=200e6)]))
    flops_chart = [e for e in doc.elements if e.within("group-chart") and e.within("flops")]
    bars = [e for e in flops_chart if e.tag == "rect"]
    assert [b.attrs["data-group"] for b in bars] == ["stem", "head", "(other)"]
    # Labels: the longest group name "(other)" has 7 characters, below the minimum of 8:
    # 8 x 7 px + 12 = 68 px. Scale = max(largest group 118,816,768, stem budget 200M) =
    # 200M over 260 px: stem bar 260 x 118,816,768 / 200M = 154.5 px, its budget line
    # at 68 + 260 = 328.
    assert bars[0].attrs["width"] == "154.5"
    lines = [e for e in flops_chart if e.tag == "line"]
    assert [(e.attrs["data-group"], e.attrs["x1"]) for e in lines] == [("stem", "328.0")]
    assert "over" not in bars[0].classes
    # The measured value and the budget are page text, each named: neither can pass
    # for the other.
    values = [e.text for e in flops_chart if e.tag == "text" and "value" in e.classes]
    assert values[0] == "118.8M · budget 200.0M"
    # head's only budget is on params: no line in the flops or activations chart.
    act_chart = [e for e in doc.elements if e.within("group-chart") and e.within("activations")]
    assert not [e for e in act_chart if e.tag == "line"]


def test_a_group_over_budget_is_drawn_red_with_its_line_inside_the_bar() -> None:
    doc = parse(render([make_result("stem-over", stem_budget=100e6)]))
    flops_chart = [e for e in doc.elements if e.within("group-chart") and e.within("flops")]
    stem_bar = next(e for e in flops_chart if e.tag == "rect")
    assert stem_bar.classes == ["bar", "over"]
    assert stem_bar.attrs["width"] == "260.0"  # the largest value sets the scale
    (line,) = [e for e in flops_chart if e.tag == "line"]
    # 68 + 260 x 100M / 118,816,768 = 68 + 218.82 px
    assert line.attrs["x1"] == "286.8"
    values = [e.text for e in flops_chart if e.tag == "text" and "value" in e.classes]
    # 118,816,768 / 100M - 1 = +18.8%
    assert values[0] == "118.8M · budget 100.0M: +18.8% over"
    titles = [e.text for e in flops_chart if e.tag == "title"]
    assert "stem: budget 100.0M" in titles


def test_a_share_budget_is_written_out_and_drawn_apart_from_the_absolute_one() -> None:
    result = make_result("shared", stem_budget=120e6)
    stem = result.groups[0]
    # A flops_share budget of 99.96%: 0.9996 x total 118,857,728 = 118,810,184.8 flops,
    # 0.13 px from the 120M line, where one line would hide the other.
    budgets = {**stem.budgets, "flops_share": 0.9996}
    shared = dataclasses.replace(result, groups=(dataclasses.replace(stem, budgets=budgets),))
    doc = parse(render([shared]))
    flops_chart = [e for e in doc.elements if e.within("group-chart") and e.within("flops")]
    lines = [e for e in flops_chart if e.tag == "line"]
    assert [e.classes for e in lines] == [["budget"], ["budget", "share"]]
    # The share line is taller than the bar's row of the absolute line: y 2..24 vs 4..22.
    assert [(e.attrs["y1"], e.attrs["y2"]) for e in lines] == [("4", "22"), ("2", "24")]
    values = [e.text for e in flops_chart if e.tag == "text" and "value" in e.classes]
    assert values[0] == "118.8M · budget 120.0M · share budget 100.0% = 118.8M"


def test_budget_use_chart_makes_an_over_budget_group_visible_at_any_scale() -> None:
    # stem 4x bigger (stride 1): 475,267,072 flops against 100M = 475%; head 650 / 1000
    # params = 65%; total 10,186 / 12,000 params = 85%; (other) has no budget.
    doc = parse(render([make_result("stem-over", stem_budget=100e6, stem_scale=4)]))
    rows = [e for e in doc.find("g", "use-row")]
    assert [(r.attrs["data-group"], "over" in r.classes) for r in rows] == [
        ("stem", True),
        ("head", False),
        ("(other)", False),
        ("total", False),
    ]
    values = [e.text for e in doc.find("text", "value") if e.within("use-chart")]
    # 475,267,072 / 100M - 1 = +375.3%
    assert values == [
        "475% of the flops budget: +375.3% over",
        "65% of the params budget",
        "no budget",
        "85% of the params budget",
    ]
    bars = [e for e in doc.find("rect", "bar") if e.within("use-chart")]
    # Scale: the largest use, 4.7527; the stem's bar is the longest (260 px) and red.
    assert bars[0].attrs["width"] == "260.0" and "over" in bars[0].classes


def test_groups_table_writes_budgets_and_overshoot_as_page_text() -> None:
    doc = parse(render([make_result("stem-over", stem_budget=100e6)]))
    rows = [e for e in doc.find("tr") if e.within("groups")]
    assert [r.attrs.get("data-group") for r in rows] == [None, "stem", "head", "(other)", "total"]
    assert [r.attrs["data-group"] for r in doc.find("tr", "over")] == ["stem"]
    (cell,) = [e for e in doc.find("td", "over") if "data-metric" in e.attrs]
    assert cell.attrs["data-metric"] == "flops" and cell.text == "118.8M"
    shown = texts_outside_tooltips(doc)
    # 118,816,768 / 100M - 1 = +18.8%
    assert "budget 100.0M" in shown and "+18.8% over" in shown
    # head's params budget 1000 and the total's 12,000 params are written too.
    assert "budget 1.0K" in shown and "budget 12.0K" in shown


def test_layer_chart_bands_and_colours_layers_by_group() -> None:
    doc = parse(render([make_result()]))
    rows = doc.find("g", "layer-row")
    # pool "2" and flatten "3" have no flops, activations or params: folded, not drawn.
    assert [(r.attrs["data-layer"], r.attrs["data-group"]) for r in rows] == [
        ("0", "stem"),
        ("1", "stem"),
        ("4", "head"),
    ]
    bands = [e.attrs["data-group"] for e in doc.find("g", "band")]
    assert bands == ["stem", "head"]
    names = [e.text for e in doc.find("text", "band-name")]
    assert names == ["group stem", "group head"]
    legend = [e.attrs["data-group"] for e in doc.find("li") if e.within("legend-keys")]
    assert legend == ["stem", "head", "(other)"]
    # One colour per group, the same in the legend, the band and the bars.
    colour = {e.parents[-1].attrs["data-group"]: e.classes[1] for e in doc.find("rect", "band")}
    assert colour == {"stem": "g0", "head": "g1"}
    fc_bars = [e for e in doc.find("rect", "bar") if e.attrs.get("data-layer") == "4"]
    assert {e.classes[2] for e in fc_bars} == {"g1"}
    swatches = [e.classes[1] for e in doc.find("span", "swatch")]
    assert swatches == ["g0", "g1", "gother"]


def test_layer_chart_bars_are_scaled_per_column() -> None:
    doc = parse(render([make_result()]))
    rects = [e for e in doc.find("rect", "bar") if e.within("layer-chart")]
    conv = {r.classes[1]: r.attrs["width"] for r in rects if r.attrs["data-layer"] == "0"}
    # The conv is the largest layer in flops and activations (full 130 px bars); its
    # 9,408 params against the largest, its own: full too.
    assert conv == {"flops": "130.0", "activations": "130.0", "params": "130.0"}
    fc = {r.classes[1]: r.attrs["width"] for r in rects if r.attrs["data-layer"] == "4"}
    # fc: 650 / 9,408 params x 130 px = 8.98 px; 40,960 / 118,013,952 flops x 130 =
    # 0.05 px; 640 / 802,816 activations x 130 = 0.10 px.
    assert fc == {"flops": "0.0", "activations": "0.1", "params": "9.0"}


def test_layers_with_nothing_measured_are_folded_with_their_count() -> None:
    doc = parse(render([make_result()]))
    (folded,) = doc.find("details", "zero-layers")
    summary = next(e for e in doc.find("summary") if folded in e.parents)
    assert summary.text.startswith("2 layers with nothing measured")
    assert "open" not in folded.attrs
    listed = [e.attrs["data-layer"] for e in doc.find("code") if folded in e.parents]
    assert listed == ["2", "3"]


def test_full_module_paths_are_shown_whole() -> None:
    long = "features.stage3.block12.depthwise_separable.pointwise_conv"
    doc = parse(render([make_result(names=(long, "stem.bn", "pool", "flat", "fc"))]))
    labels = [e.text for e in doc.find("text", "path")]
    assert f"{long}  Conv2d" in labels
    # The label column fits it: 58 + 2 + 6 characters x 7 px + 12 = 474 px.
    first_bar = next(e for e in doc.find("rect", "bar") if e.within("layer-chart"))
    assert first_bar.attrs["x"] == "474"


def test_every_user_string_is_escaped() -> None:
    result = make_result(
        HOSTILE,
        stem_budget=100e6,
        nodeid=f"tests/test_x.py::test[{HOSTILE}]",
        names=(f"stem.{HOSTILE}", "stem.bn", "pool", "flat", "fc"),
        model="Net<i>",
    )
    text = render([result])
    assert "<script>" not in text and "<i>" not in text
    doc = parse(text)
    assert not doc.find("script") and not doc.find("i")
    (inside,) = sections(doc).values()
    heading = next(e for e in inside if e.tag == "h2")
    assert heading.text.strip() == HOSTILE  # shown as text, exactly
    layer_titles = [e.text for e in doc.find("title") if e.within("layer-chart")]
    assert f"stem.{HOSTILE}: 118.0M flops" in layer_titles
    data = {e.attrs.get("data-layer") for e in doc.elements}
    assert f"stem.{HOSTILE}" in data  # attribute values survive quotes intact
    assert any(e.text == f"tests/test_x.py::test[{HOSTILE}]" for e in doc.find("code"))


@pytest.mark.parametrize("index", [2, 3])
def test_entries_without_groups_have_no_group_chart(index: int) -> None:
    # broken (no profile) and unlisted (no groups): nothing to chart per group.
    result = sample_results()[index]
    doc = parse(render([result]))
    assert not doc.find("figure", "group-chart")


def test_the_entries_index_links_every_entry_with_its_outcome() -> None:
    doc = parse(render(sample_results()))
    (index,) = [e for e in doc.find("section") if e.attrs.get("id") == "entries"]
    links = [(a.text, a.attrs["href"]) for a in doc.find("a") if index in a.parents]
    assert links == [
        ("stem-over", "#entry-0"),
        ("broken", "#entry-1"),
        ("unlisted", "#entry-2"),
        ("stem-ok", "#entry-3"),
    ]
    outcomes = [e.text for e in doc.find("span", "outcome") if index in e.parents]
    assert outcomes == ["OVER BUDGET", "ERROR", "NO BUDGET", "passed"]
    cells = [e.text for e in doc.find("td") if index in e.parents]
    # stem-ok: total 118,857,728 flops, 803,456 activations, 10,186 params; its largest
    # budget use is the total's 10,186 / 12,000 params = 85%.
    assert cells[-6:] == ["", "", "118.9M", "803.5K", "10.2K", "85%"]
