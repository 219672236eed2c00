"""Report files: the extension picks the format; writes create folders and are atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report_samples import sample_results

from pytest_actbudget.report import FORMATS, format_for, html, markdown, render_for, write_report
from pytest_actbudget.report import json as json_report

ENV = {"python": "3.11.7", "torch": "2.13.0", "fvcore": "0.1.5", "pytest_actbudget": "0.1.0"}


@pytest.mark.parametrize(
    ("path", "fmt"),
    [("r.json", ".json"), ("out/r.md", ".md"), ("R.HTML", ".html"), ("a.b/r.html", ".html")],
)
def test_the_extension_picks_the_format(path: str, fmt: str) -> None:
    assert format_for(path) == fmt
    assert fmt in FORMATS


@pytest.mark.parametrize(
    ("path", "shown"), [("report.txt", "'.txt'"), ("report", "no extension"), ("r.yaml", "'.yaml'")]
)
def test_another_extension_names_the_valid_ones(path: str, shown: str) -> None:
    with pytest.raises(ValueError) as caught:
        format_for(path)
    assert str(caught.value) == (
        f"report '{path}': unknown report format ({shown}); the extension picks the format, "
        "one of .html, .json, .md"
    )


def test_render_for_uses_each_renderer() -> None:
    results = sample_results()
    assert render_for("r.json", results, ENV) == json_report.render(results, ENV)
    assert render_for("r.md", results, ENV) == markdown.render(results)
    assert render_for("r.html", results, ENV) == html.render(results)


def test_write_report_creates_folders_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "report.json"
    results = sample_results()
    write_report(path, results, ENV)
    assert json.loads(path.read_text(encoding="utf-8"))["schema"] == 1
    write_report(path, results[:1], ENV)  # replaced as a whole
    assert len(json.loads(path.read_text(encoding="utf-8"))["results"]) == 1
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_an_unknown_extension_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        write_report(tmp_path / "out" / "report.csv", sample_results(), ENV)
    assert not (tmp_path / "out").exists()
