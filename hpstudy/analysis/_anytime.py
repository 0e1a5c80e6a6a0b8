"""Anytime performance: best-so-far validation score against trials, epochs and seconds, and
its median over seeds (compute to reach a target lives in ``_compute.py``); on a published
tabular benchmark, also in validation regret (the distance of the best so far to the best
validation value any configuration of the space has in the repetition the study observes).

Pure functions of trial records (no storage, no drawing), so they are tested with exact
numbers. Compute counts every trial, pruned and failed ones included: a strategy whose trials
are pruned early pays less per trial, and comparing by trial number alone would hide that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from hpstudy.analysis._table import Study, Trial, TrialTable, regret


@dataclass(frozen=True)
class AnytimeCurve:
    """Best-so-far score after each trial of one study, with the compute spent so far."""

    trials: np.ndarray  # 1, 2, ..., n
    epochs: np.ndarray  # cumulative epochs after each trial
    seconds: np.ndarray  # cumulative training seconds after each trial
    best: np.ndarray  # best COMPLETE score so far (nan before the first one)


def anytime_curve(records: Sequence[Trial], direction: str) -> AnytimeCurve:
    """Best-so-far curve of one study's trials, in trial-number order."""
    ordered = sorted(records, key=lambda r: r.number)
    best = math.nan
    bests = []
    for r in ordered:
        value = r.value if r.state == "COMPLETE" and r.value is not None else math.nan
        if not math.isnan(value) and (
            math.isnan(best) or (value > best if direction == "maximize" else value < best)
        ):
            best = value
        bests.append(best)
    return AnytimeCurve(
        trials=np.arange(1, len(ordered) + 1),
        epochs=np.cumsum([r.epochs for r in ordered]).astype(float),
        seconds=np.cumsum([r.seconds for r in ordered]),
        best=np.asarray(bests, dtype=float),
    )


def study_curve(study: Study, in_regret: bool = False) -> AnytimeCurve:
    """The best-so-far curve of one study's counted trials; with ``in_regret``, in validation
    regret against the study's benchmark optimum (:func:`hpstudy.analysis._table.regret`:
    0 = the table's best over the space, larger = worse, whatever the metric's direction).

    Raises:
        ValueError: ``in_regret`` on a study with no known optimum (a trained task).
    """
    curve = anytime_curve(study.runs, study.select_direction)
    if not in_regret:
        return curve
    if study.optimum is None:
        raise ValueError(f"{study.name}: no known optimum (not a benchmark task): no regret")
    best, direction = study.optimum.validation, study.select_direction
    return replace(curve, best=np.array([regret(float(v), best, direction) for v in curve.best]))


def step_at(curve_x: np.ndarray, curve_y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value of the step function (x_i, y_i) at each point of ``grid`` (nan before x_0)."""
    idx = np.searchsorted(curve_x, grid, side="right") - 1
    out = np.full(len(grid), np.nan)
    ok = idx >= 0
    out[ok] = curve_y[idx[ok]]
    return out


@dataclass(frozen=True)
class Band:
    """Median and interquartile range over seeds, on a common x grid."""

    x: np.ndarray
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray


def seed_band(curves: Sequence[AnytimeCurve], axis: str, points: int = 200) -> Band:
    """Median and IQR over seeds of best-so-far curves against ``axis`` (trials, epochs or
    seconds). Each seed's curve is read as a step function on a shared grid; seeds that have
    not reached a grid point yet (or have no COMPLETE trial yet) have no value there, and the band
    starts where every seed has one: each seed's curve is monotone, so the median and quartiles
    of all of them are too (a median over the seeds that happen to have a value is not: a late
    seed joining with a worse score would pull it the wrong way)."""
    xs = [getattr(c, axis) for c in curves if len(c.trials)]
    if not xs:
        empty = np.array([])
        return Band(empty, empty, empty, empty)
    top = max(float(x[-1]) for x in xs)
    if axis == "trials":
        grid = np.arange(1, int(top) + 1, dtype=float)
    else:
        grid = np.linspace(min(float(x[0]) for x in xs), top, points)
    stacked = np.vstack([step_at(getattr(c, axis), c.best, grid) for c in curves if len(c.trials)])
    # A seed whose curve ended before a grid point has finished: it keeps its last best.
    for row, c in zip(stacked, [c for c in curves if len(c.trials)], strict=True):
        row[grid > getattr(c, axis)[-1]] = c.best[-1]
    with np.errstate(all="ignore"):
        valid = ~np.isnan(stacked)
        valid &= valid.all(axis=0)
        median = np.array(
            [
                np.median(col[ok]) if ok.any() else np.nan
                for col, ok in zip(stacked.T, valid.T, strict=True)
            ]
        )
        q25 = np.array(
            [
                np.percentile(col[ok], 25) if ok.any() else np.nan
                for col, ok in zip(stacked.T, valid.T, strict=True)
            ]
        )
        q75 = np.array(
            [
                np.percentile(col[ok], 75) if ok.any() else np.nan
                for col, ok in zip(stacked.T, valid.T, strict=True)
            ]
        )
    return Band(grid, median, q25, q75)


# Points of the budget (in trials) at which the results page gives the anytime regret.
REGRET_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)


@dataclass(frozen=True)
class RegretAt:
    """One strategy's anytime curve in validation regret, read at a few trial counts: median
    and interquartile range over seeds (the figure's band at those points)."""

    strategy: str
    trials: tuple[int, ...]
    median: tuple[float, ...]
    q25: tuple[float, ...]
    q75: tuple[float, ...]
    seeds: int


def anytime_regret(table: TrialTable, task: str) -> list[RegretAt] | None:
    """Each strategy's validation regret after 1/16 ... all of the task's budget in trials
    (manual picks apart); ``None`` unless every study of the task knows its optimum."""
    studies = table.of(task)
    if not studies or any(s.optimum is None for s in studies):
        return None
    budget = max(s.budget for s in studies)
    points = sorted({max(1, round(f * budget)) for f in REGRET_FRACTIONS})
    out = []
    for strategy in table.strategies(task):
        if strategy == "manual":
            continue
        own = table.of(task, strategy)
        band = seed_band([study_curve(s, in_regret=True) for s in own], "trials")
        at = [int(np.searchsorted(band.x, x)) for x in points]
        ok = [i < len(band.x) and band.x[i] == x for i, x in zip(at, points, strict=True)]

        def read(values: np.ndarray, at: list[int] = at, ok: list[bool] = ok) -> tuple[float, ...]:
            return tuple(
                float(values[i]) if good else math.nan for i, good in zip(at, ok, strict=True)
            )

        out.append(
            RegretAt(strategy, tuple(points), read(band.median), read(band.q25), read(band.q75),
                     len(own))
        )  # fmt: skip
    return out
