from __future__ import annotations

import math

import pytest

from hpstudy.report import compare_strategies, holm


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.2, math.nan])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1])


def test_paired_wilcoxon_finds_a_consistent_improvement() -> None:
    base = {s: 0.90 + 0.001 * s for s in range(8)}
    scores = {"grid": base, "tpe": {s: v + 0.01 for s, v in base.items()}}
    (row,) = compare_strategies(scores, ["grid"], "maximize")
    assert (row.strategy, row.baseline, row.test, row.n) == ("tpe", "grid", "wilcoxon", 8)
    assert row.p_value == pytest.approx(2 / 2**8)  # exact: all 8 pairs favour tpe
    assert row.median_difference == pytest.approx(0.01) and row.effect_size == pytest.approx(1.0)
    assert row.verdict == "better"


def test_lower_is_better_for_minimized_metrics() -> None:
    base = {s: 50.0 + s for s in range(8)}
    scores = {"grid": base, "random": {s: v + 2.0 for s, v in base.items()}}  # higher RMSE
    (row,) = compare_strategies(scores, ["grid"], "minimize")
    assert row.median_difference == pytest.approx(-2.0) and row.effect_size == pytest.approx(-1.0)
    assert row.verdict == "worse"


def test_five_seeds_can_never_be_significant_so_the_verdict_is_inconclusive() -> None:
    base = {s: 0.9 for s in range(5)}
    scores = {"grid": base, "tpe": {s: 0.95 + 0.001 * s for s in range(5)}}
    (row,) = compare_strategies(scores, ["grid"], "maximize")
    assert row.p_value == pytest.approx(0.0625)
    assert row.verdict == "inconclusive"


def test_unpaired_seeds_use_mann_whitney() -> None:
    scores = {
        "grid": {0: 5.0, 1: 6.0, 2: 7.0, 3: 8.0},
        "random": {10: 1.0, 11: 2.0, 12: 3.0, 13: 4.0},
    }
    (row,) = compare_strategies(scores, ["grid"], "maximize")
    assert row.test == "mann-whitney"
    assert row.p_value == pytest.approx(2 / 70)  # exact: complete separation of 4 vs 4
    assert row.effect_size == pytest.approx(-1.0) and row.verdict == "worse"


def test_each_strategy_against_grid_and_random_holm_corrected() -> None:
    base = {s: 0.9 for s in range(10)}
    scores = {
        "grid": base,
        "random": {s: 0.9 + 0.001 * (s + 1) for s in range(10)},
        "tpe": {s: 0.9 + 0.002 * (s + 1) for s in range(10)},
    }
    rows = compare_strategies(scores, ["grid", "random"], "maximize")
    pairs = [(r.strategy, r.baseline) for r in rows]
    assert pairs == [("random", "grid"), ("tpe", "grid"), ("tpe", "random")]  # no duplicate pair
    raw = sorted(r.p_value for r in rows)
    assert max(r.p_holm for r in rows) >= raw[-1]
    assert all(r.p_holm >= r.p_value for r in rows)
