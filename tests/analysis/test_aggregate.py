from __future__ import annotations

import math

import pytest
from scipy import stats

from hpstudy.analysis._aggregate import aggregate


def test_mean_ranks_friedman_and_critical_difference_on_known_scores() -> None:
    accuracy = {  # maximize: tpe best at every seed, grid worst
        "grid": {0: 0.90, 1: 0.91, 2: 0.92},
        "random": {0: 0.93, 1: 0.92, 2: 0.95},
        "tpe": {0: 0.95, 1: 0.96, 2: 0.97},
    }
    rmse = {  # minimize: random best, then tpe, then grid; seed 3 lacks tpe: not a block
        "grid": {0: 3.0, 1: 3.1, 3: 2.0},
        "random": {0: 2.0, 1: 2.1, 3: 2.0},
        "tpe": {0: 2.5, 1: 2.6},
    }
    agg = aggregate([("maximize", accuracy), ("minimize", rmse)])
    assert agg is not None and agg.blocks == 5
    assert agg.mean_ranks == pytest.approx({"tpe": 7 / 5, "random": 8 / 5, "grid": 3.0})
    assert list(agg.mean_ranks) == ["tpe", "random", "grid"]
    ranks = [[3, 2, 1]] * 3 + [[3, 1, 2]] * 2  # grid, random, tpe per block
    expected = stats.friedmanchisquare(*zip(*ranks, strict=True)).pvalue
    assert agg.p_friedman == pytest.approx(expected)
    assert agg.critical_difference == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 5)))


def test_one_strategy_has_nothing_to_rank() -> None:
    assert aggregate([("maximize", {"grid": {0: 0.9}})]) is None
