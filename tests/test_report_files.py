"""Report files: a prefix or the extension picks the format; writes create folders and
are atomic; Markdown for $GITHUB_STEP_SUMMARY is appended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report_samples import sample_results

from pytest_actbudget.report import (
    FORMATS,
    format_for,
    html,
    markdown,
    render_for,
    target,
    write_report,
)
from pytest_actbudget.report import json as json_report

ENV = {"python": "3.11.7", "torch": "2.13.0", "fvcore": "0.1.5", "pytest_actbudget": "0.1.0"}


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("r.json", ".json"),
        ("out/r.md", ".md"),
        ("R.HTML", ".html"),
        ("a.b/r.html", ".html"),
        ("r.htm", ".html"),
        ("r.HTM", ".html"),
    ],
)
def test_the_extension_picks_the_format(path: str, fmt: str) -> None:
    assert format_for(path) == fmt
    assert fmt in FORMATS


@pytest.mark.parametrize(
    ("spec", "fmt", "path"),
    [
        ("md:summary", ".md", "summary"),
        ("MD:out/r.txt", ".md", "out/r.txt"),
        ("json:r.html", ".json", "r.html"),
        ("html:/tmp/page", ".html", "/tmp/page"),
    ],
)
def test_a_prefix_names_the_format_whatever_the_extension(spec: str, fmt: str, path: str) -> None:
    report = target(spec)
    assert (report.format, str(report.path)) == (fmt, path)
    # A relative path is taken from the base; an absolute one stays.
    assert target(spec, Path("/base")).path == Path("/base") / path


def test_the_step_summary_file_is_markdown_and_appended_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step_summary_1a2b"  # GitHub's name: no extension
    summary.write_text("## tests\n\n42 passed\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report = target(str(summary))
    assert report.format == ".md" and report.appends
    assert target(f"md:{summary}").appends
    results = sample_results()
    write_report(report, results, ENV)
    write_report(f"md:{summary}", results[:1], ENV)
    text = summary.read_text(encoding="utf-8")
    # What earlier steps wrote stays; each report follows after a blank line.
    assert text == (
        "## tests\n\n42 passed\n\n"
        + markdown.render(results)
        + "\n"
        + markdown.render(results[:1])
    )
    # Any other Markdown file is replaced as a whole.
    other = tmp_path / "r.md"
    assert not target(other).appends
    write_report(other, results, ENV)
    write_report(other, results, ENV)
    assert other.read_text(encoding="utf-8") == markdown.render(results)


@pytest.mark.parametrize(
    ("path", "shown"), [("report.txt", "'.txt'"), ("report", "no extension"), ("r.yaml", "'.yaml'")]
)
def test_another_extension_names_the_valid_ones(path: str, shown: str) -> None:
    with pytest.raises(ValueError) as caught:
        format_for(path)
    assert str(caught.value) == (
        f"report '{path}': unknown report format ({shown}); the extension picks the format, "
        "one of .htm, .html, .json, .md, or a prefix names it: md:PATH, json:PATH, html:PATH"
    )


def test_a_prefix_without_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="report 'md:': no path after the format prefix"):
        target("md:")


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
