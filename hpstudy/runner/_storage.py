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
from datetime import datetime
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
        raise StorageError(
            f"cannot open storage {url}: {type(e).__name__}: {str(e).splitlines()[0]}"
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


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value))


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
    ) -> FrozenTrial:
        """Create a WAITING or RUNNING trial with its parameters in one transaction."""
        template = FrozenTrial(
            number=-1,
            state=state,
            value=None,
            values=None,
            datetime_start=datetime.now() if state == TrialState.RUNNING else None,
            datetime_complete=None,
            params=dict(params),
            distributions=dict(distributions),
            user_attrs=_json_safe(dict(user_attrs or {})),
            system_attrs=_json_safe(dict(system_attrs or {})),
            intermediate_values={},
            trial_id=-1,
        )
        trial_id = self.storage.create_new_trial(study_id, template_trial=template)
        return self.storage.get_trial(trial_id)

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
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(self._rdb.scoped_session) as session:
            self._insert_intermediate(session, trial_id, values)

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

        ``intermediate`` must hold only steps not written before.
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
        from optuna.storages._rdb.storage import _create_scoped_session

        rdb = self._rdb
        with _create_scoped_session(rdb.scoped_session) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            rdb.check_trial_is_updatable(trial_id, trial.state)  # type: ignore[arg-type]  # ORM column
            self._insert_intermediate(session, trial_id, intermediate)
            for model, attrs in (
                (models.TrialUserAttributeModel, user_attrs),
                (models.TrialSystemAttributeModel, system_attrs),
            ):
                for key, v in attrs.items():
                    rdb._set_trial_attr_without_commit(session, model, trial_id, key, v)
            if value is not None:
                rdb._set_trial_value_without_commit(session, trial, 0, value)
            trial.state = state
            trial.datetime_complete = datetime.now()

    @staticmethod
    def _insert_intermediate(session: Any, trial_id: int, values: Mapping[int, float]) -> None:
        from optuna.storages._rdb import models

        to_repr = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
        for step, v in values.items():
            stored, kind = to_repr(float(v))
            session.add(
                models.TrialIntermediateValueModel(
                    trial_id=trial_id,
                    step=int(step),
                    intermediate_value=stored,
                    intermediate_value_type=kind,
                )
            )
