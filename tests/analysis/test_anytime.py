from __future__ import annotations

import math

import numpy as np
import pytest

from hpstudy.analysis import Trial as TrialRecord
from hpstudy.analysis._anytime import anytime_curve, seed_band


def _r(
    number: int, state: str, value: float | None, epochs: int, seconds: float = 1.0
) -> TrialRecord:
    return TrialRecord(number, state, value, epochs=epochs, seconds=seconds)


RECORDS = [
    _r(2, "COMPLETE", 0.80, 10, 2.0),
    _r(0, "PRUNED", None, 3, 0.5),  # pruned trials cost compute but are never the best
    _r(1, "COMPLETE", 0.70, 10, 2.0),
    _r(3, "FAIL", None, 1, 0.1),
    _r(4, "COMPLETE", 0.90, 10, 2.0),
]


def test_best_so_far_counts_every_trial_as_compute() -> None:
    curve = anytime_curve(RECORDS, "maximize")
    assert curve.trials.tolist() == [1, 2, 3, 4, 5]
    assert curve.epochs.tolist() == [3, 13, 23, 24, 34]
    assert curve.seconds.tolist() == pytest.approx([0.5, 2.5, 4.5, 4.6, 6.6])
    assert math.isnan(curve.best[0])
    assert curve.best[1:].tolist() == [0.70, 0.80, 0.80, 0.90]


def test_minimize_keeps_the_lowest() -> None:
    curve = anytime_curve(RECORDS, "minimize")
    assert curve.best[1:].tolist() == [0.70, 0.70, 0.70, 0.70]


def test_seed_band_median_and_quartiles_on_trials() -> None:
    curves = [
        anytime_curve(
            [_r(0, "COMPLETE", v, 1) for v in [0.5]] + [_r(1, "COMPLETE", 0.6, 1)], "maximize"
        ),
        anytime_curve(
            [_r(0, "COMPLETE", 0.7, 1), _r(1, "COMPLETE", 0.8, 1), _r(2, "COMPLETE", 0.9, 1)],
            "maximize",
        ),
        anytime_curve([_r(0, "COMPLETE", 0.1, 1), _r(1, "COMPLETE", 0.2, 1)], "maximize"),
    ]
    band = seed_band(curves, "trials")
    assert band.x.tolist() == [1, 2, 3]
    assert band.median.tolist() == pytest.approx([0.5, 0.6, 0.6])  # a finished seed keeps its best
    assert band.q25[0] == pytest.approx(np.percentile([0.5, 0.7, 0.1], 25))
    assert band.q75[2] == pytest.approx(np.percentile([0.6, 0.9, 0.2], 75))


def test_seed_band_on_epochs_uses_a_shared_grid() -> None:
    a = anytime_curve([_r(0, "COMPLETE", 0.5, 10), _r(1, "COMPLETE", 0.9, 10)], "maximize")
    b = anytime_curve([_r(0, "COMPLETE", 0.6, 5), _r(1, "COMPLETE", 0.7, 5)], "maximize")
    band = seed_band([a, b], "epochs", points=5)
    assert band.x.tolist() == [5.0, 8.75, 12.5, 16.25, 20.0]
    # at 5 epochs only b has a score: no median yet; at 20 both have finished: 0.9 and 0.7
    assert math.isnan(band.median[0]) and band.median[-1] == pytest.approx(0.8)


def test_best_so_far_band_is_monotone_when_a_seed_starts_late() -> None:
    # two seeds of random search on RMSE: one scores 3.75 at once, the other's first complete
    # trial is the third, at 5.2; a median over the seeds that have a value would rise
    fast = anytime_curve([_r(0, "COMPLETE", 3.75, 1), _r(1, "COMPLETE", 4.0, 1)], "minimize")
    late = anytime_curve(
        [_r(0, "PRUNED", None, 1), _r(1, "FAIL", None, 1), _r(2, "COMPLETE", 5.2, 1)], "minimize"
    )
    band = seed_band([fast, late], "trials")
    assert math.isnan(band.median[0]) and math.isnan(band.median[1])
    assert band.median[2] == pytest.approx((3.75 + 5.2) / 2)
    defined = band.median[~np.isnan(band.median)]
    assert np.all(np.diff(defined) <= 0)


def test_band_starts_where_every_seed_has_a_score() -> None:
    early = anytime_curve([_r(0, "COMPLETE", 0.1, 1), _r(1, "COMPLETE", 0.2, 1)], "maximize")
    late = [
        anytime_curve([_r(0, "PRUNED", None, 1), _r(1, "COMPLETE", v, 1)], "maximize")
        for v in (0.8, 0.9)
    ]
    band = seed_band([early, *late], "trials")
    assert math.isnan(band.median[0])  # only one of three seeds has a score after one trial
    assert band.median[1] == pytest.approx(0.8)
