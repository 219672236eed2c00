"""What runs alongside the traced forward: per-module forward hooks (calls, output
shapes, output bytes) and autograd saved-tensor hooks (``saved_bytes``), plus the
snapshot that puts the user's model back exactly as it was.

Imported only while measuring.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from pytest_actbudget.measure.inputs import (
    first_tensor,
    iter_tensors,
    tensor_bytes,
    tensor_spec,
    untraced,
)
from pytest_actbudget.results import TensorSpec

# Every hook dict of nn.Module: whatever is added to one during a measurement
# (ours, fvcore's scope hooks if its trace raised) is removed afterwards.
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


@dataclass
class ModuleRecord:
    """What the hooks saw of one module (own numbers, not yet summed over the subtree)."""

    leaf: bool
    calls: int = 0
    output: TensorSpec | None = None  # first tensor output of the first call
    out_bytes: int = 0  # all tensor outputs of every call that ran no child module
    saved_bytes: int = 0  # saved for backward while this was the innermost module
    ran_child: bool = False  # some call of it ran a child module

    @property
    def innermost(self) -> bool:
        """A leaf of the call tree: called, and no call ran a child module (a module
        never called falls back to having no children)."""
        return not self.ran_child if self.calls else self.leaf


def _storage_key(tensor: torch.Tensor) -> int:
    # The StorageImpl address: shared by every view of a tensor, distinct on meta too.
    key: int = tensor.untyped_storage()._cdata
    return key


class Recorder:
    """Forward hooks on every module and saved-tensor hooks, for one forward."""

    def __init__(self, paths: dict[nn.Module, str]) -> None:
        self.paths = paths
        self.records = {
            path: ModuleRecord(leaf=next(module.children(), None) is None)
            for module, path in paths.items()
        }
        self.call_order: list[str] = []  # paths in first-call order
        self.failed_in: str | None = None  # the innermost module a raising forward left
        self._stack = [""]
        # Per running call: whether it ran a child module. A call that ran none is
        # innermost: its outputs are act_bytes. That is every leaf module, and also a
        # container whose forward skips its children (nn.MultiheadAttention passes
        # out_proj's weight to a function instead of calling it).
        self._ran_child = [False]
        # Weak references only: a strong one would keep every saved activation alive
        # until the trace ends (8x the memory of the plain forward on a deep MLP).
        self._seen: dict[int, StorageWeakRef] = {}
        self._excluded = {
            _storage_key(tensor)
            for module in paths
            for tensor in (*module.parameters(recurse=False), *module.buffers(recurse=False))
        }

    @contextmanager
    def recording(self) -> Iterator[None]:
        handles = []
        try:
            for module, path in self.paths.items():
                handles.append(module.register_forward_pre_hook(partial(self._enter, path)))
                handles.append(
                    module.register_forward_hook(partial(self._exit, path), always_call=True)
                )
            with torch.autograd.graph.saved_tensors_hooks(self.pack, _unpack):
                yield
        finally:
            for handle in handles:
                handle.remove()
            self._seen.clear()

    def _enter(self, path: str, module: nn.Module, args: Any) -> None:
        record = self.records[path]
        if record.calls == 0:
            self.call_order.append(path)
        record.calls += 1
        self._stack.append(path)
        self._ran_child[-1] = True
        self._ran_child.append(False)

    def _exit(self, path: str, module: nn.Module, args: Any, output: Any) -> None:
        innermost = True
        if len(self._stack) > 1:
            self._stack.pop()
            innermost = not self._ran_child.pop()
        record = self.records[path]
        record.ran_child = record.ran_child or not innermost
        if self.failed_in is None and sys.exc_info()[0] is not None:
            # torch runs always_call hooks inside its except clause: the forward raised.
            self.failed_in = path
        with untraced():
            if record.output is None:
                tensor = first_tensor(output)
                if tensor is not None:
                    record.output = tensor_spec(tensor)
            if innermost:
                record.out_bytes += sum(tensor_bytes(t) for t in iter_tensors(output))

    def pack(self, tensor: torch.Tensor) -> None:
        """The saved-tensor hook: count a tensor autograd saves (once per storage)."""
        storage = tensor.untyped_storage()
        key = _storage_key(tensor)
        if key in self._excluded:
            return None
        seen = self._seen.get(key)
        # A live weak reference means the same storage. (While any weak reference to
        # a StorageImpl exists, its address cannot be reused by a new storage; the
        # expiry check is there in case that ever changes.)
        if seen is None or seen.expired():  # type: ignore[no-untyped-call]
            self._seen[key] = StorageWeakRef(storage)  # type: ignore[no-untyped-call]
            self.records[self._stack[-1]].saved_bytes += storage.nbytes()
        # Nothing is kept in the autograd graph (no backward ever runs on it), so the
        # activations are freed when the forward drops them, as in inference.
        return None


def _unpack(packed: None) -> torch.Tensor:
    raise RuntimeError("pytest-actbudget measured this graph; it cannot run backward")


class ModelState:
    """A snapshot of everything a measurement could change on the user's model:
    training flags, ``requires_grad``, hook dicts and buffer values (a train-mode
    forward updates BatchNorm running stats)."""

    def __init__(self, model: nn.Module, *, buffers: bool = True) -> None:
        modules = list(model.modules())
        self._training = [(module, module.training) for module in modules]
        self._requires_grad = [(p, p.requires_grad) for p in model.parameters()]
        self._hooks = [
            (module, {name: set(getattr(module, name, {})) for name in _HOOK_DICTS})
            for module in modules
        ]
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
        if buffers:
            with torch.no_grad():
                self._buffers = [(b, b.clone()) for b in model.buffers() if not b.is_inference()]

    def restore(self) -> None:
        for module, training in self._training:
            module.training = training
        for parameter, requires_grad in self._requires_grad:
            parameter.requires_grad_(requires_grad)
        for module, hooks in self._hooks:
            for name, before in hooks.items():
                current = getattr(module, name, None)
                if current is None:
                    continue
                for key in [key for key in current if key not in before]:
                    del current[key]
        with torch.no_grad():
            for buffer, saved in self._buffers:
                # Every buffer: batch_norm updates running stats without bumping the
                # version counter, so there is no cheap way to tell which changed.
                if buffer.shape == saved.shape:
                    buffer.copy_(saved)
