"""Compute like with like: exact expectations checked against brute force over permutations."""

from __future__ import annotations

import itertools
import math

import pytest

from hpstudy.report._anytime import TrialRecord
from hpstudy.report._compute import (
    SeedRatio,
    baseline_cost_to_target,
    best_so_far_target,
    expected_cost_to_target,
    pick_at_budget,
    ratio_interval,
    run_cost_to_target,
)


def _rec(n: int, value: float | None, epochs: int, seconds: float = 0.0) -> TrialRecord:
    return TrialRecord(n, "COMPLETE" if value is not None else "PRUNED", value, epochs, seconds)


GRID = [
    _rec(0, 0.80, 10, 1.0),
    _rec(1, None, 3, 0.2),  # pruned: never reaches a target
    _rec(2, 0.95, 7, 0.9),
    _rec(3, 0.91, 12, 2.5),
    _rec(4, 0.97, 5, 0.4),
    _rec(5, 0.60, 9, 0.7),
]


def _brute(records: list[TrialRecord], target: float, unit: str) -> float:
    total = 0.0
    perms = list(itertools.permutations(records))
    for order in perms:
        spent = 0.0
        for r in order:
            spent += 1.0 if unit == "trials" else getattr(r, unit)
            if r.value is not None and r.value >= target:
                break
        total += spent
    return total / len(perms)


@pytest.mark.parametrize("target", [0.5, 0.9, 0.95, 0.97])
@pytest.mark.parametrize("unit", ["epochs", "seconds", "trials"])
def test_grid_expected_cost_to_target_matches_brute_force_over_permutations(
    target: float, unit: str
) -> None:
    exact = baseline_cost_to_target(GRID, target, "maximize", unit)
    assert exact == pytest.approx(_brute(GRID, target, unit))


def test_unreachable_target_has_no_expected_cost() -> None:
    assert math.isnan(expected_cost_to_target([1.0, 2.0], [False, False]))


def test_run_cost_follows_the_run_order_and_censors_a_miss() -> None:
    assert run_cost_to_target(GRID, 0.95, "maximize", "epochs") == (10 + 3 + 7, True)
    assert run_cost_to_target(GRID, 0.99, "maximize", "epochs") == (46, False)
    assert run_cost_to_target(GRID, 0.9, "minimize", "trials") == (1, True)


def test_target_is_the_best_minus_the_margin_in_the_metrics_direction() -> None:
    assert best_so_far_target(GRID, "maximize", 0.01) == pytest.approx(0.96)
    assert best_so_far_target(GRID, "minimize", 0.01) == pytest.approx(0.61)


def test_pick_at_budget_takes_the_best_trial_finished_within_the_budget() -> None:
    assert pick_at_budget(GRID, "maximize", 9) is None  # the first trial needs 10 epochs
    assert pick_at_budget(GRID, "maximize", 10) == 0
    assert pick_at_budget(GRID, "maximize", 20) == 2
    assert pick_at_budget(GRID, "maximize", 46) == 4
    assert pick_at_budget(GRID, "minimize", 46) == 5


def test_ratio_interval_is_geometric() -> None:
    ratios = [SeedRatio(s, "epochs", c, 10.0, True) for s, c in enumerate([5.0, 10.0, 20.0])]
    est, low, high, level = ratio_interval(ratios)
    assert est == pytest.approx(1.0) and low == pytest.approx(0.5) and high == pytest.approx(2.0)
    assert level == pytest.approx(0.75)
