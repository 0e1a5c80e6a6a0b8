"""``hpstudy status``: where each study of an experiment stands, including trials that look
stale (RUNNING without a recent heartbeat, or run by a process that is gone)."""

from __future__ import annotations

from dataclasses import dataclass

from hpstudy._failures import failure_note
from hpstudy.config._schema import STRATEGIES
from hpstudy.runner._recover import GRACE_PERIOD, stale_reason
from hpstudy.store import (
    StudyCounts,
    StudyInfo,
    TrialReader,
    open_storage,
    require_experiment,
    worker_id,
)
from hpstudy.store import _optuna as o


@dataclass(frozen=True)
class StudyStatus:
    """One line of ``hpstudy status``."""

    info: StudyInfo
    counts: StudyCounts
    retried: int  # trials that re-run an interrupted or stale one
    stale: list[str]  # why each RUNNING trial that looks stale does
    gave_up: list[str]  # configurations whose worker process died running them, every time
    failures: str | None = None  # when every finished trial failed: why, and what to change


def experiment_status(storage_url: str, experiment: str) -> list[StudyStatus]:
    """Per study of ``experiment``: counts, retries and trials that look stale."""
    storage = open_storage(storage_url, create=False)
    infos = require_experiment(storage, experiment, storage_url)
    reader = TrialReader(storage)
    me = worker_id()
    order = {s: i for i, s in enumerate(STRATEGIES)}
    rows = []
    for info in sorted(infos, key=lambda i: (i.task, i.seed, order.get(i.strategy, 99))):
        trials = storage.get_all_trials(info.study_id, deepcopy=False)
        numbers = {o.trial_id(t): t.number for t in trials}
        stale = []
        for trial_id, worker, age in reader.running_health(info.study_id):
            reason = stale_reason(worker, age, me, GRACE_PERIOD)
            if reason is not None:
                stale.append(f"trial {numbers.get(trial_id, '?')}: {reason}")
        retried = sum("retry_of" in t.user_attrs for t in trials)
        gave_up = [
            f"trial {t.number} {t.params}: {t.user_attrs['fail_reason']}"
            for t in trials
            if str(t.user_attrs.get("fail_reason", "")).startswith("gave up")
        ]
        counts = StudyCounts.of(trials, info.objective_direction)
        rows.append(StudyStatus(info, counts, retried, stale, gave_up, failure_note(trials)))
    return rows
