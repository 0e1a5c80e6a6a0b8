"""Compute like with like: exact expectations against brute force over permutations, the
levels' symmetry, censoring, and the picks at equal compute."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from hpstudy.analysis import Trial
from hpstudy.analysis._compute import (
    LEVELS,
    SeedRatio,
    arm_cost,
    expected_cost,
    levels,
    pick_at_budget,
    realised_cost,
    seed_ratio,
    summarize_ratios,
)


def _t(n: int, value: float | None, epochs: int, seconds: float = 0.0) -> Trial:
    state = "COMPLETE" if value is not None else "PRUNED"
    return Trial(n, state, value, epochs=epochs, seconds=seconds)


GRID = [
    _t(0, 0.80, 10, 1.0),
    _t(1, None, 3, 0.2),  # pruned: never reaches a level
    _t(2, 0.95, 7, 0.9),
    _t(3, 0.91, 12, 2.5),
    _t(4, 0.97, 5, 0.4),
    _t(5, 0.60, 9, 0.7),
]


def _brute(trials: list[Trial], level: float, unit: str) -> float:
    spent = []
    for order in itertools.permutations(trials):
        cost, _ = arm_cost(list(order), level, "maximize", unit, exchangeable=False)
        spent.append(cost)
    return sum(spent) / len(spent)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.96, 0.97])
@pytest.mark.parametrize("unit", ["epochs", "seconds", "trials"])
def test_expected_cost_is_the_mean_over_every_ordering(level: float, unit: str) -> None:
    cost, reached = arm_cost(GRID, level, "maximize", unit, exchangeable=True)
    assert reached
    assert cost == pytest.approx(_brute(GRID, level, unit))


def test_an_arm_that_never_reaches_the_level_is_censored_at_its_total() -> None:
    assert expected_cost([3.0, 4.0], [False, False]) == (7.0, False)
    assert realised_cost([3.0, 4.0], [False, False]) == (7.0, False)
    assert realised_cost([3.0, 4.0, 5.0], [False, True, True]) == (7.0, True)


def test_levels_favour_neither_arm() -> None:
    rng = random.Random(0)
    for _ in range(50):
        a = [_t(i, rng.random() if rng.random() > 0.2 else None, 5) for i in range(12)]
        b = [_t(i, rng.random() if rng.random() > 0.2 else None, 5) for i in range(9)]
        for direction in ("maximize", "minimize"):
            la, lb = levels(a, b, direction), levels(b, a, direction)
            assert la == pytest.approx(lb)
            # every level is reached by both arms (the primary is the worse of the two bests)
            for value in la.values():
                for arm in (a, b):
                    assert arm_cost(arm, value, direction, "trials", True)[1]


@pytest.mark.parametrize("exchangeable", [True, False])
def test_swapping_the_arms_negates_the_log_ratio(exchangeable: bool) -> None:
    rng = random.Random(1)
    for _ in range(50):
        a = [_t(i, rng.random(), rng.randint(1, 20)) for i in range(10)]
        b = [_t(i, rng.random(), rng.randint(1, 20)) for i in range(10)]
        for level in LEVELS:
            ab = seed_ratio(a, b, 0, "maximize", "epochs", level, exchangeable)
            ba = seed_ratio(b, a, 0, "maximize", "epochs", level, exchangeable)
            assert ab is not None and ba is not None
            assert ab.log_ratio == pytest.approx(-ba.log_ratio)


def test_an_arm_against_its_own_trials_in_any_order_is_exactly_one_when_exchangeable() -> None:
    shuffled = list(GRID)
    random.Random(3).shuffle(shuffled)
    for level in LEVELS:
        r = seed_ratio(shuffled, GRID, 0, "maximize", "epochs", level, exchangeable=True)
        assert r is not None and r.log_ratio == pytest.approx(0.0)


def test_censoring_decides_the_order_only_when_it_can() -> None:
    def ratio(s: float, b: float, s_ok: bool, b_ok: bool) -> float:
        return SeedRatio(0, "epochs", "x", s, b, s_ok, b_ok).log_ratio

    assert ratio(10, 5, False, True) == math.inf  # the strategy never got there
    assert ratio(3, 50, True, False) == -math.inf  # it got there before the baseline's whole run
    assert math.isnan(ratio(60, 50, True, False))  # beyond the baseline's total: unknown
    assert math.isnan(ratio(10, 5, False, False))


def test_a_censored_seed_never_makes_an_interval_wholly_below_one() -> None:
    cheap = [SeedRatio(s, "epochs", "x", 1.0, 4.0, True, True) for s in range(12)]
    assert summarize_ratios(cheap).below_one
    censored = cheap[:-1] + [SeedRatio(11, "epochs", "x", 9.0, 4.0, False, True)]
    summary = summarize_ratios(censored)
    assert summary.censored == 1
    assert summary.estimate == pytest.approx(0.25)
    # with every seed but one four times cheaper the interval is still below 1 ...
    assert summary.ci_high < 1
    # ... but a sample where censored seeds reach the upper tail has an open interval
    many = cheap[:6] + [SeedRatio(s, "epochs", "x", 9.0, 4.0, False, True) for s in range(6, 12)]
    open_ = summarize_ratios(many)
    assert open_.ci_high == math.inf and not open_.below_one


def test_the_pick_at_a_budget_is_the_best_trial_finished_within_it() -> None:
    assert pick_at_budget(GRID, "maximize", 9.9) is None  # the first trial cost 10
    assert pick_at_budget(GRID, "maximize", 10) == GRID[0]
    assert pick_at_budget(GRID, "maximize", 20) == GRID[2]
    assert pick_at_budget(GRID, "maximize", 1e9) == GRID[4]
    assert pick_at_budget(GRID, "minimize", 1e9) == GRID[5]
