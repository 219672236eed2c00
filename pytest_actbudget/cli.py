"""The ``actbudget`` command: ``profile``, ``init`` and ``diff`` outside pytest.

Exit status: 0 done, 1 ``diff`` found growth past ``--fail-over``, 2 a usage error
(an import path, input shape, model or file that does not work), reported as one line
on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_actbudget.budgets.inputs import DTYPES, reproducible
from pytest_actbudget.budgets.schema import (
    BudgetsFile,
    ModelBudget,
    load_budgets,
)
from pytest_actbudget.budgets.units import format_percent, parse_percent
from pytest_actbudget.budgets.write import MeasuredEntry, update_budgets
from pytest_actbudget.checks import evaluate
from pytest_actbudget.errors import ActBudgetError
from pytest_actbudget.grouping import GroupPatterns, auto_groups, group_profile
from pytest_actbudget.report import diff, terminal
from pytest_actbudget.report import json as json_report
from pytest_actbudget.report.format import (
    inputs_text,
    shared_lines,
    uncounted_text,
    warning_lines,
)
from pytest_actbudget.report.style import Palette
from pytest_actbudget.results import (
    COUNTINGS,
    BudgetResult,
    GroupResult,
    Profile,
    TensorSpec,
    total_stats,
)
from pytest_actbudget.training import TrainingSpec

__all__ = ["UsageError", "main"]

# torch (through measure) is imported only by the commands that build a model, so that
# `actbudget diff` and `--help` start fast.


class UsageError(ActBudgetError):
    """A command line that cannot work; the message says why and what would."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``actbudget`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message (or --help)
        return exit_.code if isinstance(exit_.code, int) else 2
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ActBudgetError as error:
        print(f"actbudget {args.verb}: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actbudget",
        description="Per-layer compute of PyTorch models and their budgets (pytest-actbudget).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    profile = verbs.add_parser(
        "profile", help="print the per-layer table and group shares of a model"
    )
    _model_arguments(
        profile,
        input_help="; default: the `input:` of the --name entry",
        counting_help="the budgets file's `counting.flops` when --name or --file is given, "
        "else fvcore",
    )
    profile.add_argument(
        "--name",
        default=None,
        help="group as this budgets entry does (its groups, budgets and `input:`)",
    )
    profile.add_argument(
        "--file",
        default=None,
        help="budgets file for --name and the FLOP convention (default with --name: budgets.yaml)",
    )
    profile.add_argument(
        "--depth",
        type=int,
        default=None,
        metavar="N",
        help="show modules down to depth N (root = 0); default: all",
    )
    profile.add_argument("--json", action="store_true", help="print a JSON report instead")
    profile.add_argument(
        "--training",
        action="store_true",
        help="also measure one training step (backward_flops, train_flops, train_bytes), "
        "costed by the entry's `training:` or the file's defaults.training (default: sgd); "
        "an entry with `training:` gets one without this flag",
    )
    profile.set_defaults(command=_profile)

    init = verbs.add_parser("init", help="write a starter budget entry with automatic groups")
    _model_arguments(
        init,
        input_help="; default: the `input:` of the existing entry (with --force)",
        counting_help="the budgets file's `counting.flops`, else fvcore",
    )
    init.add_argument("--name", required=True, help="the entry name, as the marker uses it")
    init.add_argument("--file", default="budgets.yaml", help="budgets file (default: %(default)s)")
    init.add_argument(
        "--headroom",
        default=None,
        metavar="PCT",
        help="budget = measured x (1 + headroom); default: the file's, else 10%%",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="re-record every budget an existing entry lists, grouped by its own groups",
    )
    init.set_defaults(command=_init)

    diff = verbs.add_parser("diff", help="compare two JSON reports, group by group")
    diff.add_argument("old", help="the report before (JSON)")
    diff.add_argument("new", help="the report after (JSON)")
    diff.add_argument(
        "--fail-over",
        default=None,
        metavar="PCT",
        help="exit 1 when any group grew by more than PCT (e.g. 10%% or 0.1)",
    )
    diff.add_argument(
        "--format",
        choices=("text", "md", "json"),
        default="text",
        help="text (default); md: a pull-request comment (a headline, then the changed "
        "groups, largest growth first); json: every change as data",
    )
    diff.set_defaults(command=_diff)
    return parser


def _model_arguments(
    parser: argparse.ArgumentParser, *, input_help: str, counting_help: str
) -> None:
    parser.add_argument(
        "factory",
        metavar="PKG.MODULE:FACTORY",
        help="a callable returning the model (or an nn.Module instance)",
    )
    parser.add_argument(
        "--input",
        action="append",
        default=None,
        metavar="SHAPE",
        help="input shape, e.g. 64,3,28,28; repeat for more inputs" + input_help,
    )
    parser.add_argument(
        "--dtype",
        action="append",
        default=None,
        help="input dtype (default float32); once for all inputs or once each",
    )
    parser.add_argument(
        "--counting",
        choices=COUNTINGS,
        default=None,
        help=f"FLOP convention (default: {counting_help})",
    )
    parser.add_argument("--eval", action="store_true", help="measure in eval mode")


# -- profile ------------------------------------------------------------------------


def _profile(args: argparse.Namespace) -> int:
    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth {args.depth}: expected 0 (root only) or more")
    budgets = None
    if args.name is not None or args.file is not None:
        # --name needs its entry and --file was named on purpose: the file must exist.
        budgets = load_budgets(args.file or "budgets.yaml", must_exist=True)
    entry = _entry(budgets, args.name) if budgets is not None and args.name else None
    counting = args.counting or (budgets.counting if budgets is not None else "fvcore")
    if budgets is not None:
        training = budgets.training_for(entry, args.training)
    else:
        training = TrainingSpec() if args.training else None
    profile = _measure(args, counting, entry=entry, training=training)
    if entry is None or budgets is None:
        result = _unchecked_result(args.factory, profile)
    elif counting != budgets.counting:  # budgets in another unit: show the groups only
        result = _unchecked_result(entry.name, profile, _patterns(entry))
    else:
        result = evaluate(profile, entry, nodeid="", budget_file=budgets.path)
    if args.json:
        sys.stdout.write(json_report.render([result], json_report.environment()))
        return 0
    palette = Palette(sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    lines = [
        palette.paint(f"{profile.model}({inputs_text(profile.inputs)})", "bold")
        + f"  {profile.counting}  from {args.factory}"
        + (f"  entry '{entry.name}'" if entry is not None else ""),
        *("  " + palette.paint(text, "warn") for text in warning_lines(result)),
        *terminal.layer_lines(result, palette, depth=args.depth),
        "",
        *terminal.group_lines(result, palette),
        *("  " + text for text in shared_lines(result)),
        *terminal.training_lines(result, palette),
    ]
    if profile.uncounted_ops:
        lines.append("  uncounted operators: " + uncounted_text(profile.uncounted_ops))
    print("\n".join(lines))
    return 0


def _unchecked_result(
    name: str, profile: Profile, patterns: GroupPatterns | None = None
) -> BudgetResult:
    """A result with ``patterns`` (default: automatic groups) and no budget, for the
    renderers."""
    stats = group_profile(profile, auto_groups(profile) if patterns is None else patterns)
    return BudgetResult(
        name=name,
        nodeid="",
        outcome="no_budget",
        counting=profile.counting,
        profile=profile,
        groups=tuple(GroupResult(s) for s in stats),
        total=GroupResult(total_stats(profile)),
        message="measured by `actbudget profile`; no budget was checked",
    )


# -- init ---------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    budgets = load_budgets(args.file)
    existing = budgets.models.get(args.name)
    if existing is not None and not args.force:
        raise UsageError(
            f"{args.file}:{existing.line}: entry '{args.name}' exists already; "
            "pass --force to re-record its budgets from this measurement"
        )
    counting = args.counting or budgets.counting
    if budgets.exists and args.counting and args.counting != budgets.counting:
        raise UsageError(
            f"{args.file}: counts flops as '{budgets.counting}'; --counting {args.counting} "
            "would mix units in one file (leave --counting out, or use another --file)"
        )
    given = _percent(args.headroom, "--headroom") if args.headroom is not None else None
    headroom = budgets.headroom_for(given)
    training = budgets.training_for(existing, False)  # an entry's `training:` is kept
    profile = _measure(args, counting, entry=existing, training=training)
    # An existing entry is re-recorded group by group, so measure with its own groups:
    # automatic groups ("0", "1", ...) would match none of its names but `total`.
    patterns = _patterns(existing) if existing is not None else auto_groups(profile)
    stats = group_profile(profile, patterns)
    entry = MeasuredEntry(
        name=args.name,
        groups={s.name: s.metrics for s in stats if s.name in patterns},
        group_modules={group: tuple(p) for group, p in patterns.items()},
        total={metric: profile.total.metric(metric) for metric in profile.measured_metrics},
        input=reproducible(profile.inputs, plain=True),
        mode=profile.mode,
        training=profile.training is not None,
    )
    Path(args.file).parent.mkdir(parents=True, exist_ok=True)
    summary = update_budgets(
        args.file, [entry], headroom, counting=counting, metrics=budgets.metrics
    )
    for line in summary.lines():
        print(line)
    print(f"budgets = measured x (1 + {format_percent(headroom)} headroom), rounded up")
    return 0


# -- diff ---------------------------------------------------------------------------


def _diff(args: argparse.Namespace) -> int:
    threshold = _percent(args.fail_over, "--fail-over") if args.fail_over is not None else None
    changes = diff.compare(json_report.load(args.old), json_report.load(args.new))
    if args.format == "text":
        sys.stdout.write(diff.render(changes, fail_over=threshold))
    else:
        from pytest_actbudget.report import diff_formats

        render = diff_formats.markdown if args.format == "md" else diff_formats.json_text
        limit = threshold if threshold is not None else diff_formats.DEFAULT_THRESHOLD
        sys.stdout.write(render(changes, threshold=limit))
    return 1 if threshold is not None and changes.grown(threshold) else 0


# -- model, inputs, numbers ---------------------------------------------------------


def _entry(budgets: BudgetsFile, name: str) -> ModelBudget:
    entry = budgets.models.get(name)
    if entry is None:
        names = list(budgets.models)
        nearest = difflib.get_close_matches(name, names, n=3)
        hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
        raise UsageError(f"{budgets.path}: no entry '{name}'{hint}")
    return entry


def _patterns(entry: ModelBudget) -> dict[str, tuple[str, ...]]:
    return {group.name: group.modules for group in entry.groups}


def _measure(
    args: argparse.Namespace,
    counting: str,
    *,
    entry: ModelBudget | None = None,
    training: TrainingSpec | None = None,
) -> Profile:
    """Measure the factory's model on ``--input``, else on ``entry``'s ``input:``, in
    the entry's ``mode:`` unless ``--eval`` (else as the factory made it)."""
    from pytest_actbudget.measure.model import measure

    if args.input:
        shapes = [_shape(text) for text in args.input]
        dtypes = _dtypes(args.dtype, len(shapes))
        specs = tuple(TensorSpec(shape, dtype) for shape, dtype in zip(shapes, dtypes, strict=True))
    elif entry is not None and entry.input is not None:
        if args.dtype:
            raise UsageError("--dtype goes with --input; the entry's `input:` names its own dtypes")
        specs = entry.input
    elif entry is not None:
        raise UsageError(
            f"{args.file or 'budgets.yaml'}:{entry.line}: entry '{entry.name}' has no "
            "`input:`: pass --input SHAPE, or add `input: [N, C, H, W]` to the entry"
        )
    elif getattr(args, "name", None):  # init of a new entry: nothing to take it from
        raise UsageError(
            f"no input shape: pass --input SHAPE (e.g. --input 64,3,28,28); entry "
            f"'{args.name}' is not in {args.file} yet, so it has no `input:` to take"
        )
    else:
        raise UsageError(
            "no input shape: pass --input SHAPE (e.g. --input 64,3,28,28), or --name NAME "
            "of a budgets entry with `input:`"
        )
    model = _load_model(args.factory)
    if args.eval:
        model.eval()
    elif entry is not None and entry.mode is not None:
        model.train(entry.mode == "train")
    positional, keywords = _inputs(specs)
    return measure(model, *positional, counting=counting, training=training, **keywords)


def _load_model(spec: str) -> Any:
    """Import ``PKG.MODULE:FACTORY`` (the current directory first on sys.path, as pytest
    does for rootdir modules) and call the factory, unless it is a model already."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"'{spec}': expected PKG.MODULE:FACTORY, e.g. 'mymodels.resnet:resnet18'")
    if "/" in module_name or "\\" in module_name or module_name.endswith(".py"):
        dotted = module_name.removesuffix(".py").replace("\\", "/").strip("/").replace("/", ".")
        raise UsageError(
            f"'{spec}': '{module_name}' is a file path, not a module; name the module as "
            f"Python imports it (from the current directory): '{dotted}:{attribute}'"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the user's module: any exception is a usage error
        raise UsageError(f"cannot import '{module_name}': {_why(error)}") from error
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = [name for name in dir(target) if not name.startswith("_")]
            nearest = difflib.get_close_matches(part, names, n=3)
            hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
            raise UsageError(f"module '{module_name}' has no attribute '{attribute}'{hint}")
        target = getattr(target, part)
    from torch import nn

    if isinstance(target, nn.Module):
        return target
    if not callable(target):
        raise UsageError(f"'{spec}' is a {type(target).__name__}, not a model or a factory")
    try:
        model = target()
    except Exception as error:
        raise UsageError(f"calling '{spec}' raised {_why(error)}") from error
    if not isinstance(model, nn.Module):
        raise UsageError(f"'{spec}' returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _why(error: BaseException) -> str:
    return str(error) if isinstance(error, ImportError) else f"{type(error).__name__}: {error}"


def _shape(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise UsageError(
            f"--input '{text}': expected a comma-separated list of positive integers, "
            "e.g. --input 64,3,28,28"
        )
    return tuple(int(part) for part in parts)


def _dtypes(given: Sequence[str] | None, count: int) -> list[str]:
    names = list(given or ["float32"])
    for name in names:
        if name not in DTYPES:
            nearest = difflib.get_close_matches(name, DTYPES, n=1)
            hint = f" (did you mean {nearest[0]}?)" if nearest else ""
            raise UsageError(f"--dtype '{name}'{hint}: valid dtypes are {', '.join(DTYPES)}")
    if len(names) == 1:
        return names * count
    if len(names) != count:
        raise UsageError(
            f"{len(names)} --dtype for {count} --input: give one --dtype for all inputs "
            "or one per input"
        )
    return names


def _inputs(specs: Sequence[TensorSpec]) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword inputs for ``specs``: random normal floats (seeded: the
    same numbers every run); zeros for integers, which are valid indices for embeddings."""
    import torch

    generator = torch.Generator().manual_seed(0)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for spec in specs:
        dtype = getattr(torch, spec.dtype)
        if dtype.is_floating_point:
            tensor = torch.randn(spec.shape, generator=generator).to(dtype)
        else:
            tensor = torch.zeros(spec.shape, dtype=dtype)
        if spec.name is None:
            positional.append(tensor)
        else:
            keywords[spec.name] = tensor
    return positional, keywords


def _percent(text: str, option: str) -> float:
    """``10%`` or ``0.1`` -> 0.1, read as ``--actbudget-headroom`` reads it."""
    try:
        return parse_percent(text)
    except ValueError as error:
        raise UsageError(f"{option} '{text}': {error}") from error
