"""The JSON report: the design's format, valid against schema.json, deterministic,
read back exactly by ``load``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_report_samples import make_result, sample_results

from pytest_actbudget.report.json import SCHEMA_PATH, ReportFileError, environment, load, render

ENV = {"python": "3.11.7", "torch": "2.13.0", "fvcore": "0.1.5", "pytest_actbudget": "0.1.0"}


class SchemaError(Exception):
    """An instance that does not satisfy the schema."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise SchemaError(message)


def validate(instance: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    """The JSON Schema subset schema.json uses: $ref, type, const, enum, minimum,
    properties, required, additionalProperties, items. Raises SchemaError naming where."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        validate(instance, root["$defs"][name], root, where)
        return
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
        }
        require(
            any(checks[t](instance) for t in allowed), f"{where}: {instance!r} is not {allowed}"
        )
    if "const" in schema:
        require(instance == schema["const"], f"{where}: {instance!r} != {schema['const']!r}")
    if "enum" in schema:
        require(instance in schema["enum"], f"{where}: {instance!r} not in {schema['enum']}")
    if "minimum" in schema and isinstance(instance, int | float):
        require(instance >= schema["minimum"], f"{where}: {instance} < {schema['minimum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            require(key in instance, f"{where}: missing required key {key!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in properties:
                validate(value, properties[key], root, f"{where}.{key}")
            elif extra is False:
                raise SchemaError(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                validate(value, extra, root, f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            validate(item, schema["items"], root, f"{where}[{index}]")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def test_report_is_valid_against_the_schema(schema: dict[str, Any]) -> None:
    document = json.loads(render(sample_results(), environment()))
    validate(document, schema, schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"schema": 2}, "$.schema: 2 != 1"),
        ({"results": [{"outcome": "fine"}]}, "$.results[0]: missing required key 'name'"),
        ({"surprise": 1}, "$: unexpected key 'surprise'"),
    ],
)
def test_the_validator_rejects_what_the_schema_forbids(
    schema: dict[str, Any], broken: dict[str, Any], message: str
) -> None:
    # The validator above is hand-written: show it does reject, or the test above proves nothing.
    document = {**json.loads(render([], ENV)), **broken}
    with pytest.raises(SchemaError) as caught:
        validate(document, schema, schema)
    assert str(caught.value) == message


def test_report_has_the_design_fields_with_numbers_as_numbers() -> None:
    document = json.loads(render([make_result()], ENV))
    assert document["schema"] == 1
    assert document["environment"] == dict(sorted(ENV.items()))
    (result,) = document["results"]
    assert result["name"] == "stem-cnn"
    assert result["model"] == "Sequential"
    assert result["inputs"] == [{"shape": [64, 3, 28, 28], "dtype": "float32"}]
    assert result["outcome"] == "passed"
    # Root: conv 118,013,952 + bn 802,816 + linear 40,960 flops (see test_report_samples).
    assert result["total"]["flops"] == 118_857_728
    assert result["total"]["params"] == 10_186
    stem = result["groups"][0]
    assert stem["name"] == "stem"
    assert stem["modules"] == ["0", "1"]
    assert stem["metrics"]["flops"] == 118_816_768  # conv + bn
    assert stem["metrics"]["flops_share"] == pytest.approx(118_816_768 / 118_857_728)
    assert stem["budgets"] == {"flops": 200_000_000}
    assert isinstance(stem["budgets"]["flops"], int)
    conv = result["layers"][1]
    assert conv["path"] == "0"
    assert conv["output_shape"] == [64, 64, 14, 14]
    assert conv["params"] == 9_408
    assert conv["group"] == "stem"
    assert result["layers"][0]["group"] is None  # the root spans every group
    assert result["uncounted_ops"] == {"aten::adaptive_avg_pool2d": 1, "aten::add_": 2}


def test_render_is_deterministic_and_keeps_shapes_on_one_line() -> None:
    first = render(sample_results(), {"torch": "2", "python": "3"})
    assert first == render(sample_results(), {"python": "3", "torch": "2"})
    assert '"output_shape": [64, 64, 14, 14],' in first
    assert first.endswith("}\n")
    assert json.loads(first)["results"][0]["name"] == "stem-ok"  # the caller's order


def test_load_reads_back_what_render_wrote(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    results = sample_results()
    path.write_text(render(results, ENV), encoding="utf-8")
    assert load(path) == results


def test_over_budget_results_round_trip_with_their_violations(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    result = make_result(stem_budget=100e6, total_budgets={"flops": 100e6})
    path.write_text(render([result], ENV), encoding="utf-8")
    (loaded,) = load(path)
    assert loaded == result
    assert [(v.group, v.metric) for v in loaded.violations] == [
        ("stem", "flops"),
        ("total", "flops"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{not json",
            "report.json:1: not JSON (Expecting property name enclosed in double quotes)",
        ),
        ('{"version": 1, "models": {}}', "report.json: not a pytest-actbudget report"),
        ('{"schema": 2, "results": []}', "report.json: report schema 2 is not supported"),
        ('{"schema": 1, "results": [{"name": "x"}]}', "report.json: results[0] ('x') is not"),
    ],
)
def test_load_rejects_what_is_not_a_report(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReportFileError) as caught:
        load(path)
    assert str(caught.value).startswith(str(tmp_path / expected))


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReportFileError, match=r"missing\.json: cannot read the report"):
        load(tmp_path / "missing.json")


def test_environment_and_renderers_do_not_import_torch() -> None:
    code = (
        "import sys, json\n"
        "from pytest_actbudget.report.json import environment\n"
        "from pytest_actbudget.report import diff, html, markdown, terminal\n"
        "print(json.dumps([environment('cuda:0'), 'torch' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    env, torch_imported = json.loads(out)
    assert not torch_imported
    assert list(env) == sorted(env)
    assert set(env) == {"device", "fvcore", "platform", "pytest_actbudget", "python", "torch"}
    assert env["device"] == "cuda:0"
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
