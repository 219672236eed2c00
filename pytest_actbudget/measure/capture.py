"""Record the first top-level ``nn.Module`` call of a test body, for the marker.

A top-level call is a module called while no other module's forward is running. Its
inputs are copied at call time, so in-place work in the model or the test cannot change
what gets measured. torch is imported only when a recording starts.
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
    """The model and the inputs of the first top-level module call."""

    module: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class FirstCallRecorder:
    """Context manager: global forward hooks that keep the first top-level call."""

    def __init__(self) -> None:
        self.call: RecordedCall | None = None
        self._depth = 0
        self._first_call_done = False
        self._handles: list[Any] = []

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
        if self._depth == 0 and not self._first_call_done:
            # A top-level call that raised (and that the test caught) left no record:
            # the next top-level call takes its place.
            self.call = RecordedCall(module, _copy(args))
        self._depth += 1

    def _after(self, module: Any, args: Any, *kwargs_output: Any) -> None:
        # (kwargs, output) after a forward that returned. After a forward that raised,
        # torch calls global always_call hooks with (module, args, None) only, even
        # when registered with_kwargs: then there is no output to take.
        if _paused:
            return
        self._depth = max(self._depth - 1, 0)
        if self._depth or self.call is None or self._first_call_done:
            return
        if len(kwargs_output) != 2:
            return
        # Global pre-hooks do not see keyword arguments; the post-hook does.
        self.call.kwargs = _copy(kwargs_output[0])
        self._first_call_done = True


def _copy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        items = [_copy(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value
