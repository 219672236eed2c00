"""One fvcore JIT trace of a model -> Profile.

The trace runs once, with grad enabled (so autograd saves what a training forward
saves), with our forward and saved-tensor hooks attached, and with one
``JitModelAnalysis`` whose handles count FLOPs and activations together. Imported
by ``measure`` only while measuring: this module imports torch and fvcore.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Any

import torch
from fvcore.nn.jit_analysis import JitModelAnalysis
from torch import nn

from pytest_actbudget.grouping import ancestors
from pytest_actbudget.measure.fresh_stack import on_fresh_stack
from pytest_actbudget.measure.handles import HANDLES
from pytest_actbudget.measure.hooks import ModelState, Recorder
from pytest_actbudget.measure.inputs import iter_tensors, replace_tensors, tensor_spec
from pytest_actbudget.measure.meta import cpu_like_meta, int_shapes
from pytest_actbudget.measure.reference import math_attention, no_fast_path, reference_forward
from pytest_actbudget.measure.standins import blocker, meta_standins
from pytest_actbudget.results import LayerStats, Profile, SharedParam, TensorSpec

#: Name of the user's model inside the wrapper that binds its inputs.
_INNER = "model"
#: Longest ``meta_fallback`` reason, in characters (torch's messages run to paragraphs).
_REASON_WIDTH = 200


class ForwardFailed(Exception):
    """The user's forward raised; ``__cause__`` is what it raised."""


class NoTensorOutput(Exception):
    """The user's forward returned nothing the tracer can follow."""

    def __init__(self, output: Any) -> None:
        super().__init__(f"its forward returned no tensor (got {type(output).__name__})")


class _Bound(nn.Module):
    """The user's model with its inputs bound, as the JIT tracer wants it: a flat
    tuple of tensors in (the non-tensor arguments and forward kwargs are fixed) and a
    flat tuple of tensors out (dicts, dataclasses and tuples are flattened)."""

    def __init__(self, model: nn.Module, structure: tuple[Any, ...]) -> None:
        super().__init__()
        self.model = model
        self._structure = structure

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        args, kwargs = replace_tensors(self._structure, iter(tensors))
        try:
            output = self.model(*args, **kwargs)
        except Exception as error:
            raise ForwardFailed() from error
        flat = tuple(iter_tensors(output))
        if not flat:
            raise NoTensorOutput(output)
        return flat


@contextmanager
def _measuring(on_meta: bool, recorder: Recorder) -> Iterator[None]:
    """The reference forward (see measure/reference.py) with our recording on."""
    with (
        reference_forward(),
        recorder.recording(),
        int_shapes(),
        cpu_like_meta(on_meta, recorder.pack),
        # Tensors the forward makes without naming a device (torch.arange(n)) join
        # the meta stand-ins instead of clashing with them on the CPU.
        torch.device("meta") if on_meta else nullcontext(),
    ):
        yield


def trace_profile(
    model: nn.Module,
    inputs: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    counting: str,
    *,
    standins: bool = True,
) -> Profile:
    """Measure ``model(*inputs, **kwargs)`` with one trace; see ``measure``.

    The trace runs on meta stand-ins of the model's tensors and of the inputs (see
    ``standins``) when ``standins`` is on and they can serve; when they cannot (a
    data-dependent operator, an op without a meta kernel, a tensor with no stand-in)
    it runs again on the real tensors, and the Profile says where and why.
    """
    structure = (inputs, dict(kwargs))
    tensors = tuple(iter_tensors(structure))
    paths = {module: path for path, module in model.named_modules()}
    real = next(
        (t for t in (*tensors, *model.parameters(), *model.buffers()) if not t.is_meta), None
    )
    if real is None:
        return _trace(model, structure, counting, Recorder(paths), on_meta=True)
    reason = blocker(tensors, model) if standins else None
    if standins and reason is None:
        recorder = None
        try:
            with meta_standins(model) as standin:
                # Made inside: it tells the stand-ins of parameters and buffers apart.
                recorder = Recorder(paths)
                on_meta = replace_tensors(structure, (standin(t) for t in tensors))
                return _trace(model, on_meta, counting, recorder, on_meta=True)
        except NoTensorOutput:
            raise  # the real trace would return no tensor either
        except Exception as error:
            reason = fallback_reason(error, recorder)
    mixed = any(t.is_meta for t in (*tensors, *model.parameters()))
    profile = _trace(model, structure, counting, Recorder(paths), on_meta=mixed)
    return replace(profile, traced_on=str(real.device), meta_fallback=reason)


def fallback_reason(error: BaseException, recorder: Recorder | None) -> str:
    """One line on why the meta trace failed: where (the innermost module the error
    left) and the error's first sentence, e.g. ``in gate (Gate): RuntimeError: ...``."""
    cause = error.__cause__ if isinstance(error, ForwardFailed) and error.__cause__ else error
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    if recorder is not None and recorder.failed_in is not None:
        path = recorder.failed_in
        kind = next(type(m).__name__ for m, p in recorder.paths.items() if p == path)
        text = f"in {path} ({kind}): {text}" if path else f"in {kind}.forward: {text}"
    if len(text) <= _REASON_WIDTH:
        return text
    # torch's messages run to paragraphs on one line: keep whole sentences.
    end = text.rfind(". ", 0, _REASON_WIDTH)
    return text[: end + 1] if end > 0 else text[: _REASON_WIDTH - 3] + "..."


def _trace(
    model: nn.Module,
    structure: tuple[Any, ...],
    counting: str,
    recorder: Recorder,
    *,
    on_meta: bool,
) -> Profile:
    tensors = tuple(iter_tensors(structure))
    # A meta buffer has no value to put back: only real ones are snapshotted.
    state = ModelState(model, buffers=not on_meta)
    bound = _Bound(model, structure)
    with torch.inference_mode(False):
        # Autograd cannot save inference tensors (made under inference_mode): copies can.
        traced = tuple(t.clone() if t.is_inference() else t for t in tensors)
    analysis = (
        JitModelAnalysis(bound, traced)
        .set_op_handle(**HANDLES[counting])
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
        .tracer_warnings("none")
    )

    def analyze() -> Mapping[str, Counter[str]]:
        with _measuring(on_meta, recorder):
            counts: Mapping[str, Counter[str]] = analysis.by_module_and_operator()
        return counts

    try:
        # A meta trace computes nothing: it runs where the tracer's stack walks are short.
        counts = on_fresh_stack(analyze) if on_meta else analyze()
        uncounted = Counter(analysis.unsupported_ops(""))
    finally:
        state.restore()
    specs = (
        *(tensor_spec(t) for arg in structure[0] for t in iter_tensors(arg)),
        *(tensor_spec(t, key) for key, value in structure[1].items() for t in iter_tensors(value)),
    )
    mode = "train" if model.training else "eval"  # restored above: as the user left it
    return _profile(model, specs, mode, counting, recorder, counts, uncounted)


def plain_trace_error(
    model: nn.Module, inputs: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> BaseException | None:
    """What tracing the forward raises without our tracing tweaks (plain-int sizes,
    meta convolutions), as plain fvcore would trace it; None when that trace works."""
    structure = (inputs, dict(kwargs))
    tensors = tuple(iter_tensors(structure))
    state = ModelState(model)
    try:
        with no_fast_path(), torch.random.fork_rng(devices=[]), math_attention():
            torch.jit.trace(_Bound(model, structure), tensors, check_trace=False)  # type: ignore[no-untyped-call]
    except ForwardFailed as failed:
        return failed.__cause__ or failed
    except Exception as error:
        return error
    finally:
        state.restore()
    return None


def _profile(
    model: nn.Module,
    inputs: tuple[TensorSpec, ...],
    mode: str,
    counting: str,
    recorder: Recorder,
    counts: Mapping[str, Counter[str]],
    uncounted: Counter[str],
) -> Profile:
    # Own (exclusive) bytes of every module, then summed into every ancestor path.
    act_bytes: Counter[str] = Counter()
    saved_bytes: Counter[str] = Counter()
    for path, record in recorder.records.items():
        for ancestor in _path_and_ancestors(path):
            act_bytes[ancestor] += record.out_bytes
            saved_bytes[ancestor] += record.saved_bytes
    for key, count in counts.get(_INNER, Counter()).items():
        if key.startswith("unknown/"):
            uncounted[key.removeprefix("unknown/")] += count

    paths = recorder.paths
    params, trainable = _parameter_counts(model)
    called = [path for path in recorder.call_order if path]
    uncalled = [path for path in paths.values() if path and recorder.records[path].calls == 0]
    modules = {path: module for module, path in paths.items()}
    layers = []
    for path in ["", *called, *uncalled]:
        module, record = modules[path], recorder.records[path]
        ops = counts.get(f"{_INNER}.{path}" if path else _INNER, Counter())
        layers.append(
            LayerStats(
                path=path,
                type=type(module).__name__,
                output_shape=record.output.shape if record.output else None,
                output_dtype=record.output.dtype if record.output else None,
                params=params[path],
                trainable=trainable[path],
                flops=_total(ops, "flops/"),
                activations=_total(ops, "act/"),
                act_bytes=act_bytes[path],
                saved_bytes=saved_bytes[path],
                calls=record.calls,
                leaf=record.innermost,
            )
        )
    return Profile(
        model=type(model).__name__,
        inputs=inputs,
        counting=counting,
        layers=tuple(layers),
        uncounted_ops=dict(sorted(uncounted.items())),
        mode=mode,
        shared_params=_shared_params(model),
    )


def _shared_params(model: nn.Module) -> tuple[SharedParam, ...]:
    """Parameter tensors reachable under more than one name (tied weights)."""
    names: dict[int, list[str]] = {}
    tensors: dict[int, nn.Parameter] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(parameter), []).append(name)
        tensors[id(parameter)] = parameter
    return tuple(
        SharedParam(tuple(held), tensors[key].numel())
        for key, held in names.items()
        if len(held) > 1
    )


def _parameter_counts(model: nn.Module) -> tuple[Counter[str], Counter[str]]:
    """Params and trainable params of every module path, inclusive of descendants,
    each parameter tensor counted once per subtree (tied weights once)."""
    seen: dict[str, set[int]] = {}
    params: Counter[str] = Counter()
    trainable: Counter[str] = Counter()
    for name, parameter in model.named_parameters(remove_duplicate=False):
        for ancestor in _path_and_ancestors(name.rpartition(".")[0]):
            if id(parameter) in seen.setdefault(ancestor, set()):
                continue
            seen[ancestor].add(id(parameter))
            params[ancestor] += parameter.numel()
            if parameter.requires_grad:
                trainable[ancestor] += parameter.numel()
    return params, trainable


def _path_and_ancestors(path: str) -> tuple[str, ...]:
    """``"a.b"`` -> ``"a.b"``, ``"a"``, ``""``: every module a number of ``path`` counts in."""
    return (path, *ancestors(path)) if path else ("",)


def _total(ops: Counter[str], prefix: str) -> int:
    return int(sum(count for key, count in ops.items() if key.startswith(prefix)))
