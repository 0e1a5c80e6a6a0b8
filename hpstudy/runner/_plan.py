"""The experiment planner shared by ``create`` and ``resume``: what studies an experiment has,
and bringing a storage up to that plan, step by step, from whatever state it is in.

Every step is idempotent and judged from the storage alone, so a ``create`` killed at any
instruction (between two studies, between a study and its attrs, between two queued grid
points) is finished by ``resume NAME``: missing studies are created, missing attrs written,
missing grid points and manual configurations queued (each once: by ``grid_id`` and
``manual_index``). Concurrent ``create`` and ``resume`` runs of one experiment take turns
(:func:`~hpstudy.store.experiment_lock`: an advisory lock on PostgreSQL, ``flock`` on SQLite),
so each judges what is missing only after the other has queued it: no configuration is
queued twice, none is missed. The options ``create`` narrowed the file with (``--strategy``,
``--seeds``, ``--n-trials``) are stored with every study (``options``), so the plan can be
rebuilt from the stored study file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpstudy._errors import ConfigError, UsageError
from hpstudy._faults import crash_point, start_barrier
from hpstudy._version import __version__
from hpstudy.config._schema import METRICS, OBJECTIVES, ExperimentConfig, study_name
from hpstudy.model import check_space_fits
from hpstudy.runner._lookup import benchmark_attrs
from hpstudy.runner._run import DataCache
from hpstudy.store import StudyInfo, TrialWriter, experiment_lock, study_attrs
from hpstudy.store._studies import all_study_attrs
from hpstudy.strategies import check_dependencies, distributions, strategy, study_budget


def options_of(config: ExperimentConfig) -> dict[str, Any]:
    """The narrowing ``create`` applied to the study file, as stored with each study."""
    return {
        "strategies": list(config.strategies),
        "seeds": list(config.seeds),
        "n_trials": config.budget.n_trials,
    }


def apply_options(config: ExperimentConfig, options: dict[str, Any] | None) -> ExperimentConfig:
    """The experiment as ``create`` ran it: the stored file narrowed by the stored options."""
    if not options:
        return config
    return dataclasses.replace(
        config,
        strategies=tuple(options["strategies"]),
        seeds=tuple(options["seeds"]),
        budget=dataclasses.replace(config.budget, n_trials=int(options["n_trials"])),
    )


def plan_studies(config: ExperimentConfig, data: DataCache) -> list[dict[str, Any]]:
    """Check everything that can be checked without storage (optional dependencies, every
    task's data and every seed's split); return the user attrs of each study of the plan,
    in run order (tasks, then seeds, then strategies)."""
    check_dependencies(config.strategies)
    plan = []
    for task in config.tasks:
        if task.benchmark is not None:
            metric, kind = str(task.metric), str(task.kind)
            extra = benchmark_attrs(config, task)  # the table must be installed and sound
            fingerprint = config.fingerprint(task)
        else:
            prepared = data.get(task.name, config.seeds[0])  # validates the CSV, infers the kind
            data.warn(task.name)
            check_space_fits(config, task.name, prepared)
            for seed in config.seeds[1:]:
                data.get(task.name, seed)  # every seed's split must be possible
            metric, kind = prepared.metric, prepared.kind
            fingerprint = config.fingerprint(task, prepared.kind)
        select = task.resolved_select(kind)
        for seed in config.seeds:
            for name in config.strategies:
                budget = {"n_trials": study_budget(config, name), "timeout": config.budget.timeout}
                plan.append(
                    {
                        "name": study_name(config.name, task.name, name, seed),
                        "experiment": config.name,
                        "task": task.name,
                        "strategy": name,
                        "seed": seed,
                        "metric": metric,
                        "direction": METRICS[metric][1],
                        "objective": select,
                        "objective_direction": OBJECTIVES[select][1],
                        "kind": kind,
                        **(extra(seed) if task.benchmark is not None else {}),
                        "budget": budget,
                        "fingerprint": fingerprint,
                        "study_file": config.text,
                        "study_file_path": config.source,
                        "options": options_of(config),
                        "hpstudy_version": __version__,
                    }
                )
    return plan


def complete_studies(
    config: ExperimentConfig,
    storage: BaseStorage,
    plan: list[dict[str, Any]],
    *,
    keep_budgets: bool = False,
    created: list[int] | None = None,
    new: bool = False,
) -> list[StudyInfo]:
    """Bring ``storage`` up to ``plan``: create missing studies, write missing attrs, queue
    missing grid points and manual configurations. Safe to run again after a crash at any
    point, concurrently with workers, and concurrently with another ``create`` or ``resume``
    of the experiment (they take turns under the experiment's lock).

    Args:
        keep_budgets: Existing studies keep their stored budget (``resume NAME``); otherwise
            the plan's budget is stored (``resume FILE``, ``--n-trials``).
        created: Receives the ids of the studies created here (to undo them on an error).
        new: ``create``: refuse (:class:`UsageError`) when a study of the plan exists.

    Returns:
        The planned studies, in plan order.
    """
    start_barrier("plan")
    with experiment_lock(storage, config.name):
        return _complete(config, storage, plan, keep_budgets, created, new)


def _complete(
    config: ExperimentConfig,
    storage: BaseStorage,
    plan: list[dict[str, Any]],
    keep_budgets: bool,
    created: list[int] | None,
    new: bool,
) -> list[StudyInfo]:
    writer = TrialWriter(storage)
    studies = all_study_attrs(storage)
    clash = [p["name"] for p in plan if p["name"] in studies]
    if new and clash:
        raise UsageError(
            f"experiment {config.name!r} already has {len(clash)} of its {len(plan)} studies in this "
            f"storage (e.g. {clash[0]}); continue it (this also finishes an interrupted create) with "
            f"'hpstudy resume {config.name}', or rename the experiment (name = ... in the study file), "
            "or pass another --storage"
        )
    infos = []
    for p in plan:
        attrs = study_attrs(p)
        found = studies.get(p["name"])
        if found is None:
            crash_point("create-study")
            direction = (
                StudyDirection.MAXIMIZE
                if p["objective_direction"] == "maximize"
                else StudyDirection.MINIMIZE
            )
            try:
                study_id = storage.create_new_study([direction], p["name"])
            except DuplicatedStudyError:
                # Not another hpstudy planner (they hold the lock): something else made a
                # study of this name between the read above and now. Complete it as found.
                study_id = storage.get_study_id_from_name(p["name"])
            else:
                if created is not None:
                    created.append(study_id)
            stored: dict[str, Any] = {}
        else:
            study_id, stored_or_none = found
            stored = stored_or_none or {}  # unreadable attrs are written again from the plan
            # Never mix trials selected on different objectives in one study.
            had = stored.get("objective", stored.get("metric"))
            if isinstance(had, str) and had != p["objective"]:
                raise ConfigError(
                    f"study {p['name']} selects trials on {had}, but the study file now says "
                    f"{p['objective']} (select); resume with select = {had!r} for task "
                    f"{p['task']!r}, or create a new experiment (another name)"
                )
        budget = stored.get("budget")
        if keep_budgets and isinstance(budget, dict) and isinstance(budget.get("n_trials"), int):
            attrs["budget"] = budget  # a malformed stored budget is replaced by the plan's
        missing = {k: v for k, v in attrs.items() if stored.get(k) != v}
        if missing:
            writer.set_study_user_attrs(study_id, missing)
        name_metric(storage, p["name"], str(p["metric"]))
        info = StudyInfo.from_attrs(study_id, p["name"], attrs)
        assert info is not None
        queue_configurations(writer, storage, config, info)
        infos.append(info)
    return infos


def name_metric(storage: BaseStorage, name: str, metric: str) -> None:
    """Name the study's objective after its metric (optuna-dashboard shows "rmse", not
    "Objective 0"), through Optuna's public ``set_metric_names``; studies made before this are
    named when they are resumed."""
    import warnings

    study = optuna.Study(study_name=name, storage=storage)
    if study.metric_names != [metric]:
        with warnings.catch_warnings():  # "experimental since 3.2": stable in practice, tested
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric])


def queue_configurations(
    writer: TrialWriter, storage: BaseStorage, config: ExperimentConfig, info: StudyInfo
) -> int:
    """Queue the grid points or manual configurations of a study that are not stored yet
    (within its budget). Returns how many were queued."""
    make = strategy(info.strategy).configurations
    if make is None:
        return 0
    configurations = make(config, info.seed, info.budget)
    keys = {c.key for c in configurations}
    have = {
        (key, attrs[key])
        for t in storage.get_all_trials(info.study_id, deepcopy=False)
        for attrs in (t.user_attrs, t.system_attrs)
        for key in keys
        if key in attrs
    }
    dists = distributions(config)
    if config.benchmark_family is not None:
        # A lookup costs microseconds, so one transaction queues them all (all or none).
        missing = [c for c in configurations if (c.key, c.index) not in have]
        if missing:
            crash_point("queue")
            writer.add_waiting_trials(
                info.study_id,
                [(c.params, c.user_attrs, c.system_attrs) for c in missing],
                dists,
            )
        return len(missing)
    queued = 0
    for c in configurations:
        if (c.key, c.index) in have:
            continue
        crash_point("queue")
        writer.add_trial(
            info.study_id, TrialState.WAITING, c.params, dists,
            user_attrs=c.user_attrs, system_attrs=c.system_attrs,
        )  # fmt: skip
        queued += 1
    return queued
