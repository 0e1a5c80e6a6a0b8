"""Run the trials of stored studies until each one's budget of finished trials is met."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from hpstudy._errors import Interrupted
from hpstudy._faults import crash_point, start_barrier
from hpstudy.config._schema import ExperimentConfig
from hpstudy.data import TaskData, prepare_task
from hpstudy.data._datasets import RawData, load_data
from hpstudy.model import memory_shortfall, out_of_memory_reason
from hpstudy.runner._local import LocalStudy
from hpstudy.runner._progress import Progress
from hpstudy.runner._recover import GRACE_PERIOD, HEARTBEAT_INTERVAL, Heartbeat, recover_stale
from hpstudy.store import (
    StudyCounts,
    StudyInfo,
    TrialReader,
    TrialWriter,
    best_value,
    counts_toward_budget,
)
from hpstudy.strategies import distributions, make_pruner, make_sampler, strategy
from hpstudy.training import NonFiniteLossError, train, warm_up

_logger = logging.getLogger("hpstudy")

# Signals that stop a run cleanly (the running trial recorded, re-queued, never counted).
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
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
        crash_point("train")
        self.values[epoch] = value
        self.progress.epoch(self.name, epoch, value)
        now = time.monotonic()
        if now - self._last_flush >= LIVE_FLUSH_SECONDS:
            self.writer.write_intermediate(self.trial_id, self.unflushed())
            self._flushed, self._last_flush = epoch, now
        return self.local.should_prune(self.local_id, epoch, value)

    def unflushed(self) -> dict[int, float]:
        return {s: v for s, v in self.values.items() if s > self._flushed}


def _claim_waiting(
    local: LocalStudy, writer: TrialWriter, info: StudyInfo
) -> tuple[int, int] | None:
    """Claim the first WAITING trial (manual configuration, grid point or retry), never
    beyond the study's budget."""
    for trial_id, number in local.waiting():
        claimed = writer.claim(trial_id, info.study_id, info.budget)
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


def open_local_study(ctx: Any, info: StudyInfo, pruner: Any) -> LocalStudy:
    """Recover the study's stale trials, make its local copy (seeded sampler, ``pruner``),
    sync it and tell the progress display the study started: the start of every study's
    trial loop, trained or looked up."""
    recover_stale(ctx.reader, ctx.writer, info.study_id)
    local = LocalStudy(
        ctx.reader,
        info.study_id,
        info.name,
        info.objective_direction,
        make_sampler(info.strategy, ctx.config, info.seed, 0),
        pruner,
    )
    local.sync()
    counts = StudyCounts.of(local.stored_trials(), info.objective_direction)
    ctx.progress.study_started(info.name, counts.finished, info.budget, counts.best)
    return local


def run_study(
    ctx: WorkerContext, info: StudyInfo, should_stop: Callable[[], bool] = lambda: False
) -> StudyResult:
    """Run trials of one study until its budget is met, its timeout passes or it runs dry.

    Each trial is claimed in one transaction (never beyond the budget, whatever other
    workers do): a WAITING trial (manual configuration, grid point, re-run), or a new number
    whose parameters are then sampled with a sampler seeded from (study seed, that number,
    strategy), so no two workers propose from the same stream. It trains with pruning decided
    locally while a heartbeat thread vouches for it, and is finished in one transaction.
    Stale trials of dead workers are failed and re-queued. A KeyboardInterrupt (Ctrl-C, or
    SIGTERM turned into one) anywhere in a trial records it as FAIL (``interrupted``, never
    counted), queues its configuration again, and raises :class:`~hpstudy.Interrupted`.
    """
    if ctx.config.task(info.task).benchmark is not None:  # a trial is a table lookup
        from hpstudy.runner._lookup import run_lookup_study

        return run_lookup_study(ctx, info, should_stop)
    config, writer, reader = ctx.config, ctx.writer, ctx.reader
    queued = strategy(info.strategy).queued
    local = open_local_study(ctx, info, make_pruner(config.pruner))
    dists = distributions(config)
    fixed = config.fixed_params()
    task_data = ctx.data.get(info.task, info.seed)
    deadline = time.monotonic() + info.timeout if info.timeout else None
    last_recovery = time.monotonic()
    reason = "budget met"
    stored = False  # whether this worker's last trial stored a counted result
    while True:
        if time.monotonic() - last_recovery > HEARTBEAT_INTERVAL:
            recover_stale(reader, writer, info.study_id)
            last_recovery = time.monotonic()
        local.sync()
        counts = StudyCounts.of(local.stored_trials(), info.objective_direction)
        if counts.finished >= info.budget:
            if stored:  # this worker's finish brought the study to its budget
                _score_finished(ctx, info)
            break
        if deadline is not None and time.monotonic() >= deadline:
            reason = "timeout"
            break
        if should_stop():
            reason = "stopped"
            break
        start_barrier()
        claimed: tuple[int, int] | None = None
        try:
            claimed = _claim_waiting(local, writer, info)
            if claimed is None and queued:
                # Every configuration was queued at create; the rest run elsewhere.
                reason = "all configurations run" if counts.running == 0 else "others finishing"
                break
            if claimed is None:
                # Claim a number and a sample index first (budget-guarded), then sample for
                # it on the synced copy: neither ever clashes with other workers' trials.
                numbered = writer.claim_number(info.study_id, info.budget)
                if numbered is None:  # the budget is taken by trials running elsewhere
                    reason = "others finishing"
                    break
                claimed = numbered[:2]
                crash_point("claim")
                local.sync(own=claimed)
                crash_point("sample")
                sampler = make_sampler(info.strategy, config, info.seed, numbered[2])
                local_id, params, system_attrs = local.sample(claimed[1], dists, sampler)
                crash_point("params")
                writer.set_params(claimed[0], params, dists, system_attrs)
            else:
                crash_point("claim")
                local_id = local.local_id(claimed[1])
            trial_id, number = claimed
            stored = _run_trial(ctx, info, task_data, fixed, number, trial_id, local, local_id)
        except KeyboardInterrupt:
            if claimed is None:
                raise
            _interrupted(ctx, info, *claimed)
    ctx.progress.study_finished(info.name, reason)
    return StudyResult(info.name, info.budget, counts, reason)


def _score_finished(ctx: WorkerContext, info: StudyInfo) -> None:
    """Test scores of what the finished study completes at its (task, seed) (see
    :mod:`hpstudy.scoring`). A failure is logged, never the end of the run: ``hpstudy resume``
    computes what is missing."""
    from hpstudy.scoring import score_finished_study

    ctx.progress.study_finished(info.name, "scoring on test")
    try:
        score_finished_study(ctx.storage, ctx.config, info)
    except Exception as e:
        _logger.warning(
            "test scores of %s were not computed (%s: %s); 'hpstudy resume %s' computes them",
            info.name, type(e).__name__, e, info.experiment,
        )  # fmt: skip


def score_missing(
    storage: BaseStorage,
    config: ExperimentConfig,
    infos: list[StudyInfo],
    results: list[StudyResult],
    n_jobs: int,
    progress: Progress,
) -> None:
    """After a run (``create``, ``resume``, ``worker``): the test scores settled studies still
    lack, retrained by ``n_jobs`` processes (see :func:`hpstudy.scoring.score_after_run`)."""
    from hpstudy.scoring import score_after_run

    ended = [r.name for r in results if r.reason in ("timeout", "all configurations run")]
    try:
        score_after_run(storage, config, infos, ended, n_jobs=n_jobs, progress=progress.scoring)
    except KeyboardInterrupt:
        raise Interrupted(
            "interrupted while computing test scores; every finished trial and every score "
            f"computed is stored; 'hpstudy resume {config.name}' computes the rest"
        ) from None


def _interrupted(ctx: WorkerContext, info: StudyInfo, trial_id: int, number: int) -> None:
    """Record trial ``number``, claimed by this worker, as interrupted (not counted), queue
    its configuration again if it has one, and raise :class:`~hpstudy.Interrupted`."""
    (stored,) = ctx.reader.fetch(info.study_id, {trial_id})
    requeued = ctx.writer.fail_and_requeue(
        info.study_id, trial_id, stored, "interrupted: Ctrl-C, SIGTERM or SIGHUP during the trial"
    )
    again = (
        f"; its configuration is queued again as trial {requeued}" if requeued is not None else ""
    )
    raise Interrupted(
        f"interrupted during trial {number} of {info.name}, recorded as FAIL (interrupted){again}"
    ) from None


def _run_trial(
    ctx: WorkerContext,
    info: StudyInfo,
    task_data: TaskData,
    fixed: dict[str, Any],
    number: int,
    trial_id: int,
    local: LocalStudy,
    local_id: int,
) -> bool:
    """Train one claimed trial and finish it; whether a counted result was stored."""
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

    def fail(reason: str) -> bool:
        attrs = {"fail_reason": reason, **spent()}
        done = writer.finish(
            trial_id, TrialState.FAIL, None, intermediate=reporter.unflushed(), user_attrs=attrs
        )
        if done:
            local.finish(local_id, TrialState.FAIL, None, attrs)
        else:
            local.invalidate()
        progress.trial_finished(info.name, TrialState.FAIL, None, None)
        return done

    too_large = memory_shortfall(params, task_data, config.training.device)
    if too_large is not None:
        _logger.warning("trial %d of %s failed: %s", number, info.name, too_large)
        return fail(too_large)
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
        return fail(f"diverged: {e}")
    except KeyboardInterrupt:
        # Further signals are ignored meanwhile (see run_studies).
        requeued = writer.fail_and_requeue(
            info.study_id, trial_id, frozen, "interrupted: Ctrl-C, SIGTERM or SIGHUP during the trial",
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
        return fail(reason)
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
    if result.metric_at_best is not None:  # the task's metric, when selection is on another
        attrs["validation_metric"] = result.metric_at_best
    system = {k: v for k, v in local.system_attrs(local_id).items() if attrs_at_start.get(k) != v}
    crash_point("finish")
    if writer.finish(
        trial_id,
        state,
        value,
        intermediate=reporter.unflushed(),
        user_attrs=attrs,
        system_attrs=system,
    ):
        local.finish(local_id, state, value, attrs)
        progress.trial_finished(
            info.name, state, value, _best_after(local, info.objective_direction)
        )
        return True
    else:
        # Another worker judged this trial stale and re-queued it: the result is not ours to
        # count (the re-run will be); the local copy is rebuilt from storage.
        _logger.warning(
            "trial %d of %s was declared stale by another worker; its result was dropped",
            number,
            info.name,
        )
        local.invalidate()
        progress.trial_finished(info.name, TrialState.FAIL, None, None)
        return False


def _best_after(local: LocalStudy, direction: str) -> float | None:
    return best_value(
        local.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), direction
    )


# How long a worker that has run out of work waits for trials that look abandoned (no recent
# heartbeat) to become stale, so it can finish them, before it exits.
SWEEP_LIMIT = float(os.environ.get("HPSTUDY_SWEEP_LIMIT", GRACE_PERIOD + 2 * HEARTBEAT_INTERVAL))


def _leftover(ctx: WorkerContext, info: StudyInfo) -> tuple[bool, list[str]]:
    """Whether ``info`` has work this worker can do now, and which of its RUNNING trials
    look abandoned (heartbeat older than two intervals, not yet stale)."""
    requeued = recover_stale(ctx.reader, ctx.writer, info.study_id)
    rows = ctx.reader.poll(info.study_id)  # one small query; failures read in full only
    states = Counter(state for _, _, state in rows)
    failed = {tid for tid, _, state in rows if state == TrialState.FAIL}
    uncounted = sum(not counts_toward_budget(t) for t in ctx.reader.fetch(info.study_id, failed))
    finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED] + len(failed) - uncounted
    work = bool(requeued) or states[TrialState.WAITING] > 0
    if not strategy(info.strategy).queued and finished + states[TrialState.RUNNING] < info.budget:
        work = True
    quiet = [
        f"{info.name}: a RUNNING trial with no heartbeat for {age:.0f} s"
        for _, worker, age in ctx.reader.running_health(info.study_id)
        if worker != ctx.writer.worker and age is not None and age > 2 * HEARTBEAT_INTERVAL
    ]
    return work, quiet


def sweep(
    ctx: WorkerContext,
    infos: list[StudyInfo],
    should_stop: Callable[[], bool] = lambda: False,
    limit: float | None = None,
) -> list[str]:
    """Before a worker exits: go back over every study for work left by dead workers
    (stale trials, WAITING re-runs, budget not yet claimed) and run it; wait up to ``limit``
    seconds for trials that look abandoned to become stale. Returns what is still left.
    ``infos`` are the studies to sweep (not those whose time budget ran out)."""
    deadline = time.monotonic() + (SWEEP_LIMIT if limit is None else limit)
    while True:
        quiet: list[str] = []
        for info in infos:
            if should_stop():
                return []
            work, abandoned = _leftover(ctx, info)
            if work:
                run_study(ctx, info, should_stop)
                work, abandoned = _leftover(ctx, info)
            quiet += abandoned
        if not quiet or time.monotonic() >= deadline:
            return quiet
        time.sleep(min(HEARTBEAT_INTERVAL, max(0.0, deadline - time.monotonic())))


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
    """Run each study in turn (tasks, then seeds, then strategies) until its budget is met,
    then sweep every study for work dead workers left (see :func:`sweep`).

    SIGTERM and SIGHUP (a closed terminal or SSH session) are handled like Ctrl-C: the
    running trial is recorded and re-queued, and
    :class:`~hpstudy.Interrupted` is raised; further signals are ignored meanwhile.
    """
    torch.set_num_threads(config.training.torch_threads)
    if config.benchmark_family is None:  # lookups train nothing
        warm_up(config.training.device)  # one-time start-up costs stay out of the first trial
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
            ended = {r.name for r in results if r.reason in ("timeout", "stopped")}
            left = sweep(ctx, [i for i in infos if i.name not in ended], should_stop)
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted between trials; every finished trial is stored"
            ) from None
    if left:
        _logger.warning(
            "trials that look abandoned are still RUNNING (%s); once their workers are gone "
            "for %.0f s, finish them with: hpstudy resume %s",
            "; ".join(left),
            GRACE_PERIOD,
            config.name,
        )
    return results


def handled_signals() -> list[signal.Signals]:
    """The signals a run turns into a clean interruption: SIGINT, SIGTERM, and SIGHUP unless
    this process was started to ignore it (``nohup``: the run must outlive the terminal)."""
    return [
        sig
        for sig in INTERRUPT_SIGNALS
        if sig != signal.SIGHUP or signal.getsignal(sig) != signal.SIG_IGN
    ]


@contextlib.contextmanager
def _interrupt_once() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt once; later ones are ignored, so a
    second Ctrl-C (or a SIGTERM racing a terminal's Ctrl-C, or the SIGHUP of the terminal
    closing after it) cannot cut short the recording of the interrupted trial. Main thread
    only; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in handled_signals()}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
