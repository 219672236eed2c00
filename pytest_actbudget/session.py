"""Per-run state: budgets files, checks, results, xdist merge, update writes, reports.

The pytest hooks in plugin.py delegate here; nothing in this module touches pytest
reports, and torch is imported only through measure.py when a check runs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .budgets.schema import BudgetsFile, ModelBudget, load_budgets
from .budgets.write import MeasuredEntry, UpdateSummary, update_budgets
from .checks import evaluate, unbudgeted, uncounted_offenders, violation_message
from .errors import (
    ActBudgetError,
    BudgetExceeded,
    BudgetFileError,
    GroupingError,
    MeasurementError,
    NoBudget,
    NoModelCalled,
)
from .grouping import auto_groups, group_profile
from .growth import with_growth
from .guards import other_models, recorded_change, slack, unguarded
from .options import Options
from .report import ReportTarget
from .results import (
    OTHER_GROUP,
    BudgetResult,
    GroupResult,
    GrowthResult,
    Profile,
    TensorSpec,
    total_stats,
)
from .scaling import Scaling, ScalingError, growth_applies, measure_growth
from .training import TrainingSpec

if TYPE_CHECKING:
    from .report.baseline import Baseline, Comparison

# Exit codes the end of a run may ask for (pytest.ExitCode values).
TESTS_FAILED = 1
USAGE_ERROR = 4


class StrictFailure(AssertionError):
    """``--actbudget-strict`` found uncounted operators, unguarded groups or slack budgets."""


@dataclass(frozen=True)
class Recorded:
    """One check made in this run, with its place in collection order."""

    order: tuple[int, int]  # (index of the test in the collection, nth check in the test)
    result: BudgetResult


@dataclass(frozen=True)
class PendingUpdate:
    """What --actbudget-update will write for one check, once its test has passed."""

    budget_file: str
    entry: MeasuredEntry
    order: int = 0  # the test's index in the collection: entries are created in test order


class BudgetSession:
    """Everything pytest-actbudget keeps for one pytest run (one per process)."""

    def __init__(
        self, options: Options, *, worker: bool = False, baseline: Baseline | None = None
    ) -> None:
        self.options = options
        self.worker = worker
        self.baseline = baseline
        self.records: list[Recorded] = []
        self.updates: list[PendingUpdate] = []
        self.update_summaries: list[UpdateSummary] = []
        self.strict_problems: list[str] = []
        self.refused_updates: list[str] = []  # entries checked with different inputs/modes
        self.write_errors: list[str] = []
        self.reports_written: list[ReportTarget] = []
        self.full_run = True
        self.referenced: set[tuple[str, str]] = set()  # (file, entry) named by collected tests
        self._files: dict[str, BudgetsFile] = {}
        self._order: dict[str, int] = {}
        self._checks_per_test: Counter[str] = Counter()
        self._pending: dict[str, list[PendingUpdate]] = {}
        self._cache: Any = None

    # -- collection -----------------------------------------------------------------

    def prepare(self, tests: Iterable[tuple[str, bool, str | None, str | None]]) -> None:
        """Note collection order and load the budgets files the collected tests use.

        ``tests`` holds (nodeid, uses_act_budget, marker_name, marker_file) per item.
        A bad budgets file raises BudgetFileError before any test runs.
        """
        needed = False
        for index, (nodeid, uses, name, file) in enumerate(tests):
            self._order[nodeid] = index
            if not uses:
                continue
            needed = True
            path = self.resolve_file(file)
            self.budgets(path)
            if name is not None:
                self.referenced.add((path, name))
        if needed or self.options.update:
            self.budgets(self.resolve_file(None))

    def load_default_file(self) -> BudgetsFile:
        return self.budgets(str(self.options.budgets_file))

    def resolve_file(self, file: str | None) -> str:
        if file is None:
            return str(self.options.budgets_file)
        return (
            str(self.options.budgets_file.parent / file) if not Path(file).is_absolute() else file
        )

    def budgets(self, path: str) -> BudgetsFile:
        """The budgets file at ``path``, loaded once per run."""
        loaded = self._files.get(path)
        if loaded is None:
            loaded = load_budgets(path)
            # A file named on purpose (option, ini, marker) must exist, unless this run
            # is the one that creates it.
            named = path != str(self.options.budgets_file) or self.options.budgets_file_given
            if named and not loaded.exists and not self.options.update:
                raise BudgetFileError(
                    f"{self._absolute(path)}: the budgets file does not exist; "
                    f"{self._why(path)}. Check the path, or create the file with "
                    "`pytest --actbudget-update`",
                    path=path,
                )
            self._files[path] = loaded
        return loaded

    def _absolute(self, path: str) -> str:
        return str((self.options.start_dir / path).resolve())

    def _why(self, path: str) -> str:
        """Why pytest-actbudget looked for the budgets file at ``path``."""
        if path != str(self.options.budgets_file):
            return (
                "it was named by a marker's file= (relative to the folder of "
                f"{self._absolute(str(self.options.budgets_file))})"
            )
        return self.options.budgets_file_why

    def missing_file_text(self, name: str, path: str) -> str:
        """The failure text of a check whose budgets file does not exist."""
        # The first line is what the summary shows: what happened and the usual fix.
        return (
            f"no budget '{name}': {self._absolute(path)} does not exist; to create it, run "
            f"`pytest --actbudget-update`\n  {self._why(path)}. If the file is elsewhere, run "
            "pytest where it is, or point to it with --actbudget-file PATH (or the ini key "
            "actbudget_file)"
        )

    # -- checking -------------------------------------------------------------------

    def measure(
        self,
        model: Any,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        counting: str,
        training: TrainingSpec | None = None,
    ) -> Profile:
        from .measure.capture import paused
        from .measure.model import MeasureCache, measure

        if self._cache is None:
            self._cache = MeasureCache()
        with paused():
            return measure(
                model, *args, counting=counting, cache=self._cache, training=training, **kwargs
            )

    def check(
        self,
        nodeid: str,
        model: Any,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        name: str,
        file: str | None = None,
        scaling: Scaling | None = None,
        others: Sequence[str] = (),
        training: bool = False,
    ) -> BudgetResult:
        """Measure ``model`` and check it against entry ``name``; raise on failure.

        With ``scaling`` (or an entry with ``scaling:``) the model is also measured at
        every size, and each group's growth exponents are fitted and checked.
        ``others`` are the classes of the other models with parameters the test called
        (the marker measures one of them); the result names them. A training step is
        measured too when the entry has ``training:`` or when ``training`` asks for one
        (the fixture's ``check(..., training=True)``).

        Raises BudgetExceeded, NoBudget, StrictFailure, MeasurementError or GroupingError
        after recording the result, so reports show failed checks too.
        """
        __tracebackhide__ = True
        path = self.resolve_file(file)
        budgets = self.budgets(path)
        display = _display(path, self.options.start_dir)
        entry = budgets.models.get(name)
        try:
            spec = budgets.training_for(entry, training)
            profile = self.measure(model, args, kwargs, budgets.counting, spec)
        except MeasurementError as e:
            self._record(nodeid, _failed(name, nodeid, budgets.counting, display, entry, str(e)))
            raise
        try:
            growth: tuple[GrowthResult, ...] = ()
            if growth_applies(entry, scaling):
                patterns = (
                    {group.name: group.modules for group in entry.groups}
                    if entry is not None
                    else auto_groups(profile)
                )
                growth = measure_growth(
                    lambda m, a, k: self.measure(m, a, k, budgets.counting),
                    model,
                    args,
                    kwargs,
                    name=name,
                    entry=entry,
                    scaling=scaling,
                    patterns=patterns,
                    display=display,
                )
            if self.options.update:
                plain = _plain_inputs(args, kwargs)
                result = self._for_update(
                    profile, entry, name, nodeid, path, display, growth, plain
                )
            elif entry is None:
                result = unbudgeted(profile, name, nodeid=nodeid, budget_file=display)
                result = dataclasses.replace(result, growth=growth)
                if not budgets.exists:
                    result = dataclasses.replace(result, message=self.missing_file_text(name, path))
            else:
                result = evaluate(profile, entry, nodeid=nodeid, budget_file=display)
                result = with_growth(result, growth)
                if result.outcome == "over_budget":
                    # with_growth writes the message again: say what changed first, still.
                    changed = recorded_change(entry, profile)
                    result = dataclasses.replace(result, message=violation_message(result, changed))
                result = self._guarded(result, entry, budgets, display)
        except ScalingError as e:
            failed = _failed(name, nodeid, budgets.counting, display, entry, str(e), profile)
            self._record(nodeid, failed)
            raise
        except GroupingError as e:
            # A pattern that matches nothing is the group's mistake: point at its line.
            at = entry.line_of(e.group) if entry is not None and e.group else None
            at = at or (entry.line if entry is not None else None)
            line = f"{display}:{at}" if at is not None else display
            message = f"act_budget '{name}' ({line}): {e}"
            self._record(
                nodeid, _failed(name, nodeid, budgets.counting, display, entry, message, profile)
            )
            raise GroupingError(message) from None
        if others:
            result = dataclasses.replace(
                result,
                notes=(*other_models(profile.model, others), *result.notes),
                other_models=tuple(others),
            )
        result = self._against_baseline(result)
        self._record(nodeid, result)
        if result.outcome == "over_budget":
            raise BudgetExceeded(result.message, result)
        if result.outcome == "no_budget":
            raise NoBudget(result.message)
        if result.outcome == "error":
            raise StrictFailure(result.message)
        return result

    def no_model_called(self, nodeid: str, name: str, file: str | None) -> str:
        """Record that a marked test called no model; the failure text."""
        message = (
            f"act_budget '{name}': the test called no torch.nn.Module, so there was nothing "
            "to measure; call the model in the test body, or use the act_budget fixture"
        )
        path = self.resolve_file(file)
        budgets = self.budgets(path)
        display = _display(path, self.options.start_dir)
        entry = budgets.models.get(name)
        self._record(nodeid, _failed(name, nodeid, budgets.counting, display, entry, message))
        return message

    def _for_update(
        self,
        profile: Profile,
        entry: ModelBudget | None,
        name: str,
        nodeid: str,
        path: str,
        display: str,
        growth: tuple[GrowthResult, ...] = (),
        plain: bool = True,
    ) -> BudgetResult:
        from .budgets.inputs import reproducible

        patterns = (
            {group.name: group.modules for group in entry.groups}
            if entry is not None
            else auto_groups(profile)
        )
        stats = group_profile(profile, patterns)
        measured = MeasuredEntry(
            name=name,
            groups={s.name: s.metrics for s in stats if s.name in patterns},
            group_modules={group: tuple(p) for group, p in patterns.items()},
            total={metric: profile.total.metric(metric) for metric in profile.measured_metrics},
            input=reproducible(profile.inputs, plain),
            mode=profile.mode,
            nodeid=nodeid,
            growth=_exponents(growth),
            training=profile.training is not None,
        )
        order = self._order.get(nodeid, len(self._order))
        self._pending.setdefault(nodeid, []).append(PendingUpdate(path, measured, order))
        return BudgetResult(
            name=name,
            nodeid=nodeid,
            outcome="passed",
            counting=profile.counting,
            profile=profile,
            groups=tuple(GroupResult(s) for s in stats),
            total=GroupResult(total_stats(profile)),
            budget_file=display,
            budget_line=entry.line if entry is not None else None,
            growth=growth,
        )

    def _against_baseline(self, result: BudgetResult) -> BudgetResult:
        """An over-budget message also says what changed since the baseline."""
        if self.baseline is None or result.outcome != "over_budget":
            return result
        from .report.baseline import with_comparison

        entry = self.baseline.entry(result)
        message = with_comparison(result.message, entry, self.baseline.source)
        return dataclasses.replace(result, message=message)

    def comparison(self) -> Comparison | None:
        """This run's results against the baseline, when one was given."""
        return self.baseline.compare(self.results) if self.baseline is not None else None

    def _guarded(
        self, result: BudgetResult, entry: ModelBudget, budgets: BudgetsFile, display: str
    ) -> BudgetResult:
        """Note unguarded groups and slack budgets; under --actbudget-strict they fail the
        check, as do operators that were not counted and are not allowed."""
        notes = [
            *unguarded(result, entry, display),
            *slack(result, entry, display, budgets.min_use),
        ]
        result = dataclasses.replace(result, notes=tuple(notes))
        if not self.options.strict or result.profile is None or result.outcome != "passed":
            return result
        problems = list(notes)
        offenders = uncounted_offenders(result.profile, entry.allow_uncounted)
        if offenders:
            listed = ", ".join(f"{op} x{n}" for op, n in offenders.items())
            allowed = ", ".join([*entry.allow_uncounted, *offenders])
            problems.insert(
                0,
                f"{display}:{entry.line}: entry '{result.name}': {len(offenders)} "
                f"operator(s) were not counted, so their cost is in no budget: {listed}; "
                f"to accept that, put this line in the entry:\n      allow_uncounted: [{allowed}]",
            )
        if not problems:
            return result
        noun = "problem" if len(problems) == 1 else "problems"
        message = "\n".join(
            [
                f"act_budget '{result.name}': {len(problems)} {noun} under --actbudget-strict "
                f"({result.location})",
                *(f"  {problem}" for problem in problems),
            ]
        )
        return dataclasses.replace(result, outcome="error", message=message)

    def _record(self, nodeid: str, result: BudgetResult) -> None:
        self._checks_per_test[nodeid] += 1
        order = (self._order.get(nodeid, len(self._order)), self._checks_per_test[nodeid])
        self.records.append(Recorded(order, result))

    def test_finished(self, nodeid: str, passed: bool) -> None:
        """Keep the update entries of a test whose body passed; drop the others."""
        pending = self._pending.pop(nodeid, [])
        if passed:
            self.updates.extend(pending)

    # -- xdist ----------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """What a worker sends the controller (JSON-able, through workeroutput)."""
        return {
            "records": [
                {"order": list(r.order), "result": r.result.to_dict()} for r in self.records
            ],
            "updates": [
                {"file": u.budget_file, "entry": _entry_to_dict(u.entry), "order": u.order}
                for u in self.updates
            ],
            "full_run": self.full_run,
            "referenced": sorted(self.referenced),
        }

    def merge_wire(self, data: dict[str, Any]) -> None:
        """Take in what a worker sent."""
        for record in data.get("records", []):
            index, nth = record["order"]
            self.records.append(Recorded((index, nth), BudgetResult.from_dict(record["result"])))
        for update in data.get("updates", []):
            self.updates.append(
                PendingUpdate(
                    update["file"], _entry_from_dict(update["entry"]), update.get("order", 0)
                )
            )
        self.full_run = self.full_run and bool(data.get("full_run", True))
        self.referenced.update((file, name) for file, name in data.get("referenced", []))

    # -- end of run -----------------------------------------------------------------

    @property
    def results(self) -> list[BudgetResult]:
        """Every result of this run, in collection order (the same with or without xdist)."""
        return [r.result for r in sorted(self.records, key=lambda r: r.order)]

    def finish(self, *, stopped_early: bool) -> int | None:
        """Write the budgets file and the reports at the end of the run (controller only).

        Returns the exit code the run must end with, if not its own: a file that could
        not be written is a usage error (named in the summary, after the results);
        strict problems fail the run.
        """
        if stopped_early:
            self.full_run = False  # Ctrl-C, -x, --maxfail: not every test ran
        try:
            self.write_updates()
        except BudgetFileError as e:
            self.write_errors.append(str(e))
        self.write_errors.extend(self.write_reports())
        if self.write_errors:
            return USAGE_ERROR
        failed = self.find_strict_problems() or self.refused_updates
        return TESTS_FAILED if failed else None

    def write_reports(self) -> list[str]:
        """Write every report asked for; one message per report that could not be written."""
        if not self.options.reports:
            return []
        from .report import write_report
        from .report.json import environment

        env = environment()
        errors = []
        comparison = self.comparison()
        for report in self.options.reports:
            try:
                write_report(report, self.results, env, comparison)
            except OSError as e:
                errors.append(f"{report}: cannot write the report: {e.strerror or e}")
            else:
                self.reports_written.append(report)
        return errors

    def summary(self, *, color: bool, exitstatus: int = 0) -> list[tuple[str, bool]]:
        """The ``act budget summary`` section as (line, in red) pairs; empty for none.

        The headline counts the run's own problems (strict, refused updates), and is red
        whenever the run fails, so that a failed job never reads as green."""
        results = self.results
        lines = [(line, False) for s in self.update_summaries for line in s.lines()]
        lines += [(f"ERROR: {refused}", True) for refused in self.refused_updates]
        lines += [(problem, True) for problem in self.strict_problems]
        lines += [(f"ERROR: {error}", True) for error in self.write_errors]
        if not results and not lines:
            return []
        if results:
            from .report import terminal

            failed = bool(exitstatus or self.strict_problems or self.refused_updates)
            text = terminal.render(
                results,
                verbose=self.options.verbose > 0,
                color=color,
                depth=self.options.depth,
                baseline=self.comparison(),
                problems=self._problem_counts(),
                failed=failed or bool(self.write_errors),
            )
            lines.insert(0, (text, False))
        lines += [
            (f"act budget report {'appended' if r.appends else 'written'} to {r}", False)
            for r in self.reports_written
        ]
        return lines

    def _problem_counts(self) -> list[str]:
        """The run's own failures as the headline counts them."""
        counts = []
        if self.strict_problems:
            n = len(self.strict_problems)
            counts.append(f"{n} {'entry' if n == 1 else 'entries'} no test checked (strict)")
        if self.refused_updates:
            n = len(self.refused_updates)
            counts.append(f"{n} {'update' if n == 1 else 'updates'} refused")
        return counts

    def write_updates(self) -> None:
        """Record the measured budgets of every check whose test passed, one write per
        file, new entries in test order. An entry whose tests measured it with different
        inputs or modes is refused: one entry records one input."""
        by_file: dict[str, dict[str, list[MeasuredEntry]]] = {}
        for update in sorted(self.updates, key=lambda u: u.order):
            entries = by_file.setdefault(update.budget_file, {})
            entries.setdefault(update.entry.name, []).append(update.entry)
        for path, entries in sorted(by_file.items()):
            budgets = self.budgets(path)
            ordered = []
            for name, measured in entries.items():
                refused = self._mixed_inputs(path, budgets, name, measured)
                if refused:
                    self.refused_updates.append(refused)
                    continue
                merged = measured[0]
                for other in measured[1:]:
                    merged = _larger(merged, other)
                ordered.append(merged)
            if not ordered:
                continue
            headroom = budgets.headroom_for(self.options.headroom)
            self.update_summaries.append(
                update_budgets(
                    path, ordered, headroom, counting=budgets.counting, metrics=budgets.metrics
                )
            )

    def _mixed_inputs(
        self, path: str, budgets: BudgetsFile, name: str, measured: Sequence[MeasuredEntry]
    ) -> str:
        from .budgets.inputs import input_text

        kinds: dict[tuple[Any, ...], list[str]] = {}
        for entry in measured:
            kinds.setdefault((entry.input, entry.mode), []).append(entry.nodeid)
        if len(kinds) < 2:
            return ""
        existing = budgets.models.get(name)
        where = _display(path, self.options.start_dir)
        where += f":{existing.line}" if existing is not None else ""
        listed = "; ".join(
            f"{', '.join(dict.fromkeys(nodeids))} with input "
            f"{input_text(inputs) if inputs else '(not recordable)'} {mode}"
            for (inputs, mode), nodeids in kinds.items()
        )
        return (
            f"{where}: entry '{name}' was checked with different inputs or modes: {listed}. "
            "One entry records one input and mode, so nothing was recorded for it; give "
            "each test its own entry name (without a name the marker uses the test's "
            "name, which differs per parametrization)"
        )

    def find_strict_problems(self) -> list[str]:
        """Entries of the budgets file that no test checked in a full run."""
        if not (self.options.strict and self.full_run and not self.options.update):
            return []
        path = str(self.options.budgets_file)
        try:
            budgets = self.budgets(path)
        except BudgetFileError:
            return []
        checked = {(str(r.result.budget_file), r.result.name) for r in self.records}
        display = _display(path, self.options.start_dir)
        unused = [
            name
            for name in budgets.models
            if (display, name) not in checked and (path, name) not in self.referenced
        ]
        self.strict_problems = [
            f"{display}:{budgets.models[name].line}: entry '{name}' was not checked by any test "
            "(--actbudget-strict); remove it or mark a test with it"
            for name in unused
        ]
        return self.strict_problems


def junit_properties(result: BudgetResult) -> list[tuple[str, object]]:
    """record_property-style pairs for the JUnit XML of the test that made the check."""
    props: list[tuple[str, object]] = [(f"actbudget.{result.name}.outcome", result.outcome)]
    for group in (*result.groups, *([result.total] if result.total else [])):
        for metric in ("flops", "activations", "params", "act_bytes", "flops_share"):
            props.append(
                (f"actbudget.{result.name}.{group.name}.{metric}", group.stats.metric(metric))
            )
    return props


def error_text(exc: BaseException) -> tuple[str, str] | None:
    """(failure text, outcome) for an error pytest-actbudget raised on purpose."""
    if isinstance(exc, BudgetExceeded):
        return str(exc), "over_budget"
    if isinstance(exc, NoBudget):
        return str(exc), "no_budget"
    if isinstance(exc, ActBudgetError | StrictFailure | NoModelCalled):
        return str(exc), "error"
    return None


def _display(path: str, start: Path) -> str:
    """A budgets file as people want to read it: relative to where pytest was started
    when inside it (not to the cwd, which a test may change)."""
    try:
        return str(Path(path).resolve().relative_to(start.resolve()))
    except ValueError:
        return path


def _failed(
    name: str,
    nodeid: str,
    counting: str,
    display: str,
    entry: ModelBudget | None,
    message: str,
    profile: Profile | None = None,
) -> BudgetResult:
    return BudgetResult(
        name=name,
        nodeid=nodeid,
        outcome="error",
        counting=counting,
        profile=profile,
        total=GroupResult(total_stats(profile)) if profile is not None else None,
        budget_file=display,
        budget_line=entry.line if entry is not None else None,
        message=message,
    )


def _plain_inputs(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """Every input a tensor of its own (what ``input:`` can write down)."""
    import torch

    return all(isinstance(value, torch.Tensor) for value in (*args, *kwargs.values()))


def _exponents(growth: Sequence[GrowthResult]) -> dict[str, dict[str, float]]:
    """Measured exponents per group for an update (metrics that are 0 somewhere have none)."""
    found: dict[str, dict[str, float]] = {}
    for g in growth:
        if g.exponent is not None and g.group != OTHER_GROUP:
            found.setdefault(g.group, {})[g.metric] = g.exponent
    return found


def _larger(a: MeasuredEntry, b: MeasuredEntry) -> MeasuredEntry:
    """Two checks of one entry in a run: budget the larger of each measurement."""
    groups = {
        name: {m: max(a.groups.get(name, {}).get(m, 0), v) for m, v in b.groups[name].items()}
        for name in b.groups
    }
    for name, values in a.groups.items():
        groups.setdefault(name, dict(values))
        for metric, value in values.items():
            groups[name][metric] = max(groups[name].get(metric, 0), value)
    total = {m: max(a.total.get(m, 0), b.total.get(m, 0)) for m in {*a.total, *b.total}}
    growth = {
        group: {m: max(a.growth.get(group, {}).get(m, k), k) for m, k in exponents.items()}
        for group, exponents in b.growth.items()
    }
    for group, exponents in a.growth.items():
        growth.setdefault(group, dict(exponents))
    training = a.training or b.training
    return dataclasses.replace(a, groups=groups, total=total, growth=growth, training=training)


def _entry_to_dict(entry: MeasuredEntry) -> dict[str, Any]:
    data = dataclasses.asdict(entry)
    data["input"] = [spec.to_dict() for spec in entry.input] if entry.input is not None else None
    return data


def _entry_from_dict(data: dict[str, Any]) -> MeasuredEntry:
    specs = data.get("input")
    return MeasuredEntry(
        name=data["name"],
        groups=data["groups"],
        group_modules={k: tuple(v) for k, v in data["group_modules"].items()},
        total=data["total"],
        input=tuple(TensorSpec.from_dict(s) for s in specs) if specs is not None else None,
        mode=data.get("mode"),
        nodeid=data.get("nodeid", ""),
        growth=data.get("growth", {}),
        training=bool(data.get("training", False)),
    )
