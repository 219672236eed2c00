"""Shared (tied) parameters across groups: counted once, in the group that holds the
tensor first in forward order; the report says which group counts it.

TiedLM below, GPT-2's layout in miniature: ``wte`` Embedding(10, 4) = 40 params,
``block`` Linear(4, 4) = 20, ``lm_head`` Linear(4, 10, bias=False) whose weight IS
wte's (40, counted once): total 60. Forward order: wte, block, lm_head.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pytest_actbudget.grouping import group_profile
from pytest_actbudget.measure.model import measure
from pytest_actbudget.results import OTHER_GROUP, Profile, SharedParam


class TiedLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(10, 4)
        self.block = nn.Linear(4, 4)
        self.lm_head = nn.Linear(4, 10, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lm_head(self.block(self.wte(ids)))
        return out


@pytest.fixture(scope="module")
def profile() -> Profile:
    return measure(TiedLM(), torch.tensor([[1, 2, 3]]))


def params(stats: tuple) -> dict[str, int]:  # type: ignore[type-arg]
    return {s.name: s.params for s in stats}


def test_the_profile_names_the_shared_tensor(profile: Profile) -> None:
    assert profile.shared_params == (SharedParam(("wte.weight", "lm_head.weight"), 40),)
    assert profile.total.params == 60  # 40 + 20, the tied 40 once
    assert Profile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_counted_in_the_first_group_in_forward_order(profile: Profile) -> None:
    # lm_head is listed first, but wte runs first: wte's group counts the 40
    stats = group_profile(profile, {"head": ["lm_head"], "embed": ["wte"], "block": ["block"]})
    assert params(stats) == {"head": 0, "embed": 40, "block": 20}
    assert sum(s.params for s in stats) == profile.total.params  # and no (other) row
    head = stats[0]
    assert head.shared == (("lm_head.weight", "embed"),)
    assert stats[1].shared == () and stats[2].shared == ()


def test_one_group_holding_both_names_counts_it_once(profile: Profile) -> None:
    stats = group_profile(profile, {"tied": ["wte", "lm_head"], "block": ["block"]})
    assert params(stats) == {"tied": 40, "block": 20}
    assert stats[0].shared == ()


def test_a_first_holder_no_group_claims_leaves_it_to_other(profile: Profile) -> None:
    # wte (first holder) is unclaimed: (other) = 60 - 20 - 0 = 40 holds the tensor
    stats = group_profile(profile, {"block": ["block"], "head": ["lm_head"]})
    assert params(stats) == {"block": 20, "head": 0, OTHER_GROUP: 40}
    assert stats[2].modules == ("wte",)
    assert stats[1].shared == (("lm_head.weight", OTHER_GROUP),)


def test_a_clamped_negative_remainder_makes_no_other_row() -> None:
    # Two Linear(4, 4) sharing weight and bias (20 params): groups 20 + 0, total 20
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight, model[1].bias = model[0].weight, model[0].bias
    profile = measure(model, torch.randn(2, 4))
    stats = group_profile(profile, {"a": ["0"], "b": ["1"]})
    assert params(stats) == {"a": 20, "b": 0}
    assert stats[1].shared == (("1.weight", "a"), ("1.bias", "a"))
