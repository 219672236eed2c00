"""Hostile entry and module names through real runs: into the budgets file (quoted so
that they load back as the same names), the HTML report (escaped: no element, event
handler or link comes from user data; the text reads back as the names), the Markdown
report (escaped, tables intact) and the JSON report (exact).

Model HOSTILE below on 1 x 3 x 8 x 8 (fvcore: one multiply-add = one flop):
Conv2d(3, 4, 3) -> 1 x 4 x 6 x 6: 4 x 6 x 6 x 27 = 3,888; ReLU 0; Conv2d(4, 4, 3) ->
1 x 4 x 4 x 4: 4 x 4 x 4 x 36 = 2,304; Flatten 0; Linear(64, 2): 128; total 6,320.
"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest
import yaml  # noqa: F401

from pytest_actbudget.budgets.schema import load_budgets

# `import yaml` above: pytester drops the modules a test imported when it ends, and
# PyYAML's libyaml binding, imported a second time into one process, composes nodes
# without tags; importing it before any test keeps the first import for the session.

QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

ENTRIES = ["<script>alert(1)</script>", "q\"uo'te", "back\\slash", "new\nline", "Stem→Früh"]
# A "/" is refused by fvcore in module names (see the xfail test below).
MODULES = ["<img src=x onerror=alert(1)>", "q\"uo'te", "back\\slash", "new\nline", "Stem→Früh"]
FLOPS = [3888, 0, 2304, 0, 128]  # per module, module docstring

MODEL = f"""
import torch
from torch import nn

ENTRIES = {ENTRIES!r}
MODULES = {MODULES!r}


def hostile():
    seq = nn.Sequential()
    for name, layer in zip(MODULES, [
        nn.Conv2d(3, 4, 3, bias=False),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, bias=False),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 2),
    ]):
        seq.add_module(name, layer)
    return seq
"""

TESTS = """
import pytest
import torch
from hostile import ENTRIES, hostile


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.act_budget(name)) for name in ENTRIES]
)
def test_hostile(name):
    hostile()(torch.ones(1, 3, 8, 8))
"""


class Page(HTMLParser):
    """Every tag, attribute and piece of text of an HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def markdown_cells(text: str) -> list[str]:
    """Table cells of a Markdown text, with the renderer's escapes undone."""
    cells = []
    for line in text.splitlines():
        if line.startswith("|"):
            assert line.endswith("|"), line  # a name never breaks a table row
            for cell in line[1:-1].split(" | "):
                cells.append(html.unescape(re.sub(r"\\(.)", r"\1", cell.strip())))
    return cells


def test_hostile_names_round_trip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(hostile=MODEL, test_hostile=TESTS)
    budgets = pytester.path / "budgets.yaml"

    recorded = pytester.runpytest_subprocess(*QUIET, "--actbudget-update")
    recorded.assert_outcomes(passed=5)
    loaded = load_budgets(budgets)
    assert list(loaded.models) == ENTRIES  # new entries in test (collection) order
    for entry in loaded.models.values():
        # Automatic groups: one per direct child, named and matched by its path.
        assert [g.name for g in entry.groups] == MODULES
        assert [g.modules for g in entry.groups] == [(m,) for m in MODULES]
        # 3,888 x 1.1 = 4,276.8 -> 4.28K; 2,304 x 1.1 = 2,534.4 -> 2.54K; 128 x 1.1 = 140.8
        # -> 141; 0 stays 0.
        assert [g.limits["flops"] for g in entry.groups] == [4280, 0, 2540, 0, 141]
    # The summary names them escaped: a newline in a name does not split the line.
    recorded.stdout.fnmatch_lines(["*: created entry 'new\\nline' (5 groups)"])

    # Checked against what was recorded, with every report.
    checked = pytester.runpytest_subprocess(
        *QUIET, "--actbudget-report", "r.html", "--actbudget-report", "r.md",
        "--actbudget-report", "r.json",
    )  # fmt: skip
    checked.assert_outcomes(passed=5)

    results = json.loads((pytester.path / "r.json").read_text())["results"]
    assert [r["name"] for r in results] == ENTRIES  # collection order
    for result in results:
        assert [g["name"] for g in result["groups"]] == MODULES
        assert [(layer["path"], layer["flops"]) for layer in result["layers"]] == [
            ("", 6320),
            *zip(MODULES, FLOPS, strict=True),
        ]

    page = Page()
    page.feed((pytester.path / "r.html").read_text(encoding="utf-8"))
    page.close()
    assert not {"script", "img", "iframe", "object", "embed", "base"} & set(page.tags)
    assert not [name for name, _ in page.attrs if name.startswith("on")]
    links = [value for name, value in page.attrs if name in ("href", "src", "action")]
    assert links and all(value is not None and value.startswith("#") for value in links)
    text = set(page.text)
    for name in ENTRIES:
        assert name in text, name
    for name in MODULES:
        assert any(name in piece for piece in text), name

    markdown = (pytester.path / "r.md").read_text(encoding="utf-8")
    assert "<script" not in markdown and "<img" not in markdown
    cells = markdown_cells(markdown)
    for name in ENTRIES + MODULES:
        assert name.replace("\n", " ") in cells, name


def test_automatic_groups_of_glob_like_module_names(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_globs="""
        import pytest
        import torch
        from torch import nn


        @pytest.mark.act_budget("globs")
        def test_globs():
            model = nn.Sequential()
            for name in ("layer[0]", "x*", "x1", "what?"):
                model.add_module(name, nn.Linear(4, 4))
            model(torch.ones(1, 4))
        """
    )
    pytester.runpytest_subprocess(*QUIET, "--actbudget-update").assert_outcomes(passed=1)
    pytester.runpytest_subprocess(*QUIET).assert_outcomes(passed=1)


def test_a_slash_in_a_module_name_is_a_clear_measurement_error() -> None:
    import torch
    from torch import nn

    from pytest_actbudget import MeasurementError, measure

    model = nn.Sequential()
    model.add_module("<script>alert(1)</script>", nn.Linear(4, 4))
    with pytest.raises(MeasurementError) as e:
        measure(model, torch.ones(1, 4))
    assert str(e.value) == (
        "could not measure Sequential: module '<script>alert(1)</script>' has a '/' in its "
        "name, which fvcore's tracer uses to separate module scopes; rename it (e.g. with '_')"
    )
