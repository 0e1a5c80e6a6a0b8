"""The one retraining function: a configuration on train+validation, scored once on test."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from hpstudy.scoring._cache import TestScore

if TYPE_CHECKING:
    from hpstudy.config import ExperimentConfig, TaskConfig
    from hpstudy.data import TaskData

TEST_REPEATS = 3


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
            if data.loss == "poisson":
                out = torch.exp(out)  # the network predicts log(count)
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
    benchmark = config.task(job.task).benchmark
    if benchmark is not None:
        # a table: the values of the repetitions the study never observed, nothing trained
        from hpstudy.data._benchmarks import lookup_test_scores

        params = {**config.fixed_params(), **job.params}
        return TestScore(job.trial, tuple(lookup_test_scores(benchmark, job.seed, params)))
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
            if config.task(job.task).benchmark is not None:
                yield _score_job(config, job)
                continue
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
