"""Demo models, built in code (no downloads): the fastai ResNet-18 of `learn.summary`,
a small transformer encoder and a MobileNet-style net.

``ACTBUDGET_DEMO_STEM_STRIDE=1`` makes the ResNet-18 stem stride 1 instead of 2: the
parameter count does not move, but every activation after the stem gets four times
larger — the change pytest-actbudget exists to catch.
"""

from __future__ import annotations

import os

import torch
from torch import nn


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block: two 3x3 convs and a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def resnet18_body(stem_stride: int = 2) -> nn.Sequential:
    """ResNet-18 without its pool and fc: conv1, bn1, relu, maxpool, layer1..layer4."""

    def layer(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout))

    return nn.Sequential(
        nn.Conv2d(3, 64, 7, stem_stride, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
        layer(64, 64, 1),
        layer(64, 128, 2),
        layer(128, 256, 2),
        layer(256, 512, 2),
    )


class AdaptiveConcatPool2d(nn.Module):
    """fastai's pool: adaptive max and average pooling side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.ap = nn.AdaptiveAvgPool2d(1)
        self.mp = nn.AdaptiveMaxPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mp(x), self.ap(x)], 1)


def fastai_head(features: int = 512, classes: int = 10) -> nn.Sequential:
    """fastai's create_head for a 512-feature body (linear layers without bias, as
    after a BatchNorm)."""
    return nn.Sequential(
        AdaptiveConcatPool2d(),
        nn.Flatten(),
        nn.BatchNorm1d(2 * features),
        nn.Dropout(0.25),
        nn.Linear(2 * features, 512, bias=False),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(512),
        nn.Dropout(0.5),
        nn.Linear(512, classes, bias=False),
    )


def resnet18_mnist() -> nn.Sequential:
    """The model of fastai's `learn.summary` example: Sequential(body, head).

    11,708,992 params = 11,176,512 (ResNet-18 without fc) + 532,480 (head:
    BatchNorm1d(1024) 2,048 + Linear(1024, 512) 524,288 + BatchNorm1d(512) 1,024 +
    Linear(512, 10) 5,120).
    """
    stride = int(os.environ.get("ACTBUDGET_DEMO_STEM_STRIDE", "2"))
    return nn.Sequential(resnet18_body(stride), fastai_head())


class PatchTransformer(nn.Module):
    """A small ViT-style encoder: patch embedding, encoder layers, classifier head."""

    def __init__(
        self, width: int = 64, depth: int = 2, heads: int = 4, patch: int = 4, classes: int = 10
    ) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, width, patch, patch)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens).mean(1))


def tiny_transformer() -> PatchTransformer:
    """Two encoder layers of width 64 over the 8x8 patches of a 32x32 image."""
    return PatchTransformer()


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


def mobilenet_tiny(classes: int = 10) -> nn.Sequential:
    """A MobileNet-style net: stem, four inverted residual stages, head."""
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()),
        nn.Sequential(InvertedResidual(16, 24, 2, 4), InvertedResidual(24, 24, 1, 4)),
        nn.Sequential(InvertedResidual(24, 32, 2, 4), InvertedResidual(32, 32, 1, 4)),
        nn.Sequential(InvertedResidual(32, 64, 2, 4), InvertedResidual(64, 96, 1, 4)),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, classes)),
    )
