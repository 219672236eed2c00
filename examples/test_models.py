"""The demo suite: ordinary model tests with a budget marker added, nothing else changed.

Run `bash scripts/demo`; make the stem expensive with ACTBUDGET_DEMO_STEM_STRIDE=1.
"""

from __future__ import annotations

import pytest
import torch
from models import mobilenet_tiny, resnet18_mnist, tiny_transformer


@pytest.mark.act_budget("resnet18-mnist")
def test_resnet18_forward() -> None:
    model = resnet18_mnist()
    out = model(torch.randn(64, 3, 28, 28))
    assert out.shape == (64, 10)


@pytest.mark.act_budget("tiny-transformer")
def test_transformer_inference() -> None:
    # eval + no_grad takes PyTorch's fused attention fast path; the budget still sees it.
    model = tiny_transformer().eval()
    with torch.no_grad():
        out = model(torch.randn(8, 3, 32, 32))
    assert out.shape == (8, 10)


@pytest.mark.act_budget("mobilenet-tiny")
def test_mobilenet_forward() -> None:
    model = mobilenet_tiny()
    out = model(torch.randn(16, 3, 64, 64))
    assert out.shape == (16, 10)


def test_mobilenet_at_full_resolution(act_budget) -> None:  # type: ignore[no-untyped-def]
    # The fixture checks explicitly, any number of times per test.
    result = act_budget.check(
        mobilenet_tiny(), torch.randn(1, 3, 224, 224), name="mobilenet-tiny-224"
    )
    assert result.passed
