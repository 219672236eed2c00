"""``counting.flops: macs`` reproduces torchvision's published GFLOPS (issue 4).

The published numbers are torchvision's weight metadata, ``<Model>_Weights.IMAGENET1K_V1
.meta["_ops"]`` (GFLOPS) and ``.meta["num_params"]``, listed in the "Table of all
available classification weights" at https://pytorch.org/vision/stable/models.html.
torchvision counts one multiply-add of a convolution or matmul-like op (linear, matmul,
attention) as one operation, at batch 1 and 3x224x224, and nothing else: no bias
additions, norms, activations, pooling, softmax or residual adds.

The models come from ``tests/zoo.py``. Their parameter counts equal torchvision's to the
unit, which pins channels, kernels, groups and biases; the MAC counts are derived by
hand below, checked against PyTorch's own ``FlopCounterMode`` (independent of the
plugin), and then required of ``measure(..., counting="macs")``.

Notation: a conv costs Hout*Wout*Cout*Cin*k*k/groups MACs (depthwise: Hout*Wout*C*k*k),
a linear over T tokens T*Cin*Cout, attention 2*T*T*d per layer (scores q@k^T and
weights@v, summed over heads: heads*head_dim = d).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from zoo import ZOO

from pytest_actbudget import measure


@dataclass(frozen=True)
class Reference:
    params: int  # torchvision meta["num_params"]
    gflops: float  # torchvision meta["_ops"], rounded to 3 decimals by torchvision
    macs: int  # derived by hand in the comment above each entry


REFERENCES: dict[str, Reference] = {
    # conv1 7x7 3->64 at 112x112: 112*112*64*3*49                        =   118,013,952
    # layer1, four 3x3 64->64 at 56x56: 4*56*56*64*64*9                  =   462,422,016
    # layer2: 3x3 64->128 stride 2 (28*28*128*64*9 = 57,802,752), three 3x3 128->128
    #   (3*28*28*128*128*9 = 346,816,512), 1x1 downsample (28*28*128*64 = 6,422,528)
    #   = 411,041,792; layer3 and layer4 halve the side and double the channels, so
    #   each costs the same: 3 * 411,041,792                              = 1,233,125,376
    # fc 512->1000                                                        =       512,000
    # total conv + fc                                    1,814,073,344 = 1.814 GMACs
    "resnet18": Reference(11_689_512, 1.814, 1_814_073_344),
    # Bottleneck of width w at output side s (stride on the 3x3, v1.5): the first block
    # of a stage sees cin at side r: r*r*cin*w + s*s*9*w*w + s*s*w*4w + s*s*cin*4w
    # (downsample); the others cost s*s*(4w*w + 9*w*w + w*4w) = 17*s*s*w*w.
    #   conv1 118,013,952
    #   layer1 (w=64,  s=56, cin=64,   r=56): 231,211,008 + 2*218,365,952 =   667,942,912
    #   layer2 (w=128, s=28, cin=256,  r=56): 372,310,016 + 3*218,365,952 = 1,027,604,480
    #   layer3 (w=256, s=14, cin=512,  r=28): 372,310,016 + 5*218,365,952 = 1,464,336,384
    #   layer4 (w=512, s=7,  cin=1024, r=14): 372,310,016 + 2*218,365,952 =   809,238,528
    #   fc 2048->1000 2,048,000
    # total conv + fc                                    4,089,184,256 = 4.089 GMACs
    "resnet50": Reference(25_557_032, 4.089, 4_089_184_256),
    # Inverted residual cin -> h = t*cin -> cout, side r in, s out:
    #   r*r*cin*h (1x1 expand, only if t > 1) + s*s*9*h (3x3 depthwise) + s*s*h*cout.
    #   stem 3x3 3->32 stride 2: 112*112*32*27                           =  10,838,016
    #   stages (t, c, n, stride) = (1,16,1,1) 10,035,200; (6,24,2,2) 54,942,720;
    #     (6,32,3,2) 37,443,840; (6,64,4,2) 38,497,536; (6,96,3,1) 58,103,808;
    #     (6,160,3,2) 46,560,192; (6,320,1,1) 23,002,560             sum 268,585,856
    #   last 1x1 320->1280 at 7x7: 7*7*320*1280                          =  20,070,400
    #   classifier 1280->1000                                            =   1,280,000
    # total conv + linear 300,774,272 = 0.3008 GMACs (torchvision rounds to 0.301: -0.08%)
    "mobilenet_v2": Reference(3_504_872, 0.301, 300_774_272),
    # MBConv cin -> h = t*cin -> cout, kernel k, side r in, s out, squeeze q = cin // 4:
    #   r*r*cin*h (expand, t > 1) + s*s*k*k*h (depthwise) + 2*h*q (the squeeze-excitation
    #   1x1 convs run on the 1x1 pooled map) + s*s*h*cout (project).
    #   stem 3x3 3->32 stride 2: 112*112*32*27                           =  10,838,016
    #   stages (t, k, stride, cin, cout, n) = (1,3,1,32,16,1) 10,035,712;
    #     (6,3,2,16,24,2) 54,945,216; (6,5,2,24,40,2) 37,939,584;
    #     (6,3,2,40,80,3) 43,555,200; (6,5,1,80,112,3) 86,102,400;
    #     (6,5,2,112,192,4) 91,528,224; (6,3,1,192,320,1) 29,520,000  sum 353,626,336
    #   head 1x1 320->1280 at 7x7                                        =  20,070,400
    #   classifier 1280->1000                                            =   1,280,000
    # total conv + linear 385,814,752 = 0.3858 GMACs (published 0.386: -0.05%)
    "efficientnet_b0": Reference(5_288_548, 0.386, 385_814_752),
    # T = 196 patches + 1 class token = 197 tokens, d = 768, 12 heads of 64, MLP 3072.
    #   conv_proj 16x16 stride 16, 3->768: 14*14*768*3*16*16             =    115,605,504
    #   per encoder layer: qkv T*d*3d 348,585,984 + attention 2*T*T*d 59,610,624
    #     + out_proj T*d*d 116,195,328 + MLP 2*T*d*3072 929,562,624 = 1,453,954,560
    #   12 layers                                                         = 17,447,454,720
    #   head 768->1000                                                    =        768,000
    # total conv + linear + attention 17,563,828,224 = 17.564 GMACs (attention is 4.1%)
    "vit_b_16": Reference(86_567_656, 17.564, 17_563_828_224),
    # stem 4x4 stride 4, 3->96: 56*56*96*48                              =     14,450,688
    # CNBlock of width d at side s: 7x7 depthwise s*s*d*49 + MLP 2*s*s*d*4d:
    #   (s=56, d=96) x3 737,888,256; (28, 192) x3 715,760,640; (14, 384) x9 2,114,090,496;
    #   (7, 768) x3 699,164,928                                       sum 4,266,904,320
    # downsample 2x2 stride 2, d->2d at side s/2: 28*28*192*96*4 = 57,802,752, and the
    #   same at 14x14 and 7x7: 3 * 57,802,752                            =    173,408,256
    # classifier 768->1000                                                =        768,000
    # total conv + linear 4,455,531,264 = 4.4555 GMACs (published 4.456: -0.01%)
    "convnext_tiny": Reference(28_589_128, 4.456, 4_455_531_264),
    # stem 4x4 stride 4, 3->96: 56*56*96*48                              =     14,450,688
    # Swin block of width d over T = s*s tokens in 7x7 windows (49 tokens each): qkv
    #   T*d*3d + window attention 2*T*49*d + proj T*d*d + MLP 2*T*d*4d = T*d*(12d + 98)
    #   (the mask and the relative position bias are additions, not MACs):
    #   (s=56, d=96) x2 752,640,000; (28, 192) x2 723,136,512; (14, 384) x6 2,125,154,304;
    #   (7, 768) x2 701,008,896                                       sum 4,301,939,712
    # patch merging: linear 4d->2d (no bias) at side s/2, 57,802,752 each, x3 =  173,408,256
    # head 768->1000                                                      =        768,000
    # total conv + linear + attention 4,490,566,656 = 4.4906 GMACs (published 4.491: -0.01%)
    "swin_t": Reference(28_288_354, 4.491, 4_490_566_656),
}
NAMES = list(ZOO)


def build(name: str, device: str) -> tuple[nn.Module, Tensor]:
    """The zoo model in eval mode and a 1x3x224x224 image, both on ``device``."""
    with torch.device(device):
        model = ZOO[name]().eval()
        image = torch.randn(1, 3, 224, 224)
    return model, image


def test_references_cover_the_zoo() -> None:
    assert set(REFERENCES) == set(ZOO)


@pytest.mark.parametrize("name", NAMES)
def test_params_equal_torchvision(name: str) -> None:
    model, _ = build(name, "meta")
    assert sum(p.numel() for p in model.parameters()) == REFERENCES[name].params


@pytest.mark.parametrize("name", NAMES)
def test_hand_derived_macs_agree_with_flop_counter_mode(name: str) -> None:
    """Pins the zoo's compute independently of the plugin: PyTorch's FlopCounterMode
    counts 2 FLOPs per multiply-add of conv/mm/addmm/bmm (on meta, attention
    decomposes into bmm)."""
    model, image = build(name, "meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        logits = model(image)
    assert logits.shape == (1, 1000)
    assert counter.get_total_flops() == 2 * REFERENCES[name].macs


@pytest.mark.parametrize("name", NAMES)
def test_macs_equal_torchvision_published(name: str) -> None:
    model, image = build(name, "meta")
    reference = REFERENCES[name]
    measured = measure(model, image, counting="macs").total.flops
    assert abs(measured / 1e9 - reference.gflops) / reference.gflops < 0.005, measured
    assert measured == reference.macs


@functools.cache
def cpu_and_meta(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``measure(..., counting="macs")`` of the model built on CPU and on meta, as dicts."""
    on_cpu = measure(*build(name, "cpu"), counting="macs")
    on_meta = measure(*build(name, "meta"), counting="macs")
    return on_cpu.to_dict(), on_meta.to_dict()


def without_saved_bytes(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile dict with every layer's ``saved_bytes`` left out."""
    layers = [{k: v for k, v in layer.items() if k != "saved_bytes"} for layer in profile["layers"]]
    return {**profile, "layers": layers}


# A convolutional net and a transformer (sdpa runs a fused kernel on CPU).
CPU_AND_META = ["resnet18", "vit_b_16"]


@pytest.mark.parametrize("name", CPU_AND_META)
def test_meta_measures_like_cpu(name: str) -> None:
    """Every number but saved_bytes, of every layer, is the same on meta as on CPU."""
    on_cpu, on_meta = cpu_and_meta(name)
    assert on_meta["layers"][0]["flops"] == on_cpu["layers"][0]["flops"] == REFERENCES[name].macs
    assert without_saved_bytes(on_meta) == without_saved_bytes(on_cpu)


@pytest.mark.parametrize("name", CPU_AND_META)
def test_meta_saved_bytes_like_cpu(name: str) -> None:
    """Issue 4: meta gives "the same numbers as on CPU", saved_bytes included.

    What autograd keeps depends on the kernel: on CPU, sdpa runs the fused flash kernel
    (saves q, k, v, output and a logsumexp per row), on meta its math decomposition
    (saves the 197x197 attention probabilities per head); batch norm's saved mean and
    inverse std must also be counted alike. The measurement must report one of them."""
    on_cpu, on_meta = cpu_and_meta(name)
    saved = [(layer["path"], layer["saved_bytes"]) for layer in on_cpu["layers"]]
    assert [(layer["path"], layer["saved_bytes"]) for layer in on_meta["layers"]] == saved
