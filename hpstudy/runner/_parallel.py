"""Several long-lived worker processes on one machine, sharing the storage.

Processes, not threads: small-MLP training is Python-bound, so threads share one core (Optuna's
thread ``n_jobs`` gained 0.9-1.3x here). Each worker is started once (importing torch costs
seconds), uses one torch thread, and runs the same loop as a single process: workers split
the studies' trials through the storage (atomic claims, budget-guarded inserts). Progress
events travel to the parent over a queue; the parent only draws.

Ctrl-C (and a closed terminal's SIGHUP) reaches every process of the terminal's process
group; a SIGTERM or SIGHUP sent to the parent is forwarded to the workers. Either way each
worker records and re-queues its running trial, and the parent exits 130 once they have.

A worker that dies on its own (killed by the out-of-memory killer, ``kill -9``, a database
error it could not get past) is not an interruption. When it was killed by a signal, the
parent starts a replacement (the others may already have run out of work and exited), which
finds its trial stale and re-runs it; the run ends with the results and a warning naming the worker, or with
:class:`~hpstudy.WorkerDied` (exit 1, results shown) when studies are left unfinished. At most
``max(3, n_jobs)`` replacements are started, so a trial that kills every worker that runs it is
given up by the usual rule (three deaths) rather than looping.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import time
from dataclasses import dataclass
from typing import Any

import torch
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from hpstudy._errors import HpStudyError, Interrupted, WorkerDied
from hpstudy.config import ExperimentConfig
from hpstudy.runner._progress import Progress
from hpstudy.runner._run import DataCache, StudyResult, handled_signals, run_studies
from hpstudy.store import StudyCounts, StudyInfo
from hpstudy.store._optuna import rdb_backend
from hpstudy.training import warm_up

_logger = logging.getLogger("hpstudy")


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs, picklable."""

    storage_url: str
    config: ExperimentConfig
    infos: tuple[StudyInfo, ...]


class _QueueProgress(Progress):
    """Forwards progress events to the parent process."""

    def __init__(self, events: Any, worker: int) -> None:
        self.events, self.worker = events, worker
        self._last_epoch_event = 0.0

    def _send(self, method: str, *args: Any) -> None:
        self.events.put((method, args))

    def study_started(self, name: str, finished: int, budget: int, best: float | None) -> None:
        self._send("study_started", name, finished, budget, best)

    def trial_started(self, name: str, number: int, max_epochs: int) -> None:
        self._send("trial_started", name, number, max_epochs)

    def epoch(self, name: str, epoch: int, value: float) -> None:
        now = time.monotonic()
        if now - self._last_epoch_event >= 0.25:  # the display redraws 4 times a second
            self._last_epoch_event = now
            self._send("epoch", name, epoch, value)

    def trial_finished(
        self, name: str, state: TrialState, value: float | None, best: float | None
    ) -> None:
        self._send("trial_finished", name, state, value, best)

    def trials_finished(self, name: str, n: int, best: float | None) -> None:
        self._send("trials_finished", name, n, best)

    def study_finished(self, name: str, reason: str) -> None:
        self._send("study_finished", name, reason)


def _worker_main(spec: WorkerSpec, events: Any, index: int, data: DataCache | None) -> None:
    """Entry point of a worker process; its exit code tells the parent how it ended.

    ``data`` is the parent's prepared data when the worker was forked (the planner prepared
    every task x seed before any worker started, so nothing is loaded or split again);
    ``None`` under spawn, where the worker prepares what it needs itself.
    """
    import sys

    import optuna

    from hpstudy.store import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(spec.storage_url, create=False, write=True)
        config = spec.config
        run_studies(
            config,
            storage,
            list(spec.infos),
            data if data is not None else DataCache(config),
            _QueueProgress(events, index),
            announce=False,
        )
    except Interrupted:
        sys.exit(130)
    except HpStudyError as e:
        events.put(("error", (index, str(e))))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a database error hpstudy does not retry, or a bug: say which
        from hpstudy.store._retry import database_cause, one_line

        events.put(("error", (index, one_line(database_cause(e) or e))))
        sys.exit(1)


def _context() -> Any:
    """fork where available: a worker then starts in milliseconds with torch, optuna and the
    prepared data already loaded (spawn re-imports them: ~5 s for two workers on two cores).
    It is safe here because the parent has run no torch operation, holds no database
    connection (its pool is disposed first) and starts no thread before forking."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_parallel(
    spec: WorkerSpec, n_jobs: int, progress: Progress, data: DataCache | None = None
) -> list[StudyResult]:
    """Run the studies of ``spec`` with ``n_jobs`` worker processes; returns their results."""
    context = _context()
    events = context.Queue()
    shared = data if context.get_start_method() == "fork" else None

    def new_worker(i: int) -> Any:
        return context.Process(
            target=_worker_main, args=(spec, events, i, shared), name=f"hpstudy-worker-{i}"
        )

    workers = [new_worker(i) for i in range(n_jobs)]
    reasons: dict[str, str] = {}
    errors: dict[int, str] = {}
    died: list[str] = []
    replacements = max(3, n_jobs)
    interrupted = False

    def replace_the_dead() -> None:
        """Record each worker that died on its own; start a replacement while work is left."""
        nonlocal replacements
        for i, w in enumerate(workers):
            if w.exitcode is None or w.exitcode == 0 or i in dead:
                continue
            dead.add(i)
            died.append(_death(i, w.pid, w.exitcode, errors.get(i)))
            if interrupted or w.exitcode > 0 or replacements == 0:  # an error would recur
                continue
            if all(r.counts.finished >= r.budget for r in _results(spec, reasons)):
                continue
            replacements -= 1
            workers.append(new_worker(len(workers)))
            workers[-1].start()
            _logger.info("%s; started worker process %d in its place", died[-1], len(workers) - 1)

    dead: set[int] = set()

    def forward_sigterm(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        for w in workers:
            if w.is_alive() and w.pid is not None:
                w.terminate()  # SIGTERM: the worker records its trial and exits 130

    previous = {
        sig: signal.signal(sig, forward_sigterm)
        for sig in handled_signals()
        if sig != signal.SIGINT  # Ctrl-C: KeyboardInterrupt below
    }
    try:
        for w in workers:
            w.start()
        progress.experiment_started([(i.name, i.budget) for i in spec.infos])  # threads after fork
        while True:
            try:
                if not interrupted:
                    replace_the_dead()
                if not any(w.is_alive() for w in workers) and events.empty():
                    break
                method, args = events.get(timeout=0.2)
                if method == "error":
                    errors[args[0]] = args[1]
                    continue
                if method == "study_finished":
                    reasons[args[0]] = args[1]
                getattr(progress, method)(*args)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                # From a terminal the workers got the same Ctrl-C and are recording their
                # running trials; if only this process got it, tell them after a moment.
                if not interrupted:
                    interrupted = True
                    deadline = time.monotonic() + 3.0
                    while time.monotonic() < deadline and any(w.is_alive() for w in workers):
                        time.sleep(0.05)
                    forward_sigterm(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for w in workers:
            w.join(timeout=60)
    if interrupted:
        raise Interrupted(
            "interrupted; every worker recorded its running trial and queued it again"
        )
    died += [
        _death(i, w.pid, w.exitcode, errors.get(i))
        for i, w in enumerate(workers)
        if w.exitcode != 0 and i not in dead
    ]
    results = _results(spec, reasons)
    if died:
        unfinished = [r.name for r in results if r.counts.finished < r.budget]
        if unfinished:
            raise WorkerDied(
                f"{'; '.join(died)}; {len(unfinished)} of {len(results)} studies are not "
                f"finished (e.g. {unfinished[0]})",
                list(results),
            )
        _logger.warning("%s; its trials were re-run and every study finished", "; ".join(died))
    return results


def _death(index: int, pid: int | None, code: int | None, error: str | None) -> str:
    """What became of a worker process that did not end cleanly, in words."""
    if code is not None and code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    elif code == 130:
        how = "was interrupted (a signal sent to it alone)"
    elif code is None:
        how = "did not exit"
    else:
        how = f"exited with code {code}" + (f" ({error})" if error else "")
    return f"worker process {index} (pid {pid}) {how}"


def _results(spec: WorkerSpec, reasons: dict[str, str]) -> list[StudyResult]:
    from hpstudy.store import open_storage

    storage = open_storage(spec.storage_url, create=False)
    results = []
    for info in spec.infos:
        counts = StudyCounts.of(
            storage.get_all_trials(info.study_id, deepcopy=False), info.objective_direction
        )
        reason = (
            "budget met"
            if counts.finished >= info.budget
            else reasons.get(info.name, "incomplete")
        )
        results.append(StudyResult(info.name, info.budget, counts, reason))
    return results


def _warm_up_before_fork() -> None:
    """Warm up once here so every forked worker inherits it (see :func:`warm_up`): on the
    CPU only (CUDA does not survive a fork) and on one thread (an OpenMP pool started before
    a fork can hang the children)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        warm_up("cpu")
    finally:
        torch.set_num_threads(threads)


def run_with_jobs(
    config: ExperimentConfig,
    storage: BaseStorage,
    storage_url: str,
    infos: list[StudyInfo],
    progress: Progress,
    n_jobs: int,
    data: DataCache | None = None,
) -> list[StudyResult]:
    """Run ``infos`` in this process (``n_jobs`` 1) or with ``n_jobs`` worker processes."""
    data = data if data is not None else DataCache(config)
    if n_jobs <= 1:
        return run_studies(config, storage, infos, data, progress)
    _warm_up_before_fork()
    backend = rdb_backend(storage)
    if backend is not None:
        backend.engine.dispose()  # no connection may cross a fork
    return run_parallel(WorkerSpec(storage_url, config, tuple(infos)), n_jobs, progress, data)
