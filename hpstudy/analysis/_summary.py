"""Per task, in stages: the baseline, summary rows, the paired test scores and their raw
comparisons, compute to a level, quality at equal compute, the negative control and the
winning configurations. Each stage is a function of the trial table; ``_pipeline.py`` orders
them and judges the verdicts over the family.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpstudy.analysis._anytime import RegretAt, anytime_regret
from hpstudy.analysis._compute import (
    FRACTIONS,
    LEVELS,
    UNITS,
    RatioSummary,
    SeedRatio,
    levels,
    pick_at_budget,
    seed_ratio,
    summarize_ratios,
    total,
)
from hpstudy.analysis._table import Study, Trial, TrialTable
from hpstudy.analysis._verdict import (
    ALPHA,
    Verdict,
    compare_pair,
    hodges_lehmann,
    paired_differences,
    resolve_margin,
)
from hpstudy.config import ExperimentConfig
from hpstudy.config._schema import STRATEGY_NAMES

if TYPE_CHECKING:
    from hpstudy.analysis._model_line import ModelLine

CONTROL = "control"
CONTROL_SOURCE = "random"
CONTROL_FRACTION = 1 / 8


def label_of(strategy: str) -> str:
    """A strategy's name in prose (the registry's one copy)."""
    if strategy == CONTROL:
        return f"{STRATEGY_NAMES[CONTROL_SOURCE].label} with 1/8 of the compute"
    return STRATEGY_NAMES[strategy].label if strategy in STRATEGY_NAMES else strategy


def exchangeable(strategy: str) -> bool:
    return strategy in STRATEGY_NAMES and STRATEGY_NAMES[strategy].exchangeable


@dataclass(frozen=True)
class Spread:
    """Median and range (min, max) over seeds (``nan`` when there is no value)."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread:
        vals = [float(v) for v in values if v is not None and not math.isnan(v)]
        if not vals:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(float(np.median(vals)), min(vals), max(vals), len(vals))


@dataclass(frozen=True)
class SummaryRow:
    """One strategy on one task, over its seeds."""

    strategy: str
    label: str  # e.g. "grid (12 of 48 points)"
    seeds: int
    best_valid: Spread
    test: Spread
    trials: Spread
    epochs: Spread
    seconds: Spread
    pruned: int
    failed: int  # the configurations' own failures (counted toward budget and compute)
    # Attempts stopped by an interrupt, a dead worker or given up: re-run or dropped, never
    # counted toward the budget nor the compute above; their compute, summed over seeds.
    interrupted: int = 0
    interrupted_epochs: float = 0.0
    interrupted_seconds: float = 0.0
    # classification: the test cross-entropy of the same best configurations (n = 0 when the
    # runs predate it)
    test_ce: Spread = Spread(math.nan, math.nan, math.nan, 0)
    # a published tabular benchmark: the test regret of the same best configurations (the
    # distance of each test score to the table's best over the space; None on trained tasks)
    test_regret: Spread | None = None


@dataclass(frozen=True)
class ComputeRatio:
    """A strategy's compute to a level over the baseline's, over seeds (``method`` says which
    costs are compared: both expected over orderings, or both realised)."""

    strategy: str
    unit: str
    level: str
    method: str
    summary: RatioSummary
    per_seed: tuple[SeedRatio, ...]

    @property
    def estimate(self) -> float:
        return self.summary.estimate

    @property
    def ci_low(self) -> float:
        return self.summary.ci_low

    @property
    def ci_high(self) -> float:
        return self.summary.ci_high

    @property
    def ci_level(self) -> float:
        return self.summary.ci_level

    @property
    def seeds(self) -> int:
        return self.summary.seeds

    @property
    def censored(self) -> int:
        return self.summary.censored


@dataclass(frozen=True)
class EqualCompute:
    """A strategy stopped at ``fraction`` of the baseline's total epochs (per seed, in its run
    order): the test score of what it would have picked, against the full baseline's."""

    strategy: str
    fraction: float
    test: Spread
    difference: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_noninferiority: float
    seeds: int
    test_regret: Spread | None = None  # benchmark tasks: the picks' test regret


@dataclass(frozen=True)
class Winner:
    """A strategy's winning configuration on a task (:func:`choose_configuration`): the seeds
    it was trained at, its mean validation score there, its mean test score where scored."""

    strategy: str
    seeds: tuple[int, ...]
    validation: float
    test: float
    params: dict[str, Any]
    test_regret: float | None = None  # benchmark tasks: mean test regret where scored


@dataclass(frozen=True)
class TaskSummary:
    task: str
    metric: str
    direction: str
    rows: list[SummaryRow]
    verdicts: list[Verdict]
    verdict: str
    missing: list[str]
    baseline: str = ""
    margin: float = math.nan
    margin_spec: str = ""
    compute: list[ComputeRatio] | None = None
    equal: list[EqualCompute] | None = None
    smallest_fraction: dict[str, float | None] | None = None
    winners: list[Winner] | None = None
    best_scores: dict[str, dict[int, float]] | None = None  # strategy -> seed -> test score
    control: Verdict | None = None
    objective: str = ""  # what the trials were selected on (validation)
    model: ModelLine | None = None  # the chosen model beside reference models (first line)
    # benchmark tasks: each strategy's best-so-far validation regret over seeds at a few
    # points of the budget (the anytime curve in regret; None on trained tasks)
    anytime_regret: list[RegretAt] | None = None

    def label(self, strategy: str) -> str:
        return next((r.label for r in self.rows if r.strategy == strategy), label_of(strategy))


# ------------------------------------------------------------------ one rule each


def baseline_of(configured: str | None, strategies: Sequence[str]) -> str:
    """The one rule for the baseline among the strategies that ran: the configured one when it
    ran, else grid, else the first non-manual strategy."""
    for candidate in (configured or "grid", "grid"):
        if candidate in strategies:
            return candidate
    return next((s for s in strategies if s != "manual"), strategies[0])


def task_baseline(config: ExperimentConfig | None, strategies: Sequence[str]) -> str:
    """The baseline of a task (:func:`baseline_of` with the study file's choice)."""
    return baseline_of(config.baseline() if config is not None else None, strategies)


def strategy_label(strategy: str, studies: Sequence[Study], config: ExperimentConfig) -> str:
    """The strategy's name, with "(k of N points)" for a grid that visits part of its grid."""
    label = label_of(strategy)
    if strategy == "grid" and studies and "grid" in config.strategies:
        size = config.grid_size()
        k = max(s.budget for s in studies)
        if k < size:
            return f"{label} ({k} of {size} points)"
    return label


def best_scores(table: TrialTable, task: str) -> dict[str, dict[int, float]]:
    """Per strategy and seed: the test score of that study's best trial (scored ones only)."""
    out: dict[str, dict[int, float]] = {}
    for s in table.of(task):
        best = s.best()
        if best is not None and not math.isnan(best.test):
            out.setdefault(s.strategy, {})[s.seed] = best.test
    return out


def knows_optimum(studies: Sequence[Study]) -> bool:
    """Whether these studies are of a benchmark task whose optimum is known (regret is
    given); trained tasks have none, and nothing about them mentions regret."""
    return any(s.optimum is not None for s in studies)


def regret_spread(pairs: Sequence[tuple[Study, Trial | None]], known: bool) -> Spread | None:
    """Median and range over ``(study, pick)`` pairs of the picks' test regret
    (:meth:`Study.test_regret`); ``None`` unless ``known`` (:func:`knows_optimum`)."""
    return Spread.of([s.test_regret(t) for s, t in pairs]) if known else None


def _best_valid(s: Study) -> float:
    b = s.best()
    return math.nan if b is None or b.value is None else float(b.value)


# ------------------------------------------------------------------ the stages


def summary_rows(table: TrialTable, task: str) -> list[SummaryRow]:
    rows = []
    for strategy in table.strategies(task):
        own = table.of(task, strategy)
        rows.append(
            SummaryRow(
                strategy=strategy, label=strategy_label(strategy, own, table.config),
                seeds=len(own), best_valid=Spread.of([_best_valid(s) for s in own]),
                test=Spread.of([b.test if (b := s.best()) else None for s in own]),
                trials=Spread.of([float(s.finished) for s in own]),
                epochs=Spread.of([total(s.runs, "epochs") for s in own]),
                seconds=Spread.of([total(s.runs, "seconds") for s in own]),
                pruned=sum(s.count("PRUNED") for s in own), failed=sum(s.count("FAIL") for s in own),
                interrupted=sum(len(s.interrupted) for s in own),
                interrupted_epochs=float(sum(t.epochs for s in own for t in s.interrupted)),
                interrupted_seconds=float(sum(t.seconds for s in own for t in s.interrupted)),
                test_ce=Spread.of([b.test_ce if (b := s.best()) else None for s in own]),
                test_regret=regret_spread([(s, s.best()) for s in own], knows_optimum(own)),
            )
        )  # fmt: skip
    return rows


def task_margin(table: TrialTable, task: str, scores: dict[str, dict[int, float]]) -> float:
    """The margin in metric units: the task's number, or "N%" of the median test score of
    every compared arm pooled (manual picks excluded)."""
    spec = table.config.task(task).resolved_margin(table.of(task)[0].metric)
    pooled = [v for k, by_seed in scores.items() if k != "manual" for v in by_seed.values()]
    return resolve_margin(spec, pooled)


def margin_text(table: TrialTable, task: str, margin: float) -> str:
    metric = table.of(task)[0].metric
    spec = table.config.task(task).resolved_margin(metric)
    if isinstance(spec, str):
        return f"{spec} of the median test {metric} of every compared strategy = {margin:.4g}"
    return f"{margin:.4g}"


def raw_comparisons(
    task: str, baseline: str, scores: dict[str, dict[int, float]], direction: str, margin: float
) -> list[Verdict]:
    """Each strategy against the baseline on paired test scores (no multiplicity yet)."""
    return [
        compare_pair(
            task, s, baseline, paired_differences(by_seed, scores.get(baseline, {}), direction),
            margin,
        )
        for s, by_seed in scores.items()
        if s != baseline
    ]  # fmt: skip


def compute_ratios(table: TrialTable, task: str, baseline: str) -> list[ComputeRatio]:
    """Every searching strategy's compute to every level, over the baseline's, like with like."""
    base = {s.seed: s for s in table.of(task, baseline)}
    out = []
    for strategy in table.strategies(task):
        if strategy in ("manual", baseline):
            continue
        both = exchangeable(strategy) and exchangeable(baseline)
        method = (
            "both expected over orderings of their own trials"
            if both
            else "both in the order they ran (a sequential strategy has only its realised order)"
        )
        pairs = [
            (s, b, levels(s.runs, b.runs, s.select_direction))
            for s in table.of(task, strategy)
            if (b := base.get(s.seed)) is not None
        ]
        for unit in UNITS:
            for level in LEVELS:
                per_seed = []
                for s, b, known in pairs:
                    r = seed_ratio(
                        s.runs, b.runs, s.seed, s.select_direction, unit, level, both, known
                    )
                    if r is not None:
                        per_seed.append(r)
                if per_seed:
                    out.append(
                        ComputeRatio(strategy, unit, level, method, summarize_ratios(per_seed),
                                     tuple(per_seed))
                    )  # fmt: skip
    return out


def picks_at(table: TrialTable, task: str, baseline: str) -> dict[tuple[str, int, float], Trial]:
    """(strategy, seed, fraction) -> the trial the strategy would have picked after that
    fraction of the baseline's total epochs at that seed (the baseline included: grid
    stopped early in its shuffled order)."""
    base = {s.seed: s for s in table.of(task, baseline)}
    out = {}
    for s in table.of(task):
        b = base.get(s.seed)
        if s.strategy == "manual" or b is None:
            continue
        budget = total(b.runs, "epochs")
        for f in FRACTIONS:
            pick = pick_at_budget(s.runs, s.select_direction, f * budget)
            if pick is not None:
                out[(s.strategy, s.seed, f)] = pick
    return out


def picks_needed(table: TrialTable) -> dict[str, set[int]]:
    """Per study name, the trials whose test scores the analysis reads: each study's best
    trial and every pick at equal compute (the negative control's included)."""
    out: dict[str, set[int]] = {}
    for s in table.studies:
        if (b := s.best()) is not None:
            out.setdefault(s.name, set()).add(b.number)
    for task in table.tasks():
        baseline = task_baseline(table.config, table.strategies(task))
        names = {(s.strategy, s.seed): s.name for s in table.of(task)}
        for (strategy, seed, _), t in picks_at(table, task, baseline).items():
            out.setdefault(names[(strategy, seed)], set()).add(t.number)
    return out


def equal_compute(
    table: TrialTable,
    task: str,
    baseline: str,
    margin: float,
    picks: dict[tuple[str, int, float], Trial],
) -> tuple[list[EqualCompute], dict[str, float | None]]:
    """Quality at 1/16 ... 1 of the baseline's epochs against the full baseline, and each
    strategy's smallest non-inferior fraction (fixed-sequence testing from 1 down, which keeps
    the error rate at ALPHA without adjustment); the baseline itself is in it."""
    direction = table.of(task)[0].direction
    full = best_scores(table, task).get(baseline, {})
    studies = {(s.strategy, s.seed): s for s in table.of(task)}
    known = knows_optimum(table.of(task))
    rows, smallest = [], {}
    for strategy in table.strategies(task):
        if strategy == "manual":
            continue
        settled: float | None = None
        failed = False
        for f in sorted(FRACTIONS, reverse=True):
            at_f = {
                seed: t.test
                for (k, seed, g), t in picks.items()
                if k == strategy and g == f and not math.isnan(t.test)
            }
            d = paired_differences(at_f, full, direction)
            ci = hodges_lehmann(d)
            p = compare_pair(task, strategy, baseline, d, margin).p_noninferiority
            regrets = regret_spread(
                [(studies[(k, seed)], t) for (k, seed, g), t in picks.items()
                 if k == strategy and g == f],
                known,
            )  # fmt: skip
            rows.append(
                EqualCompute(strategy, f, Spread.of(list(at_f.values())), ci.estimate, ci.low,
                             ci.high, ci.level, p, len(d), regrets)
            )  # fmt: skip
            if not failed and p < ALPHA:
                settled = f
            else:
                failed = True
        smallest[strategy] = settled
    return rows, smallest


def control_scores(
    table: TrialTable, task: str, picks: dict[tuple[str, int, float], Trial]
) -> dict[int, float]:
    """The negative control's test score per seed: random search stopped at 1/8 of the
    baseline's epochs, a run worse by construction than the headline arms (it is a prefix of
    the random search run), which the method must be able to call inferior."""
    return {
        seed: t.test
        for (k, seed, f), t in picks.items()
        if k == CONTROL_SOURCE and f == CONTROL_FRACTION and not math.isnan(t.test)
    }


def config_key(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, default=str)


@dataclass(frozen=True)
class Choice:
    """The chosen configuration among some studies: the study trial it comes from, and the
    same configuration's mean validation score at every seed it was trained at."""

    study: Study
    trial: Trial
    values_by_seed: dict[int, float]

    @property
    def mean_value(self) -> float:
        return float(np.mean(list(self.values_by_seed.values())))


def choose_configuration(studies: Sequence[Study]) -> Choice | None:
    """The one rule for "the best configuration over seeds" (``best``, ``train-best`` and the
    report's winners). Each study's best trial is a candidate. Seed k draws its own split and
    the single best score mostly comes from the easiest split, so a candidate's score at seed
    k is its configuration's validation score at k (in any of ``studies``: the same
    configuration scores the same in every strategy) minus the median of every COMPLETE trial
    at k; the candidate with the best mean over the seeds it was trained at wins (ties: the
    lower seed)."""
    by_seed: dict[int, dict[str, list[float]]] = {}
    for study in studies:
        configs = by_seed.setdefault(study.seed, {})
        for t in study.runs:
            if t.state == "COMPLETE" and t.value is not None and math.isfinite(t.value):
                configs.setdefault(config_key(t.params), []).append(float(t.value))
    medians = {
        seed: float(np.median([v for values in configs.values() for v in values]))
        for seed, configs in by_seed.items()
        if configs
    }
    best: tuple[tuple[float, int], Study, Trial] | None = None
    for study in studies:
        trial = study.best()
        if trial is None:
            continue
        key = config_key(trial.params)
        diffs = [
            float(np.mean(configs[key])) - medians[seed]
            for seed, configs in by_seed.items()
            if key in configs
        ]
        mean = float(np.mean(diffs))
        rank = (mean if study.select_direction == "maximize" else -mean, -study.seed)
        if best is None or rank > best[0]:
            best = (rank, study, trial)
    if best is None:
        return None
    _, study, trial = best
    key = config_key(trial.params)
    values = {
        seed: float(np.mean(configs[key]))
        for seed, configs in sorted(by_seed.items())
        if key in configs
    }
    return Choice(study, trial, values)


def winners(table: TrialTable, task: str) -> list[Winner]:
    """Each strategy's winning configuration (:func:`choose_configuration` over its studies),
    with its mean test score over the seeds where it was scored."""
    out = []
    for strategy in table.strategies(task):
        studies = table.of(task, strategy)
        choice = choose_configuration(studies)
        if choice is None:
            continue
        key = config_key(choice.trial.params)
        scored = [
            (s, t)
            for s in studies
            for t in s.runs
            if config_key(t.params) == key and not math.isnan(t.test)
        ]
        tests = [t.test for _, t in scored]
        known = knows_optimum(studies)
        out.append(
            Winner(strategy, tuple(choice.values_by_seed), choice.mean_value,
                   float(np.mean(tests)) if tests else math.nan, dict(choice.trial.params),
                   _mean([s.test_regret(t) for s, t in scored]) if known else None)
        )  # fmt: skip
    return out


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def summarize_task(table: TrialTable, task: str) -> TaskSummary:
    """Every stage of one task (verdicts not yet judged over the family)."""
    from hpstudy.analysis._model_line import model_line  # it reads choose_configuration

    studies = table.of(task)
    metric, direction = studies[0].metric, studies[0].direction
    baseline = task_baseline(table.config, table.strategies(task))
    scores = best_scores(table, task)
    margin = task_margin(table, task, scores)
    picks = picks_at(table, task, baseline)
    equal, smallest = equal_compute(table, task, baseline, margin, picks)
    control = None
    if CONTROL_SOURCE in scores and baseline != CONTROL_SOURCE:
        d = paired_differences(
            control_scores(table, task, picks), scores.get(baseline, {}), direction
        )
        if d:
            control = compare_pair(task, CONTROL, baseline, d, margin)
    return TaskSummary(
        task=task, metric=metric, direction=direction, rows=summary_rows(table, task),
        verdicts=raw_comparisons(task, baseline, scores, direction, margin), verdict="",
        missing=[f"{s.name}: {s.missing}" for s in studies if s.missing], baseline=baseline,
        margin=margin, margin_spec=margin_text(table, task, margin),
        compute=compute_ratios(table, task, baseline), equal=equal, smallest_fraction=smallest,
        winners=winners(table, task), best_scores=scores, control=control,
        objective=studies[0].select_name, model=model_line(table, task, scores),
        anytime_regret=anytime_regret(table, task),
    )  # fmt: skip
