"""Write trials to an RDB storage in as few round trips as possible, safely under concurrency.

Every Optuna storage call is one transaction; on SQLite each costs milliseconds of SQLAlchemy
CPU time (see docs/architecture.md). A trial here is one transaction to claim it (a WAITING
trial, or a new number with its sample index, with the first heartbeat), one to store the
parameters sampled for a new number, and one to finish it (value, state, intermediate values
and attrs), each a few statements built once (:mod:`._rows`). Every transaction
starts with a write, so SQLite takes its write lock at once and waits (busy timeout) instead
of failing with "database is locked" when a read snapshot goes stale.

These are SQLAlchemy Core statements on Optuna's own tables (reached through
:mod:`hpstudy.store._optuna`, the one module that touches Optuna's private pieces); every row
written is one Optuna itself would write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import select

from hpstudy._errors import StorageError
from hpstudy._faults import crash_point
from hpstudy.store import _optuna as o
from hpstudy.store import _rows as r
from hpstudy.store._identity import worker_id
from hpstudy.store._retry import retrying
from hpstudy.store._studies import UNCOUNTED_REASONS

# A configuration whose worker process died this many times while running it is given up
# (it most likely kills its process: out of memory, a crash in native code). Interrupts never
# count toward this cap, and a given-up configuration never counts toward the budget.
MAX_CRASHES = 3
_USER_ATTRS = r.USER_ATTRS
_SYSTEM_ATTRS = r.SYSTEM_ATTRS


def _rdb(storage: BaseStorage) -> RDBStorage:
    backend = o.rdb_backend(storage)
    if backend is None:
        raise StorageError(
            f"hpstudy needs an RDB storage (SQLAlchemy URL), got {type(storage).__name__}"
        )
    return backend


class BudgetFull(Exception):
    """Internal: the study's budget is taken by finished and running trials."""


class TrialWriter:
    """Batched, concurrency-safe trial writes.

    Args:
        storage: A storage from :func:`hpstudy.runner.open_storage`.
    """

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage
        self.engine = _rdb(storage).engine
        self.worker = worker_id()

    # -- studies ------------------------------------------------------------------------------

    def set_study_user_attrs(self, study_id: int, attrs: Mapping[str, Any]) -> None:
        """Write (or replace) several study user attrs in one transaction, under the study's
        write lock: two workers replacing the same key at once take turns (without it, on
        PostgreSQL the second one's insert violates the key the first one's just inserted)."""
        new = dict(attrs)
        self.update_study_user_attrs(study_id, tuple(new), lambda _stored: new)

    def update_study_user_attrs(
        self,
        study_id: int,
        keys: tuple[str, ...],
        change: Callable[[dict[str, Any]], Mapping[str, Any]],
    ) -> None:
        """Read study user attrs ``keys``, and write ``change(stored)`` in the same
        transaction, under the study's write lock: concurrent updates (two workers adding
        test scores) are serialised, so none is lost."""
        table = o.STUDY_USER_ATTRS

        def attempt() -> None:
            with self.engine.begin() as conn:
                r.lock_study(conn, study_id)  # on SQLite a write first, so the read is locked too
                rows = conn.execute(
                    select(table.c.key, table.c.value_json).where(
                        table.c.study_id == study_id, table.c.key.in_(list(keys))
                    )
                ).all()
                new = dict(change({k: json.loads(v) for k, v in rows}))
                if not new:
                    return
                conn.execute(
                    table.delete().where(table.c.study_id == study_id, table.c.key.in_(list(new)))
                )
                conn.execute(
                    table.insert(),
                    [
                        {"study_id": study_id, "key": k, "value_json": json.dumps(v)}
                        for k, v in new.items()
                    ],
                )

        # a retry reads again: ``change`` is applied to what is stored then
        retrying("writing study attributes", attempt)

    # -- trials -------------------------------------------------------------------------------

    def add_trial(
        self,
        study_id: int,
        state: TrialState,
        params: Mapping[str, Any],
        distributions: Mapping[str, BaseDistribution],
        *,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
        budget: int | None = None,
    ) -> tuple[int, int] | None:
        """Create a WAITING or RUNNING trial with its parameters in one transaction.

        A RUNNING trial gets this worker's id and a first heartbeat. With ``budget``, the
        trial is only created if finished, running and waiting trials leave room for it, so
        any number of workers never overshoot the budget.

        Returns:
            (trial id, trial number), or ``None`` when the budget is full.
        """
        user_attrs = dict(user_attrs or {})
        if state == TrialState.RUNNING:
            user_attrs["worker"] = self.worker

        def attempt() -> tuple[int, int] | None:
            try:
                with self.engine.begin() as conn:
                    trial_id, number = r.insert_trial(
                        conn,
                        study_id,
                        state,
                        params,
                        distributions,
                        user_attrs,
                        dict(system_attrs or {}),
                    )
                    if budget is not None and r.used_budget(conn, study_id) > budget:
                        raise BudgetFull
                    if state == TrialState.RUNNING:
                        r.beat(conn, trial_id)
            except BudgetFull:
                return None
            return trial_id, number

        return retrying("claiming a trial", attempt)

    def claim_number(self, study_id: int, budget: int) -> tuple[int, int, int] | None:
        """Claim a new trial number to sample for (RUNNING, no parameters yet), within the
        budget, with its sample index, in one transaction.

        The sample index seeds the trial's sampler (see :mod:`hpstudy.strategies`): the
        smallest index that no trial of the study holds, where a trial that failed before its
        parameters were stored holds none. So a re-run after a crash draws exactly what the
        crashed attempt would have drawn (its number is used up; its index is not), and two
        workers never share an index (it is chosen under the study's lock).

        Returns:
            (trial id, trial number, sample index), or ``None`` when the budget is full.
        """

        def attempt() -> tuple[int, int, int] | None:
            with self.engine.begin() as conn:
                trial_id = r.insert_bare_running(conn, study_id)
                number, used, index = r.claim_facts(conn, study_id, trial_id)
                if used > budget:
                    conn.rollback()
                    return None
                attrs = {"worker": self.worker, "sample_index": index}
                r.insert_attrs(conn, _USER_ATTRS, trial_id, attrs)
                crash_point("claim-tx")  # the study row is locked (server databases)
                r.beat(conn, trial_id)
            return trial_id, number, index

        return retrying("claiming a trial", attempt)

    # -- batches of lookup trials (published tabular benchmarks) -------------------------------
    # A table lookup costs microseconds, so the per-transaction cost is the whole trial: these
    # claim, queue and finish many trials per transaction under the same guards as above.

    def add_waiting_trials(
        self,
        study_id: int,
        trials: list[tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]],
        distributions: Mapping[str, BaseDistribution],
    ) -> None:
        """Queue WAITING trials (params, user attrs, system attrs) in one transaction."""
        with self.engine.begin() as conn:
            numbered = r.insert_block(conn, study_id, len(trials), TrialState.WAITING)
            for (trial_id, _), (params, user, system) in zip(numbered, trials, strict=True):
                r.insert_params(conn, trial_id, params, distributions)
                r.insert_attrs(conn, _USER_ATTRS, trial_id, user)
                r.insert_attrs(conn, _SYSTEM_ATTRS, trial_id, system)

    def add_running_trials(self, study_id: int, n: int, budget: int) -> list[tuple[int, int]]:
        """Claim up to ``n`` new trial numbers as RUNNING trials without parameters, within
        ``budget`` (finished, running and waiting trials counted in the same transaction),
        each with this worker's id and a first heartbeat, in one transaction.

        Returns:
            (trial id, number) of each claimed trial, in number order (empty: budget full).
        """
        with self.engine.begin() as conn:
            r.lock_study(conn, study_id)
            room = budget - r.used_budget(conn, study_id)
            if room <= 0:
                return []
            claimed = r.insert_block(conn, study_id, min(n, room), TrialState.RUNNING)
            ids = [trial_id for trial_id, _ in claimed]
            conn.execute(
                r.INSERT_ATTRS[_USER_ATTRS.name],
                [r.attr_rows(t, {"worker": self.worker})[0] for t in ids],
            )
            r.beat_many(conn, ids)
        return claimed

    def claim_many(self, trial_ids: list[int]) -> list[int]:
        """Move WAITING trials to RUNNING in one transaction (each by an atomic UPDATE, as
        :meth:`claim`); returns the ids this worker won, in the given order."""
        with self.engine.begin() as conn:
            won = [
                t
                for t in trial_ids
                if r.move_state(conn, t, TrialState.WAITING, TrialState.RUNNING)
            ]
            if won:
                conn.execute(r.DELETE_WORKERS, {"b_trials": won})
                conn.execute(
                    r.INSERT_ATTRS[_USER_ATTRS.name],
                    [r.attr_rows(t, {"worker": self.worker})[0] for t in won],
                )
                r.beat_many(conn, won)
        return won

    def finish_many(
        self,
        trials: list[FinishedLookup],
        distributions: Mapping[str, BaseDistribution],
    ) -> list[bool]:
        """Record many RUNNING trials as COMPLETE (parameters if not stored yet, value, user
        and system attrs) in one transaction, each guarded by ``state = RUNNING``.

        Returns:
            Per trial, whether it was recorded (False: another worker declared it stale).
        """
        with self.engine.begin() as conn:
            done = [r.set_finished(conn, t.trial_id, TrialState.COMPLETE) for t in trials]
            ok = [t for t, d in zip(trials, done, strict=True) if d]
            params = [
                row
                for t in ok
                for row in r.param_rows(t.trial_id, t.new_params or {}, distributions)
            ]
            if params:
                conn.execute(r.INSERT_PARAMS, params)
            values = []
            for t in ok:
                stored, kind = o.value_to_stored(t.value)
                values.append(
                    {"trial_id": t.trial_id, "objective": 0, "value": stored, "value_type": kind}
                )
            if values:
                conn.execute(r.INSERT_VALUE, values)
            for table, attr in ((_USER_ATTRS, "user_attrs"), (_SYSTEM_ATTRS, "system_attrs")):
                rows = [row for t in ok for row in r.attr_rows(t.trial_id, getattr(t, attr))]
                if rows:
                    conn.execute(r.INSERT_ATTRS[table.name], rows)
        return done

    def set_params(
        self,
        trial_id: int,
        params: Mapping[str, Any],
        distributions: Mapping[str, BaseDistribution],
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Store the sampled parameters (and sampler system attrs) of a claimed trial."""

        def attempt() -> None:
            with self.engine.begin() as conn:
                r.replace_params(conn, trial_id, params, distributions)
                r.insert_attrs(conn, _SYSTEM_ATTRS, trial_id, system_attrs or {}, replace=True)

        retrying("storing sampled parameters", attempt)

    def claim(self, trial_id: int, study_id: int | None = None, budget: int | None = None) -> bool:
        """Move a WAITING trial to RUNNING (one atomic UPDATE); False when another worker won,
        or (with ``budget``) when finished and running trials of ``study_id`` already take
        the whole budget: a WAITING trial is never claimed beyond it, whatever other workers
        claim at the same moment (the study row is locked first on server databases)."""

        def attempt() -> bool:
            with self.engine.begin() as conn:
                if budget is not None and conn.dialect.name != "sqlite":
                    r.lock_study(conn, study_id)
                if not r.move_state(conn, trial_id, TrialState.WAITING, TrialState.RUNNING):
                    return False
                if budget is not None and r.used_budget(conn, study_id, waiting=False) > budget:
                    conn.rollback()
                    return False
                r.insert_attrs(conn, _USER_ATTRS, trial_id, {"worker": self.worker}, replace=True)
                r.beat(conn, trial_id)
            return True

        return retrying("claiming a queued trial", attempt)

    def heartbeat(self, trial_id: int) -> None:
        """Record that this worker is still running ``trial_id``."""
        with self.engine.begin() as conn:
            r.beat(conn, trial_id)

    def write_intermediate(self, trial_id: int, values: Mapping[int, float]) -> None:
        """Store new per-epoch values of a running trial (live view) in one transaction."""
        if not values:
            return

        def attempt() -> None:
            with self.engine.begin() as conn:
                r.beat(conn, trial_id)
                r.replace_intermediate(conn, trial_id, values)  # idempotent under a retry

        retrying("storing a running trial's epochs", attempt)

    def finish(
        self,
        trial_id: int,
        state: TrialState,
        value: float | None,
        *,
        intermediate: Mapping[int, float] | None = None,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a trial's outcome (and its unsaved epochs and attrs) in one transaction.

        ``intermediate`` and ``user_attrs`` must hold only steps and keys not written before;
        ``system_attrs`` may replace existing keys.

        Returns:
            False when the trial was no longer RUNNING (a live worker declared it stale):
            nothing was written.
        """
        tries = 0

        def attempt() -> bool:
            nonlocal tries
            tries += 1
            with self.engine.begin() as conn:
                if not r.set_finished(conn, trial_id, state):
                    # After a failed attempt the commit may have landed with only its
                    # acknowledgement lost: then the trial is finished by this very worker.
                    return tries > 1 and r.finished_by(conn, trial_id, state, self.worker)
                crash_point("finish-tx")  # the trial row is locked, nothing committed
                r.insert_intermediate(conn, trial_id, intermediate or {})
                r.insert_attrs(conn, _USER_ATTRS, trial_id, user_attrs or {})
                r.insert_attrs(conn, _SYSTEM_ATTRS, trial_id, system_attrs or {}, replace=True)
                if value is not None:
                    r.insert_value(conn, trial_id, value)
            return True

        return retrying("storing a trial's result", attempt)

    def fail_and_requeue(
        self,
        study_id: int,
        trial_id: int,
        trial: FrozenTrial,
        reason: str,
        *,
        intermediate: Mapping[int, float] | None = None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Fail a RUNNING trial that says nothing about its configuration and queue a WAITING
        copy of it, in one transaction, so its configuration is neither lost nor run twice.

        ``reason`` starts with ``interrupted`` (a signal: never charged to the configuration)
        or ``stale`` (its worker died or stopped beating). The failure never counts toward
        the budget. Not re-queued: a trial without parameters (its worker died between
        claiming its number and storing what it sampled; a new number is sampled instead),
        and a configuration whose worker died :data:`MAX_CRASHES` times running it
        (``gave up: ...``, shown by ``hpstudy status``).

        Returns:
            The copy's number, or ``None`` when nothing was queued (see above, or the trial
            was not RUNNING any more).
        """
        assert reason.startswith(UNCOUNTED_REASONS)
        retries = int(trial.user_attrs.get("retries", 0))
        crashes = int(trial.user_attrs.get("crashes", 0)) + reason.startswith("stale")
        requeue = True
        if not trial.params:
            reason = f"{reason} (before its parameters were stored: not re-run, not counted)"
            requeue = False
        elif crashes >= MAX_CRASHES:
            reason = f"gave up: its worker process died {crashes} times running this configuration (last: {reason})"
            requeue = False
        attrs = {"fail_reason": reason, **(user_attrs or {})}
        copy_attrs: dict[str, Any] = {
            "retry_of": trial.number,
            "retries": retries + 1,
            "crashes": crashes,
        }
        if "manual_index" in trial.user_attrs:
            copy_attrs["manual_index"] = trial.user_attrs["manual_index"]
        system = {
            k: v for k, v in trial.system_attrs.items() if not k.startswith("completed_rung_")
        }

        def attempt() -> int | None:
            with self.engine.begin() as conn:
                if not r.set_finished(conn, trial_id, TrialState.FAIL):
                    return None
                r.insert_intermediate(conn, trial_id, intermediate or {})
                r.insert_attrs(conn, _USER_ATTRS, trial_id, attrs, replace=True)
                if not requeue:
                    return None
                _, number = r.insert_trial(
                    conn,
                    study_id,
                    TrialState.WAITING,
                    trial.params,
                    trial.distributions,
                    copy_attrs,
                    system,
                )
            return number

        return retrying("re-queuing an interrupted trial", attempt)


@dataclass(frozen=True)
class FinishedLookup:
    """A lookup trial's outcome, for :meth:`TrialWriter.finish_many`.

    ``new_params`` are the parameters sampled for a trial claimed without them (``None`` for
    a claimed WAITING trial, whose parameters are stored); ``system_attrs`` are new keys only.
    """

    trial_id: int
    value: float
    user_attrs: Mapping[str, Any]
    system_attrs: Mapping[str, Any]
    new_params: Mapping[str, Any] | None = None
