"""A marked pytest test against the same test unmarked: what the marker costs a suite.

One pytest session holds a tiny marked warm-up test (so that the one-off imports of
fvcore and the measurement code are not charged to the first real test; its own time
is printed as what the first marked test of a session pays), then rounds of, per
model, the test body unmarked and the same body marked, in alternating order (round 0
unmarked first, round 1 marked first, ...), so that neither always runs on a warmer
process. A conftest hook wrapped around every test's call phase (outermost, so the
marker's recording and check are inside) writes each test's CPU and wall time. The
session runs ``repeat`` times; the ratio is the median over every round of every
session of marked / unmarked within the round.
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
ROUNDS = {rounds}
import torch
from torch import nn
from nets import UNet
from zoo import vit_b_16

MODELS = {
    "unet": (UNet, (4, 3, 128, 128)),
    "vit_b_16": (vit_b_16, (1, 3, 224, 224)),
}

def body(name, round):
    factory, shape = MODELS[name]
    model = factory().eval()
    # an attribute of the model is part of the measure cache's key: every round's
    # marked test measures (the plugin caches a model it has checked in the session)
    model.bench_round = round
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
    # conv, batch norm, pooling, cat: the one-off costs of a process's first measurement
    Warm()(torch.randn(1, 3, 8, 8))

def _order(rounds):
    for r in range(rounds):
        for name in MODELS:
            for marked in ((False, True) if r % 2 == 0 else (True, False)):
                kind = "marked" if marked else "unmarked"
                marks = [pytest.mark.act_budget(f"{name}-{r}")] if marked else []
                yield pytest.param(name, r, id=f"{name}-{r}-{kind}", marks=marks)

@pytest.mark.parametrize(("name", "round"), list(_order(ROUNDS)))
def test_body(name, round):
    body(name, round)
"""


def marked_vs_unmarked(repeat: int, threads: int, rounds: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp)
        (suite / "conftest.py").write_text(_CONFTEST.format(tests=str(TESTS), threads=threads))
        (suite / "test_models.py").write_text(_TESTS.replace("{rounds}", str(rounds)))
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
        pairs = [
            (run[f"test_body[{name}-{r}-unmarked]"], run[f"test_body[{name}-{r}-marked]"])
            for run in runs
            for r in range(rounds)
        ]
        plain_cpu = statistics.median(p[0] for p, _ in pairs)
        marked_cpu = statistics.median(m[0] for _, m in pairs)
        cpu = statistics.median(m[0] / p[0] for p, m in pairs)
        wall = statistics.median(m[1] / p[1] for p, m in pairs)
        print(
            f"pytest test {name:<9} unmarked {plain_cpu * 1e3:6.0f}ms"
            f"  marked {marked_cpu * 1e3:6.0f}ms CPU  ratio {cpu:.2f}x CPU, {wall:.2f}x wall"
            f" (median of {len(pairs)} alternated"
            f" pairs, {repeat} sessions x {rounds} rounds)"
        )
