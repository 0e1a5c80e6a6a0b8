"""Per task: a summary row per strategy, each strategy's raw comparison with the baseline
(effect, CI, p-values), compute compared like with like, quality at equal compute and the
winning configurations. The verdicts over the whole family and the sentences that state them
are in ``_sentences.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpstudy.config import ExperimentConfig
from hpstudy.config._schema import DEFAULT_MARGINS
from hpstudy.report._anytime import anytime_curve
from hpstudy.report._collect import ExperimentData, StudyData
from hpstudy.report._compute import (
    FRACTIONS,
    UNITS,
    SeedRatio,
    baseline_cost_to_target,
    best_so_far_target,
    pick_at_budget,
    ratio_interval,
    run_cost_to_target,
    total,
)
from hpstudy.report._test_scores import TestScore, best_trial
from hpstudy.report._verdict import (
    ALPHA,
    Verdict,
    compare_pair,
    hodges_lehmann,
    paired_differences,
    resolve_margin,
)
from hpstudy.scoring import task_baseline as _task_baseline
from hpstudy.store import is_interrupted

Scores = dict[str, dict[int, TestScore]]  # study name -> trial number -> test scores


@dataclass(frozen=True)
class Spread:
    """Median and range over seeds (``nan`` when there is no value)."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        vals = [v for v in values if v is not None and not math.isnan(v)]
        if not vals:
            return cls(math.nan, math.nan, math.nan, 0)
        return cls(float(np.median(vals)), float(min(vals)), float(max(vals)), len(vals))


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


@dataclass(frozen=True)
class ComputeRatio:
    """Compute a strategy spent to reach the target over the baseline's expected compute to
    reach it (geometric centre over seeds with its 95% CI; censored seeds never reached it)."""

    strategy: str
    unit: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    seeds: int
    censored: int
    per_seed: tuple[SeedRatio, ...]


@dataclass(frozen=True)
class EqualCompute:
    """A strategy stopped at ``fraction`` of the baseline's total epochs (per seed): the test
    score of the configuration it would have picked, against the full baseline's."""

    strategy: str
    fraction: float
    test: Spread
    difference: float
    ci_low: float
    ci_high: float
    p_noninferiority: float
    seeds: int


@dataclass(frozen=True)
class Winner:
    """A strategy's winning configuration on a task (its best validation score over seeds)."""

    strategy: str
    seed: int
    trial: int
    validation: float
    test: float
    params: dict[str, Any]


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
    target: str = ""
    compute: list[ComputeRatio] | None = None
    equal: list[EqualCompute] | None = None
    smallest_fraction: dict[str, float | None] | None = None
    winners: list[Winner] | None = None
    best_scores: dict[str, dict[int, float]] | None = None  # strategy -> seed -> test score
    # What trial values are (the selection objective) and the margin the compute target uses
    # on them (the metric's margin when the objective is the metric).
    objective: str = ""
    objective_direction: str = ""
    target_margin: float = math.nan

    def label(self, strategy: str) -> str:
        return next((r.label for r in self.rows if r.strategy == strategy), strategy)


def _best(study: StudyData) -> float:
    curve = anytime_curve(study.records, study.info.objective_direction)
    return float(curve.best[-1]) if len(curve.best) else math.nan


def strategy_label(strategy: str, studies: list[StudyData], grid_size: int | None) -> str:
    """The strategy's name, with "(k of N points)" for a grid that visits part of its grid."""
    if strategy == "grid" and grid_size and studies:
        k = max(s.info.budget for s in studies)
        if k < grid_size:
            return f"grid ({k} of {grid_size} points)"
    return strategy


def task_baseline(config: ExperimentConfig | None, strategies: list[str]) -> str:
    """The configured baseline when it ran, else grid, else the first non-manual strategy."""
    return _task_baseline(config.baseline() if config is not None else "grid", strategies)


def _interrupted_total(studies: list[StudyData], attr: str) -> float:
    """Epochs or seconds spent on attempts that do not count (interrupted, stale, gave up)."""
    return sum(
        float(t.user_attrs.get(attr, 0.0)) for s in studies for t in s.trials if is_interrupted(t)
    )


def _score(tests: Scores, study: StudyData, trial: int | None) -> float:
    ts = tests.get(study.info.name, {}).get(trial) if trial is not None else None
    return ts.mean if ts is not None else math.nan


def summarize_task(
    data: ExperimentData, task: str, tests: Scores, config: ExperimentConfig | None = None
) -> TaskSummary:
    """Summary rows, raw comparisons against the baseline (verdicts come from
    ``_sentences.summarize``, which adjusts over every task) and compute comparisons of ``task``."""
    studies = data.of(task)
    metric, direction = studies[0].info.metric, studies[0].info.direction
    # Trial values are the selection objective (validation cross-entropy for classification
    # by default): picks, targets and winners follow its direction; test scores the metric's.
    objective, value_direction = studies[0].info.objective, studies[0].info.objective_direction
    strategies = list(dict.fromkeys(s.info.strategy for s in studies))
    baseline = task_baseline(config, strategies)
    grid_size = config.grid_size() if config is not None and "grid" in config.strategies else None
    best_test = {
        s.info.name: _score(tests, s, t.number if (t := best_trial(s)) else None) for s in studies
    }
    rows = []
    for strategy in strategies:
        own = data.of(task, strategy)
        rows.append(
            SummaryRow(
                strategy=strategy, label=strategy_label(strategy, own, grid_size), seeds=len(own),
                best_valid=Spread.of([_best(s) for s in own]),
                test=Spread.of([best_test[s.info.name] for s in own]),
                trials=Spread.of([float(len(s.records)) for s in own]),
                epochs=Spread.of([total(s.records, "epochs") for s in own]),
                seconds=Spread.of([total(s.records, "seconds") for s in own]),
                pruned=sum(s.counts.pruned for s in own), failed=sum(s.counts.failed for s in own),
                interrupted=sum(s.counts.interrupted for s in own),
                interrupted_epochs=_interrupted_total(own, "epochs"),
                interrupted_seconds=_interrupted_total(own, "seconds"),
            )
        )  # fmt: skip
    scores = {
        strategy: {
            s.info.seed: best_test[s.info.name]
            for s in data.of(task, strategy)
            if not math.isnan(best_test[s.info.name])
        }
        for strategy in strategies
    }
    spec: float | str = (
        config.task(task).resolved_margin(metric)
        if config is not None and task in {t.name for t in config.tasks}
        else 0.0
    )
    margin = resolve_margin(spec, list(scores.get(baseline, {}).values()))
    verdicts = [
        compare_pair(
            task, s, baseline, paired_differences(scores[s], scores.get(baseline, {}), direction),
            margin,
        )
        for s in strategies
        if s != baseline
    ]  # fmt: skip
    base_studies = {s.info.seed: s for s in data.of(task, baseline)}
    # The compute target: the baseline's best validation score at that seed, minus the margin
    # (a relative margin without test scores yet: relative to the validation score).
    val_margin = margin
    if objective != metric:  # the margin is in the metric's units: the objective's default
        spec_v = DEFAULT_MARGINS.get(objective, DEFAULT_MARGINS["log_loss"])
        val_margin = resolve_margin(spec_v, [_best(s) for s in base_studies.values()])
    elif math.isnan(val_margin) and isinstance(spec, str):
        val_margin = resolve_margin(spec, [_best(s) for s in base_studies.values()])
    compute = []
    equal = []
    smallest: dict[str, float | None] = {}
    for strategy in strategies:
        if strategy == "manual":
            continue
        for unit in UNITS:
            per_seed = []
            for s in data.of(task, strategy):
                b = base_studies.get(s.info.seed)
                if b is None or s is b:
                    continue
                target = best_so_far_target(b.records, value_direction, val_margin)
                if math.isnan(target):
                    continue
                cost, reached = run_cost_to_target(s.records, target, value_direction, unit)
                base = baseline_cost_to_target(b.records, target, value_direction, unit)
                per_seed.append(SeedRatio(s.info.seed, unit, cost, base, reached))
            if per_seed:
                est, low, high, level = ratio_interval(per_seed)
                compute.append(
                    ComputeRatio(
                        strategy, unit, est, low, high, level, len(per_seed),
                        sum(not r.reached for r in per_seed), tuple(per_seed),
                    )
                )  # fmt: skip
        full = scores.get(baseline, {})
        settled: float | None = None
        failed = False
        for f in sorted(FRACTIONS, reverse=True):
            at_f: dict[int, float] = {}
            for s in data.of(task, strategy):
                b = base_studies.get(s.info.seed)
                if b is None:
                    continue
                pick = pick_at_budget(s.records, value_direction, f * total(b.records, "epochs"))
                value = _score(tests, s, pick)
                if not math.isnan(value):
                    at_f[s.info.seed] = value
            d = paired_differences(at_f, full, direction)
            ci = hodges_lehmann(d)
            p = compare_pair(task, strategy, baseline, d, margin).p_noninferiority
            equal.append(
                EqualCompute(
                    strategy, f, Spread.of(list(at_f.values())), ci.estimate, ci.low, ci.high, p, len(d)
                )
            )  # fmt: skip
            # Fixed-sequence testing from the full budget down, stopping at the first fraction
            # that is not non-inferior, keeps the error rate at ALPHA without an adjustment.
            if not failed and p < ALPHA:
                settled = f
            else:
                failed = True
        if strategy != baseline:
            smallest[strategy] = settled
    winners = []
    sign = 1.0 if value_direction == "maximize" else -1.0
    fixed = config.fixed_params() if config is not None else {}
    for strategy in strategies:
        candidates = [
            (sign * float(t.value), s, t)
            for s in data.of(task, strategy)
            if (t := best_trial(s)) is not None and t.value is not None
        ]
        if candidates:
            _, ws, wt = max(candidates, key=lambda c: c[0])
            winners.append(
                Winner(strategy, ws.info.seed, wt.number, float(wt.value or 0.0),
                       best_test[ws.info.name], {**fixed, **wt.params})
            )  # fmt: skip
    margin_spec = (
        f"{spec} of {baseline}'s median test {metric} = {margin:.4g}"
        if isinstance(spec, str)
        else f"{margin:.4g}"
    )
    target_text = f"{baseline}'s best validation {objective} {'-' if value_direction == 'maximize' else '+'} the margin ({val_margin:.4g}) at the same seed"
    missing = [f"{s.info.name}: {s.missing}" for s in studies if s.missing]
    return TaskSummary(
        task=task, metric=metric, direction=direction, rows=rows, verdicts=verdicts, verdict="",
        missing=missing, baseline=baseline, margin=margin, margin_spec=margin_spec, target=target_text,
        compute=compute, equal=equal, smallest_fraction=smallest, winners=winners,
        best_scores={k: v for k, v in scores.items() if v}, objective=objective,
        objective_direction=value_direction, target_margin=val_margin,
    )  # fmt: skip
