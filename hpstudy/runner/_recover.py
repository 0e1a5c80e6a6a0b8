"""Crash recovery: heartbeats for running trials, and failing + re-queuing stale ones.

A worker beats for its running trial every ``HEARTBEAT_INTERVAL`` seconds from a background
thread, in the database's UTC clock. A RUNNING trial is stale when its worker process is
certainly gone (same host, boot and PID namespace, pid free or reused: detected at once; see
:mod:`hpstudy.store._identity`) or its last heartbeat is older than ``GRACE_PERIOD`` (any
worker). A stale trial becomes FAIL with reason ``stale: ...`` (never counted) and a WAITING
copy of its configuration is queued in the same transaction (see
:meth:`TrialWriter.fail_and_requeue`).
"""

from __future__ import annotations

import logging
import os
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from hpstudy._faults import crash_point
from hpstudy.store import TrialReader

if TYPE_CHECKING:
    from hpstudy.store import TrialWriter
from hpstudy.store._identity import process_gone

_logger = logging.getLogger("hpstudy")


def _env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


HEARTBEAT_INTERVAL = _env_seconds("HPSTUDY_HEARTBEAT_INTERVAL", 10.0)
GRACE_PERIOD = _env_seconds("HPSTUDY_GRACE_PERIOD", 60.0)


def stale_reason(worker: str | None, age: float | None, me: str, grace: float) -> str | None:
    """Why a RUNNING trial run by ``worker`` with heartbeat ``age`` is stale, or ``None``."""
    if worker == me or worker is None:
        return None  # ours, or not run by hpstudy (left alone)
    if process_gone(worker):
        return f"stale: worker {worker} is gone"
    if age is not None and age > grace:
        return f"stale: no heartbeat from worker {worker} for {age:.0f} s"
    return None


def recover_stale(
    reader: TrialReader, writer: TrialWriter, study_id: int, grace: float = GRACE_PERIOD
) -> list[int]:
    """Fail and re-queue every stale trial of a study. Returns the numbers re-queued."""
    requeued = []
    for trial_id, worker, age in reader.running_health(study_id):
        reason = stale_reason(worker, age, writer.worker, grace)
        if reason is None:
            continue
        (trial,) = reader.fetch(study_id, {trial_id})
        crash_point("recovery")
        number = writer.fail_and_requeue(study_id, trial_id, trial, reason)
        _logger.warning(
            "trial %d: %s; %s",
            trial.number,
            reason,
            "re-queued" if number is not None else "not re-queued",
        )
        if number is not None:
            requeued.append(number)
    return requeued


class Heartbeat:
    """Beats for the current trial from a daemon thread while the trial trains."""

    def __init__(self, writer: TrialWriter, interval: float = HEARTBEAT_INTERVAL) -> None:
        self.writer, self.interval = writer, interval
        self._trial_id: int | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="hpstudy-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trial_id = self._trial_id
            if trial_id is None:
                continue
            try:
                self.writer.heartbeat(trial_id)
            except Exception as e:  # a missed beat is not fatal; the next one may pass
                from hpstudy.store._retry import one_line

                _logger.warning("heartbeat for trial id %d failed: %s", trial_id, one_line(e))

    def beat_for(self, trial_id: int | None) -> None:
        """Beat for ``trial_id`` from now on (``None``: between trials)."""
        with self._lock:
            self._trial_id = trial_id

    def close(self) -> None:
        self._stop.set()

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
