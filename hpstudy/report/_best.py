"""``hpstudy best``: the best configuration of each task (optionally of one strategy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpstudy._errors import UsageError
from hpstudy._failures import failure_note
from hpstudy.config import ExperimentConfig
from hpstudy.report._collect import ExperimentData, collect_experiment
from hpstudy.report._test_scores import best_trial
from hpstudy.scoring import cached_scores


@dataclass(frozen=True)
class BestConfiguration:
    """The best COMPLETE trial of a task (over the chosen strategies and every seed)."""

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
    test_scores: list[float] | None  # test ``metric`` per training seed, if scored yet
    # ``value`` is the validation score trials were selected on (cross-entropy for
    # classification by default), in ``objective_direction``; metric/direction are the task's.
    objective: str = ""
    objective_direction: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
        candidates = []
        for study in data.of(name, strategy):
            trial = best_trial(study)
            if trial is not None:
                candidates.append((study, trial))
        if not candidates:
            continue
        maximize = candidates[0][0].info.objective_direction == "maximize"
        study, trial = (max if maximize else min)(candidates, key=lambda c: c[1].value)  # type: ignore[arg-type,return-value]
        cached = cached_scores(study.attrs).get(trial.number)
        tests = list(cached.scores) if cached is not None else None
        out.append(
            BestConfiguration(
                task=name, study=study.info.name, strategy=study.info.strategy, seed=study.info.seed,
                trial=trial.number, metric=study.info.metric, direction=study.info.direction,
                value=float(trial.value), params={**fixed, **trial.params},  # type: ignore[arg-type]
                best_epoch=trial.user_attrs.get("best_epoch"), test_scores=tests,
                objective=study.info.objective, objective_direction=study.info.objective_direction,
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
