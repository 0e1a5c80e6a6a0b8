"""Compute compared like with like: the compute each strategy spends to reach a quality level,
over the baseline's, and what each strategy would have picked at a fraction of the baseline's
compute.

**Like with like.** A realised first-hit cost is right-skewed, so dividing one strategy's cost
in the order it happened to run by the baseline's *expected* cost over all orderings puts the
ratio below 1 even between identical strategies. So both sides of a ratio are the same kind of
number:

* Both strategies exchangeable (grid points in a seeded shuffle, random search's independent
  draws: :attr:`hpstudy.config.StrategyNames.exchangeable`): each side is its expected cost
  over uniformly random orderings of its own trials, each trial keeping the cost and outcome it
  had. With ``h`` trials reaching the level, a hitting trial is the first with probability
  ``1/h`` and a missing one is paid for when it precedes all ``h``, with probability
  ``1/(h+1)``, so exactly ``E[cost] = sum(hit costs) / h + sum(miss costs) / (h + 1)``.
* Otherwise (TPE, GP, CMA-ES, QMC are sequential: their order is their algorithm) each side is
  its realised cost in the order it ran; grid's realised order is its seed-shuffled order.

Caveat: with a pruner a trial's cost and whether it is pruned depend on the trials before it;
keeping each trial's recorded cost treats the run's pruning decisions as fixed.

**The level.** A level taken from one arm (the baseline's best minus a margin) rewards the
other arm for the baseline's own validation noise. The levels here are symmetric in the two
arms, at each seed: ``best both reached`` (the worse of the two arms' best validation scores,
the primary level: the best quality both found) and the 50% and 90% quantiles of both arms'
COMPLETE validation scores pooled, capped at the primary level (a ladder both reach).

**Censoring.** A side that never reaches the level is censored at its total compute: its cost
is a lower bound. The strategy censored makes the seed's log ratio ``+inf``; the baseline
censored makes it ``-inf`` only when the strategy reached the level within the baseline's
whole compute (the strategy was certainly cheaper), else the seed says nothing (``nan``,
dropped and counted). A summary with a censored seed is marked as such and its interval is
unbounded on that side, so a censored bound never makes an interval "wholly below 1".

**Over seeds.** One log ratio per seed, summarised by the Hodges-Lehmann estimate with the
exact signed-rank interval (ties handled exactly), exponentiated: the geometric centre. Under
the null (a strategy against a shuffled copy of itself) the log ratios are symmetric about 0,
which is the signed-rank test's own null: ``tests/analysis/test_compute_null.py`` checks both
on the shipped raw results.

**Units.** Epochs trained are the primary unit (the machine's load does not move them);
trials and seconds are shown too, seconds labelled as confounded by load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hpstudy.analysis._signed_rank import hodges_lehmann
from hpstudy.analysis._table import Trial, best_of

FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
UNITS = ("epochs", "trials", "seconds")
PRIMARY_UNIT = "epochs"
LEVELS = ("best both reached", "90% quantile", "median")
PRIMARY_LEVEL = LEVELS[0]
UNIT_NOTES = {
    "epochs": "epochs trained (primary)",
    "trials": "trials",
    "seconds": "training seconds (secondary: confounded by the machine's load)",
}


def cost_of(t: Trial, unit: str) -> float:
    return 1.0 if unit == "trials" else float(t.epochs if unit == "epochs" else t.seconds)


def total(trials: Sequence[Trial], unit: str) -> float:
    return float(sum(cost_of(t, unit) for t in trials))


def reaches(t: Trial, level: float, direction: str) -> bool:
    """Whether a COMPLETE trial's validation score is at least as good as ``level``."""
    if t.state != "COMPLETE" or t.value is None or math.isnan(t.value) or math.isnan(level):
        return False
    return t.value >= level if direction == "maximize" else t.value <= level


def expected_cost(costs: Sequence[float], hits: Sequence[bool]) -> tuple[float, bool]:
    """Expected cost over uniformly random orderings until the first hit has been paid for;
    ``(total, False)`` when nothing hits (censored: a lower bound)."""
    h = sum(hits)
    if h == 0:
        return float(sum(costs)), False
    hit = sum(c for c, x in zip(costs, hits, strict=True) if x)
    miss = sum(c for c, x in zip(costs, hits, strict=True) if not x)
    return hit / h + miss / (h + 1), True


def realised_cost(costs: Sequence[float], hits: Sequence[bool]) -> tuple[float, bool]:
    """Cost in the given order until the first hit, inclusive; ``(total, False)`` if none."""
    spent = 0.0
    for c, x in zip(costs, hits, strict=True):
        spent += c
        if x:
            return spent, True
    return spent, False


def arm_cost(
    runs: Sequence[Trial], level: float, direction: str, unit: str, exchangeable: bool
) -> tuple[float, bool]:
    """One arm's cost to ``level``: expected over orderings, or realised in run order."""
    costs = [cost_of(t, unit) for t in runs]
    hits = [reaches(t, level, direction) for t in runs]
    return (expected_cost if exchangeable else realised_cost)(costs, hits)


def levels(
    a: Sequence[Trial], b: Sequence[Trial], direction: str, only: str | None = None
) -> dict[str, float]:
    """The quality levels of one seed's pair of arms (see the module docstring), or just
    ``only``; empty when either arm has no COMPLETE trial."""
    best_a, best_b = best_of(a, direction), best_of(b, direction)
    if best_a is None or best_b is None:
        return {}
    assert best_a.value is not None and best_b.value is not None
    worse = min if direction == "maximize" else max
    top = worse(best_a.value, best_b.value)
    if only == PRIMARY_LEVEL:
        return {PRIMARY_LEVEL: top}
    pooled = np.array(
        [t.value for t in (*a, *b) if t.state == "COMPLETE" and t.value is not None], dtype=float
    )
    pooled = pooled[np.isfinite(pooled)]
    out = {PRIMARY_LEVEL: top}
    for name, q in (("90% quantile", 0.9), ("median", 0.5)):
        v = float(np.quantile(pooled, q if direction == "maximize" else 1 - q))
        out[name] = worse(v, top)
    return out


@dataclass(frozen=True)
class SeedRatio:
    """One seed: the strategy's cost to the level over the baseline's (both of one kind)."""

    seed: int
    unit: str
    level: str
    strategy_cost: float
    baseline_cost: float
    strategy_reached: bool
    baseline_reached: bool

    @property
    def log_ratio(self) -> float:
        """``log(strategy / baseline)``; ``+inf``/``-inf`` for a censored side that still
        decides the order, ``nan`` when censoring leaves it undecided."""
        s, b = self.strategy_cost, self.baseline_cost
        if self.strategy_reached and self.baseline_reached:
            if s <= 0 or b <= 0:
                return 0.0 if s == b else (math.inf if b <= 0 else -math.inf)
            return math.log(s / b)
        if not self.strategy_reached and self.baseline_reached:
            return math.inf
        if self.strategy_reached and not self.baseline_reached and s < b:
            return -math.inf
        return math.nan

    @property
    def censored(self) -> bool:
        return not (self.strategy_reached and self.baseline_reached)


def seed_ratio(
    strategy: Sequence[Trial],
    baseline: Sequence[Trial],
    seed: int,
    direction: str,
    unit: str,
    level: str,
    exchangeable: bool,
    known: dict[str, float] | None = None,
) -> SeedRatio | None:
    """One seed's ratio at one level (``None`` when the level is undefined there);
    ``known``: the pair's levels, when already computed."""
    value = (known if known is not None else levels(strategy, baseline, direction, level)).get(
        level
    )
    if value is None:
        return None
    s, s_ok = arm_cost(strategy, value, direction, unit, exchangeable)
    b, b_ok = arm_cost(baseline, value, direction, unit, exchangeable)
    return SeedRatio(seed, unit, level, s, b, s_ok, b_ok)


@dataclass(frozen=True)
class RatioSummary:
    """The geometric centre of per-seed ratios with its interval.

    Attributes:
        estimate, ci_low, ci_high, ci_level: exp of the Hodges-Lehmann estimate of log ratios
            and of its exact signed-rank interval (``inf`` where censored seeds leave it open).
        seeds: Seeds with a ratio; ``censored``: of which a side never reached the level;
            ``undecided``: seeds dropped because censoring left the order unknown.
    """

    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    seeds: int
    censored: int
    undecided: int

    @property
    def below_one(self) -> bool:
        """The whole interval is below 1 (the strategy cheaper), never on censored bounds."""
        return self.ci_high < 1 and math.isfinite(self.ci_low)

    @property
    def above_one(self) -> bool:
        return self.ci_low > 1


def summarize_ratios(ratios: Sequence[SeedRatio]) -> RatioSummary:
    logs = [r.log_ratio for r in ratios]
    kept = [x for x in logs if not math.isnan(x)]
    undecided = len(logs) - len(kept)
    censored = sum(r.censored for r in ratios) - undecided
    if not kept:
        return RatioSummary(math.nan, math.nan, math.nan, math.nan, 0, censored, undecided)
    ci = hodges_lehmann(kept)
    return RatioSummary(
        _exp(ci.estimate), _exp(ci.low), _exp(ci.high), ci.level, len(kept), censored, undecided
    )


def _exp(x: float) -> float:
    if math.isnan(x):
        return math.nan
    return math.inf if x == math.inf else 0.0 if x == -math.inf else math.exp(x)


def pick_at_budget(runs: Sequence[Trial], direction: str, budget: float) -> Trial | None:
    """The trial a strategy would have picked had it stopped after ``budget`` epochs: the best
    COMPLETE trial among those it had finished within the budget, in run order."""
    spent, kept = 0.0, []
    for t in runs:
        spent += cost_of(t, "epochs")
        if spent > budget * (1 + 1e-9):
            break
        kept.append(t)
    return best_of(kept, direction)
