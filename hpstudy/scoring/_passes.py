"""Scoring passes over a storage: when a study finishes, and what create/resume leave."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from hpstudy.scoring._cache import ATTR, ATTR_BY_TRIAL, TestScore, cached_scores, merged_attrs
from hpstudy.scoring._picks import (
    StudyTrials,
    TrialRow,
    best_number,
    picks_needed,
    task_baseline,
)
from hpstudy.scoring._references import ATTR as REF_ATTR
from hpstudy.scoring._references import cached_references, merged_references, reference_scores
from hpstudy.scoring._retrain import _Job, _run_jobs

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from hpstudy.config import ExperimentConfig
    from hpstudy.store import StudyInfo


@dataclass(frozen=True)
class ScoringDone:
    """What one scoring pass did: configurations retrained, and studies whose cache grew."""

    retrained: int
    studies: int


def _study_trials(info: StudyInfo, trials: list[Any], baseline: bool) -> StudyTrials:
    from optuna.trial import TrialState

    from hpstudy.store import counts_toward_budget

    rows = tuple(
        TrialRow(
            t.number,
            t.state.name,
            t.value if t.state == TrialState.COMPLETE else None,
            float(t.user_attrs.get("epochs", 0)),
        )
        for t in trials
        if t.state.is_finished() and counts_toward_budget(t)
    )
    return StudyTrials(info.name, info.strategy, info.objective_direction, baseline, rows)


def score_studies(
    storage: BaseStorage,
    config: ExperimentConfig,
    infos: Sequence[StudyInfo],
    *,
    settled: Callable[[StudyInfo, int], bool] | None = None,
    n_jobs: int = 1,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ScoringDone:
    """Retrain and cache the test scores :func:`picks_needed` asks for and the cache lacks,
    over the studies ``infos`` (grouped by task and seed).

    Args:
        storage: The storage (its caches are written, merged, as each study's scores end).
        config: The experiment (its tasks, fixed hyperparameters, device).
        infos: The studies to consider; the baseline of a (task, seed) must be among them
            for the equal-compute picks.
        settled: ``settled(info, finished)``: whether a study's trials are final (default:
            its budget is met); only settled studies are scored.
        n_jobs: Processes retraining in parallel (one torch thread each).
        progress: ``progress(done, total)`` configurations retrained so far.
    """
    from hpstudy.store import TrialReader, TrialWriter

    settled = settled or (lambda info, finished: finished >= info.budget)
    reader, writer = TrialReader(storage), TrialWriter(storage)
    fixed = config.fixed_params()
    jobs: list[_Job] = []
    bests: dict[int, int | None] = {}
    groups: dict[tuple[str, int], list[StudyInfo]] = {}
    for info in infos:
        groups.setdefault((info.task, info.seed), []).append(info)
    for (task, seed), group in groups.items():
        if task not in {t.name for t in config.tasks}:
            continue
        baseline = task_baseline(config.baseline(), [i.strategy for i in group])
        final: list[tuple[StudyInfo, StudyTrials, dict[int, Any]]] = []
        for info in group:
            trials = reader.fetch(info.study_id, None)
            rows = _study_trials(info, trials, info.strategy == baseline)
            if settled(info, len(rows.trials)):
                final.append((info, rows, {t.number: t for t in trials}))
        needed = picks_needed([rows for _, rows, _ in final])
        if final and config.task(task).benchmark is None:
            _cache_references(storage, writer, config, task, seed, group)
        for info, rows, by_number in final:
            bests[info.study_id] = best_number(rows.trials, rows.direction)
            cache = cached_scores(storage.get_study_user_attrs(info.study_id))
            for number in sorted(needed.get(info.name, set()) - set(cache)):
                t = by_number[number]
                params = {**fixed, **t.params}
                epochs = int(
                    t.user_attrs.get("best_epoch") or params.get("epochs") or 0
                )  # a table: none
                jobs.append(_Job(info.study_id, task, seed, number, params, epochs))
    if not jobs:
        return ScoringDone(0, 0)
    left: dict[int, int] = {}
    for job in jobs:
        left[job.study_id] = left.get(job.study_id, 0) + 1
    fresh: dict[int, dict[int, TestScore]] = {}
    progress(0, len(jobs))
    for k, (job, result) in enumerate(zip(jobs, _run_jobs(config, jobs, n_jobs), strict=True)):
        fresh.setdefault(job.study_id, {})[job.trial] = result
        left[job.study_id] -= 1
        if left[job.study_id] == 0:  # a study's last retraining: cache its scores at once
            new, best = fresh.pop(job.study_id), bests[job.study_id]
            writer.update_study_user_attrs(
                job.study_id, (ATTR, ATTR_BY_TRIAL), partial(merged_attrs, new=new, best=best)
            )
        progress(k + 1, len(jobs))
    return ScoringDone(len(jobs), len(left))


def _cache_references(
    storage: BaseStorage,
    writer: Any,
    config: ExperimentConfig,
    task: str,
    seed: int,
    group: Sequence[StudyInfo],
) -> None:
    """Fit and cache the reference models of (``task``, ``seed``) on every study of
    ``group`` that lacks them (fit once; see :mod:`hpstudy.scoring._references`)."""
    lacking = [
        i for i in group if cached_references(storage.get_study_user_attrs(i.study_id)) is None
    ]
    if not lacking:
        return
    new = reference_scores(config.task(task), seed)
    for info in lacking:
        writer.update_study_user_attrs(
            info.study_id, (REF_ATTR,), partial(merged_references, new=new)
        )


def score_finished_study(
    storage: BaseStorage, config: ExperimentConfig, info: StudyInfo
) -> ScoringDone:
    """Called by the worker whose finish brought ``info`` to its budget: score every trial of
    its (task, seed) whose inputs are now complete (its own best and picks, and other
    strategies' picks once the baseline is finished)."""
    from hpstudy.store import experiment_studies

    group = [
        i
        for i in experiment_studies(storage, info.experiment)
        if i.task == info.task and i.seed == info.seed
    ]
    return score_studies(storage, config, group)


def missing_scores(
    studies: Sequence[tuple[StudyInfo, StudyTrials, Mapping[str, Any]]],
) -> list[str]:
    """The studies (by name) whose cache lacks a score :func:`picks_needed` asks for, over
    ``(info, trials, user attrs)`` of an experiment's studies as they are now."""
    groups: dict[tuple[str, int], list[tuple[StudyTrials, Mapping[str, Any]]]] = {}
    for info, rows, attrs in studies:
        groups.setdefault((info.task, info.seed), []).append((rows, attrs))
    missing = []
    for group in groups.values():
        needed = picks_needed([rows for rows, _ in group])
        for rows, attrs in group:
            if needed.get(rows.name, set()) - set(cached_scores(attrs)):
                missing.append(rows.name)
    return missing


def score_after_run(
    storage: BaseStorage,
    config: ExperimentConfig,
    infos: Sequence[StudyInfo],
    ended: Iterable[str] = (),
    *,
    n_jobs: int = 1,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ScoringDone:
    """What ``create`` and ``resume`` do last: score whatever settled studies still lack
    (storages made before scoring moved here, a worker that died while scoring). A study is
    settled when its budget is met or its run ``ended`` (names: its time ran out, or every
    configuration it can run has run)."""
    names = set(ended)
    return score_studies(
        storage,
        config,
        infos,
        settled=lambda info, finished: finished >= info.budget or info.name in names,
        n_jobs=n_jobs,
        progress=progress,
    )
