"""Small models whose numbers are derived by hand in the tests, and the 7B decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class ConvReluLinear(nn.Module):
    """conv(1->2, k3) -> relu -> flatten -> linear(2*3*3 -> 4), on (N, 1, 5, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.relu = nn.ReLU()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(2 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.flat(self.relu(self.conv(x))))
        return out


class SdpaBlock(nn.Module):
    """qkv projection, scaled_dot_product_attention over `heads` heads, output projection."""

    def __init__(self, width: int, heads: int, causal: bool) -> None:
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (
            t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        out: torch.Tensor = self.out(y.transpose(1, 2).reshape(batch, length, width))
        return out


class SelfAttention(nn.Module):
    """nn.MultiheadAttention used as self-attention (batch_first)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.attn(x, x, x, need_weights=False)[0]
        return out


class Einsum(nn.Module):
    """Contracts its two inputs with a fixed einsum equation."""

    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, a, b)


class MatMul(nn.Module):
    """``a @ b``: any ranks, broadcasting, 1-D operands."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


class TiedLinear(nn.Module):
    """Two linears sharing one weight (and bias): params counted once."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)
        self.second.weight = self.first.weight
        self.second.bias = self.first.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.second(self.first(x))
        return out


class Scaled(nn.Module):
    """Takes a keyword-only argument and an optional dict of extra inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(
        self,
        x: torch.Tensor,
        *,
        scale: float = 1.0,
        extra: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        y = self.fc(x) * scale
        if extra is not None:
            y = y + self.fc(extra["bias_input"])
        out: torch.Tensor = y
        return out


@dataclass
class Heads:
    logits: torch.Tensor
    features: torch.Tensor
    note: str = "dataclass output"


class MultiOutput(nn.Module):
    """Returns a dict, a tuple or a dataclass holding two tensors (and a string)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.body = nn.Linear(3, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> object:
        features = self.body(x)
        logits = self.head(features)
        if self.kind == "dict":
            return {"logits": logits, "features": features, "tag": "x"}
        if self.kind == "tuple":
            return logits, (features, None)
        return Heads(logits, features)


class ReturnsInt(nn.Module):
    def forward(self, x: torch.Tensor) -> int:
        return int(x.shape[0])


class WrongShapes(nn.Module):
    """Its forward raises: a 512-feature input into a 256-feature linear."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(x)
        return out


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer: RMSNorm, causal SDPA attention (q, k, v, o without bias),
    RMSNorm, SwiGLU MLP (gate, up, down without bias)."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.RMSNorm(width)
        self.q = nn.Linear(width, width, bias=False)
        self.k = nn.Linear(width, width, bias=False)
        self.v = nn.Linear(width, width, bias=False)
        self.o = nn.Linear(width, width, bias=False)
        self.mlp_norm = nn.RMSNorm(width)
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        h = self.attn_norm(x)
        q, k, v = (
            proj(h).view(batch, length, self.heads, width // self.heads).transpose(1, 2)
            for proj in (self.q, self.k, self.v)
        )
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(batch, length, width))
        h = self.mlp_norm(x)
        out: torch.Tensor = x + self.down(F.silu(self.gate(h)) * self.up(h))
        return out


class Decoder(nn.Module):
    """A decoder-only transformer (LLaMA-style, without rotary embeddings)."""

    def __init__(self, vocab: int, width: int, layers: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.layers = nn.ModuleList(DecoderLayer(width, heads, hidden) for _ in range(layers))
        self.norm = nn.RMSNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        out: torch.Tensor = self.lm_head(self.norm(x))
        return out


def decoder_7b() -> Decoder:
    """32 layers, width 4096, 32 heads, SwiGLU MLP 11008, vocab 32000 (6.74B params).

    Build it under ``with torch.device("meta"):``.
    """
    return Decoder(vocab=32000, width=4096, layers=32, heads=32, hidden=11008)


def tiny_decoder() -> Decoder:
    return Decoder(vocab=50, width=16, layers=2, heads=4, hidden=24)


class SmallCNN(nn.Module):
    """conv-bn-relu stem, a depthwise-separable block, pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 1, bias=False),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.pool(self.block(self.stem(x))).flatten(1))
        return out


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Ronneberger's U-Net with batch norm: ``levels`` encoder levels of widths
    base, 2*base, ... (double 3x3 convs, 2x2 max pooling), a bottleneck of twice the
    last width, and a decoder of 2x2 transposed convs and double convs over the
    concatenated skip; a 1x1 conv head. Padded convs: the output has the input's size."""

    def __init__(self, cin: int = 3, classes: int = 2, base: int = 64, levels: int = 4) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(levels)]
        self.down = nn.ModuleList(
            _double_conv(a, b) for a, b in zip([cin, *widths[:-1]], widths, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[-1], 2 * widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * w, w, 2, stride=2) for w in widths[::-1])
        self.decode = nn.ModuleList(_double_conv(2 * w, w) for w in widths[::-1])
        self.head = nn.Conv2d(base, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decode, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        out: torch.Tensor = self.head(x)
        return out


class BertLayer(nn.Module):
    """Post-norm encoder layer: q, k, v, o projections around SDPA attention, then a
    GELU feed-forward; a residual and a LayerNorm after each (BERT's layout)."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.o = nn.Linear(width, width)
        self.attn_norm = nn.LayerNorm(width, eps=1e-12)
        self.ffn = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.ffn_norm = nn.LayerNorm(width, eps=1e-12)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (
            proj(x).view(batch, length, self.heads, width // self.heads).transpose(1, 2)
            for proj in (self.q, self.k, self.v)
        )
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width)
        x = self.attn_norm(x + self.dropout(self.o(a)))
        out: torch.Tensor = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return out


class BertEncoder(nn.Module):
    """BERT without the pooler: word, position and token-type embeddings, LayerNorm,
    then ``layers`` post-norm encoder layers."""

    def __init__(
        self, vocab: int, width: int, layers: int, heads: int, hidden: int, max_len: int
    ) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(max_len, width)
        self.token_types = nn.Embedding(2, width)
        self.norm = nn.LayerNorm(width, eps=1e-12)
        self.layers = nn.Sequential(*(BertLayer(width, heads, hidden) for _ in range(layers)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.words(tokens) + self.positions(positions) + self.token_types(tokens * 0)
        out: torch.Tensor = self.layers(self.norm(x))
        return out


def bert_base() -> BertEncoder:
    """BERT-base sized: 12 layers, width 768, 12 heads, feed-forward 3072, 512 positions."""
    return BertEncoder(vocab=30522, width=768, layers=12, heads=12, hidden=3072, max_len=512)


def tiny_bert() -> BertEncoder:
    return BertEncoder(vocab=50, width=16, layers=2, heads=4, hidden=32, max_len=16)
