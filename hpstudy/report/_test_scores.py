"""Held-out test scores of each study's best configuration, cached in the storage.

The search never sees the test split. Here, once per study, the best COMPLETE trial's
configuration is retrained on train+validation of the study's seed for the number of epochs
at which it scored best on validation (there is no validation set left to stop on), with
several training seeds, and scored once, after the last epoch, on the test split. The scores
are stored as the study user attr ``test_scores`` (keyed by the trial they belong to), so a
second report never retrains and a resumed study whose best trial changed is retrained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from hpstudy.config import ExperimentConfig
from hpstudy.data import prepare_final
from hpstudy.report._collect import StudyData
from hpstudy.strategies import derive_seed

TEST_REPEATS = 3
ATTR = "test_scores"
ATTR_BY_TRIAL = "test_scores_by_trial"


@dataclass(frozen=True)
class TestScore:
    """Test scores of one study's best configuration (one per training seed)."""

    trial: int
    scores: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def best_trial(study: StudyData) -> FrozenTrial | None:
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    pick = max if study.info.direction == "maximize" else min
    return pick(complete, key=lambda t: t.value)  # type: ignore[arg-type,return-value]


def retrain_test_scores(
    config: ExperimentConfig, task: str, seed: int, trial: FrozenTrial, repeats: int = TEST_REPEATS
) -> TestScore:
    """Retrain ``trial``'s configuration on train+validation of ``task`` at study seed
    ``seed``, and score it on the test split."""
    benchmark = config.task(task).benchmark
    if benchmark is not None:  # a table: the values of the repetitions the study never saw
        from hpstudy.data._benchmarks import lookup_test_scores

        params = {**config.fixed_params(), **trial.params}
        return TestScore(trial.number, lookup_test_scores(benchmark, seed, params))
    from hpstudy.training import train

    data = prepare_final(config.task(task), seed)
    params = {**config.fixed_params(), **trial.params}
    epochs = int(trial.user_attrs.get("best_epoch") or params["epochs"])
    params["epochs"] = epochs
    scores = []
    for r in range(repeats):
        result = train(
            params,
            data,
            seed=derive_seed(seed, r, "test"),
            max_epochs=epochs,
            patience=0,
            device=config.training.device,
        )
        scores.append(float(result.history[-1]))  # the last epoch: no selection on the test split
    return TestScore(trial.number, scores)


def test_scores(
    config: ExperimentConfig,
    studies: list[StudyData],
    write_attr: Callable[[int, dict[str, Any]], None],
    progress: Callable[[str], None] = lambda name: None,
    picks: dict[str, set[int]] | None = None,
    n_jobs: int = 1,
) -> dict[str, dict[int, TestScore]]:
    """Test scores per study name and trial number: the study's best trial and any trial in
    ``picks[study name]`` (e.g. what a strategy would have picked at a fraction of the
    compute), from the storage cache, or retrained and cached.

    The cache is two study user attrs: ``test_scores`` (the best trial, which ``best`` reads)
    and ``test_scores_by_trial`` (every scored trial, keyed by its number as a string). Each
    study's attrs are written as soon as its last retraining is done, so an interrupted
    report keeps what it finished. ``n_jobs`` processes retrain in parallel (one torch thread
    each); the scores do not depend on it.
    """
    plans: list[_Plan] = []
    jobs: list[tuple[int, FrozenTrial]] = []  # (index into plans, trial to retrain)
    for study in studies:
        best = best_trial(study)
        if best is None:
            continue
        wanted = {best.number, *((picks or {}).get(study.info.name, set()))}
        by_number = {t.number: t for t in study.trials}
        cache = _cached_by_trial(study)
        for number in sorted(wanted):
            if number not in cache and number in by_number:
                jobs.append((len(plans), by_number[number]))
        plans.append(_Plan(study, best, wanted, cache))

    left = [0] * len(plans)
    for index, _ in jobs:
        left[index] += 1
    for index, plan in enumerate(plans):
        if left[index] == 0:
            _write(plan, write_attr, fresh=False)
    done = _retrain_all(
        config, [(plans[i].study.info.task, plans[i].study.info.seed, t) for i, t in jobs], n_jobs,
        lambda k: progress(plans[jobs[k][0]].study.info.name),
    )  # fmt: skip
    for (index, trial), score_ in zip(jobs, done, strict=True):
        plans[index].cache[trial.number] = score_
        left[index] -= 1
        if left[index] == 0:
            _write(plans[index], write_attr, fresh=True)
    return {
        study.info.name: {n: cache[n] for n in wanted if n in cache}
        for study, _, wanted, cache in plans
    }


class _Plan(NamedTuple):
    """One study's retraining: its best trial, the trials wanted, the scores known so far."""

    study: StudyData
    best: FrozenTrial
    wanted: set[int]
    cache: dict[int, TestScore]


def _write(
    plan: _Plan,
    write_attr: Callable[[int, dict[str, Any]], None],
    *,
    fresh: bool,
) -> None:
    """Cache one study's scores, when something new was scored or the best trial's scores
    are only in ``test_scores_by_trial``."""
    study, best, _, cache = plan
    if fresh or (best.number in cache and _cached(study, best.number) is None):
        write_attr(
            study.info.study_id,
            {
                ATTR: {"trial": best.number, "scores": cache[best.number].scores},
                ATTR_BY_TRIAL: {str(n): ts.scores for n, ts in sorted(cache.items())},
            },
        )


_JOB_CONFIG: ExperimentConfig | None = None


def _init_worker(config: ExperimentConfig) -> None:
    global _JOB_CONFIG
    import torch

    torch.set_num_threads(1)
    _JOB_CONFIG = config


def _retrain_job(job: tuple[str, int, FrozenTrial]) -> TestScore:
    assert _JOB_CONFIG is not None
    task, seed, trial = job
    return retrain_test_scores(_JOB_CONFIG, task, seed, trial)


def _retrain_all(
    config: ExperimentConfig,
    jobs: list[tuple[str, int, FrozenTrial]],
    n_jobs: int,
    progress: Callable[[int], None],
) -> Iterator[TestScore]:
    """Each job's scores, in the jobs' order; computed by ``n_jobs`` processes."""
    if n_jobs <= 1 or len(jobs) <= 1 or config.benchmark_family is not None:
        for k, (task, seed, trial) in enumerate(jobs):
            progress(k)
            yield retrain_test_scores(config, task, seed, trial)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork starts a worker in milliseconds; CUDA does not survive a fork, so spawn for it
    on_cpu = config.training.device == "cpu" or (
        config.training.device == "auto" and not _cuda_available()
    )
    method = "fork" if on_cpu and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(
        min(n_jobs, len(jobs)), mp_context=context, initializer=_init_worker, initargs=(config,)
    ) as pool:
        for k, result in enumerate(pool.map(_retrain_job, jobs)):
            progress(k)
            yield result


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _cached_by_trial(study: StudyData) -> dict[int, TestScore]:
    cache: dict[int, TestScore] = {}
    attr = study.attrs.get(ATTR_BY_TRIAL)
    if isinstance(attr, dict):
        for key, scores in attr.items():
            if str(key).isdigit() and isinstance(scores, list) and scores:
                cache[int(key)] = TestScore(int(key), [float(s) for s in scores])
    best = study.attrs.get(ATTR)
    if isinstance(best, dict) and isinstance(best.get("trial"), int) and best.get("scores"):
        cache.setdefault(
            best["trial"], TestScore(best["trial"], [float(s) for s in best["scores"]])
        )
    return cache


def _cached(study: StudyData, trial: int) -> TestScore | None:
    attr = study.attrs.get(ATTR)
    if isinstance(attr, dict) and attr.get("trial") == trial and attr.get("scores"):
        return TestScore(trial, [float(s) for s in attr["scores"]])
    return None
