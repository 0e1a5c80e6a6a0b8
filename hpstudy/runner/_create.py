"""Create the studies of an experiment (one per task x strategy x seed) and run them."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from hpstudy._errors import ConfigError, Interrupted, UsageError
from hpstudy._version import __version__
from hpstudy.config._schema import METRICS, ExperimentConfig, study_name
from hpstudy.model import check_space_fits
from hpstudy.runner._progress import Progress
from hpstudy.runner._recover import Heartbeat
from hpstudy.runner._run import DataCache, StudyResult, WorkerContext, run_study
from hpstudy.runner._storage import TrialReader, open_storage
from hpstudy.runner._studies import StudyInfo, study_attrs
from hpstudy.runner._writer import TrialWriter
from hpstudy.strategies import check_dependencies, distributions, grid_points, study_budget


def apply_overrides(
    config: ExperimentConfig,
    *,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    n_trials: int | None = None,
) -> ExperimentConfig:
    """Narrow the experiment to some strategies, other seeds or another budget (CLI options)."""
    problems = []
    if strategies:
        for s in strategies:
            if s not in config.strategies:
                problems.append(
                    f"--strategy {s!r} is not in the study file's strategies {list(config.strategies)}"
                )
        strategies = [s for s in config.strategies if s in strategies]  # keep the file's order
    if seeds is not None and (
        not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds)
    ):
        problems.append(f"--seeds must be distinct integers >= 0, got {list(seeds)}")
    if n_trials is not None and n_trials < 1:
        problems.append(f"--n-trials must be >= 1, got {n_trials}")
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(
        config,
        strategies=tuple(strategies) if strategies else config.strategies,
        seeds=tuple(seeds) if seeds is not None else config.seeds,
        budget=dataclasses.replace(config.budget, n_trials=n_trials)
        if n_trials
        else config.budget,
    )


def _plan(config: ExperimentConfig, data: DataCache) -> list[dict[str, Any]]:
    """The user attrs of every study to create, after loading each task's data once."""
    plan = []
    for task in config.tasks:
        prepared = data.get(task.name, config.seeds[0])  # validates the CSV, infers the kind
        data.warn(task.name)
        check_space_fits(config, task.name, prepared)
        for seed in config.seeds[1:]:
            data.get(task.name, seed)  # every seed's split must be possible
        fingerprint = config.fingerprint(task)
        for seed in config.seeds:
            for strategy in config.strategies:
                budget = {
                    "n_trials": study_budget(config, strategy),
                    "timeout": config.budget.timeout,
                }
                plan.append(
                    {
                        "name": study_name(config.name, task.name, strategy, seed),
                        "experiment": config.name,
                        "task": task.name,
                        "strategy": strategy,
                        "seed": seed,
                        "metric": prepared.metric,
                        "direction": METRICS[prepared.metric][1],
                        "kind": prepared.kind,
                        "budget": budget,
                        "fingerprint": fingerprint,
                        "study_file": config.text,
                        "study_file_path": config.source,
                        "hpstudy_version": __version__,
                    }
                )
    return plan


def _enqueue(
    writer: TrialWriter,
    study_id: int,
    config: ExperimentConfig,
    strategy: str,
    seed: int,
    budget: int,
) -> None:
    dists = distributions(config)
    if strategy == "manual":
        for i, params in enumerate(config.manual):
            writer.add_trial(
                study_id, TrialState.WAITING, params, dists, user_attrs={"manual_index": i}
            )
    elif strategy == "grid":
        space = {name: list(p.grid or ()) for name, p in sorted(config.searched_params().items())}
        for grid_id, params in grid_points(config, seed)[:budget]:
            attrs = {"grid_id": grid_id, "search_space": space}
            writer.add_trial(study_id, TrialState.WAITING, params, dists, system_attrs=attrs)


def plan_studies(config: ExperimentConfig, data: DataCache) -> list[dict[str, Any]]:
    """Check everything that can be checked without storage: optional dependencies, every
    task's data and every seed's split. Returns the user attrs of each study to create."""
    check_dependencies(config.strategies)
    return _plan(config, data)


def create_studies(
    config: ExperimentConfig,
    storage: BaseStorage,
    data: DataCache,
    plan: list[dict[str, Any]] | None = None,
) -> list[StudyInfo]:
    """Create every study of ``config`` (as planned by :func:`plan_studies`); all or nothing.

    Raises:
        UsageError: A study of this experiment already exists in the storage.
    """
    if plan is None:
        plan = plan_studies(config, data)
    existing = {s.study_name for s in storage.get_all_studies()}
    clash = [p["name"] for p in plan if p["name"] in existing]
    if clash:
        raise UsageError(
            f"experiment {config.name!r} already has {len(clash)} of its {len(plan)} studies in this "
            f"storage (e.g. {clash[0]}); continue it with 'hpstudy resume {config.name}', or rename "
            "the experiment (name = ... in the study file), or pass another --storage"
        )
    from optuna.study import StudyDirection

    writer = TrialWriter(storage)
    created: list[int] = []
    infos = []
    try:
        for p in plan:
            direction = (
                StudyDirection.MAXIMIZE
                if p["direction"] == "maximize"
                else StudyDirection.MINIMIZE
            )
            study_id = storage.create_new_study([direction], p["name"])
            created.append(study_id)
            writer.set_study_user_attrs(study_id, study_attrs(p))
            _enqueue(writer, study_id, config, p["strategy"], p["seed"], p["budget"]["n_trials"])
            infos.append(StudyInfo.from_attrs(study_id, p["name"], study_attrs(p)))
    except BaseException:
        for study_id in created:  # leave nothing half-written
            storage.delete_study(study_id)
        raise
    return [i for i in infos if i is not None]


def run_studies(
    config: ExperimentConfig,
    storage: BaseStorage,
    infos: list[StudyInfo],
    data: DataCache,
    progress: Progress,
    should_stop: Callable[[], bool] = lambda: False,
    *,
    announce: bool = True,
) -> list[StudyResult]:
    """Run each study in turn (tasks, then seeds, then strategies) until its budget is met.

    SIGTERM is handled like Ctrl-C: the running trial is recorded and re-queued, and
    :class:`~hpstudy.Interrupted` is raised; further signals are ignored meanwhile.
    """
    torch.set_num_threads(config.training.torch_threads)
    if announce:
        progress.experiment_started([(i.name, i.budget) for i in infos])
    writer = TrialWriter(storage)
    with Heartbeat(writer) as heartbeat, _interrupt_once():
        ctx = WorkerContext(
            storage, config, data, progress, writer, TrialReader(storage), heartbeat
        )
        results = []
        try:
            for info in infos:
                results.append(run_study(ctx, info, should_stop))
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted between trials; every finished trial is stored"
            ) from None
    return results


@contextlib.contextmanager
def _interrupt_once() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt once; later ones are ignored, so a second
    Ctrl-C (or a SIGTERM racing a terminal's Ctrl-C) cannot cut short the recording of the
    interrupted trial. Main thread only; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def create_experiment(
    config: ExperimentConfig,
    storage_url: str,
    *,
    run: bool = True,
    n_jobs: int = 1,
    progress: Progress | None = None,
) -> tuple[list[StudyInfo], list[StudyResult]]:
    """Create the experiment's studies in ``storage_url`` and, with ``run``, run them.

    Args:
        config: The validated study file (see :func:`hpstudy.load_config`).
        storage_url: Any SQLAlchemy URL Optuna accepts.
        run: Run the trials after creating the studies.
        n_jobs: Worker processes (1: run in this process).
        progress: Receives progress events (default: none).

    Returns:
        The created studies and, when run, each study's result.
    """
    from hpstudy.runner._parallel import run_with_jobs

    progress = progress or Progress()
    data = DataCache(config)
    plan = plan_studies(config, data)  # bad input is refused before storage is touched
    storage = open_storage(storage_url)
    infos = create_studies(config, storage, data, plan)
    if not run:
        return infos, []
    return infos, run_with_jobs(config, storage, storage_url, infos, progress, n_jobs, data)
