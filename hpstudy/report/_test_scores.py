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
ATTR_BY_TRIAL = "test_scores_by_trial"


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
    picks: dict[str, set[int]] | None = None,
) -> dict[str, dict[int, TestScore]]:
    """Test scores per study name and trial number: the study's best trial and any trial in
    ``picks[study name]`` (e.g. what a strategy would have picked at a fraction of the
    compute), from the storage cache, or retrained and cached.

    The cache is two study user attrs: ``test_scores`` (the best trial, which ``best`` reads)
    and ``test_scores_by_trial`` (every scored trial, keyed by its number as a string).
    """
    out: dict[str, dict[int, TestScore]] = {}
    for study in studies:
        best = best_trial(study)
        if best is None:
            continue
        wanted = {best.number, *((picks or {}).get(study.info.name, set()))}
        by_number = {t.number: t for t in study.trials}
        cache = _cached_by_trial(study)
        fresh = False
        for number in sorted(wanted):
            if number in cache or number not in by_number:
                continue
            progress(study.info.name)
            cache[number] = retrain_test_scores(config, study, by_number[number])
            fresh = True
        if fresh or (best.number in cache and _cached(study, best.number) is None):
            write_attr(
                study.info.study_id,
                {
                    ATTR: {"trial": best.number, "scores": cache[best.number].scores},
                    ATTR_BY_TRIAL: {str(n): ts.scores for n, ts in sorted(cache.items())},
                },
            )
        out[study.info.name] = {n: cache[n] for n in wanted if n in cache}
    return out


def _cached_by_trial(study: StudyData) -> dict[int, TestScore]:
    cache: dict[int, TestScore] = {}
    attr = study.attrs.get(ATTR_BY_TRIAL)
    if isinstance(attr, dict):
        for key, scores in attr.items():
            if str(key).isdigit() and isinstance(scores, list) and scores:
                cache[int(key)] = TestScore(int(key), [float(s) for s in scores])
    best = study.attrs.get(ATTR)
    if isinstance(best, dict) and isinstance(best.get("trial"), int) and best.get("scores"):
        cache.setdefault(
            best["trial"], TestScore(best["trial"], [float(s) for s in best["scores"]])
        )
    return cache


def _cached(study: StudyData, trial: int) -> TestScore | None:
    attr = study.attrs.get(ATTR)
    if isinstance(attr, dict) and attr.get("trial") == trial and attr.get("scores"):
        return TestScore(trial, [float(s) for s in attr["scores"]])
    return None
