"""measure() does not keep saved activations alive: it counts what autograd saves
without holding on to it, so a measurement needs about the memory of an inference
forward, not of a training forward that keeps every activation for backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from pytest_actbudget.measure.model import measure
from pytest_actbudget.measure.trace import trace_profile


class Probe(nn.Module):
    """Counts, when it runs, how many of the storages in ``refs`` are still alive."""

    def __init__(self, refs: list[StorageWeakRef]) -> None:
        super().__init__()
        self.refs = refs
        self.alive: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.alive.append(sum(not ref.expired() for ref in self.refs))
        return x


def _mlp() -> tuple[nn.Sequential, Probe]:
    # three (Linear 4->4, ReLU) blocks, then the probe; each ReLU output is recorded
    refs: list[StorageWeakRef] = []
    probe = Probe(refs)
    blocks = [m for _ in range(3) for m in (nn.Linear(4, 4), nn.ReLU())]
    model = nn.Sequential(*blocks, probe)
    for relu in blocks[1::2]:
        relu.register_forward_hook(
            lambda module, args, out: refs.append(StorageWeakRef(out.untyped_storage()))
        )
    return model, probe


@pytest.mark.parametrize("standins", [True, False], ids=["meta", "real"])
def test_saved_activations_are_freed_as_in_inference(standins: bool) -> None:
    x = torch.randn(2, 4)
    # A training forward keeps all 3 ReLU outputs for backward (ReLU saves its result,
    # the next Linear its input), so all 3 are alive when the probe runs ...
    model, probe = _mlp()
    with torch.enable_grad():
        kept = model(x)
    assert probe.alive == [3]
    del kept
    # ... an inference forward only the last one, the probe's own input.
    model, probe = _mlp()
    with torch.no_grad():
        model(x)
    assert probe.alive == [1]
    # The measurement counts those saves but keeps nothing: as in inference, on meta
    # stand-ins and on the real tensors.
    model, probe = _mlp()
    profile = trace_profile(model, (x,), {}, "fvcore", standins=standins)
    assert profile.traced_on == ("meta" if standins else "cpu")
    assert probe.alive == [1]
    # saved_bytes unchanged: x (2*4 floats = 32 bytes) saved by the first Linear and
    # each ReLU output (32 bytes; the next Linear saves the same storage) -> 4*32 = 128
    assert profile.total.saved_bytes == 128


class Exps(nn.Module):
    """Four temporaries saved for backward and freed one after another."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.exp(x * self.w).sum() for _ in range(4)])


def test_a_freed_storage_is_not_mistaken_for_a_later_one() -> None:
    # Each exp result is saved (exp's backward uses its result) and freed after .sum(),
    # before the next one is allocated, maybe where the last one was: each is counted.
    # x (2, 4) float32 = 32 bytes; x * w saves x (once: same storage every time; w is
    # a parameter), each exp saves its 2x4 result: 32 + 4*32 = 160
    x = torch.randn(2, 4)
    assert measure(Exps(), x).total.saved_bytes == 160
    assert measure(Exps().to("meta"), x.to("meta")).total.saved_bytes == 160
