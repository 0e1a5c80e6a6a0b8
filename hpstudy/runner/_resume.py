"""Resume an experiment (or join it as a worker): everything needed is in the storage.

``hpstudy resume NAME`` rebuilds the experiment from the study file text stored with its
studies. ``hpstudy resume FILE`` first compares the file with the fingerprint stored at create
time: changes that make old and new trials incomparable are refused with a readable diff
(unless forced); a higher budget, more seeds, strategies or tasks are accepted: missing studies
are created and grid points or manual configurations that a higher budget adds are queued.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import TrialState

from hpstudy._errors import ConfigError, UsageError
from hpstudy._redact import redact_url
from hpstudy.config import ExperimentConfig, load_config, parse_config
from hpstudy.runner._progress import Progress
from hpstudy.runner._run import DataCache, StudyResult
from hpstudy.runner._studies import StudyInfo
from hpstudy.runner._writer import TrialWriter
from hpstudy.strategies import distributions, grid_points

_logger = logging.getLogger("hpstudy")


class DriftError(ConfigError):
    """The study file changed in a way that makes old and new trials incomparable."""


def experiment_studies(storage: BaseStorage, experiment: str) -> list[StudyInfo]:
    """The hpstudy studies of ``experiment`` in ``storage``."""
    infos = [StudyInfo.from_frozen(s) for s in storage.get_all_studies()]
    return [i for i in infos if i is not None and i.experiment == experiment]


def require_experiment(storage: BaseStorage, experiment: str, storage_url: str) -> list[StudyInfo]:
    """The studies of ``experiment``; :class:`UsageError` when there are none."""
    infos = experiment_studies(storage, experiment)
    if not infos:
        raise UsageError(
            f"experiment '{experiment}' not found in {redact_url(storage_url)}; run 'hpstudy list --storage {redact_url(storage_url)}'"
        )
    return infos


def _stored_config(info: StudyInfo, storage_url: str) -> ExperimentConfig:
    base = Path(info.study_file_path).parent if info.study_file_path else Path.cwd()
    try:
        return parse_config(
            info.study_file,
            source=f"{info.study_file_path or info.experiment} (as stored)",
            base_dir=base,
        )
    except ConfigError as e:
        raise ConfigError(
            f"the study file stored with experiment '{info.experiment}' in {redact_url(storage_url)} no longer loads "
            f"({e}); resume from the file instead: hpstudy resume path/to/file.toml"
        ) from e


def resolve_experiment(
    target: str, storage: BaseStorage, storage_url: str
) -> tuple[ExperimentConfig, list[StudyInfo], bool]:
    """``target`` is a study file or an experiment name.

    Returns:
        (config, the experiment's stored studies, whether a file was given).
    """
    path = Path(target)
    from_file = path.suffix == ".toml" or path.is_file()
    if from_file:
        config = load_config(path)
        infos = experiment_studies(storage, config.name)
    else:
        infos = experiment_studies(storage, target)
        if not infos:
            raise UsageError(
                f"experiment '{target}' not found in {redact_url(storage_url)}; run 'hpstudy list --storage {redact_url(storage_url)}'"
            )
        config = _stored_config(infos[0], storage_url)
    if not infos:
        raise UsageError(
            f"experiment '{config.name}' has no studies in {redact_url(storage_url)}; create it first: hpstudy create {target} --storage {redact_url(storage_url)}"
        )
    return config, infos, from_file


def drift(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """What changed between two versions of a study file among the things that make trials
    comparable (tasks and their data, search space, training settings, pruner)."""
    changes: list[str] = []

    def compare(prefix: str, a: dict[str, Any], b: dict[str, Any]) -> None:
        for key in sorted(set(a) | set(b)):
            if key not in a:
                changes.append(f"{prefix}.{key}: added ({b[key]!r})")
            elif key not in b:
                changes.append(f"{prefix}.{key}: removed (was {a[key]!r})")
            elif a[key] != b[key]:
                changes.append(f"{prefix}.{key}: {a[key]!r} -> {b[key]!r}")

    old_tasks = {t.name: t for t in old.tasks}
    for task in new.tasks:
        if task.name in old_tasks:
            compare(
                f"tasks[{task.name}]",
                dataclasses.asdict(old_tasks[task.name]),
                dataclasses.asdict(task),
            )
            if not changes and old.fingerprint(old_tasks[task.name]) != new.fingerprint(task):
                changes.append(f"tasks[{task.name}]: the data file's contents changed")
    for name in sorted(set(old.space) | set(new.space)):
        a = dataclasses.asdict(old.space[name]) if name in old.space else {}
        b = dataclasses.asdict(new.space[name]) if name in new.space else {}
        compare(
            f"space.{name}",
            {k: v for k, v in a.items() if v is not None},
            {k: v for k, v in b.items() if v is not None},
        )
    compare("training", dataclasses.asdict(old.training), dataclasses.asdict(new.training))
    compare(
        "pruner",
        {"type": old.pruner.type, **old.pruner.settings},
        {"type": new.pruner.type, **new.pruner.settings},
    )
    return changes


def _file_order(config: ExperimentConfig, info: StudyInfo) -> tuple[int, int, int]:
    tasks = [t.name for t in config.tasks]
    strategies = list(config.strategies)
    return (
        tasks.index(info.task) if info.task in tasks else len(tasks),
        info.seed,
        strategies.index(info.strategy) if info.strategy in strategies else len(strategies),
    )


def _fixed_budget(config: ExperimentConfig, strategy: str, n_trials: int) -> int:
    from hpstudy.strategies import study_budget

    return study_budget(
        dataclasses.replace(config, budget=dataclasses.replace(config.budget, n_trials=n_trials)),
        strategy,
    )


def check_drift(
    config: ExperimentConfig, infos: list[StudyInfo], storage_url: str, force: bool
) -> list[str]:
    """Refuse (:class:`DriftError`) a file whose comparable parts changed, unless ``force``."""
    stored_prints = {i.task: i.fingerprint for i in infos}
    changed = [
        t
        for t in config.tasks
        if t.name in stored_prints and config.fingerprint(t) != stored_prints[t.name]
    ]
    if not changed:
        return []
    old = _stored_config(next(i for i in infos if i.task == changed[0].name), storage_url)
    lines = drift(old, config) or [f"tasks[{t.name}]: fingerprint changed" for t in changed]
    if force:
        return lines
    raise DriftError(
        [
            f"{config.source} no longer matches experiment '{config.name}' as created; new trials would not be comparable with the stored ones:"
        ]
        + [f"  {line}" for line in lines]
        + [
            "resume with the original file, create a new experiment (another name), or pass --force to mix them anyway"
        ]
    )


def top_up(
    writer: TrialWriter,
    storage: BaseStorage,
    config: ExperimentConfig,
    info: StudyInfo,
    budget: int,
) -> int:
    """Store a new budget and queue the grid points / manual configurations it adds.

    Returns:
        How many trials were queued.
    """
    if budget != info.budget:
        writer.set_study_user_attrs(
            info.study_id, {"budget": {"n_trials": budget, "timeout": config.budget.timeout}}
        )
    if info.strategy not in ("grid", "manual"):
        return 0
    trials = storage.get_all_trials(info.study_id, deepcopy=False)
    dists = distributions(config)
    queued = 0
    if info.strategy == "grid":
        have = {t.system_attrs.get("grid_id") for t in trials}
        space = {n: list(p.grid or ()) for n, p in sorted(config.searched_params().items())}
        for grid_id, params in grid_points(config, info.seed)[:budget]:
            if grid_id not in have:
                writer.add_trial(
                    info.study_id,
                    TrialState.WAITING,
                    params,
                    dists,
                    system_attrs={"grid_id": grid_id, "search_space": space},
                )
                queued += 1
    else:
        have = {t.user_attrs.get("manual_index") for t in trials}
        for i, params in enumerate(config.manual):
            if i not in have:
                writer.add_trial(
                    info.study_id,
                    TrialState.WAITING,
                    params,
                    dists,
                    user_attrs={"manual_index": i},
                )
                queued += 1
    return queued


def prepare_resume(
    config: ExperimentConfig,
    infos: list[StudyInfo],
    storage: BaseStorage,
    data: DataCache,
    *,
    from_file: bool,
    n_trials: int | None = None,
) -> list[StudyInfo]:
    """Decide which studies to run, and with which budgets.

    From a file: the file is the truth; the studies it adds (seeds, strategies, tasks) are
    created and its budgets applied. By name: exactly the stored studies with their stored
    budgets (``n_trials`` overrides), since create may have narrowed the file with options.
    """
    from hpstudy.runner._create import create_studies, plan_studies

    if not from_file:
        plan_studies(config, data)  # the data must still load (a CSV may have moved)
        writer = TrialWriter(storage)
        infos = sorted(infos, key=lambda i: _file_order(config, i))
        if n_trials is None:
            return infos
        budgets = {i.name: _fixed_budget(config, i.strategy, n_trials) for i in infos}
        for info in infos:
            top_up(writer, storage, config, info, budgets[info.name])
        return [dataclasses.replace(i, budget=budgets[i.name]) for i in infos]
    if n_trials is not None:
        config = dataclasses.replace(
            config, budget=dataclasses.replace(config.budget, n_trials=n_trials)
        )
    plan = plan_studies(config, data)
    stored = {i.name: i for i in infos}
    missing = [p for p in plan if p["name"] not in stored]
    created = (
        {i.name: i for i in create_studies(config, storage, data, missing)} if missing else {}
    )
    writer = TrialWriter(storage)
    ordered = []
    for p in plan:
        if p["name"] in stored:
            info = stored[p["name"]]
            top_up(writer, storage, config, info, p["budget"]["n_trials"])
            info = dataclasses.replace(
                info, budget=p["budget"]["n_trials"], timeout=config.budget.timeout
            )
            ordered.append(info)
        else:
            ordered.append(created[p["name"]])
    return ordered


def resume_experiment(
    target: str,
    storage_url: str,
    *,
    force: bool = False,
    n_trials: int | None = None,
    n_jobs: int = 1,
    join: bool = False,
    progress: Progress | None = None,
) -> tuple[ExperimentConfig, list[StudyResult]]:
    """Continue every study of an experiment until its budget is met.

    Args:
        target: The experiment's name (its study file is read from storage) or its study file.
        storage_url: The storage holding the experiment.
        force: Resume even if the study file changed incomparably (see :func:`check_drift`).
        n_trials: A new budget per study.
        n_jobs: Worker processes on this machine.
        join: Only help run the stored studies (``hpstudy worker``): create nothing, change no
            budget.
        progress: Receives progress events.

    Returns:
        The experiment's configuration and each study's result.
    """
    from hpstudy.runner._parallel import run_with_jobs
    from hpstudy.runner._storage import open_storage

    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be >= 1, got {n_trials}")
    storage = open_storage(storage_url, create=False)
    config, infos, from_file = resolve_experiment(target, storage, storage_url)
    if from_file:
        for line in check_drift(config, infos, storage_url, force):
            _logger.warning("resuming despite a changed study file (--force): %s", line)
    data = DataCache(config)
    if join:
        to_run = sorted(infos, key=lambda i: _file_order(config, i))
    else:
        to_run = prepare_resume(
            config, infos, storage, data, from_file=from_file, n_trials=n_trials
        )
    return config, run_with_jobs(
        config, storage, storage_url, to_run, progress or Progress(), n_jobs, data
    )
