"""What hpstudy stores per study (user attrs) and reads back: the contract with report/resume."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from hpstudy.analysis._table import UNCOUNTED_REASONS, counts
from hpstudy.config._schema import is_valid_name

if TYPE_CHECKING:
    from hpstudy.store._optuna import FrozenStudy

_logger = logging.getLogger("hpstudy")

# UNCOUNTED_REASONS: failures that say nothing about the configuration's quality, never counted
# toward the budget ("interrupted" and "stale" ones are re-run: TrialWriter.fail_and_requeue);
# the rule lives with the analysis, which counts with it too.
__all__ = ["UNCOUNTED_REASONS"]
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
    # What a trial's value is (the selection objective) and its direction (the Optuna
    # study's); studies made before ``select`` existed selected on their metric.
    objective: str = ""
    objective_direction: str = ""

    def __post_init__(self) -> None:
        if not self.objective:
            object.__setattr__(self, "objective", self.metric)
        if not self.objective_direction:
            object.__setattr__(
                self,
                "objective_direction",
                self.direction if self.objective == self.metric else _direction(self.objective),
            )

    @classmethod
    def from_frozen(cls, study: FrozenStudy) -> StudyInfo | None:
        """Read a stored study; ``None`` when it was not made by hpstudy."""
        from hpstudy.store._optuna import study_id

        return cls.from_attrs(study_id(study), study.study_name, study.user_attrs)

    @classmethod
    def from_attrs(cls, study_id: int, name: str, a: dict[str, Any]) -> StudyInfo | None:
        """Build from a study's id, name and user attrs; ``None`` when not made by hpstudy, or
        (with a warning naming the study and the attr) when one of its attrs is malformed: one
        damaged study must not make every command fail for the whole storage."""
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
        problem = _malformed(a)
        if problem is not None:
            _logger.warning(
                "study %r is ignored: its user attr %s; the other studies are read as usual "
                "(fix or delete that study with optuna's API, or 'hpstudy delete' its experiment)",
                name,
                problem,
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
            objective=a.get("objective", ""),
            objective_direction=a.get("objective_direction", ""),
        )


def _direction(objective: str) -> str:
    from hpstudy.config._schema import OBJECTIVES

    return OBJECTIVES[objective][1]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _malformed(a: dict[str, Any]) -> str | None:
    """What is wrong with a study's attrs (``None`` when every one has its type)."""
    for key in ("strategy", "metric", "kind", "fingerprint"):
        if not isinstance(a[key], str):
            return f"{key!r} is {a[key]!r}, not a string"
    if a["direction"] not in ("maximize", "minimize"):
        return f"'direction' is {a['direction']!r}, not maximize or minimize"
    if not _is_int(a["seed"]) or a["seed"] < 0:
        return f"'seed' is {a['seed']!r}, not an integer >= 0"
    budget = a["budget"]
    if not isinstance(budget, dict) or not _is_int(budget.get("n_trials")):
        return f"'budget' is {budget!r}, not {{'n_trials': N, 'timeout': ...}}"
    timeout = budget.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool)):
        return f"'budget' timeout is {timeout!r}, not a number"
    for key in ("study_file", "study_file_path"):
        if not isinstance(a.get(key, ""), str):
            return f"{key!r} is not a string"
    if a.get("options") is not None and not isinstance(a["options"], dict):
        return f"'options' is {a['options']!r}, not a table"
    from hpstudy.config._schema import OBJECTIVES

    objective = a.get("objective")
    if objective is not None and objective not in OBJECTIVES:
        return f"'objective' is {objective!r}, not one of {', '.join(OBJECTIVES)}"
    if a.get("objective_direction") not in (None, "maximize", "minimize"):
        return f"'objective_direction' is {a['objective_direction']!r}, not maximize or minimize"
    return None


def read_studies(storage: Any) -> tuple[list[StudyInfo], int]:
    """Every hpstudy study of ``storage`` and how many other studies it holds.

    A study whose attrs are malformed is skipped with a warning naming it (see
    :meth:`StudyInfo.from_attrs`), and so is one whose attrs are not even valid JSON (Optuna's
    ``get_all_studies`` would fail for the whole storage: the studies are then read one by one).
    """
    entries = [(sid, name, attrs) for name, (sid, attrs) in all_study_attrs(storage).items()]
    infos, others = [], 0
    for sid, name, attrs in entries:
        if attrs is None:
            continue
        info = StudyInfo.from_attrs(sid, name, attrs)
        if info is None:
            others += not all(k in attrs for k in STUDY_ATTRS)
        else:
            infos.append(info)
    return infos, others


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished trials count; a failure caused by an interruption or a crash never does (the
    analysis's rule, :func:`hpstudy.analysis._table.counts`)."""
    return counts(trial.state.name, trial.user_attrs.get("fail_reason"))


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
            "objective",
            "objective_direction",
            *BENCHMARK_ATTRS,
            "study_file",
            "study_file_path",
            "options",
            "hpstudy_version",
        )  # fmt: skip
        if k in info
    }


def all_study_attrs(storage: Any) -> dict[str, tuple[int, dict[str, Any] | None]]:
    """Per study name, its id and user attrs; ``None`` attrs (with a warning naming the study)
    when one of them is not valid JSON, which would make Optuna's ``get_all_studies`` fail for
    the whole storage (the studies are then read one by one)."""
    from hpstudy.store._optuna import study_id, study_rows

    try:
        return {s.study_name: (study_id(s), s.user_attrs) for s in storage.get_all_studies()}
    except ValueError:  # an attr that is not JSON: find which study holds it
        pass
    out: dict[str, tuple[int, dict[str, Any] | None]] = {}
    for sid, name in study_rows(storage):
        try:
            out[name] = (sid, storage.get_study_user_attrs(sid))
        except ValueError as e:
            _logger.warning(
                "study %r is ignored: one of its user attrs is not valid JSON (%s); the other "
                "studies are read as usual",
                name,
                str(e).splitlines()[0],
            )
            out[name] = (sid, None)
    return out
