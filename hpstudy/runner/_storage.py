"""Open Optuna storage and write trials in as few round trips as possible.

Every Optuna storage call is one transaction; on SQLite each costs milliseconds of SQLAlchemy
CPU time (see docs/architecture.md). A trial here therefore touches storage twice: once to
claim it (RUNNING, with its parameters, in one transaction) and once to finish it (value,
state, intermediate values and user attrs, in one transaction), plus a live flush of
intermediate values every few seconds for long trials. RDB storages get the batched fast path;
any other storage gets the same effect through Optuna's public per-call API.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from hpstudy._errors import StorageError

DEFAULT_STORAGE = "sqlite:///storage/hpstudy.db"
ENV_STORAGE = "HPSTUDY_STORAGE"
# SQLite waits this long for a lock instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 60


def resolve_storage_url(url: str | None) -> str:
    """``--storage`` if given, else ``$HPSTUDY_STORAGE``, else the default SQLite file."""
    return url or os.environ.get(ENV_STORAGE) or DEFAULT_STORAGE


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in ("sqlite:///:memory:", "sqlite://"):
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def open_storage(url: str, *, create: bool = True) -> BaseStorage:
    """Open (and with ``create``, initialise) the storage at ``url``.

    SQLite files get WAL journaling (readers such as optuna-dashboard never block the writer)
    and a long busy timeout. ``create=False`` refuses a SQLite file that does not exist, so
    read-only commands never leave empty databases behind.

    Raises:
        StorageError: The URL is malformed, its driver is missing or the database refuses.
    """
    path = _sqlite_path(url)
    engine_kwargs: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            if not create:
                raise StorageError(
                    f"no storage at {url} (file {path} does not exist); run 'hpstudy create' first or pass --storage"
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create the folder of {url}: {e}") from e
        try:
            with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it once
                conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open SQLite storage {url}: {e}") from e
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    try:
        rdb = RDBStorage(url, engine_kwargs=engine_kwargs)
    except ImportError as e:
        raise StorageError(
            f"the database driver for {url.split(':')[0]} is not installed ({e}); for PostgreSQL: pip install 'psycopg[binary]'"
        ) from e
    except Exception as e:  # SQLAlchemy raises many kinds for a bad URL or an unreachable server
        detail = " ".join(str(e).split())  # one line, whatever the driver printed
        raise StorageError(
            f"cannot open storage {url}: {type(e).__name__}: {detail}; check the URL and that the server is running"
        ) from e
    if path is not None:
        from sqlalchemy import event

        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; no fsync per commit
            cur.close()

        event.listen(rdb.engine, "connect", _pragmas)
        rdb.engine.dispose()  # reconnect so every pooled connection has the pragmas
    return optuna.storages.get_storage(rdb)


def _rdb(storage: BaseStorage) -> RDBStorage | None:
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value))


class TrialReader:
    """Cheap reads of a stored study's trials.

    Args:
        storage: A storage from :func:`open_storage` (or any Optuna storage).
    """

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage
        self._rdb = _rdb(storage)

    def poll(self, study_id: int) -> list[tuple[int, int, TrialState]]:
        """(trial id, number, state) of every trial: one small query on RDB storages."""
        if self._rdb is None:
            trials = self.storage.get_all_trials(study_id, deepcopy=False)
            return [(t._trial_id, t.number, t.state) for t in trials]
        from optuna.storages._rdb import models
        from sqlalchemy import select

        table = models.TrialModel.__table__
        query = select(table.c.trial_id, table.c.number, table.c.state).where(
            table.c.study_id == study_id
        )
        with self._rdb.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]  # state: a TrialState

    def fetch(self, study_id: int, trial_ids: set[int]) -> list[FrozenTrial]:
        """The full trials ``trial_ids`` (params, values, attrs, intermediate values)."""
        if self._rdb is None:
            return [self.storage.get_trial(t) for t in trial_ids]
        return self._rdb._get_trials(study_id, None, set(trial_ids), max(trial_ids))


class TrialWriter:
    """Batched trial and study writes over any Optuna storage.

    Args:
        storage: A storage from :func:`open_storage` (or any Optuna storage).
    """

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage
        self._rdb = _rdb(storage)

    def set_study_user_attrs(self, study_id: int, attrs: Mapping[str, Any]) -> None:
        """Write several study user attrs in one transaction."""
        if self._rdb is None:
            for key, value in attrs.items():
                self.storage.set_study_user_attr(study_id, key, value)
            return
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(self._rdb.scoped_session) as session:
            for key, value in attrs.items():
                session.add(
                    models.StudyUserAttributeModel(
                        study_id=study_id, key=key, value_json=json.dumps(value)
                    )
                )

    def add_trial(
        self,
        study_id: int,
        state: TrialState,
        params: Mapping[str, Any],
        distributions: Mapping[str, BaseDistribution],
        *,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Create a WAITING or RUNNING trial with its parameters in one transaction.

        Returns:
            (trial id, trial number).
        """
        user_attrs = dict(_json_safe(dict(user_attrs or {})))
        system_attrs = dict(_json_safe(dict(system_attrs or {})))
        start = datetime.now() if state == TrialState.RUNNING else None
        if self._rdb is None:
            template = FrozenTrial(
                number=-1, state=state, value=None, values=None, datetime_start=start,
                datetime_complete=None, params=dict(params), distributions=dict(distributions),
                user_attrs=user_attrs, system_attrs=system_attrs, intermediate_values={}, trial_id=-1,
            )  # fmt: skip
            trial_id = self.storage.create_new_trial(study_id, template_trial=template)
            return trial_id, self.storage.get_trial(trial_id).number
        # Optuna's create_new_trial(template) costs two queries per parameter (it re-checks the
        # distribution against earlier trials; ours come from one validated study file) and a
        # read-back. This writes the same rows with a few batched Core statements.
        from optuna.distributions import distribution_to_json
        from optuna.storages._rdb import models
        from sqlalchemy import func, insert, select, update

        trials = models.TrialModel.__table__
        with self._rdb.engine.begin() as conn:
            if conn.dialect.name != "sqlite":  # SQLite serialises writers by itself
                # Lock the study row, as Optuna does, so concurrent workers get distinct numbers.
                studies = models.StudyModel.__table__
                conn.execute(
                    select(studies.c.study_id)
                    .where(studies.c.study_id == study_id)
                    .with_for_update()
                )
            key = conn.execute(
                insert(trials).values(
                    study_id=study_id, number=None, state=state, datetime_start=_utc(start)
                )
            ).inserted_primary_key
            assert key is not None
            trial_id = key[0]
            if params:
                conn.execute(
                    insert(models.TrialParamModel.__table__),
                    [
                        {
                            "trial_id": trial_id,
                            "param_name": name,
                            "param_value": distributions[name].to_internal_repr(value),
                            "distribution_json": distribution_to_json(distributions[name]),
                        }
                        for name, value in params.items()
                    ],
                )
            _insert_attrs(conn, models.TrialUserAttributeModel.__table__, trial_id, user_attrs)
            _insert_attrs(conn, models.TrialSystemAttributeModel.__table__, trial_id, system_attrs)
            number = conn.execute(
                select(func.count(trials.c.trial_id)).where(
                    trials.c.study_id == study_id, trials.c.trial_id < trial_id
                )
            ).scalar_one()
            conn.execute(update(trials).where(trials.c.trial_id == trial_id).values(number=number))
        return int(trial_id), int(number)

    def claim(self, trial_id: int) -> bool:
        """Move a WAITING trial to RUNNING; False when another worker took it first."""
        try:
            return self.storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def write_intermediate(self, trial_id: int, values: Mapping[int, float]) -> None:
        """Store new per-epoch values of a running trial (live view) in one transaction."""
        if not values:
            return
        if self._rdb is None:
            for step, value in values.items():
                self.storage.set_trial_intermediate_value(trial_id, step, value)
            return
        with self._rdb.engine.begin() as conn:
            _insert_intermediate(conn, trial_id, values)

    def finish(
        self,
        trial_id: int,
        state: TrialState,
        value: float | None,
        *,
        intermediate: Mapping[int, float] | None = None,
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a trial's outcome (and its unsaved epochs and attrs) in one transaction.

        ``intermediate`` and ``user_attrs`` must hold only steps and keys not written before
        (they are inserted, not upserted); ``system_attrs`` may update existing keys.
        """
        intermediate = intermediate or {}
        user_attrs = _json_safe(dict(user_attrs or {}))
        system_attrs = _json_safe(dict(system_attrs or {}))
        if self._rdb is None:
            for step, v in intermediate.items():
                self.storage.set_trial_intermediate_value(trial_id, step, v)
            for key, v in user_attrs.items():
                self.storage.set_trial_user_attr(trial_id, key, v)
            for key, v in system_attrs.items():
                self.storage.set_trial_system_attr(trial_id, key, v)
            self.storage.set_trial_state_values(
                trial_id, state, None if value is None else [value]
            )
            return
        from optuna.storages._rdb import models
        from sqlalchemy import insert, update

        trials = models.TrialModel.__table__
        with self._rdb.engine.begin() as conn:
            done = conn.execute(
                update(trials)
                .where(trials.c.trial_id == trial_id, trials.c.state == TrialState.RUNNING)
                .values(state=state, datetime_complete=_utc(datetime.now()))
            )
            if done.rowcount != 1:
                raise optuna.exceptions.UpdateFinishedTrialError(
                    f"trial {trial_id} is no longer RUNNING; its result was not stored"
                )
            _insert_intermediate(conn, trial_id, intermediate)
            _insert_attrs(conn, models.TrialUserAttributeModel.__table__, trial_id, user_attrs)
            if system_attrs:  # rare (pruner rung scores, which may update a key): replace
                table = models.TrialSystemAttributeModel.__table__
                conn.execute(
                    table.delete().where(
                        table.c.trial_id == trial_id, table.c.key.in_(list(system_attrs))
                    )
                )
                _insert_attrs(conn, table, trial_id, system_attrs)
            if value is not None:
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                conn.execute(
                    insert(models.TrialValueModel.__table__).values(
                        trial_id=trial_id, objective=0, value=stored, value_type=kind
                    )
                )


def _utc(moment: datetime | None) -> datetime | None:
    """Optuna's RDB schema stores naive UTC datetimes."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _insert_attrs(conn: Any, table: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
    if attrs:
        rows = [
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
        ]
        conn.execute(table.insert(), rows)


def _insert_intermediate(conn: Any, trial_id: int, values: Mapping[int, float]) -> None:
    if not values:
        return
    from optuna.storages._rdb import models

    model = models.TrialIntermediateValueModel
    rows = []
    for step, v in values.items():
        stored, kind = model.intermediate_value_to_stored_repr(float(v))
        rows.append(
            {
                "trial_id": trial_id,
                "step": int(step),
                "intermediate_value": stored,
                "intermediate_value_type": kind,
            }
        )
    conn.execute(model.__table__.insert(), rows)
