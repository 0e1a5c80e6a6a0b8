"""Resume an experiment (or join it as a worker): everything needed is in the storage.

``hpstudy resume NAME`` rebuilds the experiment from the study file text stored with its
studies. ``hpstudy resume FILE`` first compares the file with the fingerprint stored at create
time: changes that make old and new trials incomparable are refused with a readable diff
(unless forced); a higher budget, more seeds, strategies or tasks are accepted: missing studies
are created and grid points or manual configurations that a higher budget adds are queued.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage

from hpstudy._errors import ConfigError, UsageError
from hpstudy._redact import redact_url
from hpstudy.config import ExperimentConfig, load_config
from hpstudy.runner._parallel import run_with_jobs
from hpstudy.runner._plan import apply_options, complete_studies, plan_studies
from hpstudy.runner._progress import Progress
from hpstudy.runner._run import DataCache, StudyResult, score_missing
from hpstudy.store import StudyInfo, experiment_studies, open_storage, stored_config

_logger = logging.getLogger("hpstudy")


class DriftError(ConfigError):
    """The study file changed in a way that makes old and new trials incomparable."""


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
        config = stored_config(infos[0], storage_url)
    if not infos:
        raise UsageError(
            f"experiment '{config.name}' has no studies in {redact_url(storage_url)}; create it first: hpstudy create {target} --storage {redact_url(storage_url)}"
        )
    return stored_select(config, infos), infos, from_file


def stored_select(config: ExperimentConfig, infos: list[StudyInfo]) -> ExperimentConfig:
    """``config`` with each task that does not say ``select`` selecting as its stored studies
    do: studies made before classification selected on cross-entropy selected on their metric
    (accuracy), and resuming them keeps doing so (their fingerprint is unchanged). A task
    whose file sets ``select`` keeps it (a change is then drift)."""
    stored = {i.task: i.objective for i in infos}
    tasks = tuple(
        dataclasses.replace(t, select=stored[t.name])
        if t.select is None and t.name in stored
        else t
        for t in config.tasks
    )
    return dataclasses.replace(config, tasks=tasks)


def drift(
    old: ExperimentConfig,
    new: ExperimentConfig,
    stored_prints: dict[str, str] | None = None,
    kinds: dict[str, str] | None = None,
) -> list[str]:
    """What changed between two versions of a study file among the things that make trials
    comparable (tasks and their data, search space, training settings, pruner): one line per
    change, naming only what changed.

    Args:
        stored_prints: Each task's fingerprint as stored at create time. The stored file is
            parsed again against today's data files, so a task whose fingerprint differs
            from its stored one although the file says the same is one whose data changed.
        kinds: Each task's kind as stored (a CSV task's kind can come from its data).
    """
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
        if task.name not in old_tasks:
            continue  # a new task becomes new studies
        before = old_tasks[task.name]
        a, b = _comparable(before), _comparable(task)
        if before.csv and task.csv and _digest(before.csv) == _digest(task.csv):
            a.pop("csv"), b.pop("csv")  # the same data elsewhere: comparable (not in the print)
        compare(f"tasks[{task.name}]", a, b)
        stored = (stored_prints or {}).get(task.name)
        kind = (kinds or {}).get(task.name)
        if task.csv and stored is not None and _print_now(old, before, kind) not in (stored, None):
            changes.append(f"tasks[{task.name}]: the contents of {task.csv} changed since create")
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


def _comparable(task: Any) -> dict[str, Any]:
    """A task's settings that make trials comparable (the margin is the report's only)."""
    fields = dataclasses.asdict(task)
    del fields["margin"]
    return fields


def _print_now(config: ExperimentConfig, task: Any, kind: str | None) -> str | None:
    """The fingerprint of ``task`` over its data file as it is today (``None``: unreadable)."""
    try:
        return config.fingerprint(task, kind)
    except OSError:
        return None


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _file_order(config: ExperimentConfig, info: StudyInfo) -> tuple[int, int, int]:
    tasks = [t.name for t in config.tasks]
    strategies = list(config.strategies)
    return (
        tasks.index(info.task) if info.task in tasks else len(tasks),
        info.seed,
        strategies.index(info.strategy) if info.strategy in strategies else len(strategies),
    )


def check_drift(
    config: ExperimentConfig, infos: list[StudyInfo], storage_url: str, force: bool
) -> list[str]:
    """Refuse (:class:`DriftError`) a file whose comparable parts changed, unless ``force``."""
    stored_prints = {i.task: i.fingerprint for i in infos}
    kinds = {i.task: i.kind for i in infos}
    changed = [
        t
        for t in config.tasks
        if t.name in stored_prints
        and config.fingerprint(t, kinds[t.name]) != stored_prints[t.name]
    ]
    if not changed:
        return []
    old = stored_config(next(i for i in infos if i.task == changed[0].name), storage_url)
    old = stored_select(old, infos)
    lines = drift(old, config, stored_prints, kinds) or [
        f"tasks[{t.name}]: fingerprint changed" for t in changed
    ]
    if force:
        return lines
    what = "1 change" if len(lines) == 1 else f"{len(lines)} changes"
    raise DriftError(
        f"{config.source} no longer matches experiment '{config.name}' as created ({what} "
        f"that would make new trials incomparable with the stored ones: {'; '.join(lines)}); "
        "resume with the original file, create a new experiment (another name), or pass "
        "--force to mix them anyway"
    )


def prepare_resume(
    config: ExperimentConfig,
    infos: list[StudyInfo],
    storage: BaseStorage,
    data: DataCache,
    *,
    from_file: bool,
    n_trials: int | None = None,
) -> list[StudyInfo]:
    """Bring the storage up to the experiment's plan and return the studies to run.

    By name: the plan ``create`` made (the stored file narrowed by the stored options), so
    whatever an interrupted ``create`` left undone is completed; stored budgets are kept
    unless ``n_trials`` overrides them. From a file: the file is the truth; the studies it
    adds (seeds, strategies, tasks) are created and its budgets applied. Either way, missing
    grid points and manual configurations are queued (one planner: :mod:`._plan`).
    """
    if not from_file:
        options = next((i.options for i in infos if i.options), None)
        if options is None:  # made before options were stored: the studies that exist
            options = {
                "strategies": [s for s in config.strategies if s in {i.strategy for i in infos}],
                "seeds": sorted({i.seed for i in infos}),
                "n_trials": config.budget.n_trials,
            }
        config = apply_options(config, options)
    if n_trials is not None:
        config = dataclasses.replace(
            config, budget=dataclasses.replace(config.budget, n_trials=n_trials)
        )
    plan = plan_studies(config, data)
    keep = not from_file and n_trials is None
    return complete_studies(config, storage, plan, keep_budgets=keep)


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
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be >= 1, got {n_trials}")
    storage = open_storage(storage_url, create=False, write=True)
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
    progress = progress or Progress()
    results = run_with_jobs(config, storage, storage_url, to_run, progress, n_jobs, data)
    score_missing(storage, config, to_run, results, n_jobs, progress)
    return config, results
