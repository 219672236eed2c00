"""Failures and warnings of the plugin's own machinery are said to be the plugin's.

- a forward that traces with plain torch.jit but breaks under our plain-int sizes gets
  a message that blames the measuring machinery and names the operation, not "its
  forward raised";
- no torch.jit deprecation warning of fvcore's import or of our trace reaches the
  user, in torch 2.13 (DeprecationWarning) or 2.14 (FutureWarning) form.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from pytest_actbudget.errors import MeasurementError
from pytest_actbudget.measure.model import measure


class SizeAsTensor(nn.Module):
    """What torch's own functional code does under tracing: ``size(i).float()``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tracing = torch._C._get_tracing_state() is not None
        scale = x.size(-1).float() if tracing else float(x.size(-1))  # type: ignore[attr-defined]
        return x * scale


def test_a_failure_of_our_machinery_is_not_blamed_on_the_forward() -> None:
    model, x = SizeAsTensor(), torch.randn(2, 3)
    assert torch.equal(model(x), x * 3)  # the forward itself is fine
    with pytest.raises(MeasurementError) as raised:
        measure(model, x)
    message = str(raised.value)
    assert message.startswith(
        "could not measure SizeAsTensor: the forward traces fine with plain torch.jit but "
        "failed under pytest-actbudget's measuring machinery"
    )
    assert "its forward raised" not in message
    # the innermost frame: module.function (file:line)
    assert "at test_measure_machinery.SizeAsTensor.forward (test_measure_machinery.py:" in message
    assert message.endswith(
        "AttributeError: 'int' object has no attribute 'float'. Please report it to "
        "pytest-actbudget with the model; until it is fixed, leave this model unmarked"
    )


class IntHostile(nn.Module):
    """Raises an int-flavoured error of its own under any tracer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise TypeError("'int' object is not what this forward wants under a tracer")
        return x


def test_a_forward_that_fails_plain_tracing_too_is_the_forwards_error() -> None:
    with pytest.raises(MeasurementError) as raised:
        measure(IntHostile(), torch.randn(2, 3))
    assert str(raised.value) == (
        "could not measure IntHostile: its forward raised TypeError: 'int' object is not "
        "what this forward wants under a tracer"
    )


# torch 2.14 marks torch.jit.script and torch.jit.trace deprecated with a FutureWarning;
# this wrapper gives torch 2.13 the same behaviour, so the check runs on either.
WARN_LIKE_TORCH_2_14 = """
import warnings
import torch

for name in ("script", "trace"):
    original = getattr(torch.jit, name)

    def deprecated(*args, _original=original, _name=name, **kwargs):
        warnings.warn(
            f"torch.jit.{_name} is deprecated. Please switch to torch.compile or torch.export.",
            FutureWarning,
            stacklevel=2,
        )
        return _original(*args, **kwargs)

    setattr(torch.jit, name, deprecated)
"""

MEASURE = """
import torch
from torch import nn
from pytest_actbudget.measure import measure

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
# 2 x 4 x 8 + 2 x 8 x 2 = 96 multiply-adds
assert measure(model, torch.randn(2, 4)).total.flops == 96
assert measure(model, torch.randn(2, 4), counting="macs").total.flops == 96
print("ok")
"""


@pytest.mark.parametrize("torch_2_14_warnings", [False, True], ids=["2.13", "2.14-like"])
def test_measuring_raises_no_warning_under_w_error(torch_2_14_warnings: bool) -> None:
    script = (WARN_LIKE_TORCH_2_14 if torch_2_14_warnings else "") + MEASURE
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "ok\n")
