"""The reference forward: the settings under which a measurement runs a model.

Both the trace (:mod:`pytest_actbudget.measure.trace`) and the training step
(:mod:`pytest_actbudget.measure.training`) run the user's forward under them, so the
two see one and the same computation: grad on (autograd must save what a training
forward saves), the RNG untouched (dropout draws), the fused multi-head-attention
fast path off (it hides FLOPs), and attention on its reference (math) kernel on every
device, so that neither saved_bytes nor the backward depends on which fused kernel a
device would pick. Imported only while measuring.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

__all__ = ["math_attention", "no_fast_path", "reference_forward"]


@contextmanager
def reference_forward() -> Iterator[None]:
    """Grad on, also inside ``torch.inference_mode``; RNG forked; no fused fast paths."""
    with (
        no_fast_path(),
        torch.random.fork_rng(devices=[]),
        torch.inference_mode(False),
        torch.enable_grad(),
        math_attention(),
    ):
        yield


@contextmanager
def no_fast_path() -> Iterator[None]:
    """``nn.MultiheadAttention`` and ``TransformerEncoderLayer`` on their composite
    path: the fused native kernel they take in eval mode hides its matmuls."""
    mha = getattr(torch.backends, "mha", None)  # torch >= 2.2
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    enabled = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(enabled)


def math_attention() -> AbstractContextManager[None]:
    """``scaled_dot_product_attention`` on its math kernel (the same on every device)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3
    except ImportError:
        return nullcontext()
    return sdpa_kernel([SDPBackend.MATH])
