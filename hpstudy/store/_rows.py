"""The rows of a trial, written with SQLAlchemy Core statements built once.

Building a Core statement (``update(table).where(...)``) and computing its cache key costs
about 80 microseconds of Python each time, three to four times what executing it costs on
SQLite; a trial's claim, parameters and finish ran about twenty of them. The statements here
are built once, with bound parameters, and reused (SQLAlchemy memoises a statement's cache
key and compiled form). The rows are exactly those Optuna writes (see :mod:`._optuna`).
``TrialReader``'s statements are built the same way, in :mod:`._storage`; commands that only
read never import this module (``hpstudy.store`` imports the writer on first use).

Every function takes a connection inside a transaction the caller owns (see
:mod:`._writer`); none commits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.trial import TrialState
from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Executable

from hpstudy.store import _optuna as o
from hpstudy.store._storage import db_utc_now
from hpstudy.store._studies import UNCOUNTED_REASONS

TRIALS = o.TRIALS
USER_ATTRS = o.USER_ATTRS
SYSTEM_ATTRS = o.SYSTEM_ATTRS
HEARTBEATS = o.HEARTBEATS
_T = TRIALS.c

# -- statements built once (bound parameter names differ from column names: SQLAlchemy
# reserves those for the VALUES and SET clauses) -------------------------------------------

INSERT_TRIAL = insert(TRIALS)
INSERT_PARAMS = insert(o.PARAMS)
INSERT_VALUE = insert(o.VALUES)
INSERT_STEPS = insert(o.STEPS)
INSERT_HEARTBEAT = insert(HEARTBEATS)
INSERT_ATTRS = {USER_ATTRS.name: insert(USER_ATTRS), SYSTEM_ATTRS.name: insert(SYSTEM_ATTRS)}
DELETE_ATTRS = {  # one key a row of parameters (an expanding IN is rendered each time)
    table.name: table.delete().where(
        table.c.trial_id == bindparam("b_trial"), table.c.key == bindparam("b_key")
    )
    for table in (USER_ATTRS, SYSTEM_ATTRS)
}
DELETE_WORKERS = USER_ATTRS.delete().where(
    USER_ATTRS.c.trial_id.in_(bindparam("b_trials", expanding=True)), USER_ATTRS.c.key == "worker"
)
DELETE_PARAMS = o.PARAMS.delete().where(o.PARAMS.c.trial_id == bindparam("b_trial"))
DELETE_STEPS = o.STEPS.delete().where(
    o.STEPS.c.trial_id == bindparam("b_trial"),
    o.STEPS.c.step.in_(bindparam("b_steps", expanding=True)),
)
NUMBER_OF = select(func.count(_T.trial_id)).where(
    _T.study_id == bindparam("b_study"), _T.trial_id < bindparam("b_trial")
)
SET_NUMBER = (
    update(TRIALS).where(_T.trial_id == bindparam("b_trial")).values(number=bindparam("b_number"))
)
COUNT_TRIALS = select(func.count(_T.trial_id)).where(_T.study_id == bindparam("b_study"))
NUMBERED_FROM = select(_T.trial_id, _T.number).where(
    _T.study_id == bindparam("b_study"), _T.number >= bindparam("b_number")
)
# A state change guarded by the state the trial must still be in (the claim and the finish).
MOVE_STATE = {
    column: update(TRIALS)
    .where(_T.trial_id == bindparam("b_trial"), _T.state == bindparam("b_from"))
    .values({"state": bindparam("b_to"), column: bindparam("b_when")})
    for column in ("datetime_start", "datetime_complete")
}
STATE_OF = select(_T.state).where(_T.trial_id == bindparam("b_trial"))
ATTRS_OF = select(USER_ATTRS.c.key, USER_ATTRS.c.value_json).where(
    USER_ATTRS.c.trial_id == bindparam("b_trial"),
    USER_ATTRS.c.key.in_(bindparam("b_keys", expanding=True)),
)
_STUDY = o.STUDIES.c
# SQLite: a write first (a no-op update of the study row) takes the write lock at once.
LOCK_STUDY_SQLITE = (
    update(o.STUDIES)
    .where(_STUDY.study_id == bindparam("b_study"))
    .values(study_name=_STUDY.study_name)
)
LOCK_STUDY_SERVER = (
    select(_STUDY.study_id).where(_STUDY.study_id == bindparam("b_study")).with_for_update()
)


def _used_budget_query(waiting: bool) -> Select[Any]:
    requeued = exists().where(
        USER_ATTRS.c.trial_id == _T.trial_id,
        USER_ATTRS.c.key == "fail_reason",
        or_(*(USER_ATTRS.c.value_json.like(f'"{r}%') for r in UNCOUNTED_REASONS)),
    )
    # Equalities rather than IN (...): a list in IN is rendered again at every execution.
    others = _T.state != TrialState.FAIL
    if not waiting:
        others = and_(others, _T.state != TrialState.WAITING)
    counted = or_(others, and_(_T.state == TrialState.FAIL, ~requeued))
    return select(func.count(_T.trial_id)).where(_T.study_id == bindparam("b_study"), counted)


USED_BUDGET = {waiting: _used_budget_query(waiting) for waiting in (True, False)}

# -- sample indexes (see TrialWriter.claim_number) ---------------------------------------------

_HAS_PARAMS = exists().where(o.PARAMS.c.trial_id == _T.trial_id)
_INDEX = USER_ATTRS.alias("sample_index")
_RETRY = USER_ATTRS.alias("retry_of")
# The index a trial holds (NULL: none): its sample_index; or, stored before sample indexes
# existed, its number if it was sampled (has parameters, not a re-run); nothing if it failed
# before its parameters were stored.
_HELD = case(
    (and_(_T.state == TrialState.FAIL, ~_HAS_PARAMS), null()),
    (_INDEX.c.value_json.is_not(None), cast(_INDEX.c.value_json, Integer)),
    (and_(_HAS_PARAMS, _RETRY.c.trial_id.is_(None)), _T.number),
    else_=None,
)
_HELD_FROM = TRIALS.outerjoin(
    _INDEX, and_(_INDEX.c.trial_id == _T.trial_id, _INDEX.c.key == "sample_index")
).outerjoin(_RETRY, and_(_RETRY.c.trial_id == _T.trial_id, _RETRY.c.key == "retry_of"))
HELD_SUMMARY = (
    select(func.count(distinct(_HELD)), func.max(_HELD))
    .select_from(_HELD_FROM)
    .where(_T.study_id == bindparam("b_study"))
)
_HELD_ROW = HELD_SUMMARY.subquery()
# For a trial just inserted without a number (claim_number), in one round trip: its number,
# the study's used budget (the new trial included) and the held sample indexes' summary.
CLAIM_FACTS = select(
    NUMBER_OF.scalar_subquery(), USED_BUDGET[True].scalar_subquery(), *_HELD_ROW.c
).select_from(_HELD_ROW)
HELD_ALL = (
    select(_HELD).distinct().select_from(_HELD_FROM).where(_T.study_id == bindparam("b_study"))
)


@cache
def _beat_statements(dialect: str) -> tuple[Executable, Executable, Executable]:
    """Heartbeat statements in the database's own clock (see :func:`db_utc_now`)."""
    now = db_utc_now(dialect)
    refresh = (
        update(HEARTBEATS)
        .where(HEARTBEATS.c.trial_id == bindparam("b_trial"))
        .values(heartbeat=now)
    )
    first = insert(HEARTBEATS).values(trial_id=bindparam("b_trial"), heartbeat=now)
    many = insert(HEARTBEATS).from_select(
        ["trial_id", "heartbeat"],
        select(_T.trial_id, now).where(_T.trial_id.in_(bindparam("b_trials", expanding=True))),
    )
    return refresh, first, many


DELETE_HEARTBEATS = HEARTBEATS.delete().where(
    HEARTBEATS.c.trial_id.in_(bindparam("b_trials", expanding=True))
)


def utc(moment: datetime | None) -> datetime | None:
    """Optuna's RDB schema stores naive UTC datetimes."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def lock_study(conn: Any, study_id: int | None) -> None:
    """Take the lock that serialises trial creation in a study, as the transaction's first
    statement: the study row (as Optuna does) on a server; on SQLite a write (a no-op
    update of the study row), so SQLite takes its write lock now and waits for it."""
    if conn.dialect.name == "sqlite":
        conn.execute(LOCK_STUDY_SQLITE, {"b_study": study_id})
    else:
        conn.execute(LOCK_STUDY_SERVER, {"b_study": study_id})


def insert_block(conn: Any, study_id: int, n: int, state: TrialState) -> list[tuple[int, int]]:
    """Insert ``n`` trials of ``state`` numbered after the study's last one (the caller holds
    the study's lock: :func:`lock_study`); returns their (trial id, number)."""
    if n <= 0:
        return []
    lock_study(conn, study_id)  # idempotent within a transaction
    first = conn.execute(COUNT_TRIALS, {"b_study": study_id}).scalar_one()
    start = utc(datetime.now()) if state == TrialState.RUNNING else None
    conn.execute(
        INSERT_TRIAL,
        [
            {"study_id": study_id, "number": first + k, "state": state, "datetime_start": start}
            for k in range(n)
        ],
    )
    rows = conn.execute(NUMBERED_FROM, {"b_study": study_id, "b_number": first}).all()
    return sorted(((int(t), int(n_)) for t, n_ in rows), key=lambda r: r[1])


def beat(conn: Any, trial_id: int) -> None:
    """This worker's heartbeat for ``trial_id`` now, in the database's clock."""
    refresh, first, _ = _beat_statements(conn.dialect.name)
    if conn.execute(refresh, {"b_trial": trial_id}).rowcount == 0:
        conn.execute(first, {"b_trial": trial_id})


def beat_many(conn: Any, trial_ids: list[int]) -> None:
    """First heartbeats of trials just claimed (none of them has a heartbeat row yet, or a
    stale one from an earlier run, which is replaced)."""
    _, _, many = _beat_statements(conn.dialect.name)
    conn.execute(DELETE_HEARTBEATS, {"b_trials": trial_ids})
    conn.execute(many, {"b_trials": trial_ids})


def insert_bare_running(conn: Any, study_id: int) -> int:
    """Insert a RUNNING trial without a number (set by :func:`claim_facts`); its id."""
    if conn.dialect.name != "sqlite":  # SQLite serialises writers by itself
        lock_study(conn, study_id)  # as Optuna does: distinct numbers under concurrency
    key = conn.execute(
        INSERT_TRIAL,
        {
            "study_id": study_id,
            "number": None,
            "state": TrialState.RUNNING,
            "datetime_start": utc(datetime.now()),
        },
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def claim_facts(conn: Any, study_id: int, trial_id: int) -> tuple[int, int, int]:
    """Number the trial just inserted by :func:`insert_bare_running` and return (its number,
    the study's used budget with it, the free sample index): one query and one update."""
    number, used, n_held, top = conn.execute(
        CLAIM_FACTS, {"b_study": study_id, "b_trial": trial_id}
    ).one()
    conn.execute(SET_NUMBER, {"b_trial": trial_id, "b_number": number})
    return int(number), int(used), _free_index(conn, study_id, n_held, top)


def insert_trial(
    conn: Any,
    study_id: int,
    state: TrialState,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
) -> tuple[int, int]:
    """Insert a trial with its parameters and attrs, numbered as Optuna numbers trials (the
    count of the study's trials with a smaller id). Returns (trial id, number)."""
    # Optuna's create_new_trial(template) costs two queries per parameter and a read-back;
    # these are the same rows in a few batched statements.
    if conn.dialect.name != "sqlite":  # SQLite serialises writers by itself
        # Lock the study row, as Optuna does, so concurrent workers get distinct numbers.
        lock_study(conn, study_id)
    start = utc(datetime.now()) if state == TrialState.RUNNING else None
    key = conn.execute(
        INSERT_TRIAL,
        {"study_id": study_id, "number": None, "state": state, "datetime_start": start},
    ).inserted_primary_key
    assert key is not None
    trial_id = int(key[0])
    insert_params(conn, trial_id, params, distributions)
    insert_attrs(conn, USER_ATTRS, trial_id, user_attrs)
    insert_attrs(conn, SYSTEM_ATTRS, trial_id, system_attrs)
    number = conn.execute(NUMBER_OF, {"b_study": study_id, "b_trial": trial_id}).scalar_one()
    conn.execute(SET_NUMBER, {"b_trial": trial_id, "b_number": number})
    return trial_id, int(number)


def param_rows(
    trial_id: int, params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution]
) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": trial_id,
            "param_name": name,
            "param_value": distributions[name].to_internal_repr(value),
            "distribution_json": distribution_to_json(distributions[name]),
        }
        for name, value in params.items()
    ]


def insert_params(
    conn: Any,
    trial_id: int,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
) -> None:
    if params:
        conn.execute(INSERT_PARAMS, param_rows(trial_id, params, distributions))


def replace_params(
    conn: Any,
    trial_id: int,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
) -> None:
    """Idempotent: a retry after a lost commit acknowledgement rewrites the same rows."""
    conn.execute(DELETE_PARAMS, {"b_trial": trial_id})
    insert_params(conn, trial_id, params, distributions)


def free_sample_index(conn: Any, study_id: int) -> int:
    """The smallest sample index no trial of the study holds (see ``claim_number``).

    A trial holds its ``sample_index`` unless it failed before its parameters were stored.
    A sampled trial stored before sample indexes existed (no ``sample_index``, not a re-run)
    was seeded from its number: it holds its number, so a resumed old study never redraws it.

    One row comes back when the held indexes are 0..max without a gap (always, unless a
    trial failed before its parameters were stored and its index is still free); otherwise
    the held indexes are read to find the gap.
    """
    n_held, top = conn.execute(HELD_SUMMARY, {"b_study": study_id}).one()
    return _free_index(conn, study_id, n_held, top)


def _free_index(conn: Any, study_id: int, n_held: int, top: int | None) -> int:
    if top is None:
        return 0
    if n_held == top + 1:
        return int(top) + 1
    held = {int(i) for (i,) in conn.execute(HELD_ALL, {"b_study": study_id}) if i is not None}
    return next(i for i in range(len(held) + 1) if i not in held)


def finished_by(conn: Any, trial_id: int, state: TrialState, worker: str) -> bool:
    """Whether ``trial_id`` is in ``state`` as this worker left it: claimed by ``worker`` and
    not failed by someone else's recovery (which writes an uncounted reason)."""
    if conn.execute(STATE_OF, {"b_trial": trial_id}).scalar() != state:
        return False
    attrs = dict(
        conn.execute(ATTRS_OF, {"b_trial": trial_id, "b_keys": ["worker", "fail_reason"]}).all()
    )
    reason = json.loads(attrs.get("fail_reason", '""'))
    return attrs.get("worker") == json.dumps(worker) and not reason.startswith(UNCOUNTED_REASONS)


def used_budget(conn: Any, study_id: int | None, waiting: bool = True) -> int:
    """Trials that are or will be finished and counted: all but failures that say nothing
    about their configuration (interrupted, stale, given up); WAITING ones too unless
    ``waiting`` is false."""
    return int(conn.execute(USED_BUDGET[waiting], {"b_study": study_id}).scalar_one())


def move_state(conn: Any, trial_id: int, old: TrialState, new: TrialState) -> bool:
    """Move ``trial_id`` from ``old`` to ``new`` (one atomic UPDATE; the start or end time
    with it); whether it was still ``old``."""
    column = "datetime_start" if new == TrialState.RUNNING else "datetime_complete"
    done = conn.execute(
        MOVE_STATE[column],
        {"b_trial": trial_id, "b_from": old, "b_to": new, "b_when": utc(datetime.now())},
    )
    return bool(done.rowcount == 1)


def set_finished(conn: Any, trial_id: int, state: TrialState) -> bool:
    return move_state(conn, trial_id, TrialState.RUNNING, state)


def attr_rows(trial_id: int, attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
    ]


def insert_attrs(
    conn: Any, table: Any, trial_id: int, attrs: Mapping[str, Any], replace: bool = False
) -> None:
    if not attrs:
        return
    if replace:
        conn.execute(DELETE_ATTRS[table.name], [{"b_trial": trial_id, "b_key": k} for k in attrs])
    conn.execute(INSERT_ATTRS[table.name], attr_rows(trial_id, attrs))


def insert_value(conn: Any, trial_id: int, value: float) -> None:
    stored, kind = o.value_to_stored(value)
    conn.execute(
        INSERT_VALUE, {"trial_id": trial_id, "objective": 0, "value": stored, "value_type": kind}
    )


def insert_intermediate(conn: Any, trial_id: int, values: Mapping[int, float]) -> None:
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
    conn.execute(INSERT_STEPS, rows)


def replace_intermediate(conn: Any, trial_id: int, values: Mapping[int, float]) -> None:
    """Idempotent under a retry: the steps are deleted first."""
    if not values:
        return
    conn.execute(DELETE_STEPS, {"b_trial": trial_id, "b_steps": list(values)})
    insert_intermediate(conn, trial_id, values)
