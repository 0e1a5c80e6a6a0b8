"""Per task: a summary row per strategy, the statistics against grid and random, and one plain
sentence that answers "which strategy won, for how much compute, and is it real"."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hpstudy.report._anytime import anytime_curve, compute_to_target, relaxed_target
from hpstudy.report._collect import ExperimentData, StudyData
from hpstudy.report._stats import Comparison, compare_strategies
from hpstudy.report._test_scores import TestScore

STRATEGY_NAMES = {
    "manual": "manual picks",
    "grid": "grid search",
    "random": "random search",
    "tpe": "TPE",
    "gp": "GP",
    "cmaes": "CMA-ES",
    "qmc": "QMC",
}


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
    seeds: int
    best_valid: Spread
    test: Spread
    trials: Spread
    epochs: Spread
    seconds: Spread
    pruned: int
    failed: int
    # Median over seeds (with how many seeds got there) of the compute to reach grid's best
    # validation score at the same seed, and 99% of it.
    to_grid_best_epochs: Spread = field(default_factory=lambda: Spread.of([]))
    to_grid_best_trials: Spread = field(default_factory=lambda: Spread.of([]))
    to_grid_99_epochs: Spread = field(default_factory=lambda: Spread.of([]))
    to_grid_99_trials: Spread = field(default_factory=lambda: Spread.of([]))


@dataclass(frozen=True)
class TaskSummary:
    task: str
    metric: str
    direction: str
    rows: list[SummaryRow]
    comparisons: list[Comparison]
    verdict: str
    missing: list[str]


def _best(study: StudyData) -> float:
    curve = anytime_curve(study.records, study.info.direction)
    return float(curve.best[-1]) if len(curve.best) else math.nan


def summarize_task(data: ExperimentData, task: str, tests: dict[str, TestScore]) -> TaskSummary:
    """Summary rows, statistics and the verdict sentence of ``task``."""
    studies = data.of(task)
    metric, direction = studies[0].info.metric, studies[0].info.direction
    strategies = list(dict.fromkeys(s.info.strategy for s in studies))
    grid = {s.info.seed: s for s in data.of(task, "grid")}
    rows = []
    for strategy in strategies:
        own = data.of(task, strategy)
        to_best: dict[str, list[float]] = {"be": [], "bt": [], "9e": [], "9t": []}
        for s in own:
            g = grid.get(s.info.seed)
            if g is None or not g.records:
                continue
            curve = anytime_curve(s.records, direction)
            best_grid = _best(g)
            if math.isnan(best_grid):
                continue
            hit = compute_to_target(curve, best_grid, direction)
            hit99 = compute_to_target(curve, relaxed_target(best_grid, direction), direction)
            for key, h, attr in (
                ("be", hit, "epochs"),
                ("bt", hit, "trials"),
                ("9e", hit99, "epochs"),
                ("9t", hit99, "trials"),
            ):
                value = getattr(h, attr)
                to_best[key].append(math.nan if value is None else float(value))
        rows.append(
            SummaryRow(
                strategy=strategy,
                seeds=len(own),
                best_valid=Spread.of([_best(s) for s in own]),
                test=Spread.of([tests[s.info.name].mean for s in own if s.info.name in tests]),
                trials=Spread.of([float(len(s.records)) for s in own]),
                epochs=Spread.of([float(sum(r.epochs for r in s.records)) for s in own]),
                seconds=Spread.of([float(sum(r.seconds for r in s.records)) for s in own]),
                pruned=sum(s.counts.pruned for s in own),
                failed=sum(s.counts.failed for s in own),
                to_grid_best_epochs=Spread.of(to_best["be"]),
                to_grid_best_trials=Spread.of(to_best["bt"]),
                to_grid_99_epochs=Spread.of(to_best["9e"]),
                to_grid_99_trials=Spread.of(to_best["9t"]),
            )
        )
    scores = {
        strategy: {
            s.info.seed: tests[s.info.name].mean
            for s in data.of(task, strategy)
            if s.info.name in tests
        }
        for strategy in strategies
    }
    scores = {k: v for k, v in scores.items() if v}
    baselines = [b for b in ("grid", "random") if b in scores]
    comparisons = compare_strategies(scores, baselines, direction) if baselines else []
    missing = [f"{s.info.name}: {s.missing}" for s in studies if s.missing]
    summary = TaskSummary(task, metric, direction, rows, comparisons, "", missing)
    return TaskSummary(
        task, metric, direction, rows, comparisons, verdict_sentence(summary), missing
    )


def _fmt_p(c: Comparison) -> str:
    seeds = f"{c.n} seed{'s' if c.n != 1 else ''}"
    if math.isnan(c.p_value):
        return f"no test possible, {seeds}"
    holm = f", {c.p_holm:.2g} after Holm correction" if c.p_holm != c.p_value else ""
    return f"p={c.p_value:.2g}{holm}, {seeds}"


def verdict_sentence(summary: TaskSummary) -> str:
    """One plain sentence from the numbers: how fast each strategy reached grid's best
    validation score (in grid's compute), and whether its test score differs from grid's."""
    rows = {r.strategy: r for r in summary.rows}
    parts = []
    grid = rows.get("grid")
    if grid is not None and grid.epochs.n and grid.epochs.median > 0:
        total = grid.epochs.median
        for strategy in ("random", "tpe", "gp", "cmaes", "qmc"):
            row = rows.get(strategy)
            if row is None:
                continue
            name = STRATEGY_NAMES[strategy]
            best, near = row.to_grid_best_epochs, row.to_grid_99_epochs
            if best.n == row.seeds and best.n:
                parts.append(
                    f"{name} reached grid's best validation {summary.metric} with {100 * best.median / total:.0f}% of grid's compute (median, {best.n} seeds)"
                )
            elif near.n:
                parts.append(
                    f"{name} reached grid's best validation {summary.metric} in {best.n} of {row.seeds} seeds, and 99% of it in "
                    f"{near.n} with {100 * near.median / total:.0f}% of grid's compute"
                )
            else:
                parts.append(
                    f"{name} did not reach 99% of grid's best validation {summary.metric}"
                )
    for c in summary.comparisons:
        if c.baseline != "grid" or c.strategy == "manual":
            continue
        name = STRATEGY_NAMES.get(c.strategy, c.strategy)
        what = {"better": "significantly better than", "worse": "significantly worse than"}.get(
            c.verdict
        )
        if what:
            parts.append(f"{name}'s test {summary.metric} is {what} grid's ({_fmt_p(c)})")
        elif c.verdict == "inconclusive":
            parts.append(
                f"{name} vs grid on test {summary.metric}: inconclusive ({_fmt_p(c)}; too few seeds for any test to tell)"
            )
        else:
            parts.append(
                f"{name} vs grid on test {summary.metric}: no significant difference ({_fmt_p(c)})"
            )
    if not parts:
        return "Not enough finished studies to compare strategies yet."
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."
