# nn.Module.__call__ returns Any in torch's stubs, so every `return self.layer(x)` would
# need a cast; the forward signatures already say Tensor.
# mypy: disable-error-code="no-any-return"
"""Compact, faithful re-implementations of seven torchvision classifiers in plain torch.

torchvision is not a dependency of this project, but its published GFLOPS are the
reference for the ``macs`` counting convention. These models reproduce torchvision's
layer structure (channels, strides, kernels, groups, biases, SE blocks, layer scale,
class token, relative position bias, shifted windows with masks) and module paths
(``features.3.0.block.1.0``, ``encoder.layers.encoder_layer_0.mlp.0`` ...), so their
parameter counts equal torchvision's exactly and their compute matches too.

Simplifications that change neither parameters nor compute: stochastic depth is
``nn.Identity`` (it is the identity in eval mode), weights keep PyTorch's default
initialisation, ViT attention is written with ``scaled_dot_product_attention`` instead
of ``nn.MultiheadAttention`` (same parameters, no fused fast path), and Swin calls its
``qkv``/``proj`` modules instead of ``F.linear`` on their weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Activation = Callable[[], nn.Module]


class Permute(nn.Module):
    """``torchvision.ops.Permute``: ``x.permute(dims)`` as a module."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: Tensor) -> Tensor:
        return torch.permute(x, self.dims)


def conv_norm_act(
    cin: int,
    cout: int,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    act: Activation | None = nn.ReLU,
) -> nn.Sequential:
    """``torchvision.ops.Conv2dNormActivation``: bias-free conv, BatchNorm, activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet v1.5: the stride sits on the 3x3 conv, as in torchvision."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self, block: type[BasicBlock | Bottleneck], depths: Sequence[int], num_classes: int
    ) -> None:
        super().__init__()
        self.cin = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, depths[0], 1)
        self.layer2 = self._make_layer(block, 128, depths[1], 2)
        self.layer3 = self._make_layer(block, 256, depths[2], 2)
        self.layer4 = self._make_layer(block, 512, depths[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, depth: int, stride: int
    ) -> nn.Sequential:
        cout = planes * block.expansion
        downsample = None
        if stride != 1 or self.cin != cout:
            downsample = nn.Sequential(
                nn.Conv2d(self.cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        blocks = [block(self.cin, planes, stride, downsample)]
        self.cin = cout
        blocks += [block(cout, planes, 1, None) for _ in range(1, depth)]
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """torchvision ``resnet18``: BasicBlocks [2, 2, 2, 2]."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """torchvision ``resnet50`` (v1.5): Bottlenecks [3, 4, 6, 3]."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


# ------------------------------------------------------------------------ MobileNetV2


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_norm_act(cin, hidden, 1, act=nn.ReLU6))
        layers += [
            conv_norm_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    # (expand t, channels c, repeats n, first stride s), width multiplier 1.0: every
    # channel count is already a multiple of 8, so torchvision's rounding is a no-op.
    SETTINGS: tuple[tuple[int, int, int, int], ...] = (
        *((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2)),
        *((6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)),
    )

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_norm_act(3, 32, 3, 2, act=nn.ReLU6)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_norm_act(cin, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """torchvision ``mobilenet_v2`` (width 1.0)."""
    return MobileNetV2(num_classes)


# ---------------------------------------------------------------------- EfficientNet-B0


class SqueezeExcitation(nn.Module):
    """``torchvision.ops.SqueezeExcitation``: 1x1 convs (with bias) on the pooled map."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_norm_act(cin, hidden, 1, act=nn.SiLU))
        layers += [
            conv_norm_act(hidden, hidden, kernel, stride, groups=hidden, act=nn.SiLU),
            # torchvision squeezes to a quarter of the block's *input* channels.
            SqueezeExcitation(hidden, max(1, cin // 4)),
            conv_norm_act(hidden, cout, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + self.stochastic_depth(out) if self.use_res_connect else out


class EfficientNet(nn.Module):
    # B0 (width 1.0, depth 1.0): (expand, kernel, stride, in, out, repeats).
    STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
        *((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2)),
        *((6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4)),
        (6, 3, 1, 192, 320, 1),
    )

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_norm_act(3, 32, 3, 2, act=nn.SiLU)]
        for expand, kernel, stride, cin, cout, n in self.STAGES:
            stage = [
                MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand)
                for i in range(n)
            ]
            layers.append(nn.Sequential(*stage))
        layers.append(conv_norm_act(320, 1280, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def efficientnet_b0(num_classes: int = 1000) -> EfficientNet:
    """torchvision ``efficientnet_b0``."""
    return EfficientNet(num_classes)


# ------------------------------------------------------------------------- ViT-B/16


class SelfAttention(nn.Module):
    """Parameters of ``nn.MultiheadAttention`` (packed ``in_proj``, ``out_proj``), computed
    with ``scaled_dot_product_attention`` so the attention matmuls are plain ops."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        nn.init.xavier_uniform_(self.in_proj_weight)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = SelfAttention(dim, heads)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp_dim, dim)
        )
        self.mlp.append(nn.Dropout(0.0))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.self_attention(self.ln_1(x)))
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, tokens: int, depth: int, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        blocks = [(f"encoder_layer_{i}", EncoderBlock(dim, heads, mlp_dim)) for i in range(depth)]
        self.layers = nn.Sequential(OrderedDict(blocks))
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    def __init__(self, patch: int, depth: int, dim: int, heads: int, mlp_dim: int, nc: int) -> None:
        super().__init__()
        self.patch, self.dim = patch, dim
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        tokens = (224 // patch) ** 2 + 1  # 196 patches + the class token = 197
        self.encoder = Encoder(tokens, depth, dim, heads, mlp_dim)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(dim, nc)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_proj(x).flatten(2).permute(0, 2, 1)  # (n, 196, dim)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


def vit_b_16(num_classes: int = 1000) -> VisionTransformer:
    """torchvision ``vit_b_16``: 12 layers, width 768, 12 heads, MLP 3072, 224x224."""
    return VisionTransformer(16, 12, 768, 12, 3072, num_classes)


# --------------------------------------------------------------------------- ConvNeXt


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))
        self.stochastic_depth = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.stochastic_depth(self.layer_scale * self.block(x))


class ConvNeXt(nn.Module):
    def __init__(self, depths: Sequence[int], dims: Sequence[int], num_classes: int) -> None:
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        layers: list[nn.Module] = [stem]
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            layers.append(nn.Sequential(*(CNBlock(dim) for _ in range(depth))))
            if i + 1 < len(dims):
                down = nn.Sequential(LayerNorm2d(dim, eps=1e-6), nn.Conv2d(dim, dims[i + 1], 2, 2))
                layers.append(down)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1), nn.Linear(dims[-1], num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def convnext_tiny(num_classes: int = 1000) -> ConvNeXt:
    """torchvision ``convnext_tiny``: depths [3, 3, 9, 3], widths [96, 192, 384, 768]."""
    return ConvNeXt([3, 3, 9, 3], [96, 192, 384, 768], num_classes)


# ------------------------------------------------------------------------------- Swin


class ShiftedWindowAttention(nn.Module):
    """Window attention with a learned relative position bias; when ``shift > 0`` the map
    is rolled by ``-shift`` first and cross-region pairs are masked (Swin v1)."""

    relative_position_index: Tensor

    def __init__(self, dim: int, window: int, shift: int, heads: int) -> None:
        super().__init__()
        self.window, self.shift, self.heads = window, shift, heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.empty((2 * window - 1) ** 2, heads).normal_(std=0.02)
        )
        coords = torch.stack(
            torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]
        self.register_buffer("relative_position_index", index.flatten(), persistent=False)

    def _mask(self, x: Tensor, height: int, width: int) -> Tensor:
        """-100 between tokens of a window that came from different regions after the roll."""
        w, s = self.window, self.shift
        region = x.new_zeros((height, width))
        count = 0
        for hs in ((0, -w), (-w, -s), (-s, None)):
            for ws in ((0, -w), (-w, -s), (-s, None)):
                region[hs[0] : hs[1], ws[0] : ws[1]] = count
                count += 1
        region = region.view(height // w, w, width // w, w).permute(0, 2, 1, 3).reshape(-1, w * w)
        diff = region.unsqueeze(1) - region.unsqueeze(2)
        return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w_, c = x.shape
        win = self.window
        x = F.pad(x, (0, 0, 0, (win - w_ % win) % win, 0, (win - h % win) % win))
        ph, pw = x.shape[1], x.shape[2]
        # A map that fits in one window is not shifted (torchvision decides per side; the
        # zoo only sees square maps).
        shift = 0 if win >= ph or win >= pw else self.shift
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        nw = (ph // win) * (pw // win)
        x = x.view(b, ph // win, win, pw // win, win, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b * nw, win * win, c)
        n = win * win
        qkv = self.qkv(x).reshape(b * nw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // self.heads) ** -0.5, qkv[1], qkv[2]
        attn = q.matmul(k.transpose(-2, -1))  # (b*nw, heads, n, n)
        bias = self.relative_position_bias_table[self.relative_position_index]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if shift:
            attn = attn.view(b, nw, self.heads, n, n) + self._mask(x, ph, pw)[None, :, None]
            attn = attn.view(-1, self.heads, n, n)
        x = attn.softmax(dim=-1).matmul(v).transpose(1, 2).reshape(b * nw, n, c)
        x = self.proj(x)
        x = x.view(b, ph // win, pw // win, win, win, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, ph, pw, c)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x[:, :h, :w_, :].contiguous()


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = ShiftedWindowAttention(dim, window, shift, heads)
        self.stochastic_depth = nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(4 * dim, dim)
        )
        self.mlp.append(nn.Dropout(0.0))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.stochastic_depth(self.attn(self.norm1(x)))
        return x + self.stochastic_depth(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C channels), normalise, project to 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-3:-1]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :]]
        x = torch.cat([*parts, x[..., 1::2, 1::2, :]], -1)
        return self.reduction(self.norm(x))


class SwinTransformer(nn.Module):
    def __init__(
        self, dim: int, depths: Sequence[int], heads: Sequence[int], window: int, nc: int
    ) -> None:
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(3, dim, 4, 4), Permute([0, 2, 3, 1]), nn.LayerNorm(dim))
        layers: list[nn.Module] = [stem]
        for i, (depth, head) in enumerate(zip(depths, heads, strict=True)):
            width = dim * 2**i
            shifts = [0 if j % 2 == 0 else window // 2 for j in range(depth)]
            layers.append(nn.Sequential(*(SwinBlock(width, head, window, s) for s in shifts)))
            if i + 1 < len(depths):
                layers.append(PatchMerging(width))
        self.features = nn.Sequential(*layers)
        width = dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(width)
        self.permute = Permute([0, 3, 1, 2])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.head = nn.Linear(width, nc)

    def forward(self, x: Tensor) -> Tensor:
        x = self.permute(self.norm(self.features(x)))
        return self.head(self.flatten(self.avgpool(x)))


def swin_t(num_classes: int = 1000) -> SwinTransformer:
    """torchvision ``swin_t``: width 96, depths [2, 2, 6, 2], heads [3, 6, 12, 24], 7x7."""
    return SwinTransformer(96, [2, 2, 6, 2], [3, 6, 12, 24], 7, num_classes)


#: Factory of every zoo model, by torchvision's name.
ZOO: dict[str, Callable[[], nn.Module]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "efficientnet_b0": efficientnet_b0,
    "vit_b_16": vit_b_16,
    "convnext_tiny": convnext_tiny,
    "swin_t": swin_t,
}
