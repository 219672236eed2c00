"""Models on the meta device: measured without weights, with the CPU's numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from nets import SdpaBlock, SmallCNN, tiny_decoder
from torch import nn

from pytest_actbudget.measure.model import measure
from pytest_actbudget.results import Profile


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_conv_net_on_meta_equals_cpu(mode: str) -> None:
    torch.manual_seed(0)
    cpu = SmallCNN().train(mode == "train")
    with torch.device("meta"):
        meta = SmallCNN().train(mode == "train")
    x = torch.randn(2, 3, 16, 16)
    on_cpu = measure(cpu, x)
    on_meta = measure(meta, x.to("meta"))
    # every number of every layer, saved_bytes included
    assert on_meta == on_cpu
    assert all(p.is_meta for p in meta.parameters())


def test_moved_to_meta_equals_cpu() -> None:
    model, x = SmallCNN(), torch.randn(1, 3, 16, 16)
    on_cpu = measure(model, x, counting="macs")
    assert measure(model.to("meta"), x.to("meta"), counting="macs") == on_cpu


def test_transformer_on_meta_equals_cpu() -> None:
    cpu = tiny_decoder()
    with torch.device("meta"):
        meta = tiny_decoder()
    tokens = torch.randint(0, 50, (2, 7))
    on_cpu = measure(cpu, tokens)
    on_meta = measure(meta, tokens.to("meta"))
    # saved_bytes included: attention runs its math kernel on both devices
    assert on_meta == on_cpu
    assert on_meta.total.flops > 0 and on_meta.uncounted_ops == on_cpu.uncounted_ops


def test_attention_block_on_meta() -> None:
    with torch.device("meta"):
        block = SdpaBlock(8, 2, causal=True)
    # as on the CPU (test_measure): 1_920 + 800 + 640
    assert measure(block, torch.empty(2, 5, 8, device="meta")).total.flops == 3_360


def test_conv_transpose_and_1d_conv_on_meta() -> None:
    # conv1d 2->4 k3 on (1, 2, 10): out (1, 4, 8); MACs 4*8*2*3 = 192
    # conv_transpose1d 4->2 k3 on (1, 4, 8): fvcore counts N*prod(in spatial)*prod(W):
    #   1*8*(4*2*3) = 192; out (1, 2, 10)
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ConvTranspose1d(4, 2, 3))
    on_cpu = measure(model, torch.randn(1, 2, 10))
    assert on_cpu.total.flops == 384
    assert measure(model.to("meta"), torch.empty(1, 2, 10, device="meta")) == on_cpu


_SEVEN_B = """
import json, resource, sys, time
import torch
from nets import decoder_7b
from pytest_actbudget.measure.model import measure
from pytest_actbudget.results import Profile
with torch.device("meta"):
    model = decoder_7b()
start = time.perf_counter()
profile = measure(model, torch.zeros(1, 2048, dtype=torch.long, device="meta"))
seconds = time.perf_counter() - start
rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rss_mib": rss_mib, "profile": profile.to_dict()}))
"""


@pytest.mark.slow
def test_7b_decoder_on_meta() -> None:
    # in a subprocess of its own, so that its peak RSS is the measurement's
    tests = Path(__file__).parent
    out = subprocess.run(
        [sys.executable, "-c", _SEVEN_B], cwd=tests, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert result["seconds"] < 5.0
    assert result["rss_mib"] < 1024  # the whole process, torch itself included
    profile = Profile.from_dict(result["profile"])
    # params: embedding 32000*4096 = 131_072_000; per layer q,k,v,o 4*4096^2 =
    # 67_108_864 + gate,up,down 3*4096*11008 = 135_266_304 + two RMSNorms 2*4096
    # = 202_383_360, times 32 = 6_476_267_520; final norm 4_096; lm_head 131_072_000
    assert profile.total.params == 6_738_415_616
    # FLOPs (multiply-adds), T = 2048 tokens:
    # per layer linears T*(4*4096^2 + 3*4096*11008) = 2048*202_375_168 = 414_464_344_064
    # per layer attention 2*B*H*T*T*hd = 2*32*2048*2048*128 = 34_359_738_368
    # lm_head T*4096*32000 = 268_435_456_000
    # total 32*(414_464_344_064 + 34_359_738_368) + 268_435_456_000
    assert profile.layer("layers.0").flops == 448_824_082_432
    assert profile.total.flops == 14_630_806_093_824
    # activations per layer: T*(4*4096 (q,k,v,o) + 4096 (attention) + 2*11008 (gate, up)
    # + 4096 (down)) = 2048*46_592 = 95_420_416; times 32, plus lm_head 2048*32000
    assert profile.total.activations == 32 * 95_420_416 + 65_536_000
    assert profile.total.output_shape == (1, 2048, 32000)
