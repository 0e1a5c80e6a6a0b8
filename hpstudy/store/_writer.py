"""Write trials to an RDB storage in as few round trips as possible, safely under concurrency.

Every Optuna storage call is one transaction; on SQLite each costs milliseconds of SQLAlchemy
CPU time (see docs/architecture.md). A trial here touches storage twice: once to claim it
(RUNNING, with its parameters and first heartbeat, in one transaction) and once to finish it
(value, state, intermediate values and user attrs, in one transaction). Every transaction
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
from datetime import UTC, datetime
from typing import Any

from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import and_, exists, func, insert, or_, select, update

from hpstudy._errors import StorageError
from hpstudy._faults import crash_point
from hpstudy.store import _optuna as o
from hpstudy.store._identity import worker_id
from hpstudy.store._retry import retrying
from hpstudy.store._storage import db_utc_now
from hpstudy.store._studies import UNCOUNTED_REASONS

# A configuration whose worker process died this many times while running it is given up
# (it most likely kills its process: out of memory, a crash in native code). Interrupts never
# count toward this cap, and a given-up configuration never counts toward the budget.
MAX_CRASHES = 3
_TRIALS = o.TRIALS
_USER_ATTRS = o.USER_ATTRS
_SYSTEM_ATTRS = o.SYSTEM_ATTRS
_HEARTBEATS = o.HEARTBEATS


def _utc(moment: datetime | None) -> datetime | None:
    """Optuna's RDB schema stores naive UTC datetimes."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


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
        """Write (or replace) several study user attrs in one transaction."""
        table = o.STUDY_USER_ATTRS

        def attempt() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    table.delete().where(
                        table.c.study_id == study_id, table.c.key.in_(list(attrs))
                    )
                )
                conn.execute(
                    table.insert(),
                    [
                        {"study_id": study_id, "key": k, "value_json": json.dumps(v)}
                        for k, v in attrs.items()
                    ],
                )

        retrying("writing study attributes", attempt)

    def update_study_user_attrs(
        self,
        study_id: int,
        keys: tuple[str, ...],
        change: Callable[[dict[str, Any]], Mapping[str, Any]],
    ) -> None:
        """Read study user attrs ``keys``, and write ``change(stored)`` in the same
        transaction, under the study's write lock: concurrent updates (two workers adding
        test scores) are serialised, so none is lost."""
        table, studies = o.STUDY_USER_ATTRS, o.STUDIES
        with self.engine.begin() as conn:
            lock = select(studies.c.study_id).where(studies.c.study_id == study_id)
            if conn.dialect.name == "sqlite":
                # a write first, so SQLite takes its write lock before the read
                conn.execute(
                    update(studies)
                    .where(studies.c.study_id == study_id)
                    .values(study_name=studies.c.study_name)
                )
            else:
                conn.execute(lock.with_for_update())
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
                    trial_id, number = _insert_trial(
                        conn,
                        study_id,
                        state,
                        params,
                        distributions,
                        user_attrs,
                        dict(system_attrs or {}),
                    )
                    if budget is not None and _used_budget(conn, study_id) > budget:
                        raise BudgetFull
                    if state == TrialState.RUNNING:
                        _beat(conn, trial_id)
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
        attrs = {"worker": self.worker}

        def attempt() -> tuple[int, int, int] | None:
            with self.engine.begin() as conn:
                trial_id, number = _insert_trial(
                    conn, study_id, TrialState.RUNNING, {}, {}, attrs, {}
                )
                if _used_budget(conn, study_id) > budget:
                    conn.rollback()
                    return None
                index = _free_sample_index(conn, study_id)
                _insert_attrs(conn, _USER_ATTRS, trial_id, {"sample_index": index})
                crash_point("claim-tx")  # the study row is locked (server databases)
                _beat(conn, trial_id)
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
            numbered = _insert_block(conn, study_id, len(trials), TrialState.WAITING)
            for (trial_id, _), (params, user, system) in zip(numbered, trials, strict=True):
                _insert_params(conn, trial_id, params, distributions)
                _insert_attrs(conn, _USER_ATTRS, trial_id, user)
                _insert_attrs(conn, _SYSTEM_ATTRS, trial_id, system)

    def add_running_trials(self, study_id: int, n: int, budget: int) -> list[tuple[int, int]]:
        """Claim up to ``n`` new trial numbers as RUNNING trials without parameters, within
        ``budget`` (finished, running and waiting trials counted in the same transaction),
        each with this worker's id and a first heartbeat, in one transaction.

        Returns:
            (trial id, number) of each claimed trial, in number order (empty: budget full).
        """
        with self.engine.begin() as conn:
            _lock_study(conn, study_id)
            room = budget - _used_budget(conn, study_id)
            if room <= 0:
                return []
            claimed = _insert_block(conn, study_id, min(n, room), TrialState.RUNNING)
            ids = [trial_id for trial_id, _ in claimed]
            conn.execute(
                _USER_ATTRS.insert(),
                [
                    {"trial_id": t, "key": "worker", "value_json": json.dumps(self.worker)}
                    for t in ids
                ],
            )
            _beat_many(conn, ids)
        return claimed

    def claim_many(self, trial_ids: list[int]) -> list[int]:
        """Move WAITING trials to RUNNING in one transaction (each by an atomic UPDATE, as
        :meth:`claim`); returns the ids this worker won, in the given order."""
        won = []
        with self.engine.begin() as conn:
            now = _utc(datetime.now())
            for trial_id in trial_ids:
                done = conn.execute(
                    update(_TRIALS)
                    .where(_TRIALS.c.trial_id == trial_id, _TRIALS.c.state == TrialState.WAITING)
                    .values(state=TrialState.RUNNING, datetime_start=now)
                )
                if done.rowcount == 1:
                    won.append(trial_id)
            if won:
                conn.execute(
                    _USER_ATTRS.delete().where(
                        _USER_ATTRS.c.trial_id.in_(won), _USER_ATTRS.c.key == "worker"
                    )
                )
                conn.execute(
                    _USER_ATTRS.insert(),
                    [
                        {"trial_id": t, "key": "worker", "value_json": json.dumps(self.worker)}
                        for t in won
                    ],
                )
                _beat_many(conn, won)
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
        done = []
        with self.engine.begin() as conn:
            now = _utc(datetime.now())
            for t in trials:
                row = conn.execute(
                    update(_TRIALS)
                    .where(_TRIALS.c.trial_id == t.trial_id, _TRIALS.c.state == TrialState.RUNNING)
                    .values(state=TrialState.COMPLETE, datetime_complete=now)
                )
                done.append(row.rowcount == 1)
            ok = [t for t, d in zip(trials, done, strict=True) if d]
            params = [
                {
                    "trial_id": t.trial_id,
                    "param_name": name,
                    "param_value": distributions[name].to_internal_repr(value),
                    "distribution_json": distribution_to_json(distributions[name]),
                }
                for t in ok
                for name, value in (t.new_params or {}).items()
            ]
            if params:
                conn.execute(insert(o.PARAMS), params)
            values = []
            for t in ok:
                stored, kind = o.value_to_stored(t.value)
                values.append(
                    {"trial_id": t.trial_id, "objective": 0, "value": stored, "value_type": kind}
                )
            if values:
                conn.execute(insert(o.VALUES), values)
            for table, attr in ((_USER_ATTRS, "user_attrs"), (_SYSTEM_ATTRS, "system_attrs")):
                rows = [
                    {"trial_id": t.trial_id, "key": k, "value_json": json.dumps(v)}
                    for t in ok
                    for k, v in getattr(t, attr).items()
                ]
                if rows:
                    conn.execute(table.insert(), rows)
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
                # Idempotent: a retry after a lost commit acknowledgement rewrites the same rows.
                conn.execute(o.PARAMS.delete().where(o.PARAMS.c.trial_id == trial_id))
                _insert_params(conn, trial_id, params, distributions)
                _insert_attrs(conn, _SYSTEM_ATTRS, trial_id, system_attrs or {}, replace=True)

        retrying("storing sampled parameters", attempt)

    def claim(self, trial_id: int, study_id: int | None = None, budget: int | None = None) -> bool:
        """Move a WAITING trial to RUNNING (one atomic UPDATE); False when another worker won,
        or (with ``budget``) when finished and running trials of ``study_id`` already take
        the whole budget: a WAITING trial is never claimed beyond it, whatever other workers
        claim at the same moment (the study row is locked first on server databases)."""

        def attempt() -> bool:
            with self.engine.begin() as conn:
                if budget is not None and conn.dialect.name != "sqlite":
                    _lock_study(conn, study_id)
                done = conn.execute(
                    update(_TRIALS)
                    .where(_TRIALS.c.trial_id == trial_id, _TRIALS.c.state == TrialState.WAITING)
                    .values(state=TrialState.RUNNING, datetime_start=_utc(datetime.now()))
                )
                if done.rowcount != 1:
                    return False
                if budget is not None and _used_budget(conn, study_id, waiting=False) > budget:
                    conn.rollback()
                    return False
                _insert_attrs(conn, _USER_ATTRS, trial_id, {"worker": self.worker}, replace=True)
                _beat(conn, trial_id)
            return True

        return retrying("claiming a queued trial", attempt)

    def heartbeat(self, trial_id: int) -> None:
        """Record that this worker is still running ``trial_id``."""
        with self.engine.begin() as conn:
            _beat(conn, trial_id)

    def write_intermediate(self, trial_id: int, values: Mapping[int, float]) -> None:
        """Store new per-epoch values of a running trial (live view) in one transaction."""
        if not values:
            return

        def attempt() -> None:
            with self.engine.begin() as conn:
                _beat(conn, trial_id)
                steps = o.STEPS
                conn.execute(  # idempotent under a retry
                    steps.delete().where(
                        steps.c.trial_id == trial_id, steps.c.step.in_(list(values))
                    )
                )
                _insert_intermediate(conn, trial_id, values)

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
                if not _set_finished(conn, trial_id, state):
                    # After a failed attempt the commit may have landed with only its
                    # acknowledgement lost: then the trial is finished by this very worker.
                    return tries > 1 and _finished_by(conn, trial_id, state, self.worker)
                crash_point("finish-tx")  # the trial row is locked, nothing committed
                _insert_intermediate(conn, trial_id, intermediate or {})
                _insert_attrs(conn, _USER_ATTRS, trial_id, user_attrs or {})
                _insert_attrs(conn, _SYSTEM_ATTRS, trial_id, system_attrs or {}, replace=True)
                if value is not None:
                    stored, kind = o.value_to_stored(value)
                    conn.execute(
                        insert(o.VALUES).values(
                            trial_id=trial_id, objective=0, value=stored, value_type=kind
                        )
                    )
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
                if not _set_finished(conn, trial_id, TrialState.FAIL):
                    return None
                _insert_intermediate(conn, trial_id, intermediate or {})
                _insert_attrs(conn, _USER_ATTRS, trial_id, attrs, replace=True)
                if not requeue:
                    return None
                _, number = _insert_trial(
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


def _lock_study(conn: Any, study_id: int | None) -> None:
    """Take the lock that serialises trial creation in a study, as the transaction's first
    statement: the study row (as Optuna does) on a server; on SQLite a write (a no-op
    update of the study row), so SQLite takes its write lock now and waits for it."""
    studies = o.STUDIES
    if conn.dialect.name == "sqlite":
        conn.execute(
            update(studies)
            .where(studies.c.study_id == study_id)
            .values(study_name=studies.c.study_name)
        )
    else:
        conn.execute(
            select(studies.c.study_id).where(studies.c.study_id == study_id).with_for_update()
        )


def _insert_block(conn: Any, study_id: int, n: int, state: TrialState) -> list[tuple[int, int]]:
    """Insert ``n`` trials of ``state`` numbered after the study's last one (the caller holds
    the study's lock: :func:`_lock_study`); returns their (trial id, number)."""
    if n <= 0:
        return []
    _lock_study(conn, study_id)  # idempotent within a transaction
    first = conn.execute(
        select(func.count(_TRIALS.c.trial_id)).where(_TRIALS.c.study_id == study_id)
    ).scalar_one()
    start = _utc(datetime.now()) if state == TrialState.RUNNING else None
    conn.execute(
        insert(_TRIALS),
        [
            {"study_id": study_id, "number": first + k, "state": state, "datetime_start": start}
            for k in range(n)
        ],
    )
    rows = conn.execute(
        select(_TRIALS.c.trial_id, _TRIALS.c.number).where(
            _TRIALS.c.study_id == study_id, _TRIALS.c.number >= first
        )
    ).all()
    return sorted(((int(t), int(n_)) for t, n_ in rows), key=lambda r: r[1])


def _beat_many(conn: Any, trial_ids: list[int]) -> None:
    """First heartbeats of trials just claimed (none of them has a heartbeat row yet, or a
    stale one from an earlier run, which is replaced)."""
    conn.execute(_HEARTBEATS.delete().where(_HEARTBEATS.c.trial_id.in_(trial_ids)))
    now = db_utc_now(conn.dialect.name)  # the database's clock, as _beat
    conn.execute(
        insert(_HEARTBEATS).from_select(
            ["trial_id", "heartbeat"],
            select(_TRIALS.c.trial_id, now).where(_TRIALS.c.trial_id.in_(trial_ids)),
        )
    )


def _insert_trial(
    conn: Any,
    study_id: int,
    state: TrialState,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
) -> tuple[int, int]:
    # Optuna's create_new_trial(template) costs two queries per parameter and a read-back;
    # these are the same rows in a few batched statements.
    if conn.dialect.name != "sqlite":  # SQLite serialises writers by itself
        # Lock the study row, as Optuna does, so concurrent workers get distinct numbers.
        _lock_study(conn, study_id)
    start = _utc(datetime.now()) if state == TrialState.RUNNING else None
    key = conn.execute(
        insert(_TRIALS).values(study_id=study_id, number=None, state=state, datetime_start=start)
    ).inserted_primary_key
    assert key is not None
    trial_id = int(key[0])
    _insert_params(conn, trial_id, params, distributions)
    _insert_attrs(conn, _USER_ATTRS, trial_id, user_attrs)
    _insert_attrs(conn, _SYSTEM_ATTRS, trial_id, system_attrs)
    number = conn.execute(
        select(func.count(_TRIALS.c.trial_id)).where(
            _TRIALS.c.study_id == study_id, _TRIALS.c.trial_id < trial_id
        )
    ).scalar_one()
    conn.execute(update(_TRIALS).where(_TRIALS.c.trial_id == trial_id).values(number=number))
    return trial_id, int(number)


def _insert_params(
    conn: Any,
    trial_id: int,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
) -> None:
    if params:
        rows = [
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": distributions[name].to_internal_repr(value),
                "distribution_json": distribution_to_json(distributions[name]),
            }
            for name, value in params.items()
        ]
        conn.execute(insert(o.PARAMS), rows)


def _free_sample_index(conn: Any, study_id: int) -> int:
    """The smallest sample index no trial of the study holds (see ``claim_number``).

    A trial holds its ``sample_index`` unless it failed before its parameters were stored.
    A sampled trial stored before sample indexes existed (no ``sample_index``, not a re-run)
    was seeded from its number: it holds its number, so a resumed old study never redraws it.
    """
    has_params = exists().where(o.PARAMS.c.trial_id == _TRIALS.c.trial_id)
    trials = conn.execute(
        select(_TRIALS.c.trial_id, _TRIALS.c.number, _TRIALS.c.state, has_params).where(
            _TRIALS.c.study_id == study_id
        )
    ).all()
    attrs: dict[int, dict[str, Any]] = {}
    for trial_id, key, value in conn.execute(
        select(_USER_ATTRS.c.trial_id, _USER_ATTRS.c.key, _USER_ATTRS.c.value_json)
        .join(_TRIALS, _TRIALS.c.trial_id == _USER_ATTRS.c.trial_id)
        .where(
            _TRIALS.c.study_id == study_id,
            _USER_ATTRS.c.key.in_(["sample_index", "retry_of"]),
        )
    ):
        attrs.setdefault(trial_id, {})[key] = json.loads(value)
    held = set()
    for trial_id, number, state, params in trials:
        mine = attrs.get(trial_id, {})
        if state == TrialState.FAIL and not params:
            continue
        if "sample_index" in mine:
            held.add(int(mine["sample_index"]))
        elif params and "retry_of" not in mine:
            held.add(int(number))
    return next(i for i in range(len(held) + 1) if i not in held)


def _finished_by(conn: Any, trial_id: int, state: TrialState, worker: str) -> bool:
    """Whether ``trial_id`` is in ``state`` as this worker left it: claimed by ``worker`` and
    not failed by someone else's recovery (which writes an uncounted reason)."""
    if (
        conn.execute(select(_TRIALS.c.state).where(_TRIALS.c.trial_id == trial_id)).scalar()
        != state
    ):
        return False
    attrs = dict(
        conn.execute(
            select(_USER_ATTRS.c.key, _USER_ATTRS.c.value_json).where(
                _USER_ATTRS.c.trial_id == trial_id,
                _USER_ATTRS.c.key.in_(["worker", "fail_reason"]),
            )
        ).all()
    )
    reason = json.loads(attrs.get("fail_reason", '""'))
    return attrs.get("worker") == json.dumps(worker) and not reason.startswith(UNCOUNTED_REASONS)


def _used_budget(conn: Any, study_id: int | None, waiting: bool = True) -> int:
    """Trials that are or will be finished and counted: all but failures that say nothing
    about their configuration (interrupted, stale, given up); WAITING ones too unless
    ``waiting`` is false."""
    requeued = exists().where(
        _USER_ATTRS.c.trial_id == _TRIALS.c.trial_id,
        _USER_ATTRS.c.key == "fail_reason",
        or_(*(_USER_ATTRS.c.value_json.like(f'"{r}%') for r in UNCOUNTED_REASONS)),
    )
    counted = or_(
        _TRIALS.c.state.in_(
            [TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED]
            + ([TrialState.WAITING] if waiting else [])
        ),
        and_(_TRIALS.c.state == TrialState.FAIL, ~requeued),
    )
    query = select(func.count(_TRIALS.c.trial_id)).where(_TRIALS.c.study_id == study_id, counted)
    return int(conn.execute(query).scalar_one())


def _set_finished(conn: Any, trial_id: int, state: TrialState) -> bool:
    done = conn.execute(
        update(_TRIALS)
        .where(_TRIALS.c.trial_id == trial_id, _TRIALS.c.state == TrialState.RUNNING)
        .values(state=state, datetime_complete=_utc(datetime.now()))
    )
    return bool(done.rowcount == 1)


def _beat(conn: Any, trial_id: int) -> None:
    now = db_utc_now(conn.dialect.name)  # one clock for every worker (see TrialReader)
    done = conn.execute(
        update(_HEARTBEATS).where(_HEARTBEATS.c.trial_id == trial_id).values(heartbeat=now)
    )
    if done.rowcount == 0:
        conn.execute(insert(_HEARTBEATS).values(trial_id=trial_id, heartbeat=now))


def _insert_attrs(
    conn: Any, table: Any, trial_id: int, attrs: Mapping[str, Any], replace: bool = False
) -> None:
    if not attrs:
        return
    if replace:
        conn.execute(
            table.delete().where(table.c.trial_id == trial_id, table.c.key.in_(list(attrs)))
        )
    rows = [
        {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
    ]
    conn.execute(table.insert(), rows)


def _insert_intermediate(conn: Any, trial_id: int, values: Mapping[int, float]) -> None:
    if not values:
        return
    rows = []
    for step, v in values.items():
        stored, kind = o.step_to_stored(float(v))
        rows.append(
            {
                "trial_id": trial_id,
                "step": int(step),
                "intermediate_value": stored,
                "intermediate_value_type": kind,
            }
        )
    conn.execute(o.STEPS.insert(), rows)
