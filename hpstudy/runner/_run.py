"""Run the trials of stored studies until each one's budget of finished trials is met."""

from __future__ import annotations

import copy
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
from hpstudy.model import memory_shortfall, out_of_memory_reason
from hpstudy.runner._local import LocalStudy
from hpstudy.runner._progress import Progress
from hpstudy.runner._recover import HEARTBEAT_INTERVAL, Heartbeat, recover_stale
from hpstudy.runner._storage import TrialReader
from hpstudy.runner._studies import StudyCounts, StudyInfo, best_value
from hpstudy.runner._writer import TrialWriter
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

    def warn(self, task_name: str) -> None:
        """Log what a person should know about a loaded task's data (once, at create)."""
        for note in self._raw[task_name].warnings:
            _logger.warning("%s", note)


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
        claimed = writer.claim(trial_id)
        local.mark_claimed(number)  # ours now, or another worker's
        if claimed:
            return trial_id, number
    return None


@dataclass
class WorkerContext:
    """What one worker process shares across its studies."""

    storage: BaseStorage
    config: ExperimentConfig
    data: DataCache
    progress: Progress
    writer: TrialWriter
    reader: TrialReader
    heartbeat: Heartbeat


def run_study(
    ctx: WorkerContext, info: StudyInfo, should_stop: Callable[[], bool] = lambda: False
) -> StudyResult:
    """Run trials of one study until its budget is met, its timeout passes or it runs dry.

    Each trial is claimed in one transaction (never beyond the budget, whatever other
    workers do), trains with pruning decided locally while a heartbeat thread vouches for it,
    and is finished in one transaction. Stale trials of dead workers are failed and
    re-queued. A KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one) records the running
    trial as FAIL with reason ``interrupted``, queues its configuration again, and raises
    :class:`~hpstudy.Interrupted`.
    """
    config, writer, reader = ctx.config, ctx.writer, ctx.reader
    recover_stale(reader, writer, info.study_id)
    n_stored = len(reader.poll(info.study_id))
    sampler = make_sampler(info.strategy, config, derive_seed(info.seed, n_stored, info.strategy))
    local = LocalStudy(
        reader, info.study_id, info.name, info.direction, sampler, make_pruner(config.pruner)
    )
    local.sync()
    counts = StudyCounts.of(local.stored_trials(), info.direction)
    ctx.progress.study_started(info.name, counts.finished, info.budget, counts.best)
    dists = distributions(config)
    fixed = config.fixed_params()
    task_data = ctx.data.get(info.task, info.seed)
    deadline = time.monotonic() + info.timeout if info.timeout else None
    last_recovery = time.monotonic()
    reason = "budget met"
    while True:
        if time.monotonic() - last_recovery > HEARTBEAT_INTERVAL:
            recover_stale(reader, writer, info.study_id)
            last_recovery = time.monotonic()
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
        elif info.strategy in ("manual", "grid"):
            # Every configuration was enqueued at create time; the rest are running elsewhere.
            reason = "all configurations run" if counts.running == 0 else "others finishing"
            break
        else:
            # Claim a number first (budget-guarded), then sample for it on the synced copy:
            # numbers never clash with other workers' trials.
            stored = writer.add_trial(
                info.study_id, TrialState.RUNNING, {}, {}, budget=info.budget
            )
            if stored is None:  # the budget is taken by trials running elsewhere
                reason = "others finishing"
                break
            trial_id, number = stored
            local.sync(own=stored)
            local_id, params, system_attrs = local.sample(number, dists)
            writer.set_params(trial_id, params, dists, system_attrs)
        _run_trial(ctx, info, task_data, fixed, number, trial_id, local, local_id)
    ctx.progress.study_finished(info.name, reason)
    return StudyResult(info.name, info.budget, counts, reason)


def _run_trial(
    ctx: WorkerContext,
    info: StudyInfo,
    task_data: TaskData,
    fixed: dict[str, Any],
    number: int,
    trial_id: int,
    local: LocalStudy,
    local_id: int,
) -> None:
    config, writer, progress = ctx.config, ctx.writer, ctx.progress
    frozen = local.storage.get_trial(local_id)
    params = {**fixed, **frozen.params}
    progress.trial_started(info.name, number, min(params["epochs"], config.training.max_epochs))
    reporter = _EpochReporter(local, local_id, writer, trial_id, progress, info.name)
    attrs_at_start = dict(frozen.system_attrs)  # already stored; write only what the pruner adds
    n_folds = len(task_data.folds)
    t0 = time.perf_counter()

    def spent() -> dict[str, Any]:
        return {
            "epochs": len(reporter.values) * n_folds,
            "seconds": round(time.perf_counter() - t0, 4),
        }

    def fail(reason: str) -> None:
        attrs = {"fail_reason": reason, **spent()}
        writer.finish(
            trial_id, TrialState.FAIL, None, intermediate=reporter.unflushed(), user_attrs=attrs
        )
        local.finish(local_id, TrialState.FAIL, None, attrs)
        progress.trial_finished(info.name, TrialState.FAIL, None, None)

    too_large = memory_shortfall(params, task_data, config.training.device)
    if too_large is not None:
        _logger.warning("trial %d of %s failed: %s", number, info.name, too_large)
        fail(too_large)
        return
    ctx.heartbeat.beat_for(trial_id)
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
        # Further signals are ignored meanwhile (see run_studies).
        stored = copy.copy(frozen)
        stored._trial_id, stored.number = trial_id, number
        requeued = writer.fail_and_requeue(
            info.study_id, stored, "interrupted: Ctrl-C or SIGTERM during the trial",
            intermediate=reporter.unflushed(), user_attrs=spent(),
        )  # fmt: skip
        again = (
            f"; its configuration is queued again as trial {requeued}"
            if requeued is not None
            else ""
        )
        raise Interrupted(
            f"interrupted during trial {number} of {info.name}, recorded as FAIL (interrupted){again}"
        ) from None
    except Exception as e:  # a bug or a bad configuration must not end the study
        reason = out_of_memory_reason(e, params, task_data) or f"error: {type(e).__name__}: {e}"
        _logger.warning("trial %d of %s failed: %s", number, info.name, reason)
        fail(reason)
        return
    finally:
        ctx.heartbeat.beat_for(None)
    state = TrialState.PRUNED if result.pruned else TrialState.COMPLETE
    value = result.history[-1] if result.pruned else result.score
    attrs = {
        "epochs": result.epochs_trained * n_folds,
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 4),
        "n_params": result.n_params,
    }
    system = {k: v for k, v in local.system_attrs(local_id).items() if attrs_at_start.get(k) != v}
    if not writer.finish(
        trial_id,
        state,
        value,
        intermediate=reporter.unflushed(),
        user_attrs=attrs,
        system_attrs=system,
    ):
        _logger.warning(
            "trial %d of %s was declared stale by another worker; its result was dropped",
            number,
            info.name,
        )
    local.finish(local_id, state, value, attrs)
    progress.trial_finished(info.name, state, value, _best_after(local, info.direction))


def _best_after(local: LocalStudy, direction: str) -> float | None:
    return best_value(
        local.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), direction
    )
