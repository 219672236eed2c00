"""The HTML report: one self-contained file; charts and escaping checked by parsing it."""

from __future__ import annotations

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


def test_group_charts_draw_bars_and_budget_lines() -> None:
    doc = parse(render([make_result("stem-ok", stem_budget=200e6)]))
    flops_chart = [e for e in doc.elements if e.within("group-chart") and e.within("flops")]
    bars = [e for e in flops_chart if e.tag == "rect"]
    assert [b.attrs["data-group"] for b in bars] == ["stem", "head", "(other)"]
    # Scale = max(largest group 118,816,768, stem budget 200M) = 200M over 250 px from
    # x = 150: stem bar 250 x 118,816,768 / 200M = 148.5 px, its budget line at 150 + 250.
    assert bars[0].attrs["width"] == "148.5"
    lines = [e for e in flops_chart if e.tag == "line"]
    assert [(e.attrs["data-group"], e.attrs["x1"]) for e in lines] == [("stem", "400.0")]
    assert "over" not in bars[0].classes
    # head's only budget is on params: no line in the flops or activations chart.
    act_chart = [e for e in doc.elements if e.within("group-chart") and e.within("activations")]
    assert not [e for e in act_chart if e.tag == "line"]


def test_a_group_over_budget_is_drawn_red_with_its_line_inside_the_bar() -> None:
    doc = parse(render([make_result("stem-over", stem_budget=100e6)]))
    flops_chart = [e for e in doc.elements if e.within("group-chart") and e.within("flops")]
    stem_bar = next(e for e in flops_chart if e.tag == "rect")
    assert stem_bar.classes == ["bar", "over"]
    assert stem_bar.attrs["width"] == "250.0"  # the largest value sets the scale
    (line,) = [e for e in flops_chart if e.tag == "line"]
    # 150 + 250 x 100M / 118,816,768 = 150 + 210.41 px
    assert line.attrs["x1"] == "360.4"
    titles = [e.text for e in flops_chart if e.tag == "title"]
    assert "stem: budget 100.0M" in titles


def test_layer_chart_has_leaf_modules_in_forward_order_with_three_bars() -> None:
    doc = parse(render([make_result()]))
    rects = [e for e in doc.elements if e.tag == "rect" and e.within("layer-chart")]
    order = list(dict.fromkeys(r.attrs["data-layer"] for r in rects))
    assert order == ["0", "1", "2", "3", "4"]  # the root is a container: not a bar
    conv = {r.classes[1]: r.attrs["width"] for r in rects if r.attrs["data-layer"] == "0"}
    # The conv is the largest layer in flops and activations (full 110 px bars); its
    # 9,408 params against the largest, its own: full too.
    assert conv == {"flops": "110.0", "activations": "110.0", "params": "110.0"}
    fc = {r.classes[1]: r.attrs["width"] for r in rects if r.attrs["data-layer"] == "4"}
    # fc: 650 / 9,408 params x 110 px = 7.6 px; 40,960 / 118,013,952 flops x 110 = 0.0 px.
    assert fc == {"flops": "0.0", "activations": "0.1", "params": "7.6"}


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
