"""What hpstudy stores per study (user attrs) and reads back: the contract with report/resume."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from hpstudy.config._schema import is_valid_name

if TYPE_CHECKING:
    from hpstudy.store._optuna import FrozenStudy

_logger = logging.getLogger("hpstudy")

# Failures that say nothing about the configuration's quality: never counted toward the
# budget. "interrupted" and "stale" ones are re-run (see TrialWriter.fail_and_requeue).
UNCOUNTED_REASONS = ("interrupted", "stale", "gave up")
# Keys every hpstudy study carries (besides the study file text).
STUDY_ATTRS = (
    "experiment",
    "task",
    "strategy",
    "seed",
    "metric",
    "direction",
    "kind",
    "budget",
    "fingerprint",
)
# Keys of a study whose task is a published tabular benchmark (hpstudy/runner/_lookup.py):
# ``task_kind`` = "benchmark" labels its results (never pooled with real training).
BENCHMARK_ATTRS = ("task_kind", "benchmark", "repetition", "optimum", "test_score_note")


@dataclass(frozen=True)
class StudyInfo:
    """One stored hpstudy study, as described by its user attrs."""

    study_id: int
    name: str
    experiment: str
    task: str
    strategy: str
    seed: int
    metric: str
    direction: str
    kind: str
    budget: int
    timeout: float | None
    fingerprint: str
    study_file: str
    study_file_path: str = ""
    options: dict[str, Any] | None = None  # how create narrowed the file (see runner._plan)

    @classmethod
    def from_frozen(cls, study: FrozenStudy) -> StudyInfo | None:
        """Read a stored study; ``None`` when it was not made by hpstudy."""
        from hpstudy.store._optuna import study_id

        return cls.from_attrs(study_id(study), study.study_name, study.user_attrs)

    @classmethod
    def from_attrs(cls, study_id: int, name: str, a: dict[str, Any]) -> StudyInfo | None:
        """Build from a study's id, name and user attrs; ``None`` when not made by hpstudy."""
        if not all(k in a for k in STUDY_ATTRS):
            return None
        if not (is_valid_name(a["experiment"]) and is_valid_name(a["task"])):
            # names from storage become file names: as strict as names from a study file
            _logger.warning(
                "study %r is ignored: its experiment %r or task %r is not a name of letters, "
                "digits, '-' and '_'",
                name,
                a["experiment"],
                a["task"],
            )
            return None
        return cls(
            study_id=study_id,
            name=name,
            experiment=a["experiment"],
            task=a["task"],
            strategy=a["strategy"],
            seed=int(a["seed"]),
            metric=a["metric"],
            direction=a["direction"],
            kind=a["kind"],
            budget=int(a["budget"]["n_trials"]),
            timeout=a["budget"].get("timeout"),
            fingerprint=a["fingerprint"],
            study_file=a.get("study_file", ""),
            study_file_path=a.get("study_file_path", ""),
            options=a.get("options"),
        )


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished trials count; a failure caused by an interruption or a crash never does."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    if trial.state == TrialState.FAIL:
        reason = str(trial.user_attrs.get("fail_reason", ""))
        return not reason.startswith(UNCOUNTED_REASONS)
    return False


def best_value(trials: list[FrozenTrial], direction: str) -> float | None:
    """Best value among COMPLETE trials (``None`` when there is none)."""
    values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None
    return max(values) if direction == "maximize" else min(values)


def is_interrupted(trial: FrozenTrial) -> bool:
    """A FAIL that is not the configuration's fault: interrupted, stale or given up."""
    return trial.state == TrialState.FAIL and not counts_toward_budget(trial)


@dataclass(frozen=True)
class StudyCounts:
    """Trial counts of one study, by what they mean for the budget.

    ``failed`` counts the configurations' own failures (they count toward the budget);
    ``interrupted`` the attempts stopped by an interrupt, a dead worker (stale) or given up
    after repeated crashes (:data:`UNCOUNTED_REASONS`): never counted, shown apart.
    """

    finished: int
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    best: float | None
    interrupted: int = 0

    @classmethod
    def of(cls, trials: list[FrozenTrial], direction: str) -> StudyCounts:
        states = [t.state for t in trials]
        return cls(
            finished=sum(counts_toward_budget(t) for t in trials),
            complete=states.count(TrialState.COMPLETE),
            pruned=states.count(TrialState.PRUNED),
            failed=sum(t.state == TrialState.FAIL and counts_toward_budget(t) for t in trials),
            interrupted=sum(map(is_interrupted, trials)),
            running=states.count(TrialState.RUNNING),
            waiting=states.count(TrialState.WAITING),
            best=best_value(trials, direction),
        )


def study_attrs(info: dict[str, Any]) -> dict[str, Any]:
    """Order the user attrs so the dashboard lists the readable ones first."""
    return {
        k: info[k]
        for k in (
            *STUDY_ATTRS,
            *BENCHMARK_ATTRS,
            "study_file",
            "study_file_path",
            "options",
            "hpstudy_version",
        )
        if k in info
    }
