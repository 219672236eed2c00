"""Measurement speed and pytest start-up, side by side (run by hand, not by CI).

    .venv/bin/python benchmarks/bench.py [--repeat 5]

Prints medians (CPU time, so that other load on the machine matters less) for a
ResNet-50-style CNN (batch 1, 224x224) and a ViT-B/16-style
transformer (batch 1, 224x224): pytest-actbudget's measure() (FLOPs, activations,
shapes, bytes, saved_bytes in one trace) against fvcore's FlopCountAnalysis alone,
fvcore's FLOP and activation analyses run as two analyses, and PyTorch's
FlopCounterMode; then a cached re-measure, the 7B decoder on the meta device (time and
peak RSS, in a subprocess), and pytest start-up with and without the plugin.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


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


def compare_models(repeat: int) -> None:
    import torch
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode
    from zoo import resnet50, vit_b_16  # type: ignore[import-not-found]  # tests/zoo.py

    from pytest_actbudget.measure.model import MeasureCache, measure

    def quiet(analysis: FlopCountAnalysis) -> FlopCountAnalysis:
        return (
            analysis.unsupported_ops_warnings(False)
            .uncalled_modules_warnings(False)
            .tracer_warnings("none")
        )

    def fvcore_flops(model: torch.nn.Module, x: torch.Tensor) -> None:
        quiet(FlopCountAnalysis(model, x)).total()

    def fvcore_two(model: torch.nn.Module, x: torch.Tensor) -> None:
        quiet(FlopCountAnalysis(model, x)).total()
        quiet(ActivationCountAnalysis(model, x)).total()

    def flop_counter_mode(model: torch.nn.Module, x: torch.Tensor) -> None:
        with FlopCounterMode(display=False) as counter:
            model(x)
        counter.get_total_flops()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU time, "
        f"median of {repeat}"
    )
    header = f"{'model':<10} {'measure()':>10} {'fvcore flops':>13} {'fvcore f+a':>11}"
    print(header + f" {'FlopCounterMode':>16} {'ratio':>6} {'cached':>9} {'cached %':>9}")
    for name, factory in (("resnet50", resnet50), ("vit_b_16", vit_b_16)):
        model = factory().eval()
        x = torch.randn(1, 3, 224, 224)
        cache = MeasureCache()
        measure(model, x, cache=cache)
        t = interleaved_medians(
            {
                "ours": lambda: measure(model, x),  # noqa: B023
                "alone": lambda: fvcore_flops(model, x),  # noqa: B023
                "two": lambda: fvcore_two(model, x),  # noqa: B023
                "mode": lambda: flop_counter_mode(model, x),  # noqa: B023
                "cached": lambda: measure(model, x, cache=cache),  # noqa: B023
            },
            repeat,
        )
        print(
            f"{name:<10} {t['ours'] * 1e3:>8.0f}ms {t['alone'] * 1e3:>11.0f}ms"
            f" {t['two'] * 1e3:>9.0f}ms {t['mode'] * 1e3:>14.0f}ms"
            f" {t['ours'] / t['alone']:>5.2f}x {t['cached'] * 1e3:>7.2f}ms"
            f" {t['cached'] / t['ours']:>8.2%}"
        )


_SEVEN_B = """
import resource, sys, time
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
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    compare_models(args.repeat)
    seven_b()
    pytest_startup(args.repeat)


if __name__ == "__main__":
    main()
