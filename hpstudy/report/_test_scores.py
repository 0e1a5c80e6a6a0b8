"""Held-out test scores of each study's best configuration, cached in the storage.

The search never sees the test split. Here, once per study, the best COMPLETE trial's
configuration is retrained on train+validation of the study's seed for the number of epochs
at which it scored best on validation (there is no validation set left to stop on), with
several training seeds, and scored once, after the last epoch, on the test split. The scores
are stored as the study user attr ``test_scores`` (keyed by the trial they belong to), so a
second report never retrains and a resumed study whose best trial changed is retrained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from hpstudy.config import ExperimentConfig
from hpstudy.data import prepare_final
from hpstudy.report._collect import StudyData
from hpstudy.strategies import derive_seed

TEST_REPEATS = 3
ATTR = "test_scores"


@dataclass(frozen=True)
class TestScore:
    """Test scores of one study's best configuration (one per training seed)."""

    trial: int
    scores: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def best_trial(study: StudyData) -> FrozenTrial | None:
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    pick = max if study.info.direction == "maximize" else min
    return pick(complete, key=lambda t: t.value)  # type: ignore[arg-type,return-value]


def retrain_test_scores(
    config: ExperimentConfig, study: StudyData, trial: FrozenTrial, repeats: int = TEST_REPEATS
) -> TestScore:
    """Retrain ``trial``'s configuration on train+validation and score it on the test split."""
    from hpstudy.training import train

    data = prepare_final(config.task(study.info.task), study.info.seed)
    params = {**config.fixed_params(), **trial.params}
    epochs = int(trial.user_attrs.get("best_epoch") or params["epochs"])
    params["epochs"] = epochs
    scores = []
    for r in range(repeats):
        result = train(
            params,
            data,
            seed=derive_seed(study.info.seed, r, "test"),
            max_epochs=epochs,
            patience=0,
            device=config.training.device,
        )
        scores.append(float(result.history[-1]))  # the last epoch: no selection on the test split
    return TestScore(trial.number, scores)


def test_scores(
    config: ExperimentConfig,
    studies: list[StudyData],
    write_attr: Callable[[int, dict[str, Any]], None],
    progress: Callable[[str], None] = lambda name: None,
) -> dict[str, TestScore]:
    """Test scores per study name: from the storage cache, or retrained and cached."""
    out: dict[str, TestScore] = {}
    for study in studies:
        best = best_trial(study)
        if best is None:
            continue
        cached = _cached(study, best.number)
        if cached is None:
            progress(study.info.name)
            cached = retrain_test_scores(config, study, best)
            write_attr(
                study.info.study_id, {ATTR: {"trial": cached.trial, "scores": cached.scores}}
            )
        out[study.info.name] = cached
    return out


def _cached(study: StudyData, trial: int) -> TestScore | None:
    attr = study.attrs.get(ATTR)
    if isinstance(attr, dict) and attr.get("trial") == trial and attr.get("scores"):
        return TestScore(trial, [float(s) for s in attr["scores"]])
    return None
