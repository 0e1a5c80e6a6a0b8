"""Across tasks: mean rank of each strategy's test score, with the Friedman test and the Nemenyi
critical difference (Demsar 2006), over (task, seed) blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Studentized range statistic / sqrt(2) at alpha = 0.05, by number of strategies (Demsar 2006)
_Q05 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949}


@dataclass(frozen=True)
class Aggregate:
    """Mean rank per strategy (1 = best) over ``blocks`` (task, seed) pairs."""

    mean_ranks: dict[str, float]
    blocks: int
    p_friedman: float
    critical_difference: float


def aggregate(tasks: list[tuple[str, dict[str, dict[int, float]]]]) -> Aggregate | None:
    """Mean ranks over every (task, seed) block in which every strategy has a test score.

    Args:
        tasks: Per task, its direction and ``scores[strategy][seed]``.
    """
    from scipy import stats

    strategies = sorted({k for _, scores in tasks for k in scores})
    if len(strategies) < 2:
        return None
    rows = []
    for direction, scores in tasks:
        if set(scores) != set(strategies):
            continue
        seeds = set.intersection(*(set(v) for v in scores.values()))
        for seed in sorted(seeds):
            values = np.array([scores[k][seed] for k in strategies])
            rows.append(stats.rankdata(-values if direction == "maximize" else values))
    if not rows:
        return None
    ranks = np.vstack(rows)
    k, n = len(strategies), len(rows)
    p = math.nan
    if k >= 3 and n >= 2:
        p = float(stats.friedmanchisquare(*ranks.T).pvalue)
    cd = _Q05[k] * math.sqrt(k * (k + 1) / (6 * n)) if k in _Q05 else math.nan
    means = dict(zip(strategies, (float(x) for x in ranks.mean(axis=0)), strict=True))
    return Aggregate(dict(sorted(means.items(), key=lambda kv: kv[1])), n, p, cd)
