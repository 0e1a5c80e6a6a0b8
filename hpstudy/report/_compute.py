"""Compute compared like with like: compute to reach a target that discriminates, and the
configuration each strategy would have picked at a fraction of the baseline's compute.

**The baseline's own cost to a target.** Grid search runs its points in a seed-shuffled order,
so the order it happened to run in is one draw of many. Its expected cost is taken over every
ordering of its trials, each trial keeping the cost (epochs, seconds) and the outcome (reached
the target or not) it had in the run. Over uniform random orderings, with h trials that reach
the target, a trial that reaches it is the first to do so with probability 1/h and a trial that
does not is paid for when it comes before all h of them, with probability 1/(h+1), so exactly

    E[cost] = sum(cost of hitting trials) / h + sum(cost of the others) / (h + 1).

Caveat: with a pruner a trial's cost and whether it is pruned depend on the trials before it;
keeping each trial's recorded cost treats the run's pruning decisions as fixed.

**The searching strategies' cost** is that of the run as it happened (their order is their
algorithm). A seed whose strategy never reached the target is censored at its total compute
(the ratio is then a lower bound, and counted as such), never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpstudy.report._anytime import TrialRecord

# One rule with scoring, which decides the trials that get test scores.
from hpstudy.scoring import FRACTIONS as FRACTIONS
from hpstudy.scoring import pick_at_budget as pick_at_budget

UNITS = ("epochs", "seconds", "trials")


def reaches(value: float | None, target: float, direction: str) -> bool:
    """Whether ``value`` is at least as good as ``target`` (any value beats a ``nan`` target)."""
    if value is None or math.isnan(value):
        return False
    if math.isnan(target):
        return True
    return value >= target if direction == "maximize" else value <= target


def expected_cost_to_target(costs: Sequence[float], hits: Sequence[bool]) -> float:
    """Expected cost, over uniformly random orderings of the trials, until the first trial
    that reaches the target has been paid for (``nan`` when none does)."""
    h = sum(hits)
    if h == 0:
        return math.nan
    hit_cost = sum(c for c, hit in zip(costs, hits, strict=True) if hit)
    miss_cost = sum(c for c, hit in zip(costs, hits, strict=True) if not hit)
    return hit_cost / h + miss_cost / (h + 1)


def _cost(r: TrialRecord, unit: str) -> float:
    return 1.0 if unit == "trials" else float(getattr(r, unit))


def baseline_cost_to_target(
    records: Sequence[TrialRecord], target: float, direction: str, unit: str
) -> float:
    """The baseline's expected ``unit`` to reach ``target`` over random orderings of its trials."""
    return expected_cost_to_target(
        [_cost(r, unit) for r in records],
        [r.state == "COMPLETE" and reaches(r.value, target, direction) for r in records],
    )


def run_cost_to_target(
    records: Sequence[TrialRecord], target: float, direction: str, unit: str
) -> tuple[float, bool]:
    """``unit`` spent in run order until a trial reached ``target``; (total, False) if none did."""
    spent = 0.0
    for r in sorted(records, key=lambda r: r.number):
        spent += _cost(r, unit)
        if r.state == "COMPLETE" and reaches(r.value, target, direction):
            return spent, True
    return spent, False


@dataclass(frozen=True)
class SeedRatio:
    """One seed: strategy's compute to the target over the baseline's expected compute."""

    seed: int
    unit: str
    strategy_cost: float
    baseline_cost: float
    reached: bool  # False: censored at the strategy's total, the ratio is a lower bound

    @property
    def ratio(self) -> float:
        return self.strategy_cost / self.baseline_cost if self.baseline_cost > 0 else math.nan


def best_so_far_target(records: Sequence[TrialRecord], direction: str, margin: float) -> float:
    """The target that discriminates: the baseline's best validation score minus the margin."""
    values = [r.value for r in records if r.state == "COMPLETE" and r.value is not None]
    if not values:
        return math.nan
    best = max(values) if direction == "maximize" else min(values)
    return best - margin if direction == "maximize" else best + margin


def ratio_interval(ratios: Sequence[SeedRatio]) -> tuple[float, float, float, float]:
    """Geometric centre of per-seed ratios with its 95% CI: the Hodges-Lehmann estimate and
    exact Wilcoxon interval of log ratios, exponentiated. Returns (estimate, low, high, level)."""
    from hpstudy.report._verdict import hodges_lehmann

    logs = [math.log(r.ratio) for r in ratios if r.ratio > 0 and math.isfinite(r.ratio)]
    if not logs:
        return math.nan, math.nan, math.nan, math.nan
    ci = hodges_lehmann(logs)
    return math.exp(ci.estimate), math.exp(ci.low), math.exp(ci.high), ci.level


def total(records: Sequence[TrialRecord], unit: str) -> float:
    return float(np.sum([_cost(r, unit) for r in records]))
