"""Scaling checks measured for real (fvcore): growth exponents derived by hand.

fvcore counts one multiply-add of a conv or a matmul as one flop; GELU and additions are
not counted (uncounted operators, 0 flops). scaled_dot_product_attention with Q of
shape (..., L, E) and K, V of (..., S, E) counts L x S x E for Q K^T plus L x S x E for
the product with V (pytest_actbudget's handle).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_actbudget import Scaling, measure
from pytest_actbudget.budgets.schema import parse_budgets
from pytest_actbudget.growth import fit_exponent
from pytest_actbudget.results import GrowthResult
from pytest_actbudget.scaling import ScalingError, measure_growth


class Attention(nn.Module):
    """qkv projection, attention over `heads` heads in windows of `window` tokens (all
    tokens when the sequence is no longer than `global_up_to`), output projection."""

    def __init__(self, width: int, heads: int, window: int | None, global_from: int = 0):
        super().__init__()
        self.heads, self.window, self.global_from = heads, window, global_from
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        window = self.window
        if window is None or (self.global_from and length >= self.global_from):
            window = length
        x = x.reshape(batch * length // window, window, width)
        chunks, tokens, _ = x.shape
        q, k, v = (
            t.view(chunks, tokens, self.heads, width // self.heads).transpose(1, 2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.out(y.transpose(1, 2).reshape(chunks, tokens, width))
        return y.reshape(batch, length, width)


class Block(nn.Module):
    def __init__(self, width: int = 16, window: int | None = None, global_from: int = 0):
        super().__init__()
        self.attn = Attention(width, 2, window, global_from)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        out: torch.Tensor = x + self.mlp(x)
        return out


def _growth(
    model: nn.Module,
    inputs: tuple[Any, ...],
    scaling: str,
    groups: dict[str, list[str]],
    kwargs: dict[str, Any] | None = None,
    using: Scaling | None = None,
) -> dict[tuple[str, str], GrowthResult]:
    text = f"version: 1\nmodels:\n  m:\n    scaling: {scaling}\n"
    entry = parse_budgets(text, "budgets.yaml").models["m"]
    found = measure_growth(
        lambda m, a, k: measure(m, *a, **k),
        model,
        inputs,
        kwargs or {},
        name="m",
        entry=entry,
        scaling=using,
        patterns=groups,
        display="budgets.yaml",
    )
    return {(g.group, g.metric): g for g in found}


def test_conv_stem_grows_as_size_squared_when_h_and_w_scale() -> None:
    # Conv2d(3, 8, 3, stride 1, pad 1) at H = W = s: 1 x 8 x s x s x 3 x 3 x 3 = 216 s^2
    # flops; its output 1 x 8 x s x s floats is 32 s^2 bytes.
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    found = _growth(
        stem,
        (torch.randn(1, 3, 20, 20),),
        "{inputs: {0: [2, 3]}, sizes: [16, 32, 64, 128]}",
        {"stem": ["0"]},
    )
    flops = found[("stem", "flops_growth")]
    assert flops.values == (216 * 16**2, 216 * 32**2, 216 * 64**2, 216 * 128**2)
    assert flops.exponent == pytest.approx(2.0, abs=0.01)
    assert found[("stem", "act_bytes_growth")].values[0] == 32 * 16**2
    assert found[("stem", "act_bytes_growth")].exponent == pytest.approx(2.0, abs=0.01)
    assert found[("total", "flops_growth")].exponent == pytest.approx(2.0, abs=0.01)


def test_mlp_over_sequence_length_grows_linearly() -> None:
    # Linear(16, 64) + Linear(64, 16) over 2 x n tokens: 2n x 16 x 64 x 2 = 4096 n flops.
    block = Block(window=16)
    found = _growth(
        block,
        (torch.randn(2, 48, 16),),
        "{inputs: {0: [1]}, sizes: [16, 32, 64, 128]}",
        {"attn": ["attn"], "mlp": ["mlp"]},
    )
    mlp = found[("mlp", "flops_growth")]
    assert mlp.values == tuple(4096 * n for n in (16, 32, 64, 128))
    assert mlp.exponent == pytest.approx(1.0, abs=0.01)
    # Windowed attention (16 tokens a window) is linear too: per token qkv 16 x 48 +
    # out 16 x 16 = 1024, attention 2 (heads) x 8 (dims) x 16 (window) x 2 = 512;
    # 2n tokens: 3072 n.
    attn = found[("attn", "flops_growth")]
    assert attn.values == tuple(3072 * n for n in (16, 32, 64, 128))
    assert attn.exponent == pytest.approx(1.0, abs=0.01)


def test_transformer_block_total_lies_between_linear_and_quadratic() -> None:
    # Global attention, batch 1, width 16, 2 heads of 8: per token qkv 768 + out 256 +
    # mlp 2048 = 3072 n; attention scores and values 2 x (2 x n x 8 x n) = 32 n^2.
    # Total 3072 n + 32 n^2 at n = 16, 32, 64, 128: 57,344 / 131,072 / 327,680 / 917,504.
    # log2: 15.8074, 17, 18.3219, 19.8074; slope over x = 4..7 (sum (x - 5.5)^2 = 5):
    # (1.5 x (19.8074 - 15.8074) + 0.5 x (18.3219 - 17)) / 5 = (6 + 0.66096) / 5 = 1.3322.
    block = Block(window=None)
    found = _growth(
        block,
        (torch.randn(1, 24, 16),),
        "{inputs: {0: [1]}, sizes: [16, 32, 64, 128]}",
        {"attn": ["attn"], "mlp": ["mlp"]},
    )
    total = found[("total", "flops_growth")]
    assert total.values == tuple(3072 * n + 32 * n * n for n in (16, 32, 64, 128))
    assert total.exponent == pytest.approx(1.3322, abs=1e-4)
    assert 1.0 < total.exponent < 2.0
    # The attention group alone: 1024 n + 32 n^2 (the quadratic part weighs more).
    attn = found[("attn", "flops_growth")]
    assert attn.values == tuple(1024 * n + 32 * n * n for n in (16, 32, 64, 128))
    assert attn.exponent is not None and attn.exponent > total.exponent
    assert found[("mlp", "flops_growth")].exponent == pytest.approx(1.0, abs=1e-9)


def test_switch_to_global_attention_shows_the_bend() -> None:
    # Windows of 16 tokens up to n = 64, one global window from n = 128 on. The attention
    # product alone is 32 n x window: 512 n windowed (n = 16, 32, 64: 8,192 / 16,384 /
    # 32,768), 32 n^2 global (n = 128, 256: 524,288 / 2,097,152); with the projections
    # (1024 n) the group is 1536 n, then 1024 n + 32 n^2.
    block = Block(window=16, global_from=128)
    sizes = (16, 32, 64, 128, 256)
    found = _growth(
        block,
        (torch.randn(1, 32, 16),),
        "{inputs: {0: [1]}, sizes: [16, 32, 64, 128, 256]}",
        {"attn": ["attn"], "mlp": ["mlp"]},
    )
    attn = found[("attn", "flops_growth")]
    expected = [1536 * n if n < 128 else 1024 * n + 32 * n * n for n in sizes]
    assert attn.values == tuple(expected)
    # Before the switch: linear; after it: 1024 n + 32 n^2 from 128 to 256 is
    # 655,360 -> 2,359,296, log2 ratio 1.848; across the switch the fit is steeper
    # than the windowed part and the mlp stays linear.
    assert fit_exponent(sizes[:3], expected[:3]) == pytest.approx(1.0, abs=1e-12)
    assert fit_exponent(sizes[3:], expected[3:]) == pytest.approx(1.848, abs=1e-3)
    assert attn.exponent is not None and attn.exponent > 1.3
    assert found[("mlp", "flops_growth")].exponent == pytest.approx(1.0, abs=1e-9)


class TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(51, 8)
        self.proj = nn.Linear(8, 8)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.proj(self.embed(ids)) * mask.unsqueeze(-1)
        return out


def test_integer_inputs_keep_their_range_dtype_and_other_dims() -> None:
    from pytest_actbudget.measure.scaling import resized_inputs

    ids = torch.tensor([[3, 50, 7], [9, 4, 12]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    weights = torch.randn(2, 5, requires_grad=True)
    args, kwargs = resized_inputs(
        (ids, weights), {"mask": mask}, {0: (1,), 1: (-1,), "mask": (1,)}, 64
    )
    new_ids, new_weights = args
    assert new_ids.shape == (2, 64) and new_ids.dtype == torch.int64
    assert int(new_ids.min()) >= 3 and int(new_ids.max()) <= 50
    assert new_weights.shape == (2, 64) and new_weights.requires_grad
    assert kwargs["mask"].shape == (2, 64) and kwargs["mask"].dtype == torch.bool
    again, _ = resized_inputs((ids, weights), {"mask": mask}, {0: (1,)}, 64)
    assert torch.equal(again[0], new_ids)  # a fixed seed: every run measures the same


def test_keyword_inputs_scale_and_meta_stays_meta() -> None:
    # Linear(8, 8) over 2 x n tokens: 2n x 64 = 128 n flops (the embedding counts 0).
    model = TokenModel()
    found = _growth(
        model,
        (torch.randint(0, 51, (2, 5)),),
        "{inputs: {0: [1], mask: [1]}, sizes: [8, 16]}",
        {"proj": ["proj"]},
        kwargs={"mask": torch.ones(2, 5)},
    )
    assert found[("proj", "flops_growth")].values == (128 * 8, 128 * 16)
    stem = nn.Conv2d(3, 8, 3, padding=1, bias=False, device="meta")
    on_meta = _growth(
        stem,
        (torch.empty(1, 3, 4, 4, device="meta"),),
        "{inputs: {0: [2, 3]}, sizes: [8, 16]}",
        {},
    )
    assert on_meta[("total", "flops_growth")].values == (216 * 64, 216 * 256)


def test_make_inputs_for_models_that_cannot_be_resized() -> None:
    # Scaling(make_inputs): 216 s^2 as in the conv stem test, inputs built by the test.
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    found = _growth(
        stem,
        (),
        "{sizes: [8, 16]}",
        {"stem": ["0"]},
        using=Scaling(lambda s: torch.randn(1, 3, s, s)),
    )
    assert found[("stem", "flops_growth")].values == (216 * 64, 216 * 256)


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        (
            "{inputs: {0: [3]}, sizes: [8, 16]}",
            "budgets.yaml:4: models.m.scaling.inputs.0: input 0 has 3 dimension(s) (shape "
            "[2, 5, 16]), so dimension 3 does not exist; valid dimensions: 0 to 2",
        ),
        (
            "{inputs: {1: [1]}, sizes: [8, 16]}",
            "budgets.yaml:4: models.m.scaling.inputs.1: the model was called with 1 "
            "positional input(s), so there is no input 1; inputs there are: 0",
        ),
        (
            "{inputs: {input_ids: [1]}, sizes: [8, 16]}",
            "budgets.yaml:4: models.m.scaling.inputs.input_ids: the model was not called "
            "with a keyword input 'input_ids'; inputs there are: 0",
        ),
        (
            "{sizes: [8, 16]}",
            "budgets.yaml:4: models.m.scaling: no 'inputs', so the plugin cannot make the "
            "inputs of each size; add inputs: {0: [1]}",
        ),
    ],
)
def test_inputs_the_model_was_not_called_with(scaling: str, message: str) -> None:
    with pytest.raises(ScalingError) as caught:
        _growth(Block(window=None), (torch.randn(2, 5, 16),), scaling, {})
    assert str(caught.value).startswith(message)


def test_a_size_the_model_rejects_names_the_size() -> None:
    # Windows of 16 tokens: 40 tokens do not split into windows.
    with pytest.raises(ScalingError) as caught:
        _growth(
            Block(window=16), (torch.randn(1, 16, 16),), "{inputs: {0: [1]}, sizes: [32, 40]}", {}
        )
    text = str(caught.value)
    assert text.startswith(
        "act_budget 'm' at size 40 (budgets.yaml:4: models.m.scaling.sizes): could not "
        "measure Block: its forward raised RuntimeError"
    )
    assert text.endswith(
        "every size must be one the model accepts (e.g. a multiple of its "
        "patch size, at most its maximum length): change the sizes or the model"
    )


def test_scaling_sizes_must_agree_with_the_entry() -> None:
    with pytest.raises(ScalingError, match=r"Scaling sizes \[8, 32\] differ from the entry's"):
        _growth(
            Block(),
            (),
            "{sizes: [8, 16]}",
            {},
            using=Scaling(lambda s: torch.randn(1, s, 16), [8, 32]),
        )
    with pytest.raises(ValueError, match="two or more different positive integers"):
        Scaling(lambda s: s, [8])
