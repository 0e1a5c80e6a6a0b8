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

import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from hpstudy._errors import UsageError
from hpstudy._failures import failure_note
from hpstudy.analysis._table import regret
from hpstudy.config import ExperimentConfig
from hpstudy.report._collect import ExperimentData, collect_experiment
from hpstudy.scoring import cached_scores


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
    test_scores: list[float] | None  # test ``metric`` per training seed, if scored yet
    # ``value`` is the validation score trials were selected on (cross-entropy for
    # classification by default), in ``objective_direction``; metric/direction are the task's.
    objective: str = ""
    objective_direction: str = ""
    # the configuration's validation score at each seed it completed at (any strategy)
    values_by_seed: dict[int, float] = field(default_factory=dict)
    # a published tabular benchmark's task only (its optimum over the space is known): the
    # distance of the pick's validation value to the best of the repetition its study observes,
    # and of its test score to the best test score; 0 is the optimum, larger is worse
    validation_regret: float | None = None
    test_regret: float | None = None

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
    from hpstudy.analysis._summary import choose_configuration
    from hpstudy.report._source import to_table

    table = to_table(data, config, "")
    out = []
    for name in [task] if task else tasks:
        choice = choose_configuration(table.of(name, strategy))
        if choice is None:
            continue
        study, trial = choice.study, choice.trial
        stored = next(s for s in data.studies if s.info.name == study.name)
        cached = cached_scores(stored.attrs).get(trial.number)
        test_scores = list(cached.scores) if cached is not None else None
        validation_regret = test_regret = None
        if study.optimum is not None:
            validation_regret = regret(
                float(trial.value),  # type: ignore[arg-type]
                study.optimum.validation,
                study.select_direction,
            )
            if test_scores:
                test_regret = study.test_regret(replace(trial, test_scores=tuple(test_scores)))
        out.append(
            BestConfiguration(
                task=name, study=study.name, strategy=study.strategy, seed=study.seed,
                trial=trial.number, metric=study.metric, direction=study.direction,
                value=float(trial.value),  # type: ignore[arg-type]
                params=dict(trial.params), best_epoch=trial.best_epoch,
                test_scores=test_scores,
                objective=study.select_name, objective_direction=study.select_direction,
                values_by_seed=choice.values_by_seed,
                validation_regret=validation_regret, test_regret=test_regret,
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
