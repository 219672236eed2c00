"""Measurement speed and pytest start-up, side by side (run by hand, not by CI).

    .venv/bin/python benchmarks/bench.py [--repeat 5] [--profile unet]

Prints medians of CPU time (other load on the machine matters less than for wall
time), every ratio taken within the same run, for a ResNet-50-style CNN and a
ViT-B/16-style transformer (batch 1, 224x224), a U-Net (four levels, base width 64) at
4x3x128x128 and a BERT-base-sized encoder (12 layers, width 768, sequence 512): the
model's plain no-grad forward, pytest-actbudget's measure() (FLOPs, activations,
shapes, bytes and saved_bytes in one trace), fvcore's FlopCountAnalysis(...).total()
and PyTorch's FlopCounterMode, plus a cached re-measure. Then a marked pytest test
against the same test unmarked (U-Net, ViT-B/16), the 7B decoder on the meta device
(time and peak RSS, in a subprocess), a training measurement beside the forward-only
one (ResNet-50, ViT-B/16, BERT-base, the 7B decoder), and pytest start-up with and
without the plugin. ``--only PART ...`` runs some of them.
``--profile MODEL`` prints where measure()'s time goes (cProfile) instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from marked import marked_vs_unmarked  # noqa: E402  # benchmarks/marked.py


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: unlike wall time, it barely
    moves when other processes load the machine."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def interleaved_medians(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median CPU seconds of each run; runs alternate within every round, so that load
    from other processes hits all of them alike."""
    for run in runs.values():
        run()  # warm-up: first-call costs (imports, allocator) are not what we compare
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = cpu_seconds()
            run()
            times[name].append(cpu_seconds() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def models() -> dict[str, Callable[[], tuple[Any, Any]]]:
    """The benchmark's models, each with its example input, built on demand."""
    import torch
    from nets import UNet, bert_base  # type: ignore[import-not-found]  # tests/nets.py
    from zoo import resnet50, vit_b_16  # type: ignore[import-not-found]  # tests/zoo.py

    return {
        "resnet50": lambda: (resnet50().eval(), torch.randn(1, 3, 224, 224)),
        "vit_b_16": lambda: (vit_b_16().eval(), torch.randn(1, 3, 224, 224)),
        "unet": lambda: (UNet().eval(), torch.randn(4, 3, 128, 128)),
        "bert_base": lambda: (bert_base().eval(), torch.randint(0, 30522, (1, 512))),
    }


def compare_models(repeat: int) -> None:
    import torch
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_actbudget.measure.model import MeasureCache, measure

    def forward(model: torch.nn.Module, x: torch.Tensor) -> None:
        with torch.no_grad():
            model(x)

    def fvcore_flops(model: torch.nn.Module, x: torch.Tensor) -> None:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none").total()

    def flop_counter_mode(model: torch.nn.Module, x: torch.Tensor) -> None:
        with FlopCounterMode(display=False) as counter:
            model(x)
        counter.get_total_flops()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU time, "
        f"median of {repeat}"
    )
    print(
        f"{'model':<10} {'GFLOPs':>7} {'forward':>9} {'measure()':>10} {'fvcore':>9} "
        f"{'FlopCounterMode':>16} {'m/FCM':>6} {'m/fwd':>6} {'m/fvcore':>8} {'cached':>8}"
    )
    for name, build in models().items():
        model, x = build()
        cache = MeasureCache()
        profile = measure(model, x, cache=cache)
        t = interleaved_medians(
            {
                "forward": lambda: forward(model, x),  # noqa: B023
                "ours": lambda: measure(model, x),  # noqa: B023
                "fvcore": lambda: fvcore_flops(model, x),  # noqa: B023
                "mode": lambda: flop_counter_mode(model, x),  # noqa: B023
                "cached": lambda: measure(model, x, cache=cache),  # noqa: B023
            },
            repeat,
        )
        print(
            f"{name:<10} {profile.total.flops / 1e9:>7.1f} {t['forward'] * 1e3:>7.0f}ms"
            f" {t['ours'] * 1e3:>8.0f}ms {t['fvcore'] * 1e3:>7.0f}ms {t['mode'] * 1e3:>14.0f}ms"
            f" {t['ours'] / t['mode']:>5.2f}x {t['ours'] / t['forward']:>5.2f}x"
            f" {t['ours'] / t['fvcore']:>7.2f}x {t['cached'] * 1e3:>6.2f}ms"
            f" ({t['cached'] / t['ours']:.1%}, traced on {profile.traced_on})"
        )


def profile_measure(name: str, lines: int = 25) -> None:
    """cProfile of one measure() call (after a warm-up), by own time and cumulative."""
    from pytest_actbudget.measure.model import measure

    model, x = models()[name]()
    measure(model, x)
    profiler = cProfile.Profile()
    profiler.enable()
    measure(model, x)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)


_SEVEN_B = """
import sys, time
sys.path.insert(0, {tests!r})
import torch
from nets import decoder_7b
from pytest_actbudget.measure.model import measure
start = time.perf_counter()
with torch.device("meta"):
    model = decoder_7b()
built = time.perf_counter()
profile = measure(model, torch.zeros(1, 2048, dtype=torch.long, device="meta"))
done = time.perf_counter()
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the
# parent's peak (the benchmark's big forwards) for a fresh process.
status = open("/proc/self/status").read().split("VmHWM:")[1]
rss = int(status.split()[0]) / 1024
print(built - start, done - built, rss, profile.total.params, profile.total.flops)
"""


def seven_b() -> None:
    code = _SEVEN_B.format(tests=str(ROOT / "tests"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    build, measured, rss, params, flops = out.stdout.split()
    print(
        f"7B decoder on meta (seq 2048): build {float(build):.2f}s, measure "
        f"{float(measured):.2f}s, peak RSS {float(rss):.0f} MiB (whole process, torch "
        f"included); params {int(params):,}, FLOPs {int(flops):,} (attention included)"
    )


def training_step(repeat: int) -> None:
    """A training measurement (forward trace + one backward on meta stand-ins) next to
    the forward-only measure() and the model's own forward, and PyTorch's
    FlopCounterMode over a real forward and backward for scale."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_actbudget.measure.inputs import iter_tensors
    from pytest_actbudget.measure.model import measure
    from pytest_actbudget.training import TrainingSpec

    def forward(model: torch.nn.Module, x: torch.Tensor) -> None:
        with torch.no_grad():
            model(x)

    def real_step(model: torch.nn.Module, x: torch.Tensor) -> None:
        with FlopCounterMode(display=False):
            outputs = [t for t in iter_tensors(model(x)) if t.is_floating_point()]
            sum(t.sum() for t in outputs).backward()  # type: ignore[union-attr]
        model.zero_grad(set_to_none=True)

    adam = TrainingSpec("adam")
    print(
        f"{'model':<10} {'forward':>9} {'measure()':>10} {'+training':>10} {'ratio':>6} "
        f"{'real f+b (FCM)':>15}  backward_flops (macs)"
    )
    for name in ("resnet50", "vit_b_16", "bert_base"):
        model, x = models()[name]()
        profile = measure(model, x, counting="macs", training=adam)
        t = interleaved_medians(
            {
                "plain": lambda: forward(model, x),  # noqa: B023
                "forward": lambda: measure(model, x),  # noqa: B023
                "training": lambda: measure(model, x, training=adam),  # noqa: B023
                "real": lambda: real_step(model, x),  # noqa: B023
            },
            repeat,
        )
        print(
            f"{name:<10} {t['plain'] * 1e3:>7.0f}ms {t['forward'] * 1e3:>8.0f}ms"
            f" {t['training'] * 1e3:>8.0f}ms {t['training'] / t['forward']:>5.2f}x"
            f" {t['real'] * 1e3:>13.0f}ms  {profile.total.backward_flops:,}"
        )
    code = _SEVEN_B_TRAINING.format(tests=str(ROOT / "tests"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    forward_s, training_s, rss, backward, train_bytes = out.stdout.split()
    print(
        f"7B decoder on meta (seq 2048): forward-only measure {float(forward_s):.2f}s, with "
        f"the training step (adam) {float(training_s):.2f}s, peak RSS {float(rss):.0f} MiB "
        f"(whole process); backward_flops {int(backward):,}, train_bytes {int(train_bytes):,}"
    )


_SEVEN_B_TRAINING = """
import sys, time
sys.path.insert(0, {tests!r})
import torch
from nets import decoder_7b
from pytest_actbudget.measure.model import measure
from pytest_actbudget.training import TrainingSpec
with torch.device("meta"):
    model = decoder_7b()
tokens = torch.zeros(1, 2048, dtype=torch.long, device="meta")
start = time.perf_counter()
measure(model, tokens)
forward = time.perf_counter()
profile = measure(model, tokens, training=TrainingSpec("adam"))
done = time.perf_counter()
# VmHWM, not ru_maxrss (which Linux keeps across exec: see _SEVEN_B)
status = open("/proc/self/status").read().split("VmHWM:")[1]
rss = int(status.split()[0]) / 1024
total = profile.total
print(forward - start, done - forward, rss, total.backward_flops, total.train_bytes)
"""


_SUITE_CONFTEST = """
import sys
def pytest_sessionfinish(session):
    (session.config.rootpath / "torch_imported.txt").write_text(str("torch" in sys.modules))
"""


def pytest_startup(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp)
        (suite / "conftest.py").write_text(_SUITE_CONFTEST)
        tests = "".join(f"def test_{i}():\n    assert {i} == {i}\n\n" for i in range(20))
        (suite / "test_plain.py").write_text(tests)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        imported = {}

        def run(label: str, extra: list[str]) -> None:
            subprocess.run([*base, *extra], cwd=suite, capture_output=True, check=True)
            imported[label] = (suite / "torch_imported.txt").read_text()

        t = interleaved_medians(
            {
                "without plugin": lambda: run("without plugin", ["-p", "no:actbudget"]),
                "with plugin": lambda: run("with plugin", []),
            },
            repeat,
        )
        for label, seconds in t.items():
            print(
                f"pytest start-up {label:<15} {seconds * 1e3:7.0f}ms"
                f"  torch imported: {imported[label]}"
            )
        print(f"plugin overhead: {(t['with plugin'] - t['without plugin']) * 1e3:+.0f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--profile", metavar="MODEL", help="cProfile measure() of MODEL")
    parser.add_argument(
        "--only", choices=["models", "pytest", "7b", "training", "startup"], nargs="*"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.profile:
        profile_measure(args.profile)
        return
    parts = args.only or ["models", "pytest", "7b", "training", "startup"]
    if "models" in parts:
        compare_models(args.repeat)
    if "pytest" in parts:
        marked_vs_unmarked(max(args.repeat // 2, 1), args.threads)
    if "7b" in parts:
        seven_b()
    if "training" in parts:
        training_step(args.repeat)
    if "startup" in parts:
        pytest_startup(args.repeat)


if __name__ == "__main__":
    main()
