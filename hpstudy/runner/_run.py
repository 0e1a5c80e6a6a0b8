"""Run the trials of stored studies until each one's budget of finished trials is met."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import TrialState

from hpstudy._errors import Interrupted
from hpstudy.config._schema import ExperimentConfig
from hpstudy.data import TaskData, prepare_task
from hpstudy.data._datasets import RawData, load_data
from hpstudy.runner._local import LocalStudy
from hpstudy.runner._progress import Progress
from hpstudy.runner._storage import TrialReader, TrialWriter
from hpstudy.runner._studies import StudyCounts, StudyInfo, best_value
from hpstudy.strategies import derive_seed, distributions, make_pruner, make_sampler
from hpstudy.training import NonFiniteLossError, train

_logger = logging.getLogger("hpstudy")

# A running trial's epochs reach storage (for optuna-dashboard) at most this often.
LIVE_FLUSH_SECONDS = 5.0


@dataclass(frozen=True)
class StudyResult:
    """How one study stands after a run."""

    name: str
    budget: int
    counts: StudyCounts
    reason: str


class DataCache:
    """Prepared data per (task, seed), loaded once per process."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self._raw: dict[str, RawData] = {}
        self._prepared: dict[tuple[str, int], TaskData] = {}

    def get(self, task_name: str, seed: int) -> TaskData:
        key = (task_name, seed)
        if key not in self._prepared:
            task = self.config.task(task_name)
            if task_name not in self._raw:
                self._raw[task_name] = load_data(task)
            self._prepared[key] = prepare_task(task, seed, self._raw[task_name])
        return self._prepared[key]


class _EpochReporter:
    """The per-epoch hook: progress, local pruning decision, occasional live flush."""

    def __init__(
        self,
        local: LocalStudy,
        local_id: int,
        writer: TrialWriter,
        trial_id: int,
        progress: Progress,
        name: str,
    ) -> None:
        self.local, self.local_id = local, local_id
        self.writer, self.trial_id = writer, trial_id
        self.progress, self.name = progress, name
        self.values: dict[int, float] = {}
        self._flushed = 0
        self._last_flush = time.monotonic()

    def __call__(self, epoch: int, value: float) -> bool:
        self.values[epoch] = value
        self.progress.epoch(self.name, epoch, value)
        now = time.monotonic()
        if now - self._last_flush >= LIVE_FLUSH_SECONDS:
            self.writer.write_intermediate(self.trial_id, self.unflushed())
            self._flushed, self._last_flush = epoch, now
        return self.local.should_prune(self.local_id, epoch, value)

    def unflushed(self) -> dict[int, float]:
        return {s: v for s, v in self.values.items() if s > self._flushed}


def _claim_waiting(local: LocalStudy, writer: TrialWriter) -> tuple[int, int] | None:
    """Claim the first WAITING trial (manual configuration, grid point or retry)."""
    for trial_id, number in local.waiting():
        if writer.claim(trial_id):
            local.mark_claimed(number)
            return trial_id, number
        local.mark_claimed(number)  # another worker took it
    return None


def run_study(
    storage: BaseStorage,
    info: StudyInfo,
    config: ExperimentConfig,
    data: DataCache,
    progress: Progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> StudyResult:
    """Run trials of one study until its budget is met, its timeout passes or it runs dry.

    Each trial is claimed in one transaction, trains with pruning decided locally, and is
    finished in one transaction. A KeyboardInterrupt records the running trial as FAIL with
    reason ``interrupted`` (it does not count toward the budget) and raises
    :class:`~hpstudy.Interrupted`.
    """
    writer = TrialWriter(storage)
    reader = TrialReader(storage)
    n_stored = len(reader.poll(info.study_id))
    sampler = make_sampler(info.strategy, config, derive_seed(info.seed, n_stored, info.strategy))
    local = LocalStudy(
        reader, info.study_id, info.name, info.direction, sampler, make_pruner(config.pruner)
    )
    local.sync()
    counts = StudyCounts.of(local.stored_trials(), info.direction)
    progress.study_started(info.name, counts.finished, info.budget, counts.best)
    dists = distributions(config)
    fixed = config.fixed_params()
    task_data = data.get(info.task, info.seed)
    deadline = time.monotonic() + info.timeout if info.timeout else None
    reason = "budget met"
    while True:
        local.sync()
        counts = StudyCounts.of(local.stored_trials(), info.direction)
        if counts.finished >= info.budget:
            break
        if deadline is not None and time.monotonic() >= deadline:
            reason = "timeout"
            break
        if should_stop():
            reason = "stopped"
            break
        claimed = _claim_waiting(local, writer)
        if claimed is not None:
            trial_id, number = claimed
            local_id = local.local_id(number)
            params = dict(local.storage.get_trial(local_id).params)
        elif info.strategy in ("manual", "grid"):
            # Every configuration was enqueued at create time; nothing is left to run.
            reason = "all configurations run"
            break
        else:
            local_id, params, system_attrs = local.sample(dists)
            trial_id, number = writer.add_trial(
                info.study_id, TrialState.RUNNING, params, dists, system_attrs=system_attrs
            )
            local.stored_as(local_id, trial_id, number)
        _run_trial(
            info,
            config,
            task_data,
            {**fixed, **params},
            number,
            trial_id,
            local,
            local_id,
            writer,
            progress,
        )
    progress.study_finished(info.name, reason)
    return StudyResult(info.name, info.budget, counts, reason)


def _run_trial(
    info: StudyInfo,
    config: ExperimentConfig,
    task_data: TaskData,
    params: dict[str, Any],
    number: int,
    trial_id: int,
    local: LocalStudy,
    local_id: int,
    writer: TrialWriter,
    progress: Progress,
) -> None:
    progress.trial_started(info.name, number, min(params["epochs"], config.training.max_epochs))
    reporter = _EpochReporter(local, local_id, writer, trial_id, progress, info.name)
    attrs_at_start = local.system_attrs(
        local_id
    )  # already stored; write only what the pruner adds
    n_folds = len(task_data.folds)
    t0 = time.perf_counter()

    def fail(reason: str) -> None:
        attrs = {
            "fail_reason": reason,
            "epochs": len(reporter.values) * n_folds,
            "seconds": round(time.perf_counter() - t0, 4),
        }
        writer.finish(
            trial_id, TrialState.FAIL, None, intermediate=reporter.unflushed(), user_attrs=attrs
        )
        local.finish(local_id, TrialState.FAIL, None, attrs)
        progress.trial_finished(info.name, TrialState.FAIL, None, None)

    try:
        result = train(
            params,
            task_data,
            seed=info.seed,
            max_epochs=config.training.max_epochs,
            patience=config.training.patience,
            device=config.training.device,
            on_epoch=reporter,
        )
    except NonFiniteLossError as e:
        fail(f"diverged: {e}")
        return
    except KeyboardInterrupt:
        fail("interrupted: Ctrl-C or SIGTERM during the trial")
        raise Interrupted(
            f"interrupted during trial {number} of {info.name}; it was recorded as FAIL (interrupted)"
        ) from None
    except Exception as e:  # a bug or a bad configuration must not end the study
        _logger.warning("trial %d of %s failed: %s: %s", number, info.name, type(e).__name__, e)
        fail(f"error: {type(e).__name__}: {e}")
        return
    state = TrialState.PRUNED if result.pruned else TrialState.COMPLETE
    value = result.history[-1] if result.pruned else result.score
    attrs = {
        "epochs": result.epochs_trained * n_folds,
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 4),
        "n_params": result.n_params,
    }
    writer.finish(
        trial_id, state, value,
        intermediate=reporter.unflushed(), user_attrs=attrs,
        system_attrs={k: v for k, v in local.system_attrs(local_id).items() if attrs_at_start.get(k) != v},
    )  # fmt: skip
    local.finish(local_id, state, value, attrs)
    progress.trial_finished(info.name, state, value, _best_after(local, info.direction))


def _best_after(local: LocalStudy, direction: str) -> float | None:
    return best_value(
        local.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), direction
    )
