"""Several long-lived worker processes on one machine, sharing the storage.

Processes, not threads: small-MLP training is Python-bound, so threads share one core (Optuna's
thread ``n_jobs`` gained 0.9-1.3x here). Each worker is started once (importing torch costs
seconds), uses one torch thread, and runs the same loop as a single process: workers split
the studies' trials through the storage (atomic claims, budget-guarded inserts). Progress
events travel to the parent over a queue; the parent only draws.

Ctrl-C reaches every process of the terminal's process group; a SIGTERM sent to the parent
is forwarded to the workers. Either way each worker records and re-queues its running trial,
and the parent exits 130 once they have.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from hpstudy._errors import HpStudyError, Interrupted
from hpstudy.config import ExperimentConfig
from hpstudy.runner._progress import Progress
from hpstudy.runner._run import StudyResult
from hpstudy.runner._studies import StudyCounts, StudyInfo


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

    def _send(self, method: str, *args: Any) -> None:
        self.events.put((method, args))

    def study_started(self, name: str, finished: int, budget: int, best: float | None) -> None:
        self._send("study_started", name, finished, budget, best)

    def trial_started(self, name: str, number: int, max_epochs: int) -> None:
        self._send("trial_started", name, number, max_epochs)

    def epoch(self, name: str, epoch: int, value: float) -> None:
        self._send("epoch", name, epoch, value)

    def trial_finished(
        self, name: str, state: TrialState, value: float | None, best: float | None
    ) -> None:
        self._send("trial_finished", name, state, value, best)

    def study_finished(self, name: str, reason: str) -> None:
        self._send("study_finished", name, reason)


def _worker_main(spec: WorkerSpec, events: Any, index: int) -> None:
    """Entry point of a worker process; its exit code tells the parent how it ended."""
    import sys

    from hpstudy.runner._create import run_studies
    from hpstudy.runner._run import DataCache
    from hpstudy.runner._storage import open_storage

    try:
        storage = open_storage(spec.storage_url, create=False)
        config = spec.config
        run_studies(
            config,
            storage,
            list(spec.infos),
            DataCache(config),
            _QueueProgress(events, index),
            announce=False,
        )
    except Interrupted:
        sys.exit(130)
    except HpStudyError as e:
        events.put(("error", (str(e),)))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def run_parallel(spec: WorkerSpec, n_jobs: int, progress: Progress) -> list[StudyResult]:
    """Run the studies of ``spec`` with ``n_jobs`` worker processes; returns their results."""
    context = multiprocessing.get_context("spawn")  # fork after torch/SQLAlchemy is unsafe
    events = context.Queue()
    workers = [
        context.Process(target=_worker_main, args=(spec, events, i), name=f"hpstudy-worker-{i}")
        for i in range(n_jobs)
    ]
    progress.experiment_started([(i.name, i.budget) for i in spec.infos])
    reasons: dict[str, str] = {}
    errors: list[str] = []
    interrupted = False

    def forward_sigterm(signum: int, frame: Any) -> None:
        for w in workers:
            if w.is_alive() and w.pid is not None:
                w.terminate()  # SIGTERM: the worker records its trial and exits 130

    previous = signal.signal(signal.SIGTERM, forward_sigterm)
    try:
        for w in workers:
            w.start()
        while True:
            try:
                if not any(w.is_alive() for w in workers) and events.empty():
                    break
                method, args = events.get(timeout=0.2)
                if method == "error":
                    errors.append(args[0])
                    continue
                if method == "study_finished":
                    reasons[args[0]] = args[1]
                getattr(progress, method)(*args)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                # From a terminal the workers got the same Ctrl-C; if only this process got
                # it, tell them. Then wait while they record their running trials.
                interrupted = True
                forward_sigterm(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for w in workers:
            w.join(timeout=60)
    codes = [w.exitcode for w in workers]
    if interrupted or 130 in codes or any(c is not None and c < 0 for c in codes):
        raise Interrupted(
            "interrupted; every worker recorded its running trial and queued it again"
        )
    if errors:
        raise HpStudyError(errors[0])
    if any(c != 0 for c in codes):
        raise HpStudyError(
            f"a worker process failed (exit codes {codes}); run again with -v to see why"
        )
    return _results(spec, reasons)


def _results(spec: WorkerSpec, reasons: dict[str, str]) -> list[StudyResult]:
    from hpstudy.runner._storage import open_storage

    storage = open_storage(spec.storage_url, create=False)
    results = []
    for info in spec.infos:
        counts = StudyCounts.of(
            storage.get_all_trials(info.study_id, deepcopy=False), info.direction
        )
        reason = (
            "budget met"
            if counts.finished >= info.budget
            else reasons.get(info.name, "incomplete")
        )
        results.append(StudyResult(info.name, info.budget, counts, reason))
    return results


def run_with_jobs(
    config: ExperimentConfig,
    storage_url: str,
    infos: list[StudyInfo],
    progress: Progress,
    n_jobs: int,
    data: Any = None,
) -> list[StudyResult]:
    """Run ``infos`` in this process (``n_jobs`` 1) or with ``n_jobs`` worker processes."""
    if n_jobs <= 1:
        from hpstudy.runner._create import run_studies
        from hpstudy.runner._run import DataCache
        from hpstudy.runner._storage import open_storage

        storage = open_storage(storage_url, create=False)
        return run_studies(config, storage, infos, data or DataCache(config), progress)
    return run_parallel(WorkerSpec(storage_url, config, tuple(infos)), n_jobs, progress)
