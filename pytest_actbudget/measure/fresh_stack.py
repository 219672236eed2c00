"""Run a meta trace on a fresh thread, so that the tracer walks a short Python stack.

The JIT tracer records, for every node it adds to the graph (each constant argument
included: a convolution adds about twenty), the whole Python call stack as the node's
source location, about 10 us a frame. Under pytest the stack at a model's operator is
some 60 frames of pytest and pluggy on top of the model's own; on a new thread it
starts at the measurement. On ResNet-50, 60 extra frames made ``measure()`` 30-40%
slower, which is what a marked test paid.

Only meta traces run here: they compute nothing, so the per-thread settings that a
real trace's kernels would read (intra-op threads; autocast, which does not apply on
meta) do not matter. The caller's context variables are carried over; grad mode and
the other thread-local switches a trace needs are set by the trace itself.

Imported only while measuring.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_fresh_stack(run: Callable[[], T]) -> T:
    """``run()`` on a new thread; its result, or what it raised, here."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append(context.run(run))
        except BaseException as error:  # raised again in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=target, name="pytest-actbudget trace", daemon=True)
    thread.start()
    try:
        thread.join()
    except BaseException:
        # Ctrl-C while tracing: the trace still puts the model and torch back first.
        thread.join()
        raise
    if failure:
        raise failure.pop()
    return outcome[0]
