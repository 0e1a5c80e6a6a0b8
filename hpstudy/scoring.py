"""Held-out test scores, computed when a study finishes, beside training.

The search never sees the test split. Scoring retrains a trial's configuration on
train+validation of the study's seed (preprocessing refitted on that union) for the epoch
count at which it scored best on validation, with :data:`TEST_REPEATS` training seeds, and
scores each network once, after its last epoch, on the test split: the task's metric and, for
classification, the cross-entropy. :func:`retrain` is the one function that does it; ``hpstudy
train-best`` uses it too (its first training seed), so a saved model's test score is the
first cached one.

Which trials need scores is one rule, :func:`picks_needed`: each study's best trial, and what
each strategy would have picked at fractions of the baseline's total epochs at the same seed
(the baseline's own picks included: the baseline stopped early in its run order). A pick
needs both its study and the baseline at that seed finished, so the worker whose finish
brings a study to its budget scores every trial at that (task, seed) whose inputs are now
complete (:func:`score_studies`); ``create`` and ``resume`` score whatever is still missing
when they end (``resume NAME`` also fills the caches of storages made before this existed).
Reports only read the cache.

The cache is two study user attrs: ``test_scores`` (``{"trial", "scores", "cross_entropy"}``
of the best trial, which ``best`` reads) and ``test_scores_by_trial`` (trial number as a
string -> ``{"scores", "cross_entropy"}``; caches written before held a plain list of
scores, still read). Writers merge into what is stored, in one locked transaction, so two
workers that score at once never drop each other's entries; retraining is deterministic (one
torch thread, fixed seeds), so either's scores are the same.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from hpstudy.config import ExperimentConfig, TaskConfig
    from hpstudy.data import TaskData
    from hpstudy.store import StudyInfo

_logger = logging.getLogger("hpstudy")

TEST_REPEATS = 3
ATTR = "test_scores"
ATTR_BY_TRIAL = "test_scores_by_trial"
# Fractions of the baseline's total epochs at which each strategy's pick is scored.
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)


@dataclass(frozen=True)
class TestScore:
    """Test scores of one trial's configuration, one per training seed: the task's metric
    (``scores``) and, for classification, the cross-entropy (``()`` when not recorded)."""

    __test__ = False  # not a pytest class

    trial: int
    scores: tuple[float, ...]
    cross_entropy: tuple[float, ...] = ()

    @property
    def mean(self) -> float:
        return float(sum(self.scores) / len(self.scores)) if self.scores else math.nan

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scores": list(self.scores)}
        if self.cross_entropy:
            out["cross_entropy"] = list(self.cross_entropy)
        return out


# -- which trials need scores -------------------------------------------------------------


class TrialRow(NamedTuple):
    """One finished trial that counts toward its study's budget."""

    number: int
    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    value: float | None  # the validation objective of a COMPLETE trial
    epochs: float  # epochs trained (times folds): the compute measure


@dataclass(frozen=True)
class StudyTrials:
    """One study at a (task, seed), as the pick rule sees it.

    Attributes:
        name: The study's name.
        strategy: Its strategy.
        direction: Direction of its trial values (the selection objective).
        baseline: Whether it is the baseline every other strategy is compared with.
        trials: Its counted finished trials.
    """

    name: str
    strategy: str
    direction: str
    baseline: bool
    trials: tuple[TrialRow, ...]


def _better(value: float, best: float | None, direction: str) -> bool:
    if best is None:
        return True
    return value > best if direction == "maximize" else value < best


def best_number(trials: Iterable[TrialRow], direction: str) -> int | None:
    """The best COMPLETE trial (the first in run order among equals); ``None`` without one."""
    best, pick = None, None
    for t in sorted(trials, key=lambda t: t.number):
        value = t.value if t.state == "COMPLETE" else None
        if value is not None and not math.isnan(value) and _better(value, best, direction):
            best, pick = value, t.number
    return pick


def pick_at_budget(trials: Sequence[Any], direction: str, budget: float) -> int | None:
    """The trial a strategy would have picked had it stopped after ``budget`` epochs: the
    best COMPLETE trial among those it had finished within the budget, in run order.
    ``trials`` have ``number``, ``state``, ``value`` and ``epochs``."""
    spent, best, pick = 0.0, None, None
    for t in sorted(trials, key=lambda t: t.number):
        spent += float(t.epochs)
        if spent > budget * (1 + 1e-9):
            break
        value = t.value if t.state == "COMPLETE" else None
        if value is not None and not math.isnan(value) and _better(value, best, direction):
            best, pick = value, t.number
    return pick


def picks_needed(studies_at_seed: Sequence[StudyTrials]) -> dict[str, set[int]]:
    """The trials that need test scores among studies of one task at one seed: each study's
    best trial, and, when the baseline is among them, each non-manual strategy's pick at
    every fraction of the baseline's total epochs (:data:`FRACTIONS`; the baseline's own
    picks too). Give only studies whose trials are final: a pick of an unfinished study, or
    at an unfinished baseline's total, could still change."""
    needed: dict[str, set[int]] = {}
    for s in studies_at_seed:
        best = best_number(s.trials, s.direction)
        if best is not None:
            needed.setdefault(s.name, set()).add(best)
    baseline = next((s for s in studies_at_seed if s.baseline), None)
    if baseline is None:
        return needed
    total = sum(float(t.epochs) for t in baseline.trials)
    for s in studies_at_seed:
        if s.strategy == "manual":
            continue
        for f in FRACTIONS:
            pick = pick_at_budget(s.trials, s.direction, f * total)
            if pick is not None:
                needed.setdefault(s.name, set()).add(pick)
    return needed


def task_baseline(configured: str | None, strategies: Sequence[str]) -> str:
    """The baseline among ``strategies`` (those that ran): the configured one when it ran,
    else grid, else the first non-manual strategy."""
    for candidate in (configured or "grid", "grid"):
        if candidate in strategies:
            return candidate
    return next((s for s in strategies if s != "manual"), strategies[0])


# -- the cache -----------------------------------------------------------------------------


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in value) if isinstance(value, list) else ()


def cached_scores(attrs: Mapping[str, Any]) -> dict[int, TestScore]:
    """The test scores cached in a study's user attrs, by trial number (both formats)."""
    cache: dict[int, TestScore] = {}
    by_trial = attrs.get(ATTR_BY_TRIAL)
    if isinstance(by_trial, dict):
        for key, entry in by_trial.items():
            if not str(key).isdigit():
                continue
            ce: tuple[float, ...] = ()
            if isinstance(entry, list):  # written before cross-entropy was recorded
                scores = _floats(entry)
            elif isinstance(entry, dict):
                scores, ce = _floats(entry.get("scores")), _floats(entry.get("cross_entropy"))
            else:
                continue
            if scores:
                cache[int(key)] = TestScore(int(key), scores, ce)
    best = attrs.get(ATTR)
    if isinstance(best, dict) and isinstance(best.get("trial"), int) and best.get("scores"):
        cache.setdefault(
            best["trial"],
            TestScore(best["trial"], _floats(best["scores"]), _floats(best.get("cross_entropy"))),
        )
    return cache


def merged_attrs(
    stored: Mapping[str, Any], new: Mapping[int, TestScore], best: int | None
) -> dict[str, Any]:
    """The two cache attrs after adding ``new`` to what is ``stored`` (nothing is dropped;
    ``test_scores`` names the study's best trial when it is scored)."""
    cache = {**cached_scores(stored), **new}
    out: dict[str, Any] = {
        ATTR_BY_TRIAL: {str(n): ts.as_json() for n, ts in sorted(cache.items())},
    }
    if best is not None and best in cache:
        out[ATTR] = {"trial": best, **cache[best].as_json()}
    elif isinstance(stored.get(ATTR), dict):
        out[ATTR] = stored[ATTR]
    return out


# -- retraining ----------------------------------------------------------------------------


@dataclass
class Retrained:
    """A configuration retrained on train+validation and scored on test.

    Attributes:
        scores: The task's metric on test, one per training seed.
        cross_entropy: Test cross-entropy per training seed (classification; else empty).
        data: The final split's data (train+validation to train on, test to score on).
        first_model: The network of the first training seed (what ``train-best`` saves).
        seeds: The training seeds used.
    """

    scores: tuple[float, ...]
    cross_entropy: tuple[float, ...]
    data: TaskData
    first_model: Any
    seeds: tuple[int, ...]


def test_seed(seed: int, repeat: int) -> int:
    """Training seed of retraining ``repeat`` of a configuration of a study of ``seed``."""
    from hpstudy.strategies import derive_seed

    return derive_seed(seed, repeat, "test")


def retrain(
    task: TaskConfig,
    seed: int,
    params: Mapping[str, Any],
    epochs: int,
    *,
    device: str = "cpu",
    repeats: int = TEST_REPEATS,
    data: TaskData | None = None,
) -> Retrained:
    """Retrain ``params`` (every hyperparameter) on train+validation of ``task`` at study seed
    ``seed`` for ``epochs`` (the trial's best epoch: no validation is left to stop on), with
    ``repeats`` training seeds, and score each network once, after its last epoch, on the test
    split (never any selection on it). One torch thread, so the scores are the same whichever
    process computes them. A retraining that diverges scores ``nan``."""
    import torch

    from hpstudy.data import prepare_final
    from hpstudy.metrics import score
    from hpstudy.training import NonFiniteLossError, train

    data = data if data is not None else prepare_final(task, seed)
    run = {**params, "epochs": int(epochs)}
    fold = data.folds[0]
    X, y = torch.from_numpy(fold.X_valid), torch.from_numpy(fold.y_valid)
    scores, ce, seeds = [], [], []
    first: Any = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for r in range(repeats):
            seeds.append(test_seed(seed, r))
            try:
                result = train(
                    run, data, seed=seeds[-1], max_epochs=int(epochs), patience=0, device=device
                )
            except NonFiniteLossError:
                scores.append(math.nan)
                ce.append(math.nan)
                continue
            model = result.models[0].cpu()
            model.eval()
            with torch.inference_mode():
                out = model(X)
            out = out.squeeze(1) if out.shape[1] == 1 else out
            scores.append(score(data.metric, out, y, fold.y_std))
            if data.kind == "classification":
                ce.append(score("cross_entropy", out, y))
            if r == 0:
                first = model
    finally:
        torch.set_num_threads(threads)
    return Retrained(tuple(scores), tuple(ce), data, first, tuple(seeds))


class _Job(NamedTuple):
    """One configuration to retrain: where it comes from and what it is."""

    study_id: int
    task: str
    seed: int
    trial: int
    params: dict[str, Any]
    epochs: int


def _score_job(config: ExperimentConfig, job: _Job, data: TaskData | None = None) -> TestScore:
    done = retrain(
        config.task(job.task), job.seed, job.params, job.epochs,
        device=config.training.device, data=data,
    )  # fmt: skip
    return TestScore(job.trial, done.scores, done.cross_entropy)


_POOL_CONFIG: ExperimentConfig | None = None


def _init_pool(config: ExperimentConfig) -> None:
    global _POOL_CONFIG
    _POOL_CONFIG = config


def _pool_job(job: _Job) -> TestScore:
    assert _POOL_CONFIG is not None
    return _score_job(_POOL_CONFIG, job)


def _run_jobs(config: ExperimentConfig, jobs: list[_Job], n_jobs: int) -> Iterator[TestScore]:
    """Each job's scores, in the jobs' order; computed by ``n_jobs`` processes."""
    if n_jobs <= 1 or len(jobs) <= 1:
        prepared: dict[tuple[str, int], TaskData] = {}
        from hpstudy.data import prepare_final

        for job in jobs:
            key = (job.task, job.seed)
            if key not in prepared:
                prepared[key] = prepare_final(config.task(job.task), job.seed)
            yield _score_job(config, job, prepared[key])
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork starts a worker in milliseconds; CUDA does not survive a fork, so spawn for it
    on_cpu = config.training.device == "cpu" or (
        config.training.device == "auto" and not _cuda_available()
    )
    method = "fork" if on_cpu and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(
        min(n_jobs, len(jobs)),
        mp_context=multiprocessing.get_context(method),
        initializer=_init_pool,
        initargs=(config,),
    ) as pool:
        yield from pool.map(_pool_job, jobs)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


# -- scoring studies in a storage ----------------------------------------------------------


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
        for info, rows, by_number in final:
            bests[info.study_id] = best_number(rows.trials, rows.direction)
            cache = cached_scores(storage.get_study_user_attrs(info.study_id))
            for number in sorted(needed.get(info.name, set()) - set(cache)):
                t = by_number[number]
                params = {**fixed, **t.params}
                epochs = int(t.user_attrs.get("best_epoch") or params["epochs"])
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
