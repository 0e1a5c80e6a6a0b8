"""Is a strategy competitive with the baseline? Effect sizes, confidence intervals, and a verdict
against a declared margin.

Everything is paired by seed (seed k fixes one data split shared by every strategy) on held-out
test scores, signed so that a positive difference means the strategy is better.

* The effect is the Hodges-Lehmann estimate (the median of the Walsh averages of the paired
  differences) and its 95% CI is the exact Wilcoxon signed-rank interval: the order statistics
  of the Walsh averages that invert the exact test. With 5 seeds or fewer no finite 95% interval
  exists; the interval is then the range of the Walsh averages and ``ci_level`` says what it
  covers (93.75% at 5 seeds).
* The tests are exact one-sided Wilcoxon signed-rank tests of the shifted differences, exact
  with ties and zeros too (``_signed_rank.py``: scipy would switch to a normal approximation), at
  ``ALPHA`` = 0.025, the level that matches the two-sided 95% CI:
  non-inferiority (H0: effect <= -margin), superiority (H0: effect <= 0), the upper half of TOST
  (H0: effect >= +margin) and inferiority (H0: effect >= -margin).
  ``p_equivalence`` is TOST's p, the larger of the non-inferiority and upper p.
* Multiplicity: each kind of test is Holm-adjusted over the family the headline rests on, every
  searching strategy against the baseline on every task (manual picks form a family of their
  own).
* The verdict rule (:data:`RULE`) reads only the adjusted p-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hpstudy.analysis._signed_rank import (
    Interval,
    hodges_lehmann,
    signed_rank_null,
    signed_rank_p,
    walsh_averages,
)
from hpstudy.analysis._stats import holm

__all__ = ["Interval", "hodges_lehmann", "signed_rank_null", "walsh_averages"]

ALPHA = 0.025
POWER = 0.8
VERDICTS = ("superior", "non-inferior", "equivalent", "inferior", "inconclusive")
RULE = (
    "Each test is a one-sided exact Wilcoxon signed-rank test of the per-seed differences at "
    "alpha = 0.025 (matching the 95% CI; exact also with ties: mid-ranks, zeros ranked but not "
    "flipped), Holm-adjusted over the family. "
    "non-inferior: the difference is above -margin; superior: also above 0; "
    "equivalent: also below +margin (TOST); inferior: the difference is below -margin; "
    "inconclusive (not settled): none of these; the planning column is about how many seeds a "
    "new run would need for 80% power at the observed spread."
)


def _p_greater(x: np.ndarray) -> float:
    """One-sided exact signed-rank p-value of H0: location <= 0 against > 0 (ties exact)."""
    return signed_rank_p(x, "greater")


@dataclass(frozen=True)
class Verdict:
    """One strategy against the baseline on one task (the numbers ``export`` writes).

    Attributes:
        difference, ci_low, ci_high, ci_level: Hodges-Lehmann effect (metric units, positive =
            strategy better) and its CI.
        margin: The non-inferiority margin in metric units.
        p_noninferiority, p_superiority, p_equivalence, p_inferiority: Raw one-sided p-values.
        p_adjusted: Holm-adjusted non-inferiority p over the family (``family`` names it).
        seeds_needed: Seeds that would settle an inconclusive comparison (``None`` otherwise,
            or when no number of seeds would: the effect sits exactly on the margin).
    """

    task: str
    strategy: str
    baseline: str
    margin: float
    seeds: int
    difference: float
    ci_low: float
    ci_high: float
    ci_level: float
    sd: float
    p_noninferiority: float
    p_superiority: float
    p_equivalence: float
    p_inferiority: float
    p_adjusted: float = math.nan
    p_adjusted_superiority: float = math.nan
    p_adjusted_equivalence: float = math.nan
    p_adjusted_inferiority: float = math.nan
    family: str = ""
    verdict: str = "inconclusive"
    seeds_needed: int | None = None


def paired_differences(
    strategy: dict[int, float], baseline: dict[int, float], direction: str
) -> list[float]:
    """strategy - baseline per shared seed, signed so that positive = strategy better."""
    sign = 1.0 if direction == "maximize" else -1.0
    return [_tie(sign * (strategy[s] - baseline[s]), strategy[s], baseline[s])
            for s in sorted(set(strategy) & set(baseline))]  # fmt: skip


def _tie(d: float, a: float, b: float) -> float:
    """``d`` = a - b, or exactly 0 when a and b differ only by rounding (the same test score
    averaged in another order): a tie, which the signed-rank test must see as one."""
    return 0.0 if abs(d) <= 1e-12 * max(abs(a), abs(b)) else d


def compare_pair(
    task: str, strategy: str, baseline: str, d: Sequence[float], margin: float
) -> Verdict:
    """Effect, CI and raw p-values of one comparison (no multiplicity, no verdict yet)."""
    x = np.asarray(d, dtype=float)
    ci = hodges_lehmann(x)
    p_ni = _p_greater(x + margin)
    p_upper = _p_greater(margin - x)
    return Verdict(
        task=task, strategy=strategy, baseline=baseline, margin=margin, seeds=len(x),
        difference=ci.estimate, ci_low=ci.low, ci_high=ci.high, ci_level=ci.level,
        sd=float(np.std(x, ddof=1)) if len(x) > 1 else math.nan,
        p_noninferiority=p_ni, p_superiority=_p_greater(x), p_equivalence=max(p_ni, p_upper),
        p_inferiority=_p_greater(-(x + margin)),
    )  # fmt: skip


def min_seeds(alpha: float) -> int:
    """Fewest pairs for which an exact one-sided signed-rank test can reach ``alpha``."""
    n = 1
    while 0.5**n >= alpha:
        n += 1
    return n


def seeds_needed(v: Verdict, family_size: int, alpha: float = ALPHA) -> int | None:
    """Seeds for 80% power to settle ``v`` at its observed effect and spread.

    Normal approximation of the signed-rank test (asymptotic relative efficiency 3/pi against
    the t-test) at the Bonferroni level alpha / family_size (Holm's first step, so it does not
    undercount), for non-inferiority when the effect is above -margin, else for inferiority;
    never fewer than the exact test needs to reach that level at all.
    """
    from scipy import stats

    level = alpha / max(family_size, 1)
    floor = min_seeds(level)
    distance = abs(v.difference + v.margin)
    if math.isnan(v.difference) or distance == 0:
        return None
    if math.isnan(v.sd) or v.sd == 0:
        return floor
    z = float(stats.norm.ppf(1 - level) + stats.norm.ppf(POWER))
    n = math.ceil((z * v.sd / distance) ** 2 / (3 / math.pi))
    return max(n, floor)


def decide(v: Verdict, alpha: float = ALPHA) -> str:
    """The verdict word from the adjusted p-values (see :data:`RULE`)."""
    if v.p_adjusted < alpha:
        if v.p_adjusted_superiority < alpha:
            return "superior"
        if v.p_adjusted_equivalence < alpha:
            return "equivalent"
        return "non-inferior"
    if v.p_adjusted_inferiority < alpha:
        return "inferior"
    return "inconclusive"


def judge(raw: list[Verdict], family: str, alpha: float = ALPHA) -> list[Verdict]:
    """Holm-adjust every kind of test over ``raw`` (one family) and give each its verdict."""
    adj_ni = holm([v.p_noninferiority for v in raw])
    adj_sup = holm([v.p_superiority for v in raw])
    adj_eq = holm([v.p_equivalence for v in raw])
    adj_inf = holm([v.p_inferiority for v in raw])
    out = []
    for i, v in enumerate(raw):
        v = replace(
            v,
            p_adjusted=adj_ni[i],
            p_adjusted_superiority=adj_sup[i],
            p_adjusted_equivalence=adj_eq[i],
            p_adjusted_inferiority=adj_inf[i],
            family=family,
        )
        word = decide(v, alpha) if not math.isnan(v.p_adjusted) else "inconclusive"
        needed = seeds_needed(v, len(raw), alpha) if word == "inconclusive" else None
        out.append(replace(v, verdict=word, seeds_needed=needed))
    return out


def resolve_margin(margin: float | str, scores: Sequence[float]) -> float:
    """A margin in metric units: a number as is, "N%" of the median |score| of ``scores``
    (every compared arm's test scores pooled, so no one arm sets its own margin)."""
    if isinstance(margin, str):
        scores = [s for s in scores if not math.isnan(s)]
        if not scores:
            return math.nan
        return float(margin.rstrip("%")) / 100 * abs(float(np.median(scores)))
    return float(margin)
