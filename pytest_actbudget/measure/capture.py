"""Record the model call of a test body, for the marker.

A top-level call is a module called while no other module's forward is running. The
marker measures the first top-level call of a module with parameters (else the first
top-level call of any module). Inputs are copied at call time, so in-place work in the
model or the test cannot change what gets measured. torch is imported only when a recording starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

_paused = 0  # > 0 while pytest-actbudget itself runs a model (the fixture's checks)


@contextmanager
def paused() -> Iterator[None]:
    """No recording while the plugin measures: its trace calls the model too (through
    fvcore's wrapper), and that call is not the test's."""
    global _paused
    _paused += 1
    try:
        yield
    finally:
        _paused -= 1


@dataclass
class RecordedCall:
    """The model and the inputs of the top-level module call the marker measures."""

    module: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Class names of the other modules with parameters called at top level, in call
    #: order (each module once): the marker measures one model, the fixture several.
    others: tuple[str, ...] = ()


class FirstCallRecorder:
    """Context manager: global forward hooks that keep the model call of a test body.

    That is the first top-level call of a module that has parameters (a loss or an
    activation called first is not the model), else the first top-level call of any
    module. Calls that raised do not count.
    """

    def __init__(self) -> None:
        self._first: RecordedCall | None = None  # first top-level call of any module
        self._model: RecordedCall | None = None  # first one of a module with parameters
        self._pending: RecordedCall | None = None  # the top-level call running now
        self._with_params: dict[int, Any] = {}  # id -> module, every one called at top level
        self._depth = 0
        self._handles: list[Any] = []

    @property
    def call(self) -> RecordedCall | None:
        """The call to measure, with the other modules with parameters it is not."""
        chosen = self._model or self._first
        if chosen is None:
            return None
        others = tuple(
            type(module).__name__
            for module in self._with_params.values()
            if module is not chosen.module
        )
        return RecordedCall(chosen.module, chosen.args, chosen.kwargs, others)

    def __enter__(self) -> FirstCallRecorder:
        from torch.nn.modules import module as torch_module

        self._handles = [
            torch_module.register_module_forward_pre_hook(self._before),
            torch_module.register_module_forward_hook(
                self._after, with_kwargs=True, always_call=True
            ),
        ]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _before(self, module: Any, args: tuple[Any, ...]) -> None:
        if _paused:
            return
        if self._depth == 0:
            self._pending = None
            # Copy only what may still be chosen: copying every later call would cost
            # a clone of its inputs for nothing.
            if self._model is None and (self._first is None or _has_parameters(module)):
                self._pending = RecordedCall(module, _copy(args))
        self._depth += 1

    def _after(self, module: Any, args: Any, *kwargs_output: Any) -> None:
        # (kwargs, output) after a forward that returned. After a forward that raised,
        # torch calls global always_call hooks with (module, args, None) only, even
        # when registered with_kwargs: then the call does not count.
        if _paused:
            return
        self._depth = max(self._depth - 1, 0)
        if self._depth or len(kwargs_output) != 2:
            return
        if _has_parameters(module):
            self._with_params.setdefault(id(module), module)
        pending, self._pending = self._pending, None
        if pending is None or pending.module is not module:
            return
        # Global pre-hooks do not see keyword arguments; the post-hook does.
        pending.kwargs = _copy(kwargs_output[0])
        if self._first is None:
            self._first = pending
        if self._model is None and _has_parameters(module):
            self._model = pending


def _has_parameters(module: Any) -> bool:
    return next(iter(module.parameters()), None) is not None


def _copy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        copy = value.detach().clone()
        # A training step gives an input that requires grad its gradient (the cost of
        # the first layer's input gradient): the copy keeps the flag.
        return copy.requires_grad_() if value.requires_grad and copy.is_floating_point() else copy
    if isinstance(value, tuple):
        items = [_copy(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value
