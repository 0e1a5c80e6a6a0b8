"""Held-out test scores, read from the storage cache; the report never retrains.

Scores are computed beside training (:mod:`hpstudy.scoring`) when a study finishes, and by
``hpstudy create`` / ``resume`` for whatever is missing. Here they are only read: a study
whose cache lacks a score the report needs is named (:func:`missing_test_scores`; the report's
warning is ``report._source.warn_unscored``), with the command that computes it.
"""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from hpstudy.config import ExperimentConfig
from hpstudy.report._collect import ExperimentData, StudyData
from hpstudy.scoring import (
    ATTR,
    ATTR_BY_TRIAL,
    TEST_REPEATS,
    StudyTrials,
    TestScore,
    TrialRow,
    best_number,
    cached_scores,
    missing_scores,
    task_baseline,
)

__all__ = [
    "ATTR",
    "ATTR_BY_TRIAL",
    "TEST_REPEATS",
    "TestScore",
    "best_trial",
    "missing_test_scores",
    "test_scores",
]


def _rows(study: StudyData, baseline: bool) -> StudyTrials:
    from hpstudy.store import counts_toward_budget

    rows = tuple(
        TrialRow(
            t.number, t.state.name, t.value if t.state == TrialState.COMPLETE else None,
            float(t.user_attrs.get("epochs", 0) or 0),
        )
        for t in sorted(study.trials, key=lambda t: t.number)
        if counts_toward_budget(t)
    )  # fmt: skip
    return StudyTrials(
        study.info.name, study.info.strategy, study.info.objective_direction, baseline, rows
    )


def best_trial(study: StudyData) -> FrozenTrial | None:
    """The study's best COMPLETE trial on its selection objective (the rule scoring uses)."""
    number = best_number(_rows(study, False).trials, study.info.objective_direction)
    return next(
        (t for t in study.trials if t.number == number and t.state == TrialState.COMPLETE), None
    )


def test_scores(data: ExperimentData) -> dict[str, dict[int, TestScore]]:
    """Every cached test score, per study name and trial number."""
    return {s.info.name: cached_scores(s.attrs) for s in data.studies}


def missing_test_scores(data: ExperimentData, config: ExperimentConfig | None) -> list[str]:
    """The studies whose cache lacks a test score the report needs (each study's best trial
    and the equal-compute picks, :func:`hpstudy.scoring.picks_needed`), as they are now."""
    studies = []
    for task in data.tasks():
        own = data.of(task)
        strategies = list(dict.fromkeys(s.info.strategy for s in own))
        baseline = task_baseline(config.baseline() if config else "grid", strategies)
        studies += [(s.info, _rows(s, s.info.strategy == baseline), s.attrs) for s in own]
    return missing_scores(studies)
