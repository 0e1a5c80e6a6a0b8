"""Open Optuna storage (SQLite set up for several processes) and read trials cheaply."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from hpstudy._errors import StorageError, UsageError, too_many_connections
from hpstudy._faults import start_barrier
from hpstudy._redact import redact_text, redact_url

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent first opens are not serialised there
    fcntl = None  # type: ignore[assignment]
from hpstudy.store import _optuna as o
from hpstudy.store._optuna import check_versions, rdb_backend, wrap_rdb

DEFAULT_STORAGE = "sqlite:///storage/hpstudy.db"
ENV_STORAGE = "HPSTUDY_STORAGE"
# SQLite waits this long for a lock instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 60


def resolve_storage_url(url: str | None) -> str:
    """``--storage`` if given, else ``$HPSTUDY_STORAGE``, else the default SQLite file.

    A plain file path (``storage/x.db``, ``my.db``, ``/data/x.db``: no ``scheme:`` in front)
    is a SQLite file: ``sqlite:///`` + the path.
    """
    url = url or os.environ.get(ENV_STORAGE) or DEFAULT_STORAGE
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", url):
        return "sqlite:///" + url
    return url


EXPECTED_FORMS = (
    "a SQLite file (sqlite:///path.db, or just path.db) or a database server "
    "(postgresql://user@host/db, mysql+pymysql://user@host/db)"
)


def _check_url(url: str) -> None:
    """Refuse a URL SQLAlchemy cannot parse or whose scheme names no database, saying the
    expected forms (before anything tries to connect)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UsageError(
            f"--storage {redact_url(url)} is not a storage URL; expected {EXPECTED_FORMS}"
        ) from None
    try:
        dialect()
    except NoSuchModuleError:
        scheme = url.split(":", 1)[0]
        hint = "; for PostgreSQL write postgresql://" if scheme == "postgres" else ""
        raise UsageError(
            f"--storage {redact_url(url)}: {scheme!r} is not a database scheme{hint}; "
            f"expected {EXPECTED_FORMS}"
        ) from None
    except ImportError:
        pass  # a known database without its driver: said when the storage is opened


def read_only_reason(url: str) -> str | None:
    """Why the SQLite file of ``url`` cannot be written here, or ``None`` (not SQLite, not
    there yet, or writable). SQLite needs to write the file and, for its journal, the folder."""
    path = _sqlite_path(url)
    if path is None or not path.exists():
        return None
    if not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    if not os.access(path.parent, os.W_OK):
        return f"its folder {path.parent} is read-only"
    return None


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in ("sqlite:///:memory:", "sqlite://"):
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def open_storage(url: str, *, create: bool = True, write: bool | None = None) -> BaseStorage:
    """Open (and with ``create``, initialise) the storage at ``url``.

    SQLite files get WAL journaling (readers such as optuna-dashboard never block the writer)
    and a long busy timeout. ``create=False`` refuses a SQLite file that does not exist, so
    read-only commands never leave empty databases behind. A SQLite file that cannot be
    written here (its mode, or its folder's) is opened read-only when ``write`` is false
    (default: ``create``), and refused with the reason and the fix when it is true.

    Raises:
        UsageError: The URL is not one (a bogus scheme): the message says the expected forms.
        StorageError: Its driver is missing, the database refuses, or a command that writes
            was given a read-only SQLite file.
    """
    check_versions()
    _check_url(url)
    start_barrier("open")
    path = _sqlite_path(url)
    engine_kwargs: dict[str, Any] = {}
    read_only = read_only_reason(url)
    if read_only is not None:
        if create if write is None else write:
            raise StorageError(
                f"storage {redact_url(url)} is read-only ({read_only}) and this command writes "
                "to it; make the file and its folder writable, or copy the file to a writable "
                "folder and pass --storage COPY.db"
            )
        assert path is not None
        return _open_read_only(url, path)
    if path is not None:
        if not path.exists():
            if not create:
                raise StorageError(
                    f"no storage at {redact_url(url)} (file {path} does not exist); run 'hpstudy create' first or pass --storage"
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create the folder of {redact_url(url)}: {e}") from e
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        engine_kwargs["connect_args"] = _server_connect_args(url)
    with _schema_lock(path):
        rdb = _open_rdb(url, path, engine_kwargs)
    if path is not None:
        from sqlalchemy import event

        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; no fsync per commit
            cur.close()

        event.listen(rdb.engine, "connect", _pragmas)
        rdb.engine.dispose()  # reconnect so every pooled connection has the pragmas
    return wrap_rdb(rdb)


def _server_connect_args(url: str) -> dict[str, Any]:
    """psycopg (PostgreSQL) without server-side prepared statements: behind PgBouncer in
    transaction mode each transaction may run on another server connection, where a statement
    psycopg prepared (after 5 runs of the same query, by default) does not exist ("prepared
    statement "_pg3_0" does not exist"). hpstudy's few statements per trial gain little from
    preparing, so it is off for every PostgreSQL connection (measured: docs/benchmarks.md)."""
    from sqlalchemy.engine import make_url

    try:
        dialect = make_url(url).get_dialect()
    except Exception:  # said when the storage is opened
        return {}
    return {"prepare_threshold": None} if dialect.driver == "psycopg" else {}


def _open_read_only(url: str, path: Path) -> BaseStorage:
    """A read-only SQLite file (``mode=ro``). In a read-only folder SQLite cannot make its
    shared-memory file: with no write-ahead log left beside the file (a cleanly closed
    database), ``immutable=1`` reads it (nothing can be writing it there either); with one,
    plain ``mode=ro`` reads the log too (``immutable`` would silently ignore it)."""
    from urllib.parse import quote

    wal = Path(f"{path}-wal")
    no_log = not wal.exists() or wal.stat().st_size == 0
    immutable = no_log and not os.access(path.parent, os.W_OK)
    flags = "mode=ro" + ("&immutable=1" if immutable else "")
    ro_url = f"sqlite:///file:{quote(str(path.resolve()))}?{flags}&uri=true"
    try:
        rdb = RDBStorage(ro_url, skip_table_creation=True)
    except Exception as e:
        detail = redact_text(" ".join(str(e).split()), url)
        raise StorageError(
            f"cannot read the read-only SQLite storage {redact_url(url)}: {type(e).__name__}: {detail}"
        ) from e
    return wrap_rdb(rdb)


@contextlib.contextmanager
def _schema_lock(path: Path | None) -> Iterator[None]:
    """Serialise opening (and so creating the schema of) a SQLite file among processes.

    Optuna creates its tables with check-then-create; two processes opening a new file at
    once both see no table and one fails with "table studies already exists". An exclusive
    ``flock`` on the file's folder (not on the database file: closing another descriptor of
    it would drop SQLite's own POSIX locks) makes the second wait for the first.
    """
    if path is None or fcntl is None:
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_rdb(url: str, path: Path | None, engine_kwargs: dict[str, Any]) -> RDBStorage:
    if path is not None:
        try:
            with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it once
                conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open SQLite storage {redact_url(url)}: {e}") from e
    try:
        rdb = RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=True)
        _check_schema_version(rdb, url)
        return rdb
    except StorageError:
        raise
    except ImportError as e:
        raise StorageError(
            f"the database driver for {url.split(':')[0]} is not installed ({e}); for PostgreSQL: pip install 'psycopg[binary]'"
        ) from e
    except Exception as e:  # SQLAlchemy raises many kinds for a bad URL or an unreachable server
        crowded = too_many_connections(e)
        if crowded is not None:
            raise StorageError(redact_text(crowded, url)) from e
        detail = redact_text(" ".join(str(e).split()), url)  # one line, whatever it printed
        raise StorageError(
            f"cannot open storage {redact_url(url)}: {type(e).__name__}: {detail}; check the URL and that the server is running"
        ) from e


def _check_schema_version(rdb: RDBStorage, url: str) -> None:
    """Optuna's own schema check, one connection at a time.

    Optuna's check keeps a session (and its transaction) open while it opens a second
    connection. Behind PgBouncer in transaction mode with N server connections, N workers
    opening at once (a job array starting) could each hold one and wait for another until
    PgBouncer's query_wait_timeout; and each process needed two connection slots just to open.
    """
    current, head = rdb.get_current_version(), rdb.get_head_version()
    if current == head:
        return
    if current in rdb.get_all_versions():
        fix = f"upgrade it: optuna storage upgrade --storage {redact_url(url)}"
    else:
        fix = "it was made by a newer optuna: install the tested versions (pip install -c constraints.txt -e .)"
    raise StorageError(
        f"storage {redact_url(url)} has Optuna's table schema {current}, this optuna reads {head}; {fix}"
    )


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value))


class TrialReader:
    """Cheap reads of a stored study's trials.

    Args:
        storage: A storage from :func:`open_storage` (or any Optuna storage).
    """

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage
        self._rdb = rdb_backend(storage)

    def poll(self, study_id: int) -> list[tuple[int, int, TrialState]]:
        """(trial id, number, state) of every trial: one small query on RDB storages."""
        if self._rdb is None:
            trials = self.storage.get_all_trials(study_id, deepcopy=False)
            return [(o.trial_id(t), t.number, t.state) for t in trials]
        from sqlalchemy import select

        table = o.TRIALS
        query = select(table.c.trial_id, table.c.number, table.c.state).where(
            table.c.study_id == study_id
        )
        with self._rdb.engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(query)]  # state: a TrialState

    def running_health(self, study_id: int) -> list[tuple[int, str | None, float | None]]:
        """(trial id, worker id, seconds since its last heartbeat) of RUNNING trials.

        Heartbeats are written and compared in one clock: the database's own, in UTC
        (:func:`db_utc_now`), so neither machines' clocks nor sessions' time zones (``PGTZ``)
        need to agree.
        """
        if self._rdb is None:
            return []
        from sqlalchemy import and_, select

        trials, beats, attrs = o.TRIALS, o.HEARTBEATS, o.USER_ATTRS
        query = (
            select(trials.c.trial_id, attrs.c.value_json, beats.c.heartbeat)
            .select_from(
                trials.outerjoin(beats, beats.c.trial_id == trials.c.trial_id).outerjoin(
                    attrs, and_(attrs.c.trial_id == trials.c.trial_id, attrs.c.key == "worker")
                )
            )
            .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING)
        )
        with self._rdb.engine.connect() as conn:
            now = conn.execute(select(db_utc_now(conn.dialect.name))).scalar_one()
            rows = conn.execute(query).all()
        now = _naive(now)
        out = []
        for trial_id, worker, beat in rows:
            age = None if beat is None else (now - _naive(beat)).total_seconds()
            out.append((trial_id, None if worker is None else json.loads(worker), age))
        return out

    def fetch(self, study_id: int, trial_ids: set[int] | None) -> list[FrozenTrial]:
        """The full trials ``trial_ids`` (``None``: all of the study) with params, values,
        attrs and intermediate values, ordered by number.

        On RDB storages: six plain queries, the rows Optuna's ORM loader reads (which costs
        ~6 ms for a single trial on SQLite against ~1 ms here), built into the same
        FrozenTrials.
        """
        if trial_ids is not None and not trial_ids:
            return []
        if self._rdb is None:
            if trial_ids is None:
                return self.storage.get_all_trials(study_id)
            return [self.storage.get_trial(t) for t in trial_ids]
        from optuna.distributions import json_to_distribution
        from sqlalchemy import select

        tables = {
            "trials": o.TRIALS,
            "values": o.VALUES,
            "params": o.PARAMS,
            "user": o.USER_ATTRS,
            "system": o.SYSTEM_ATTRS,
            "steps": o.STEPS,
        }
        trials_table = tables["trials"]
        ids: Any = (
            select(trials_table.c.trial_id).where(trials_table.c.study_id == study_id)
            if trial_ids is None
            else sorted(trial_ids)
        )
        with self._rdb.engine.connect() as conn:
            rows = {
                name: conn.execute(select(t).where(t.c.trial_id.in_(ids))).mappings().all()
                for name, t in tables.items()
            }
        by_id: dict[int, dict[str, Any]] = {}
        for r in rows["trials"]:
            by_id[r["trial_id"]] = {
                "row": r, "values": {}, "params": [], "user": {}, "system": {}, "steps": {},
            }  # fmt: skip
        for r in rows["values"]:
            by_id[r["trial_id"]]["values"][r["objective"]] = o.stored_to_value(
                r["value"], r["value_type"]
            )
        for r in sorted(rows["params"], key=lambda r: r["param_id"]):
            by_id[r["trial_id"]]["params"].append(r)
        for kind in ("user", "system"):
            for r in rows[kind]:
                by_id[r["trial_id"]][kind][r["key"]] = json.loads(r["value_json"])
        for r in rows["steps"]:
            by_id[r["trial_id"]]["steps"][r["step"]] = o.stored_to_step(
                r["intermediate_value"], r["intermediate_value_type"]
            )
        trials = []
        for trial_id, d in by_id.items():
            row = d["row"]
            if row["study_id"] != study_id:
                continue
            dists = {
                p["param_name"]: json_to_distribution(p["distribution_json"]) for p in d["params"]
            }
            values = [d["values"][k] for k in sorted(d["values"])] if d["values"] else None
            trials.append(
                FrozenTrial(
                    number=row["number"],
                    state=row["state"],
                    value=None,
                    values=values,
                    datetime_start=_local_time(row["datetime_start"]),
                    datetime_complete=_local_time(row["datetime_complete"]),
                    params={
                        p["param_name"]: dists[p["param_name"]].to_external_repr(p["param_value"])
                        for p in d["params"]
                    },
                    distributions=dists,
                    user_attrs=d["user"],
                    system_attrs=d["system"],
                    intermediate_values=d["steps"],
                    trial_id=trial_id,
                )
            )
        return sorted(trials, key=lambda t: t.number)


def db_utc_now(dialect: str) -> Any:
    """The database's current time as a naive UTC timestamp, whatever the session's zone.

    PostgreSQL's ``now()`` is a ``timestamptz``: stored into Optuna's ``timestamp`` column it
    becomes the *session's* local time, so a worker with ``PGTZ=Asia/Tokyo`` wrote heartbeats
    9 hours "old". ``timezone('UTC', now())`` is UTC in every session; SQLite's
    ``CURRENT_TIMESTAMP`` is UTC already.
    """
    from sqlalchemy import func

    if dialect == "postgresql":
        return func.timezone("UTC", func.now())
    if dialect in ("mysql", "mariadb"):
        return func.utc_timestamp()
    return func.current_timestamp()


def _naive(moment: Any) -> datetime:
    if isinstance(moment, str):  # SQLite hands back text for an expression
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


def _local_time(utc: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and hands out naive local time."""
    return None if utc is None else utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)
