"""End to end: fastai's ResNet-18 on MNIST, measured for real, checked against the
design's budget entry, and rendered to JSON (valid against schema.json), Markdown and
HTML.

The model is what fastai's ``create_cnn_model(resnet18, 10)`` builds: the resnet18 body
(torchvision's children without avgpool and fc) as ``0`` and fastai's head as ``1``:
AdaptiveConcatPool2d (max and avg pool, concatenated: 1024 channels), Flatten,
BatchNorm1d(1024), Dropout, Linear(1024, 512, bias=False), ReLU, BatchNorm1d(512),
Dropout, Linear(512, 10, bias=False).

Params, as learn.summary prints them: body = resnet18's 11,689,512 minus fc (512*1000 +
1000 = 513,000) = 11,176,512; head = BatchNorm1d 2*1024 + Linear 1024*512 + BatchNorm1d
2*512 + Linear 512*10 = 2,048 + 524,288 + 1,024 + 5,120 = 532,480; total 11,708,992.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import zoo
from test_report_json import validate
from torch import Tensor, nn

from pytest_actbudget.budgets.schema import GroupBudget, ModelBudget
from pytest_actbudget.checks import evaluate
from pytest_actbudget.measure.model import measure
from pytest_actbudget.report import html, markdown, terminal
from pytest_actbudget.report.json import SCHEMA_PATH, render
from pytest_actbudget.results import BudgetResult, TensorSpec


class AdaptiveConcatPool2d(nn.Module):
    """fastai's pooling: max and average pooling side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.ap = nn.AdaptiveAvgPool2d(1)
        self.mp = nn.AdaptiveMaxPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.mp(x), self.ap(x)], 1)


def fastai_resnet18(n_out: int = 10) -> nn.Sequential:
    body = nn.Sequential(*list(zoo.resnet18().children())[:-2])
    head = nn.Sequential(
        AdaptiveConcatPool2d(),
        nn.Flatten(),
        nn.BatchNorm1d(1024),
        nn.Dropout(0.25),
        nn.Linear(1024, 512, bias=False),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(512),
        nn.Dropout(0.5),
        nn.Linear(512, n_out, bias=False),
    )
    return nn.Sequential(body, head)


# The entry of the design document (budgets in the units the loader produces).
ENTRY = ModelBudget(
    name="resnet18-mnist",
    groups=(
        GroupBudget("stem", ("0.0", "0.1", "0.2", "0.3"), {"flops": 130e6, "flops_share": 0.15}, 6),
        GroupBudget("early", ("0.4",), {"flops": 500e6, "activations": 1.2e6}, 7),
        GroupBudget("late", ("0.5", "0.6", "0.7"), {"params": 11e6}, 8),
        GroupBudget("head", ("1",), {"params": 600e3}, 9),
    ),
    total={"flops": 2e9, "params": 12e6, "act_bytes": 64 * 2**20},
    input=(TensorSpec((64, 3, 28, 28), "float32"),),
    allow_uncounted=(),
    line=4,
)

# Every conv: (in channels, out channels, kernel, output height = width). The grid is
# 28 -> 14 (conv1, stride 2) -> 7 (maxpool) -> 7 (layer1) -> 4 -> 2 -> 1 (stride 2 each).
CONVS: dict[str, tuple[int, int, int, int]] = {
    "0.0": (3, 64, 7, 14),
    **{f"0.4.{b}.conv{c}": (64, 64, 3, 7) for b in (0, 1) for c in (1, 2)},
}
for _layer, (_cin, _cout, _hw) in {
    "0.5": (64, 128, 4),
    "0.6": (128, 256, 2),
    "0.7": (256, 512, 1),
}.items():
    CONVS[f"{_layer}.0.conv1"] = (_cin, _cout, 3, _hw)
    CONVS[f"{_layer}.0.conv2"] = (_cout, _cout, 3, _hw)
    CONVS[f"{_layer}.0.downsample.0"] = (_cin, _cout, 1, _hw)
    CONVS[f"{_layer}.1.conv1"] = (_cout, _cout, 3, _hw)
    CONVS[f"{_layer}.1.conv2"] = (_cout, _cout, 3, _hw)


@pytest.fixture(scope="module")
def result() -> BudgetResult:
    torch.manual_seed(0)
    model = fastai_resnet18().eval()
    profile = measure(model, torch.randn(64, 3, 28, 28))
    return evaluate(profile, ENTRY, nodeid="tests/test_x.py::test_resnet", budget_file="b.yaml")


@pytest.fixture(scope="module")
def report(result: BudgetResult) -> dict[str, Any]:
    env = {"python": "3", "torch": "2", "fvcore": "0", "pytest_actbudget": "0"}
    loaded: dict[str, Any] = json.loads(render([result], env))
    return loaded


def test_json_is_valid_against_the_schema(report: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validate(report, schema, schema)


def test_layers_have_learn_summary_shapes_and_params_in_forward_order(
    report: dict[str, Any],
) -> None:
    (entry,) = report["results"]
    layers = {layer["path"]: layer for layer in entry["layers"]}
    paths = [layer["path"] for layer in entry["layers"]]
    # Forward order: the stem, then each stage, then the head.
    tops = [path for path in paths if path.count(".") == 1]
    assert tops == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"] + [
        f"1.{i}" for i in range(9)
    ]
    assert [path for path in paths if path in CONVS] == list(CONVS)
    shapes = {
        "0.0": [64, 64, 14, 14],  # conv1
        "0.3": [64, 64, 7, 7],  # maxpool
        "0.4": [64, 64, 7, 7],
        "0.5": [64, 128, 4, 4],
        "0.6": [64, 256, 2, 2],
        "0.7": [64, 512, 1, 1],
        "1.0": [64, 1024, 1, 1],  # AdaptiveConcatPool2d
        "1.1": [64, 1024],
        "1.4": [64, 512],
        "1.8": [64, 10],
    }
    assert {path: layers[path]["output_shape"] for path in shapes} == shapes
    assert layers["0.0"]["params"] == 9_408  # 64 * 3 * 7 * 7
    assert layers["0.0"]["type"] == "Conv2d"
    assert layers["1.4"]["params"] == 524_288  # 1024 * 512, no bias
    assert layers[""]["params"] == layers[""]["trainable"] == 11_708_992
    assert entry["total"]["params"] == 11_708_992


def test_every_conv_has_its_hand_derived_flops(report: dict[str, Any]) -> None:
    (entry,) = report["results"]
    layers = {layer["path"]: layer for layer in entry["layers"]}
    for path, (cin, cout, k, hw) in CONVS.items():
        # fvcore: one multiply-add per output element and kernel tap:
        # N x Cout x Hout x Wout x Cin x k x k (no bias in resnet convs).
        assert layers[path]["flops"] == 64 * cout * hw * hw * cin * k * k, path
    # The numbers the design quotes: conv1 = 64*64*14*14 * 3*7*7 = 118,013,952, and a
    # layer1 conv = 64*64*7*7 * 64*3*3 = 115,605,504.
    assert layers["0.0"]["flops"] == 118_013_952
    assert layers["0.4.0.conv1"]["flops"] == 115_605_504


def test_groups_follow_the_entry_and_other_renderers_accept_the_real_result(
    result: BudgetResult, report: dict[str, Any]
) -> None:
    (entry,) = report["results"]
    assert [group["name"] for group in entry["groups"]] == ["stem", "early", "late", "head"]
    groups = {group["name"]: group for group in entry["groups"]}
    assert groups["early"]["modules"] == ["0.4"]
    # layer1 = 4 convs x 115,605,504 plus its batchnorms, adds and relus.
    assert groups["early"]["metrics"]["flops"] >= 4 * 115_605_504
    assert groups["head"]["metrics"]["params"] == 532_480
    for layer in entry["layers"]:
        if layer["path"].startswith("0.4."):
            assert layer["group"] == "early"
    text = terminal.render([result], verbose=True)
    conv1 = next(line.split() for line in text.splitlines() if line.strip().startswith("0.0 "))
    assert conv1 == ["0.0", "Conv2d", "64", "x", "64", "x", "14", "x", "14", "9,408", "9,408",
                     "118.0M", "802.8K", "stem"]  # fmt: skip
    assert "### resnet18-mnist" in markdown.render([result])
    # Every called leaf module with something measured has its bar; the rest (ReLU,
    # pooling) are folded with their count.
    called = [layer for layer in entry["layers"] if layer["leaf"] and layer["calls"]]
    drawn = [layer for layer in called if layer["flops"] or layer["activations"] or layer["params"]]
    page = html.render([result])
    assert page.count('class="bar flops ') == len(drawn)
    folded = len(called) - len(drawn)
    assert f"{folded} layers with nothing measured" in page
