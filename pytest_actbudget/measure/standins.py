"""Meta stand-ins: trace a model whose tensors are real without computing anything.

For the length of a measurement, every parameter, buffer and plain tensor attribute of
the user's modules is swapped, in the module's own dicts, for an empty tensor on the
``meta`` device with the same shape, dtype, strides and ``requires_grad`` (a tensor
shared by several modules gets one stand-in, so tied weights stay tied); the inputs
get stand-ins too. No kernel computes and no weight is copied. Afterwards every module
gets back exactly the objects it had (what the forward added or rebound is undone),
so the parameters the user holds are the same objects with the same values and grads.

A swap of dict entries rather than ``torch.nn.utils.stateless``'s name-by-name
``setattr``: one pass over the modules, no qualified names to split, plain tensor
attributes included, and the restore is the same snapshot that undoes the forward's
own writes (lazy caches) instead of leaving meta tensors in the user's model.

Imported only while measuring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

_DENSE = (torch.Tensor, nn.Parameter)
_GONE = object()


def blocker(tensors: Iterable[torch.Tensor], model: nn.Module) -> str | None:
    """Why meta stand-ins cannot serve this model and these inputs, or None.

    Stand-ins are plain dense tensors: a tensor subclass (whose behaviour a stand-in
    would lose) or a sparse or quantized tensor is measured by its real trace. So are
    tensors on several devices: on meta they would all meet, where the real forward
    may raise (an input not moved to the model's device) or move them itself."""
    named = [
        *((f"input {i}", t) for i, t in enumerate(tensors)),
        *model.named_parameters(),
        *model.named_buffers(),
    ]
    devices = sorted({str(tensor.device) for _, tensor in named})
    if len(devices) > 1:
        return f"its tensors are on several devices ({', '.join(devices)})"
    for name, tensor in named:
        if type(tensor) not in _DENSE:
            return f"{name} is a {type(tensor).__name__}, a tensor subclass"
        if tensor.layout != torch.strided or tensor.is_quantized:
            return f"{name} is not a dense tensor ({tensor.layout}, {tensor.dtype})"
    return None


def meta_like(tensor: torch.Tensor) -> torch.Tensor:
    """An empty meta tensor with ``tensor``'s shape, strides, dtype and ``requires_grad``
    (a Parameter for a Parameter, so ``isinstance`` checks in a forward still hold)."""
    if tensor.is_meta:
        return tensor
    standin = torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device="meta")
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(standin, requires_grad=tensor.requires_grad)
    return standin.requires_grad_(tensor.requires_grad)


class _Snapshot:
    """Every module's attribute dict and its parameter, buffer and submodule dicts,
    shallow: enough to put back exactly the objects that were there."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self._saved = [
            (
                module,
                dict(vars(module)),
                dict(module._parameters),
                dict(module._buffers),
                dict(module._modules),
            )
            for module in modules
        ]

    def restore(self) -> None:
        for module, attributes, parameters, buffers, submodules in self._saved:
            _put_back(module._parameters, parameters)
            _put_back(module._buffers, buffers)
            _put_back(module._modules, submodules)
            live = vars(module)
            for name in [name for name in live if name not in attributes]:
                del live[name]
            for name, value in attributes.items():
                if live.get(name, _GONE) is not value:
                    live[name] = value


def _put_back(current: dict[str, Any], saved: dict[str, Any]) -> None:
    """``current`` holds exactly ``saved``'s objects again, in order, as the same dict."""
    if current.keys() != saved.keys() or any(current[k] is not v for k, v in saved.items()):
        current.clear()
        current.update(saved)


@contextmanager
def meta_standins(model: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """The model's parameters, buffers and plain tensor attributes on meta while inside;
    exactly the model's own objects again afterwards, also when the forward raised.

    Yields the stand-in maker for the inputs: the same tensor always gets the same
    stand-in (an input that is also a parameter, or passed twice, stays one tensor)."""
    modules = list(model.modules())
    snapshot = _Snapshot(modules)
    standins: dict[int, torch.Tensor] = {}

    def standin(tensor: Any) -> Any:
        if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
            return tensor
        found = standins.get(id(tensor))
        if found is None:
            found = standins[id(tensor)] = meta_like(tensor)
        return found

    try:
        for module in modules:
            for table in (module._parameters, module._buffers):
                for name, tensor in table.items():
                    table[name] = standin(tensor)
            live = vars(module)
            for name, value in live.items():
                if isinstance(value, torch.Tensor):
                    live[name] = standin(value)
        yield standin
    finally:
        snapshot.restore()
