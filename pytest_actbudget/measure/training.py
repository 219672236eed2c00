"""One training step of a model, counted: backward multiply-adds per module and the
bytes a step holds (:mod:`pytest_actbudget.training` has the arithmetic).

The step is the forward the trace measured, under the same reference settings
(measure/reference.py), with autograd, then one backward of the sum of the model's
floating-point outputs (the loss's own cost is not the model's). It runs on the meta
stand-ins the trace uses (measure/standins.py) whenever they can serve, so no kernel
computes; a forward that needs values (data-dependent operators) runs on the real
tensors instead, its parameters as detached views. Gradients come from
``torch.autograd.grad``: no ``.grad`` is written, nothing is stepped, and the model's
modes, hooks, buffers and the RNG are put back.

Attribution: every autograd node is tagged, when the operator that created it
returns, with the innermost module running (a ``TorchFunctionMode`` walks back from
the new outputs to the nodes not yet tagged, which also catches the nodes of
composite operators such as attention). During the backward a ``TorchDispatchMode``
charges each aten call to the tag of the node autograd is running.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_actbudget.grouping import ancestors
from pytest_actbudget.measure.backward_macs import op_macs
from pytest_actbudget.measure.hooks import ModelState
from pytest_actbudget.measure.inputs import iter_tensors, replace_tensors
from pytest_actbudget.measure.reference import reference_forward
from pytest_actbudget.measure.standins import blocker, meta_standins
from pytest_actbudget.measure.trace import ForwardFailed
from pytest_actbudget.results import Profile
from pytest_actbudget.training import TrainingSpec, train_bytes

__all__ = ["BackwardFailed", "backward_macs", "with_training"]

_TAG = "pytest_actbudget.module"


class BackwardFailed(Exception):
    """The training step raised; ``__cause__`` is what it raised."""


def with_training(
    profile: Profile,
    model: nn.Module,
    inputs: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    spec: TrainingSpec,
) -> Profile:
    """``profile`` with ``backward_flops`` and ``train_bytes`` on every layer."""
    own, _ = backward_macs(model, inputs, kwargs)
    backward: Counter[str] = Counter()
    for path, count in own.items():
        for ancestor in (path, *ancestors(path)) if path else ("",):
            backward[ancestor] += count
    parameters = _parameters_by_path(model)
    layers = tuple(
        dataclasses.replace(
            layer,
            backward_flops=backward[layer.path],
            train_bytes=train_bytes(spec, parameters.get(layer.path, {}), layer.saved_bytes),
        )
        for layer in profile.layers
    )
    return dataclasses.replace(profile, layers=layers, training=spec)


def backward_macs(
    model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Counter[str], str]:
    """Backward multiply-adds of one training step by the module whose forward created
    them (own counts, not summed over descendants; ``""`` is work outside any
    submodule), and where the step ran: ``"meta"`` or the device of the real tensors.

    Raises ForwardFailed when the forward raises, BackwardFailed when the backward does.
    """
    tensors = list(iter_tensors((tuple(inputs), dict(kwargs))))
    if blocker(tensors, model) is None:
        try:
            return _step(model, inputs, kwargs, on_meta=True), "meta"
        except (ForwardFailed, BackwardFailed):
            # Meta cannot serve every model (values read in Python, data-dependent
            # shapes): the real tensors can, at the cost of computing.
            pass
    device = next((str(p.device) for p in model.parameters()), "cpu")
    return _step(model, inputs, kwargs, on_meta=False), device


def _step(
    model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any], *, on_meta: bool
) -> Counter[str]:
    paths = {module: path for path, module in model.named_modules()}
    # On meta the forward writes to the stand-ins' buffers, never to the model's.
    state = ModelState(model, buffers=not on_meta)
    stack = [""]
    counts: Counter[str] = Counter()
    structure = (tuple(inputs), dict(kwargs))
    stand_ins = _on_meta(model, structure) if on_meta else _on_real(model, structure)
    try:
        with reference_forward(), stand_ins as (forward, leaves, (args, kw)):
            try:
                with _module_stack(paths, stack), _Tagger(stack):
                    output = forward(*args, **kw)
            except Exception as error:
                raise ForwardFailed() from error
            outputs = [t for t in iter_tensors(output) if t.is_floating_point() and t.requires_grad]
            _tag_graph(outputs, "")
            if not outputs or not leaves:
                return counts
            loss = outputs[0].sum()
            for tensor in outputs[1:]:
                loss = loss + tensor.sum()  # promotes across dtypes, unlike stack
            try:
                with _Counting(counts):
                    torch.autograd.grad(loss, leaves, allow_unused=True)
            except Exception as error:
                raise BackwardFailed() from error
    finally:
        state.restore()
    return counts


#: What a step runs: the forward to call, the leaves to differentiate (trainable
#: parameters and inputs that require grad), and the (args, kwargs) to call it with.
_Setup = tuple[Callable[..., Any], list[torch.Tensor], tuple[Any, Any]]


@contextmanager
def _on_meta(model: nn.Module, structure: tuple[Any, ...]) -> Iterator[_Setup]:
    """The model on the trace's meta stand-ins (its own objects again afterwards)."""
    # Tensors the forward makes without naming a device (torch.arange(n)) join the
    # stand-ins on meta, as in the trace.
    with meta_standins(model) as standin, torch.device("meta"):
        args = replace_tensors(structure, (standin(t) for t in iter_tensors(structure)))
        trainable = [p for p in model.parameters() if p.requires_grad]  # now stand-ins
        yield model, _leaves(trainable, args), args


@contextmanager
def _on_real(model: nn.Module, structure: tuple[Any, ...]) -> Iterator[_Setup]:
    """The real values: detached views of the parameters (gradients go to the views,
    never to ``.grad``, and no hook on a parameter fires) and copies of the buffers
    (which a forward may update) and of the inputs."""
    made: dict[int, torch.Tensor] = {}

    def stand_in(tensor: torch.Tensor, parameter: bool) -> torch.Tensor:
        if id(tensor) not in made:  # tied tensors share one
            copy = tensor.detach() if parameter else tensor.detach().clone()
            made[id(tensor)] = copy.requires_grad_(parameter and tensor.requires_grad)
        return made[id(tensor)]

    named = {name: stand_in(p, True) for name, p in model.named_parameters(remove_duplicate=False)}
    named.update(
        (name, stand_in(b, False)) for name, b in model.named_buffers(remove_duplicate=False)
    )
    args = replace_tensors(structure, (_copy(t) for t in iter_tensors(structure)))
    trainable = [t for t in made.values() if t.requires_grad]
    yield partial(_functional, model, named), _leaves(trainable, args), args


def _functional(model: nn.Module, named: dict[str, torch.Tensor], *args: Any, **kw: Any) -> Any:
    return torch.func.functional_call(model, named, args, kw)


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    copy = tensor.detach().clone()
    return copy.requires_grad_(tensor.requires_grad and copy.is_floating_point())


def _leaves(trainable: Sequence[torch.Tensor], args: Any) -> list[torch.Tensor]:
    """The trainable parameters, then the inputs that require grad, each tensor once."""
    found = {id(t): t for t in trainable}
    found.update((id(t), t) for t in iter_tensors(args) if t.requires_grad)
    return list(found.values())


@contextmanager
def _module_stack(paths: Mapping[nn.Module, str], stack: list[str]) -> Iterator[None]:
    """Keep ``stack[-1]`` the path of the innermost module whose forward is running."""

    def enter(path: str, module: nn.Module, args: Any) -> None:
        stack.append(path)

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        if len(stack) > 1:
            stack.pop()

    handles = []
    try:
        for module, path in paths.items():
            handles.append(module.register_forward_pre_hook(partial(enter, path)))
            handles.append(module.register_forward_hook(leave, always_call=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _tag_graph(tensors: Any, path: str) -> None:
    """Tag the autograd nodes behind ``tensors`` that carry no tag yet with ``path``."""
    todo: list[Any] = [t.grad_fn for t in iter_tensors(tensors) if t.grad_fn is not None]
    while todo:
        node = todo.pop()
        if node is None:
            continue
        # A property at run time (a dict kept by the C++ node), typed as a method.
        metadata: dict[str, Any] = node.metadata
        if _TAG in metadata:
            continue
        metadata[_TAG] = path
        todo.extend(next_node for next_node, _ in node.next_functions)


class _Tagger(TorchFunctionMode):
    """Tags the nodes each torch function creates with the innermost running module."""

    def __init__(self, stack: list[str]) -> None:
        super().__init__()
        self._stack = stack

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        output = func(*args, **(kwargs or {}))
        _tag_graph(output, self._stack[-1])
        return output


class _Counting(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Charges each aten call of the backward to the module tag of the running node."""

    def __init__(self, counts: Counter[str]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._counts = counts

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        output = func(*args, **(kwargs or {}))
        macs = op_macs(func, args, output)
        if macs:
            node: Any = torch._C._current_autograd_node()
            path = node.metadata.get(_TAG, "") if node is not None else ""
            self._counts[path] += macs
        return output


def _parameters_by_path(model: nn.Module) -> dict[str, dict[int, tuple[int, int, bool]]]:
    """Every module path's parameters (its own and its descendants'), by identity:
    (elements, bytes per element, requires_grad)."""
    found: dict[str, dict[int, tuple[int, int, bool]]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        owner = name.rpartition(".")[0]
        for path in (owner, *ancestors(owner)) if owner else ("",):
            found.setdefault(path, {})[id(parameter)] = (
                parameter.numel(),
                parameter.element_size(),
                parameter.requires_grad,
            )
    return found
