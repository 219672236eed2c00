"""Training-step metrics in the pure stages (issue 13): the budgets file's
``training:``, grouping, checks and every renderer, on a hand-built Profile (no torch)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from profiles import toy_profile
from test_report_json import ENV, validate

from pytest_actbudget.budgets.schema import parse_budgets
from pytest_actbudget.budgets.write import MeasuredEntry, update_budgets
from pytest_actbudget.checks import evaluate
from pytest_actbudget.errors import BudgetFileError
from pytest_actbudget.report import diff, html, markdown, terminal
from pytest_actbudget.report.baseline import Baseline
from pytest_actbudget.report.json import SCHEMA_PATH, render
from pytest_actbudget.report.style import Palette
from pytest_actbudget.results import BudgetResult, Profile
from pytest_actbudget.training import TrainingSpec

# The toy profile of tests/profiles.py with a training step under sgd, by hand:
#   backward: "0.0" the first conv, weight gradient only = its forward 100; "0.1" 0;
#     "1.0" and "1.1" both gradients, 2 x 50 and 2 x 30; "2" 2 x 5; the root's own
#     residual add nothing: stem 100, body 160, head 10, root 270.
#   train_bytes: float32 params and their gradients, 8 bytes per parameter, nothing
#     saved: "0.0" 2,400, "0.1" 160 (stem 2,560), "1.0" 8,000, "1.1" 16,000
#     (body 24,000), "2" 4,000, root 30,560.
BACKWARD = {"": 270, "0": 100, "0.0": 100, "0.1": 0, "1": 160, "1.0": 100, "1.1": 60, "2": 10}

BUDGETS = """version: 1
models:
  toy:
    training: true
    groups:
      stem: {modules: ["0"], backward_flops: 90}
      body: {modules: ["1"], train_bytes: 30KiB}
      head: {modules: ["2"]}
    total: {train_flops: 1K}
"""


def training_profile() -> Profile:
    profile = toy_profile()
    layers = tuple(
        dataclasses.replace(
            layer, backward_flops=BACKWARD[layer.path], train_bytes=layer.params * 8
        )
        for layer in profile.layers
    )
    return dataclasses.replace(profile, layers=layers, training=TrainingSpec())


def checked() -> BudgetResult:
    entry = parse_budgets(BUDGETS, "budgets.yaml").models["toy"]
    return evaluate(training_profile(), entry, nodeid="t.py::test", budget_file="budgets.yaml")


def test_groups_sum_training_metrics_and_check_them() -> None:
    result = checked()
    stats = {group.name: group.stats for group in result.groups}
    assert stats["stem"].backward_flops == 100
    assert stats["stem"].train_flops == 110 + 100
    assert stats["body"].train_bytes == 24_000
    # (other): the root's residual add, 5 flops and no backward
    assert (stats["(other)"].train_flops, stats["(other)"].train_bytes) == (5, 0)
    assert result.total is not None and result.total.stats.train_flops == 200 + 270
    # stem backward_flops 100 > 90: +11.1%
    assert [(v.group, v.metric, v.measured, v.budget) for v in result.violations] == [
        ("stem", "backward_flops", 100, 90)
    ]
    assert result.message.splitlines()[2] == "  stem   backward_flops  100       90      +11.1%"


def test_terminal_training_block() -> None:
    # use: stem 100/90 = 111%; body 24,000 / 30,720 = 78%; total 470 / 1,000 = 47%
    assert terminal.training_lines(checked(), Palette(False)) == [
        "  training step (optimizer sgd, grads as params, state float32)",
        "  group    flops  backward_flops  train_flops  train_bytes   use",
        "  stem       110             100          210       2.5KiB  111% !",
        "  body        80             160          240      23.4KiB   78%",
        "  head         5              10           15       3.9KiB     -",
        "  (other)      5               0            5           0B     -",
        "  total      200             270          470      29.8KiB   47%",
    ]


def test_no_training_block_without_a_training_step() -> None:
    entry = parse_budgets(
        BUDGETS.replace("    training: true\n", "")
        .replace(", backward_flops: 90", "")
        .replace(", train_bytes: 30KiB", "")
        .replace("    total: {train_flops: 1K}\n", ""),
        "b.yaml",
    ).models["toy"]
    result = evaluate(toy_profile(), entry, nodeid="", budget_file="b.yaml")
    assert terminal.training_lines(result, Palette(False)) == []
    assert "training step" not in terminal.render([result])
    assert "backward_flops" not in json.dumps(result.to_dict())


def test_verbose_layer_table_has_a_backward_column() -> None:
    lines = terminal.layer_lines(checked(), Palette(False))
    assert lines[1].split() == [
        "module",
        "type",
        "output",
        "shape",
        "params",
        "trainable",
        "flops",
        "activations",
        "backward_flops",
        "group",
    ]
    conv = next(line for line in lines if line.strip().startswith("0.0"))
    assert conv.split()[-2:] == ["100", "stem"]
    assert lines[-1].split() == [
        "training",
        "step",
        "backward_flops",
        "270",
        "train_flops",
        "470",
        "train_bytes",
        "29.8KiB",
    ]


def test_json_report_with_training_is_valid_and_round_trips() -> None:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    result = checked()
    document = json.loads(render([result], ENV))
    validate(document, schema, schema)
    (data,) = document["results"]
    assert data["training"] == {"optimizer": "sgd", "grad_dtype": None, "state_dtype": "float32"}
    assert data["total"]["backward_flops"] == 270
    assert data["total"]["train_bytes"] == 30_560
    stem = data["groups"][0]
    assert stem["metrics"]["train_flops"] == 210
    assert stem["violations"] == [{"metric": "backward_flops", "measured": 100, "budget": 90}]
    assert data["layers"][2]["backward_flops"] == 100  # "0.0"
    assert BudgetResult.from_dict(data) == result


def test_markdown_and_html_show_backward_beside_forward() -> None:
    result = checked()
    md = markdown.render([result])
    assert "Training step (optimizer sgd, grads as params, state float32):" in md
    assert "| group | flops | backward_flops | train_flops | train_bytes | use |" in md
    assert "| stem | 110 | 100 | 210 | 2.5KiB | **111%** ❌ |" in md
    page = html.render([result])
    assert '<table class="training">' in page
    assert '<tr class="over"><td>stem</td><td class="num">110</td><td class="num">100</td>' in page


@pytest.mark.parametrize(
    ("training", "spec"),
    [
        ("true", TrainingSpec("adam")),  # defaults.training below
        ("yes", TrainingSpec("adam")),
        ("{grad_dtype: bfloat16}", TrainingSpec("adam", grad_dtype="bfloat16")),
        (
            "{optimizer: sgd_momentum, state_dtype: bfloat16}",
            TrainingSpec("sgd_momentum", None, "bfloat16"),
        ),
        ("false", None),
    ],
)
def test_entry_training_over_file_defaults(training: str, spec: TrainingSpec | None) -> None:
    text = (
        "version: 1\ndefaults:\n  training: {optimizer: adam}\n"
        f"models:\n  a:\n    training: {training}\n"
    )
    loaded = parse_budgets(text, "b.yaml")
    assert loaded.models["a"].training == spec
    assert loaded.training == TrainingSpec("adam")
    # an entry without training: costs a step only when the check asks for one
    assert loaded.training_for(None, asked=False) is None
    assert loaded.training_for(None, asked=True) == TrainingSpec("adam")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models:\n  a:\n    groups:\n      g: {modules: ['0'], backward_flops: 1M}\n",
            "b.yaml:5: models.a.groups.g.backward_flops: 'backward_flops' is a training-step "
            "budget, and this entry measures no training step; add `training: true` (or a "
            "mapping like {optimizer: adam, grad_dtype: bfloat16, state_dtype: float32}) to "
            "the entry, or remove the budget",
        ),
        (
            "models:\n  a:\n    training: 1\n",
            "b.yaml:4: models.a.training: expected true, false or a mapping like {optimizer: "
            "adam, grad_dtype: bfloat16, state_dtype: float32}, got 1",
        ),
        (
            "models:\n  a:\n    training: {optimizer: adagrad}\n",
            "b.yaml:4: models.a.training.optimizer: 'adagrad' is not a valid optimizer; use "
            "one of: sgd, sgd_momentum, adam, adamw",
        ),
        (
            "models:\n  a:\n    training: {optimiser: adam}\n",
            "b.yaml:4: models.a.training.optimiser: unknown key 'optimiser'; did you mean "
            "'optimizer'?",
        ),
        (
            "defaults:\n  training: {grad_dtype: float33}\n",
            "b.yaml:3: defaults.training.grad_dtype: 'float33' is not a valid dtype; use one "
            "of: float64, float32, float16, bfloat16, float8_e4m3fn, float8_e5m2",
        ),
        (
            "defaults:\n  training: true\n",
            "b.yaml:3: defaults.training: expected a mapping like {optimizer: adam, "
            "grad_dtype: bfloat16, state_dtype: float32}, got 'true'; an entry turns its "
            "training step on with `training: true`",
        ),
        (
            "models:\n  a:\n    training: true\n    total: {train_bytes: 3 apples}\n",
            "b.yaml:5: models.a.total.train_bytes: '3 apples' is not a byte size; use a plain "
            "number of bytes or one with a suffix K, M, G, T, KB, MB, GB, TB (x1000) or KiB, "
            "MiB, GiB, TiB (x1024) (e.g. 64MiB)",
        ),
    ],
)
def test_bad_training_keys(text: str, message: str) -> None:
    with pytest.raises(BudgetFileError) as caught:
        parse_budgets("version: 1\n" + text, "b.yaml")
    assert str(caught.value) == message


def test_diff_and_baseline_compare_training_metrics_where_both_sides_have_them() -> None:
    old = checked()
    # The new run: "1.0"'s backward 100 -> 200 (say its input now needs a gradient), so
    # body 160 -> 260 (+62.5%) and its train_flops 80 + 160 = 240 -> 340 (+41.7%); the
    # root 270 -> 370 (+37.0%), train_flops 470 -> 570 (+21.3%). Forward unchanged.
    backward = {**BACKWARD, "": 370, "1": 260, "1.0": 200}
    profile = training_profile()
    layers = tuple(
        dataclasses.replace(layer, backward_flops=backward[layer.path]) for layer in profile.layers
    )
    entry = parse_budgets(BUDGETS, "budgets.yaml").models["toy"]
    new = evaluate(
        dataclasses.replace(profile, layers=layers), entry, nodeid="t.py::test", budget_file="b"
    )
    (diffed,) = diff.compare([old], [new]).entries
    assert [(c.group, c.metric, c.old, c.new) for c in diffed.changes] == [
        ("body", "backward_flops", 160, 260),
        ("body", "train_flops", 240, 340),
        ("total", "backward_flops", 270, 370),
        ("total", "train_flops", 470, 570),
    ]
    assert "  body             backward_flops" in diff.render(diff.compare([old], [new]))
    against = Baseline("main.json", (old,)).entry(new)
    body = against.group_dict("body")
    assert body is not None and body["change"]["backward_flops"] == pytest.approx(0.625)
    assert body["metrics"]["train_bytes"] == 24_000
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    document = json.loads(render([new], ENV, Baseline("main.json", (old,)).compare([new])))
    validate(document, schema, schema)

    # A baseline measured without a training step: only the forward metrics compare
    # (they are the same), the training metrics have nothing to compare with.
    groups = '{stem: {modules: ["0"]}, body: {modules: ["1"]}, head: {modules: ["2"]}}'
    plain = parse_budgets(f"version: 1\nmodels:\n  toy:\n    groups: {groups}\n", "b")
    forward_only = evaluate(
        toy_profile(), plain.models["toy"], nodeid="t.py::test", budget_file="b"
    )
    assert diff.compare([forward_only], [new]).entries[0].status == "same"
    untrained = Baseline("main.json", (forward_only,)).entry(new).group_dict("body")
    assert untrained is not None
    assert set(untrained["change"]) == {"flops", "activations", "params", "act_bytes"}


def test_update_records_the_training_step_and_fills_its_metrics(tmp_path: Path) -> None:
    # Three entries measured with a training step. A group that lists no metric gets the
    # default metrics, plus train_flops / train_bytes where the entry trains: one with
    # `training: true`, and one without the key (check(..., training=True)), which gets
    # `training: true` written; `training: false` stays, without training budgets (the
    # file would refuse them). x 1.1, rounded up: flops 110 -> 121, train_flops 210 ->
    # 231, train_bytes 2,560 -> 2,816 (2.75KiB).
    path = tmp_path / "budgets.yaml"
    group = '    groups:\n      stem: {modules: ["0"]}\n'
    path.write_text(
        "version: 1\nmodels:\n"
        f"  trained:\n    training: true\n{group}"
        f"  asked:\n    mode: train\n{group}"
        f"  turned-off:\n    training: false\n{group}"
    )
    stem = {"flops": 110, "activations": 4, "params": 320, "act_bytes": 16}
    stem |= {"saved_bytes": 0, "flops_share": 0.5, "act_share": 0.5}
    stem |= {"backward_flops": 100, "train_flops": 210, "train_bytes": 2_560}
    entries = [
        MeasuredEntry(name, {"stem": stem}, {"stem": ("0",)}, {}, None, training=True)
        for name in ("trained", "asked", "turned-off")
    ]
    summary = update_budgets(path, entries, 0.1)
    forward = '      stem: {modules: ["0"], flops: 121, activations: 5, params: 352, act_bytes: 18'
    trained = f"{forward}, train_flops: 231, train_bytes: 2.75KiB}}\n"
    assert path.read_text() == (
        "version: 1\nmodels:\n"
        f"  trained:\n    training: true\n    groups:\n{trained}"
        f"  asked:\n    mode: train\n    training: true\n    groups:\n{trained}"
        f"  turned-off:\n    training: false\n    groups:\n{forward}}}\n"
    )
    assert ("asked", "training true (new)") in summary.recorded
