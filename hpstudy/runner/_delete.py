"""``hpstudy delete``: remove one experiment's studies from a storage, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from optuna.storages import BaseStorage

from hpstudy._errors import HpStudyError
from hpstudy._redact import redact_url
from hpstudy.runner._recover import GRACE_PERIOD, stale_reason
from hpstudy.store import (
    DEFAULT_STORAGE,
    StudyInfo,
    TrialReader,
    open_storage,
    require_experiment,
    worker_id,
)
from hpstudy.store import _optuna as o


class TrialsRunningError(HpStudyError):
    """Trials of the experiment are RUNNING: deleting would pull the storage from under them."""

    exit_code = 1


@dataclass(frozen=True)
class DeletePlan:
    """What ``hpstudy delete NAME`` removes: each study with its number of trials."""

    experiment: str
    studies: list[tuple[str, int]]
    running: list[str]  # one line per RUNNING trial: study, number, worker and whether stale

    @property
    def n_trials(self) -> int:
        return sum(n for _, n in self.studies)


def plan_delete(storage_url: str, experiment: str, *, force: bool = False) -> DeletePlan:
    """The studies :func:`delete_experiment` would delete (to show before asking).

    Raises:
        TrialsRunningError: A trial of the experiment is RUNNING and ``force`` is not set.
        StorageError: The storage is read-only.
    """
    storage = open_storage(storage_url, create=False, write=True)  # refuse read-only up front
    infos = require_experiment(storage, experiment, storage_url)
    plan = _plan(storage, infos, experiment)
    if plan.running and not force:
        raise TrialsRunningError(running_message(plan, storage_url))
    return plan


def _plan(storage: BaseStorage, infos: list[StudyInfo], experiment: str) -> DeletePlan:
    reader = TrialReader(storage)
    me = worker_id()
    studies, running = [], []
    for info in sorted(infos, key=lambda i: i.name):
        polled = reader.poll(info.study_id)
        studies.append((info.name, len(polled)))
        numbers = {trial_id: number for trial_id, number, _ in polled}
        for trial_id, worker, age in reader.running_health(info.study_id):
            why = stale_reason(worker, age, me, GRACE_PERIOD)
            beat = "no heartbeat" if age is None else f"last heartbeat {age:.0f} s ago"
            state = f"{why}" if why else f"worker {worker}, {beat}"
            running.append(f"{info.name} trial {numbers.get(trial_id, '?')} ({state})")
    return DeletePlan(experiment, studies, running)


def delete_experiment(storage_url: str, experiment: str, *, force: bool = False) -> DeletePlan:
    """Delete every study of ``experiment`` (and only those) with their trials.

    One transaction on SQL storages: either every study goes or none does. Other
    experiments in the same storage are untouched.

    Args:
        force: Delete even while trials are RUNNING (their workers' writes will then fail).

    Raises:
        TrialsRunningError: A trial of the experiment is RUNNING and ``force`` is not set.
        UsageError: No such experiment.
    """
    storage = open_storage(storage_url, create=False, write=True)
    infos = require_experiment(storage, experiment, storage_url)
    plan = _plan(storage, infos, experiment)
    blocked = o.delete_studies(storage, [i.study_id for i in infos], force=force)
    if blocked:
        plan = _plan(storage, infos, experiment)  # name the trials as they are now
        raise TrialsRunningError(running_message(plan, storage_url))
    return plan


def running_message(plan: DeletePlan, storage_url: str) -> str:
    """Why a deletion is refused, which trials, and the two ways out."""
    shown = "; ".join(plan.running[:5]) + (
        f"; and {len(plan.running) - 5} more" if len(plan.running) > 5 else ""
    )
    flag = "" if storage_url == DEFAULT_STORAGE else " --storage URL"
    return (
        f"experiment '{plan.experiment}' in {redact_url(storage_url)} has "
        f"{len(plan.running)} RUNNING trial(s): {shown}; nothing was deleted. Stop its workers "
        f"and wait for them to finish; a trial whose worker is gone (stale) is settled by "
        f"'hpstudy resume {plan.experiment}{flag}' first, or delete anyway with --force"
    )
