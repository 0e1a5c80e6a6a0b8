"""Exact Wilcoxon signed-rank tests and Hodges-Lehmann intervals, with ties.

scipy's ``wilcoxon`` switches silently to the normal approximation when the data have ties
or zeros; the tests here are exact under the conditional (permutation) distribution given the
observed absolute values: mid-ranks for tied ``|d|``, zeros handled by Pratt's method (they
take part in the ranking, contribute nothing and are not flipped). The null distribution of
the sum of positive (doubled, hence integer) ranks is computed by a recursion over rank sums.
Infinite values (censored bounds) rank as the largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A location estimate and its confidence interval (``level``: the coverage achieved)."""

    estimate: float
    low: float
    high: float
    level: float


def midranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their mean rank (scipy's ``rankdata``, without importing
    scipy.stats, which costs seconds)."""
    a = np.asarray(a, dtype=float)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # boundaries of runs of equal values
    new = np.concatenate([[True], sorted_a[1:] != sorted_a[:-1]])
    starts = np.flatnonzero(new)
    ends = np.concatenate([starts[1:], [len(a)]])
    mean_rank = (starts + ends + 1) / 2.0  # ranks start..end-1 (0-based) -> mean, 1-based
    ranks = np.empty(len(a))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _null(doubled: np.ndarray) -> np.ndarray:
    """P(sum of the flipped-positive doubled ranks = s), s = 0 .. sum(doubled)."""
    top = int(doubled.sum())
    dist = np.zeros(top + 1)
    dist[0] = 1.0
    for r in doubled.astype(int):
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[: top + 1 - r]
        dist = (dist + shifted) / 2
    return dist


def signed_rank_p(d: Sequence[float] | np.ndarray, alternative: str = "greater") -> float:
    """Exact one-sided p-value of the signed-rank test of H0: location = 0 against
    location > 0 (``"greater"``) or < 0 (``"less"``)."""
    x = np.asarray(d, dtype=float)
    if np.isnan(x).any():
        raise ValueError("signed_rank_p: nan in the differences")
    if len(x) == 0:
        return math.nan
    if np.all(x == 0):
        return 1.0
    if alternative == "less":
        x = -x
    doubled = np.rint(2 * midranks(np.abs(x))).astype(int)
    nonzero = x != 0
    w = int(doubled[(x > 0)].sum())
    dist = _null(doubled[nonzero])
    return float(min(1.0, dist[w:].sum()))


def walsh_averages(d: Sequence[float] | np.ndarray) -> np.ndarray:
    """(d_i + d_j) / 2 for every i <= j, sorted."""
    x = np.asarray(d, dtype=float)
    i, j = np.triu_indices(len(x))
    with np.errstate(invalid="ignore"):
        w = (x[i] + x[j]) / 2
    return np.sort(w)


def hodges_lehmann(d: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """Hodges-Lehmann estimate with the exact signed-rank interval (order statistics of the
    Walsh averages); with too few pairs for ``confidence``, the range of the Walsh averages
    and the level it achieves."""
    x = np.asarray(d, dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    walsh = walsh_averages(x)
    walsh = walsh[~np.isnan(walsh)]  # +inf + -inf: undefined, dropped
    cdf = np.cumsum(_null(2 * np.arange(1, n + 1)))[::2]  # P(W+ <= w), no ties
    tail = (1 - confidence) / 2
    c = int(np.sum(cdf <= tail + 1e-12))
    level = confidence
    if c < 1:
        c, level = 1, 1.0 - 2.0 * float(cdf[0])
    m = len(walsh)
    c = min(c, (m + 1) // 2)
    finite = np.abs(x[np.isfinite(x)])
    noise = 1e-12 * float(finite.max()) if len(finite) else 0.0
    est, low, high = (
        0.0 if abs(v) <= noise else float(v)
        for v in (np.median(walsh), walsh[c - 1], walsh[m - c])
    )
    return Interval(est, low, high, level)
