"""F.interpolate forms that compute sizes under tracing (torchvision's detection
transform uses ``recompute_scale_factor=True``): measured, with plain fvcore's numbers."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_actbudget.measure.model import measure


class Resize(nn.Module):
    """A 1x1 conv, then F.interpolate with the given arguments."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.kwargs = kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), **self.kwargs)


def plain_fvcore(model: nn.Module, x: torch.Tensor) -> int:
    with warnings.catch_warnings():
        # fvcore's import scripts its losses: torch.jit's deprecation notice
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
        return int(analysis.total())


# x (1, 3, 10, 14); conv 3->4 k1: 1 x 4 x 10 x 14 x 3 = 1_680 MACs, its output (1, 4, 10, 14)
CONV = 1_680
CASES = [
    # bilinear x1.5, recomputed: out floor(15.0) x floor(21.0) = 15 x 21; fvcore counts
    # 4 per output element: 4 x 4 x 15 x 21 = 5_040
    (dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True), (15, 21), 5_040),
    # area x0.5: adaptive_avg_pool2d to floor(5.0) x floor(7.0); fvcore counts 1 per
    # input element: 4 x 10 x 14 = 560
    (dict(scale_factor=0.5, mode="area"), (5, 7), 560),
    # area with a factor per dim, (0.3, 0.45): floor(3.0000001) = 3, floor(6.3) = 6;
    # 560 again (the pool's input)
    (dict(scale_factor=(0.3, 0.45), mode="area"), (3, 6), 560),
    # nearest x2, recomputed: 20 x 28; fvcore counts 1 per output element: 4 x 20 x 28
    (dict(scale_factor=2.0, mode="nearest", recompute_scale_factor=True), (20, 28), 2_240),
    # bicubic x1.7 recomputed: floor(17.0) x floor(23.8) = 17 x 23; fvcore has no
    # bicubic handle (0, uncounted), like plain fvcore
    (dict(scale_factor=1.7, mode="bicubic", recompute_scale_factor=True), (17, 23), 0),
]


@pytest.mark.parametrize(("kwargs", "size", "fvcore_flops"), CASES)
def test_recomputed_sizes_are_measured_with_fvcores_numbers(
    kwargs: dict[str, Any], size: tuple[int, int], fvcore_flops: int
) -> None:
    model, x = Resize(**kwargs), torch.randn(1, 3, 10, 14)
    profile = measure(model, x)
    assert profile.total.output_shape == (1, 4, *size) == tuple(model(x).shape)
    assert profile.total.flops == CONV + fvcore_flops == plain_fvcore(model, x)
    assert measure(model, x, counting="macs").total.flops == CONV


def test_recomputed_size_on_meta() -> None:
    model = Resize(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True).to("meta")
    profile = measure(model, torch.randn(1, 3, 10, 14, device="meta"))
    assert profile.total.output_shape == (1, 4, 15, 21)
    assert profile.total.flops == CONV + 5_040


def test_upsample_module_with_recompute() -> None:
    # nn.Upsample calls F.interpolate too: x (1, 3, 10, 14) x1.5 -> (1, 3, 15, 21);
    # fvcore: 4 x 3 x 15 x 21 = 3_780
    model, x = (
        nn.Upsample(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True),
        (torch.randn(1, 3, 10, 14)),
    )
    assert measure(model, x).total.flops == 3_780 == plain_fvcore(model, x)


def test_bad_interpolate_arguments_are_still_torchs_error() -> None:
    from pytest_actbudget.errors import MeasurementError

    model = Resize(scale_factor=(0.5, 0.5, 0.5), mode="area")
    with pytest.raises(MeasurementError, match="its forward raised ValueError"):
        measure(model, torch.randn(1, 3, 10, 14))
