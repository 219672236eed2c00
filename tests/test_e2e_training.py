"""Training-step budgets end to end (issue 13): real pytest runs (in-process; xdist in
a subprocess).

The small CNN of test_plugin.py on 2 x 3 x 16 x 16, ``counting: macs``:

  "0" stem  Conv2d(3, 8, 3, stride 2, pad 1, no bias): 2*8*8*8*3*3*3 = 27,648 MACs
            (+ BatchNorm2d(8), ReLU: no multiply-adds)
  "1" body  Conv2d(8, 16, 3, stride 2, pad 1, no bias): 2*16*4*4*8*3*3 = 36,864
  "2" head  pool, flatten, Linear(16, 10): 2*16*10 = 320

Backward of the stem conv: its weight gradient costs its forward, 27,648, when the
conv is trainable; its input gradient another 27,648 when the input requires grad
(never needed otherwise: it is the first layer). BatchNorm and ReLU add no MACs.

Parameters: stem conv 8*3*9 = 216, BatchNorm 8 + 8 = 16, body conv 16*8*9 = 1,152,
head 16*10 + 10 = 170: 1,554 float32 = 6,216 bytes. One training step holds them and
their gradients (6,216), plus optimizer state: sgd none, adam two float32 moments per
element (2 * 6,216 = 12,432), plus what autograd saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_plugin import NETS

TESTS = """
import os
import pytest
import torch
from cnn_for_training import small_cnn  # not `nets`: in-process, that is tests/nets.py


def model_and_input():
    model = small_cnn()
    if os.environ.get("FREEZE_STEM") == "1":
        model[0].requires_grad_(False)
    x = torch.randn(2, 3, 16, 16, requires_grad=os.environ.get("INPUT_GRAD") == "1")
    return model, x


@pytest.mark.act_budget("cnn-train")
def test_marker():
    model, x = model_and_input()
    assert model(x).shape == (2, 10)


def test_fixture(act_budget):
    model, x = model_and_input()
    act_budget.check(model, x, name="cnn-fixture", training=True)
"""

HEAD = """version: 1
counting:
  flops: macs
defaults:
  headroom: 10%
  training: {optimizer: OPTIMIZER}
models:
"""

STEM_BUDGET = """  cnn-train:
    training: true
    groups:
      stem: {modules: ["0"], backward_flops: BUDGET}
      rest: {modules: ["1", "2"]}
"""


def run(pytester: pytest.Pytester, *args: str, **env: str) -> pytest.RunResult:
    """One pytest run: in-process (torch is imported already, so seconds are saved per
    run), and in a subprocess for xdist, whose workers are processes anyway."""
    for key in ("FREEZE_STEM", "INPUT_GRAD"):
        pytester._monkeypatch.setenv(key, env.get(key, "0"))
    runner = pytester.runpytest_subprocess if "-n" in args else pytester.runpytest_inprocess
    return runner("-p", "no:cacheprovider", "--actbudget-report", "r.json", *args)


def results(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    data = json.loads((pytester.path / "r.json").read_text())
    return {result["name"]: result for result in data["results"]}


def group(result: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in result["groups"] if g["name"] == name)
    return found


@pytest.fixture(scope="module", autouse=True)
def _imported_once() -> None:
    """An in-process run forgets the modules it imported first; torch's (loaded on first
    use, like its operator libraries) and the plugin's must not load twice, so one
    training measurement here imports them before any run."""
    import importlib

    from pytest_actbudget.measure.model import measure
    from pytest_actbudget.training import TrainingSpec

    for name in ("yaml", *(f"pytest_actbudget.{n}" for n in ("session", "budgets.write", "cli"))):
        importlib.import_module(name)
    nets: dict[str, Any] = {}
    exec(NETS, nets)
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    measure(nets["small_cnn"](), x, counting="macs", training=TrainingSpec())


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(cnn_for_training=NETS, test_models=TESTS)
    return pytester


def write_budgets(pytester: pytest.Pytester, budget: str, optimizer: str = "sgd") -> Path:
    path = pytester.path / "budgets.yaml"
    path.write_text(HEAD.replace("OPTIMIZER", optimizer) + STEM_BUDGET.replace("BUDGET", budget))
    return path


def test_stem_backward_budget_fails_when_its_input_requires_grad(
    project: pytest.Pytester,
) -> None:
    # trainable stem, input without grad: weight gradient only, 27,648 <= 30K
    write_budgets(project, "30K")
    run(project, "-k", "marker").assert_outcomes(passed=1)
    stem = group(results(project)["cnn-train"], "stem")
    assert stem["metrics"]["backward_flops"] == 27_648
    assert stem["metrics"]["train_flops"] == 27_648 + 27_648

    # the input requires grad: + its gradient, 2 * 27,648 = 55,296 > 30K (+84.3%)
    over = run(project, "-k", "marker", INPUT_GRAD="1")
    over.assert_outcomes(failed=1)
    over.stdout.fnmatch_lines(
        [
            "*act_budget 'cnn-train': 1 budget exceeded (budgets.yaml:8)*",
            "*stem*backward_flops*55.3K*30.0K*+84.3%*",
        ]
    )
    assert results(project)["cnn-train"]["outcome"] == "over_budget"


def test_stem_backward_budget_fails_when_a_frozen_stem_is_unfrozen(
    project: pytest.Pytester,
) -> None:
    # frozen stem, input without grad: the stem computes no gradient at all
    write_budgets(project, "1K")
    run(project, "-k", "marker", FREEZE_STEM="1").assert_outcomes(passed=1)
    assert group(results(project)["cnn-train"], "stem")["metrics"]["backward_flops"] == 0

    unfrozen = run(project, "-k", "marker")
    unfrozen.assert_outcomes(failed=1)
    unfrozen.stdout.fnmatch_lines(["*stem*backward_flops*27.6K*1.0K*+2664.8%*"])


def test_train_bytes_fails_when_the_optimizer_changes_from_sgd_to_adam(
    project: pytest.Pytester,
) -> None:
    path = write_budgets(project, "1M", optimizer="sgd")
    path.write_text(path.read_text() + "    total: {train_bytes: 1}\n")
    run(project, "-k", "marker", "--actbudget-update").assert_outcomes(passed=1)
    assert "total: {train_bytes: 1}" not in path.read_text()
    run(project, "-k", "marker").assert_outcomes(passed=1)
    sgd = results(project)["cnn-train"]

    path.write_text(path.read_text().replace("optimizer: sgd", "optimizer: adam"))
    over = run(project, "-k", "marker")
    over.assert_outcomes(failed=1)
    over.stdout.fnmatch_lines(["*total*train_bytes*"])
    adam = results(project)["cnn-train"]
    # adam keeps two float32 moments per parameter element: 2 * 6,216 bytes more
    assert adam["total"]["train_bytes"] - sgd["total"]["train_bytes"] == 12_432
    assert adam["training"] == {"optimizer": "adam", "grad_dtype": None, "state_dtype": "float32"}
    # params + grads = 2 * 6,216 under sgd, on top of what autograd saved
    assert sgd["total"]["train_bytes"] == 12_432 + sgd["total"]["saved_bytes"]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_update_records_training_metrics_of_a_new_entry(
    project: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    (project.path / "budgets.yaml").write_text(HEAD.replace("OPTIMIZER", "sgd"))
    recorded = run(project, "-k", "fixture", "--actbudget-update", *workers)
    recorded.assert_outcomes(passed=1)
    text = (project.path / "budgets.yaml").read_text()
    entry = text[text.index("cnn-fixture:") :]
    assert "    training: true\n" in entry
    # the stem's flops 27,648 x 1.1 = 30,412.8 -> 30.5K; its train_flops: 27,648
    # forward + 27,648 weight gradient (BatchNorm and ReLU: no MACs) = 55,296 x 1.1 =
    # 60,825.6 -> 60.9K
    assert '"0": {modules: ["0"], flops: 30.5K' in entry
    assert "train_flops: 60.9K" in entry
    assert "train_bytes: " in entry
    checked = run(project, "-k", "fixture")
    checked.assert_outcomes(passed=1)
    checked.stdout.fnmatch_lines(
        [
            "*training step (optimizer sgd, grads as params, state float32)*",
            "*group*flops*backward_flops*train_flops*train_bytes*use*",
            "*0*27.6K*27.6K*55.3K*",
        ]
    )
    result = results(project)["cnn-fixture"]
    assert group(result, "0")["metrics"]["train_flops"] == 55_296
    assert result["training"]["optimizer"] == "sgd"


def test_training_budget_without_training_is_a_usage_error(project: pytest.Pytester) -> None:
    path = write_budgets(project, "30K")
    path.write_text(path.read_text().replace("    training: true\n", ""))
    result = run(project, "-k", "marker")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*budgets.yaml:10: models.cnn-train.groups.stem.backward_flops: 'backward_flops' is "
            "a training-step budget, and this entry measures no training step; add "
            "`training: true`*"
        ]
    )
