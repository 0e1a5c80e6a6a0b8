"""Create the studies of an experiment (one per task x strategy x seed) and run them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from optuna.storages import BaseStorage

from hpstudy._errors import ConfigError
from hpstudy.config._schema import ExperimentConfig
from hpstudy.runner._parallel import run_with_jobs
from hpstudy.runner._plan import complete_studies, plan_studies
from hpstudy.runner._progress import Progress
from hpstudy.runner._run import DataCache, StudyResult, score_missing
from hpstudy.store import StudyInfo, open_storage


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
    runs_grid = "grid" in (strategies or config.strategies)
    if n_trials is not None and n_trials >= 1 and runs_grid and not config.budget.grid_subset:
        size = config.grid_size()
        if n_trials < size:
            # the same refusal the study file's own budget gets (config._load)
            problems.append(
                f"--n-trials {n_trials} is below the grid's {size} points, so grid would visit a "
                f"random subset; pass --n-trials {size}, leave grid out (--strategy), or add "
                "grid_subset = true to [budget] in the study file"
            )
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


def create_studies(
    config: ExperimentConfig,
    storage: BaseStorage,
    data: DataCache,
    plan: list[dict[str, Any]] | None = None,
) -> list[StudyInfo]:
    """Create every study of ``config`` (as planned by :func:`plan_studies`), with its attrs
    and queued configurations. An error undoes what was created; a crash (kill -9) leaves a
    partial experiment that ``hpstudy resume NAME`` completes (see :mod:`._plan`).

    Raises:
        UsageError: A study of this experiment already exists in the storage.
    """
    if plan is None:
        plan = plan_studies(config, data)
    created: list[int] = []
    try:
        return complete_studies(config, storage, plan, created=created, new=True)
    except Exception:
        for study_id in created:  # leave nothing half-written
            storage.delete_study(study_id)
        raise


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
    progress = progress or Progress()
    data = DataCache(config)
    plan = plan_studies(config, data)  # bad input is refused before storage is touched
    storage = open_storage(storage_url)
    infos = create_studies(config, storage, data, plan)
    if not run:
        return infos, []
    results = run_with_jobs(config, storage, storage_url, infos, progress, n_jobs, data)
    score_missing(storage, config, infos, results, n_jobs, progress)
    return infos, results
