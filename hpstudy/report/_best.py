"""``hpstudy best``: the best configuration of each task (optionally of one strategy).

The best configuration is not the single best validation score over every study: seed k
draws its own split, and the best single score mostly comes from the easiest split (its
test score then disappoints). Each study's pick (its best COMPLETE trial) is a candidate;
a candidate's score at seed k is its configuration's validation score in any study of the
task at seed k (common random numbers: the same configuration scores the same in every
strategy) minus the median of every COMPLETE trial at seed k, which removes how easy the split
is; the candidate with the best mean over the seeds it was trained at wins.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from hpstudy._errors import UsageError
from hpstudy._failures import failure_note
from hpstudy.config import ExperimentConfig
from hpstudy.report._collect import ExperimentData, StudyData, collect_experiment
from hpstudy.report._test_scores import best_trial


@dataclass(frozen=True)
class BestConfiguration:
    """The chosen configuration of a task (see the module docstring) and the study trial it
    comes from: ``value`` is that trial's validation score, ``values_by_seed`` the same
    configuration's score at every seed it was trained at."""

    task: str
    study: str
    strategy: str
    seed: int
    trial: int
    metric: str
    direction: str
    value: float
    params: dict[str, Any]  # every hyperparameter, fixed ones included
    best_epoch: int | None  # the epoch of its best validation score
    test_scores: list[float] | None  # cached by a report, if any
    # the configuration's validation score at each seed it completed at (any strategy)
    values_by_seed: dict[int, float] = field(default_factory=dict)

    @property
    def mean_value(self) -> float:
        """The mean validation score over the seeds this configuration was trained at."""
        return (
            statistics.fmean(self.values_by_seed.values()) if self.values_by_seed else self.value
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "mean_value": self.mean_value}


def best_configurations(
    storage_url: str, experiment: str, task: str | None = None, strategy: str | None = None
) -> list[BestConfiguration]:
    """The best configuration per task of ``experiment`` by validation score."""
    from hpstudy.store import stored_config as _stored_config

    data = collect_experiment(storage_url, experiment)
    config = _stored_config(data.studies[0].info, storage_url)
    return best_of(data, config, task, strategy)


def best_of(
    data: ExperimentData,
    config: ExperimentConfig,
    task: str | None = None,
    strategy: str | None = None,
) -> list[BestConfiguration]:
    """The best configuration per task of collected ``data`` (see :func:`best_configurations`)."""
    experiment = data.experiment
    tasks = data.tasks()
    if task is not None and task not in tasks:
        raise UsageError(
            f"task '{task}' is not in experiment '{experiment}'; its tasks are {', '.join(tasks)}"
        )
    strategies = sorted({s.info.strategy for s in data.studies})
    if strategy is not None and strategy not in strategies:
        raise UsageError(
            f"strategy '{strategy}' is not in experiment '{experiment}'; its strategies are {', '.join(strategies)}"
        )
    fixed = config.fixed_params()
    out = []
    for name in [task] if task else tasks:
        studies = data.of(name, strategy)
        candidates = []
        for study in studies:
            trial = best_trial(study)
            if trial is not None:
                candidates.append((study, trial))
        if not candidates:
            continue
        maximize = candidates[0][0].info.direction == "maximize"
        by_seed = _scores_by_seed(studies)
        medians = {
            seed: statistics.median(v for values in configs.values() for v in values)
            for seed, configs in by_seed.items()
        }

        study, trial = max(candidates, key=lambda c: _relative(c, by_seed, medians, maximize))
        key = _config_key(trial.params)
        values = {
            seed: statistics.fmean(configs[key])
            for seed, configs in sorted(by_seed.items())
            if key in configs
        }
        cached = study.attrs.get("test_scores")
        tests = (
            cached["scores"]
            if isinstance(cached, dict) and cached.get("trial") == trial.number
            else None
        )
        out.append(
            BestConfiguration(
                task=name, study=study.info.name, strategy=study.info.strategy, seed=study.info.seed,
                trial=trial.number, metric=study.info.metric, direction=study.info.direction,
                value=float(trial.value), params={**fixed, **trial.params},  # type: ignore[arg-type]
                best_epoch=trial.user_attrs.get("best_epoch"), test_scores=tests,
                values_by_seed=values,
            )
        )  # fmt: skip
    if not out:
        studies = [s for name in ([task] if task else tasks) for s in data.of(name, strategy)]
        notes = [(s.info.name, failure_note(s.trials)) for s in studies]
        if studies and all(note is not None for _, note in notes):
            name, note = notes[0]
            raise UsageError(
                f"experiment '{experiment}' has no complete trial: every trial of its "
                f"{len(studies)} studies failed ({name}: {note}); 'resume' would not help: "
                "change the study file and create it again under a new name"
            )
        raise UsageError(
            f"experiment '{experiment}' has no complete trial yet; run 'hpstudy resume {experiment}'"
        )
    return out


def _relative(
    candidate: tuple[StudyData, FrozenTrial],
    by_seed: dict[int, dict[str, list[float]]],
    medians: dict[int, float],
    maximize: bool,
) -> tuple[float, int]:
    """Mean over the seeds it was trained at of (its score - the seed's median), signed so
    that larger is better; ties go to the lower seed."""
    key = _config_key(candidate[1].params)
    diffs = [
        statistics.fmean(configs[key]) - medians[seed]
        for seed, configs in by_seed.items()
        if key in configs
    ]
    mean = statistics.fmean(diffs)
    return (mean if maximize else -mean), -candidate[0].info.seed


def _config_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _scores_by_seed(studies: list[StudyData]) -> dict[int, dict[str, list[float]]]:
    """Per seed, per configuration, the validation scores of its COMPLETE trials."""
    out: dict[int, dict[str, list[float]]] = {}
    for study in studies:
        configs = out.setdefault(study.info.seed, {})
        for t in study.trials:
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
                configs.setdefault(_config_key(t.params), []).append(float(t.value))
    return {seed: configs for seed, configs in out.items() if configs}  # seeds with a result
