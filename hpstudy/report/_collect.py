"""Collect an experiment's studies and trials from storage into plain records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from hpstudy._failures import failure_note
from hpstudy.store import (
    StudyCounts,
    StudyInfo,
    TrialReader,
    open_storage,
    require_experiment,
)


@dataclass(frozen=True)
class StudyData:
    """One study as stored: its description, its trials, counts and user attrs."""

    info: StudyInfo
    trials: list[FrozenTrial]
    counts: StudyCounts
    attrs: dict[str, Any]

    @property
    def missing(self) -> str | None:
        """A plain sentence when the study has not met its budget, else ``None``."""
        c = self.counts
        failed = failure_note(self.trials)
        if failed is not None and c.finished >= self.info.budget:
            return failed
        if c.finished >= self.info.budget:
            return None
        parts = [f"{c.finished} of {self.info.budget} trials finished"]
        if c.running:
            parts.append(f"{c.running} running")
        if c.waiting:
            parts.append(f"{c.waiting} waiting")
        return ", ".join(parts)


@dataclass(frozen=True)
class ExperimentData:
    """Every study of one experiment."""

    experiment: str
    studies: list[StudyData]

    def tasks(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.studies:
            seen.setdefault(s.info.task, None)
        return list(seen)

    def of(self, task: str, strategy: str | None = None) -> list[StudyData]:
        return [
            s
            for s in self.studies
            if s.info.task == task and (strategy is None or s.info.strategy == strategy)
        ]


def collect_experiment(storage_url: str, experiment: str) -> ExperimentData:
    """Read every study and finished trial of ``experiment`` (one batch of queries per study)."""
    storage = open_storage(storage_url, create=False)
    infos = require_experiment(storage, experiment, storage_url)
    reader = TrialReader(storage)
    studies = []
    for info in sorted(infos, key=lambda i: (i.task, i.strategy, i.seed)):
        trials = reader.fetch(info.study_id, None)
        attrs = storage.get_study_user_attrs(info.study_id)
        studies.append(
            StudyData(info, trials, StudyCounts.of(trials, info.objective_direction), attrs)
        )
    return ExperimentData(experiment, studies)
