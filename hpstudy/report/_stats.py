"""Is a difference between two strategies real? Tests across seeds, with Holm correction.

Seeds are the unit of replication: seed k fixes one data split shared by every strategy, so
when two strategies share seeds their scores are paired and the Wilcoxon signed-rank test
applies; otherwise the Mann-Whitney U test. With few seeds no test can reach significance
(5 pairs: the smallest two-sided Wilcoxon p is 0.0625), and the verdict says "inconclusive"
rather than "no difference".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """One strategy against a baseline strategy, on one task.

    Attributes:
        strategy, baseline: Strategy names.
        test: ``"wilcoxon"`` (paired by seed), ``"mann-whitney"`` or ``"none"``.
        n: Pairs (paired) or the smaller group size (unpaired).
        p_value: Raw two-sided p-value (``nan`` when no test could run).
        p_holm: Holm-adjusted p-value within the task's family of comparisons.
        median_difference: Median of (strategy - baseline), signed so that positive means
            the strategy is better under the metric's direction.
        effect_size: Rank-biserial correlation in [-1, 1], positive = strategy better.
        verdict: ``"better"``, ``"worse"``, ``"no significant difference"`` or
            ``"inconclusive"`` (too few seeds for any test to reach ``ALPHA``).
    """

    strategy: str
    baseline: str
    test: str
    n: int
    p_value: float
    p_holm: float
    median_difference: float
    effect_size: float
    verdict: str


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (nan stays nan), in the input order."""
    indexed = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    indexed.sort()
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _signed(a: np.ndarray, direction: str) -> np.ndarray:
    return a if direction == "maximize" else -a


def _min_p_wilcoxon(n: int) -> float:
    """Smallest two-sided exact p-value the signed-rank test can give with n pairs."""
    return 2.0 / 2**n if n > 0 else 1.0


def _min_p_mann_whitney(n1: int, n2: int) -> float:
    return 2.0 / math.comb(n1 + n2, n1) if n1 and n2 else 1.0


def compare(
    scores: Mapping[str, Mapping[int, float]],
    strategy: str,
    baseline: str,
    direction: str,
) -> tuple[str, int, float, float, float]:
    """Test ``strategy`` against ``baseline`` from per-seed scores.

    Returns:
        (test, n, p-value, median difference, rank-biserial effect size), all signed so that
        positive means ``strategy`` is better.
    """
    from scipy import stats

    a_by_seed, b_by_seed = scores.get(strategy, {}), scores.get(baseline, {})
    shared = sorted(set(a_by_seed) & set(b_by_seed))
    if len(shared) >= 2 and len(shared) == len(a_by_seed) == len(b_by_seed):
        diff = _signed(np.array([a_by_seed[s] - b_by_seed[s] for s in shared]), direction)
        nonzero = diff[diff != 0]
        if len(nonzero) == 0:
            return "wilcoxon", len(shared), 1.0, 0.0, 0.0
        p = float(stats.wilcoxon(nonzero, alternative="two-sided").pvalue)
        ranks = stats.rankdata(np.abs(nonzero))
        effect = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
        return "wilcoxon", len(shared), p, float(np.median(diff)), effect
    a = _signed(np.array(list(a_by_seed.values()), dtype=float), direction)
    b = _signed(np.array(list(b_by_seed.values()), dtype=float), direction)
    if len(a) < 2 or len(b) < 2:
        return "none", min(len(a), len(b)), math.nan, math.nan, math.nan
    u = stats.mannwhitneyu(a, b, alternative="two-sided")
    effect = float(2 * u.statistic / (len(a) * len(b)) - 1)
    return (
        "mann-whitney",
        min(len(a), len(b)),
        float(u.pvalue),
        float(np.median(a) - np.median(b)),
        effect,
    )


def compare_strategies(
    scores: Mapping[str, Mapping[int, float]],
    baselines: Sequence[str],
    direction: str,
) -> list[Comparison]:
    """Every strategy against each baseline (e.g. grid and random), Holm-corrected together.

    Args:
        scores: ``scores[strategy][seed]``: one score per seed (e.g. the test score of the
            strategy's best configuration at that seed).
        baselines: Strategies to compare against.
        direction: ``"maximize"`` or ``"minimize"``.
    """
    rows: list[tuple[str, str, str, int, float, float, float]] = []
    for baseline in baselines:
        if baseline not in scores:
            continue
        for strategy in scores:
            if strategy == baseline or any(r[0] == baseline and r[1] == strategy for r in rows):
                continue
            rows.append((strategy, baseline, *compare(scores, strategy, baseline, direction)))
    adjusted = holm([r[4] for r in rows])
    out = []
    for (strategy, baseline, test, n, p, diff, effect), p_adj in zip(rows, adjusted, strict=True):
        if test == "wilcoxon":
            floor = _min_p_wilcoxon(n)
        elif test == "mann-whitney":
            floor = _min_p_mann_whitney(len(scores[strategy]), len(scores[baseline]))
        else:
            floor = 1.0
        if math.isnan(p_adj) or floor > ALPHA:
            verdict = "inconclusive"
        elif p_adj < ALPHA:
            verdict = "better" if diff > 0 else "worse"
        else:
            verdict = "no significant difference"
        out.append(Comparison(strategy, baseline, test, n, p, p_adj, diff, effect, verdict))
    return out
