"""A marked pytest test against the same test unmarked: what the marker costs a suite.

One pytest session holds a tiny marked warm-up test (so that the one-off imports of
fvcore, torch._dynamo and the measurement code are not charged to the first real test;
its own time is printed as what the first marked test of a session pays), then, per
model, the test body unmarked and the same body marked. A conftest hook wrapped around
every test's call phase (outermost, so the marker's recording and check are inside)
writes each test's CPU and wall time. The session runs ``repeat`` times; medians.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"

_CONFTEST = """
import json, sys, time
import pytest
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads({threads})
TIMES = {{}}

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item):
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        return (yield)
    finally:
        TIMES[item.name] = (time.process_time() - cpu, time.perf_counter() - wall)

def pytest_sessionfinish(session):
    (session.config.rootpath / "times.json").write_text(json.dumps(TIMES))
"""

_TESTS = """
import pytest
import torch
from torch import nn
from nets import UNet
from zoo import vit_b_16

MODELS = {
    "unet": (UNet, (4, 3, 128, 128)),
    "vit_b_16": (vit_b_16, (1, 3, 224, 224)),
}

def body(name):
    factory, shape = MODELS[name]
    model = factory().eval()
    with torch.no_grad():
        out = model(torch.randn(*shape))
    assert out.shape[0] == shape[0]

class Warm(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.MaxPool2d(2))

    def forward(self, x):
        x = self.net(x)
        return torch.cat([x, x], dim=1)

@pytest.mark.act_budget("warmup")
def test_warmup():
    # conv, batch norm, pooling, cat: the first meta trace of a process that reaches a
    # meta kernel torch wraps in torch._dynamo.disable (cat's) imports torch._dynamo
    Warm()(torch.randn(1, 3, 8, 8))

@pytest.mark.parametrize("name", MODELS)
def test_unmarked(name):
    body(name)

@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.act_budget(name)) for name in MODELS]
)
def test_marked(name):
    body(name)
"""


def marked_vs_unmarked(repeat: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp)
        (suite / "conftest.py").write_text(_CONFTEST.format(tests=str(TESTS), threads=threads))
        (suite / "test_models.py").write_text(_TESTS)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        # Record the budgets once, then time checking runs against them.
        subprocess.run([*base, "--actbudget-update"], cwd=suite, capture_output=True, check=True)
        runs: list[dict[str, list[float]]] = []
        for _ in range(repeat):
            subprocess.run(base, cwd=suite, capture_output=True, check=True)
            runs.append(json.loads((suite / "times.json").read_text()))
    warmup = statistics.median(run["test_warmup"][0] for run in runs)
    print(f"pytest first marked test (tiny conv net, one-off imports): {warmup * 1e3:.0f}ms CPU")
    for name in ("unet", "vit_b_16"):
        plain = [run[f"test_unmarked[{name}]"] for run in runs]
        marked = [run[f"test_marked[{name}]"] for run in runs]
        cpu = statistics.median(m[0] for m in marked) / statistics.median(p[0] for p in plain)
        wall = statistics.median(m[1] for m in marked) / statistics.median(p[1] for p in plain)
        print(
            f"pytest test {name:<9} unmarked {statistics.median(p[0] for p in plain) * 1e3:6.0f}ms"
            f"  marked {statistics.median(m[0] for m in marked) * 1e3:6.0f}ms CPU"
            f"  ratio {cpu:.2f}x CPU, {wall:.2f}x wall (median of {repeat} sessions)"
        )
