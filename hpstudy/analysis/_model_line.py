"""How good is the chosen model: its held-out test score beside reference models.

One :class:`ModelLine` per task: the configuration :func:`choose_configuration` picks over
all the task's studies; the test score of its strategy's pick at each seed (each seed's best
trial by validation, as cached: what running that strategy gives you at a new split), as a
median and range over seeds; and the reference models fit on the same splits (predicting the
mean or the majority class, a linear model, gradient boosting), as medians over seeds; R^2
for regression. Tasks whose studies carry no reference scores (caches and raw results made
before they existed, benchmark tasks) have no line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpstudy.analysis._summary import choose_configuration
from hpstudy.analysis._table import REFERENCE_NAMES, References, TrialTable


@dataclass(frozen=True)
class ModelLine:
    """The first line of a task's report.

    Attributes:
        strategy: The strategy whose pick is the chosen configuration.
        params: The chosen configuration's searched hyperparameters.
        metric: The task's metric; ``direction`` its direction.
        seeds: Seeds with a test score of ``strategy``'s pick (the median's sample).
        median, low, high: Median and range over those seeds of the test score.
        references: Reference name (:data:`REFERENCE_NAMES`) -> median test score over the
            seeds where it was fit (``reference_seeds`` of them).
        r2: Regression: the model's median test R^2 over seeds (the metric itself when it is
            R^2, ``1 - rmse**2 / test variance`` for RMSE; ``nan`` for other metrics).
        r2_references: Regression: reference name -> median test R^2.
    """

    strategy: str
    params: Mapping[str, Any]
    metric: str
    direction: str
    kind: str
    seeds: int
    median: float
    low: float
    high: float
    references: Mapping[str, float]
    reference_seeds: int
    r2: float = math.nan
    r2_references: Mapping[str, float] = field(default_factory=dict)


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else math.nan


def model_line(
    table: TrialTable, task: str, best_scores: Mapping[str, Mapping[int, float]]
) -> ModelLine | None:
    """The task's :class:`ModelLine` (``None`` without reference scores or a chosen
    configuration). ``best_scores``: strategy -> seed -> test score of its best trial."""
    studies = table.of(task)
    refs: dict[int, References] = {}
    for s in sorted(studies, key=lambda s: s.seed):
        if s.references is not None:
            refs.setdefault(s.seed, s.references)
    if not refs:
        return None
    choice = choose_configuration(studies)
    if choice is None:
        return None
    strategy = choice.study.strategy
    by_seed = {k: v for k, v in sorted(best_scores.get(strategy, {}).items()) if math.isfinite(v)}
    scores = list(by_seed.values())
    metric, kind = studies[0].metric, studies[0].kind
    references = {n: _median([r.scores[n] for r in refs.values()]) for n in REFERENCE_NAMES}
    r2 = math.nan
    r2_refs: dict[str, float] = {}
    if kind == "regression":
        r2_refs = {
            n: _median([r.r2[n] for r in refs.values() if n in r.r2]) for n in REFERENCE_NAMES
        }
        if metric == "r2":
            r2 = _median(scores)
        elif metric == "rmse":
            r2 = _median(
                [
                    1.0 - v * v / var
                    for seed, v in by_seed.items()
                    if seed in refs and (var := refs[seed].test_variance or 0.0) > 0
                ]
            )
    searched = table.config.searched_params()
    params = {k: v for k, v in choice.trial.params.items() if k in searched}
    return ModelLine(
        strategy=strategy, params=params, metric=metric, direction=studies[0].direction,
        kind=kind, seeds=len(scores), median=_median(scores),
        low=min(scores) if scores else math.nan, high=max(scores) if scores else math.nan,
        references=references, reference_seeds=len(refs), r2=r2, r2_references=r2_refs,
    )  # fmt: skip
