"""Open Optuna storage (SQLite set up for several processes) and read trials cheaply."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from hpstudy._errors import StorageError, UsageError, too_many_connections
from hpstudy._faults import start_barrier
from hpstudy._redact import redact_text, redact_url
from hpstudy.store._retry import retrying

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent first opens are not serialised there
    fcntl = None  # type: ignore[assignment]
from hpstudy.store import _optuna as o
from hpstudy.store._optuna import check_versions, rdb_backend, wrap_rdb

_logger = logging.getLogger("hpstudy")

DEFAULT_STORAGE = "sqlite:///storage/hpstudy.db"
ENV_STORAGE = "HPSTUDY_STORAGE"
# SQLite waits this long for a lock instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 60
# PostgreSQL: no lock wait and no idle transaction lasts forever. A worker frozen inside a
# write transaction (SIGSTOP, a suspended laptop, a partition) holds the study row; the server
# ends its session after the idle limit, so the others wait that long at most, and any other
# lock wait ends (and is retried) after the lock limit. Seconds; 0 turns a limit off.
ENV_PG_IDLE = "HPSTUDY_PG_IDLE_IN_TRANSACTION_TIMEOUT"
ENV_PG_LOCK = "HPSTUDY_PG_LOCK_TIMEOUT"
# File systems whose locking SQLite cannot rely on (several processes corrupt the file).
NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "afs", "9p", "fuse.sshfs")
MOUNTS = "/proc/self/mounts"


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
        _warn_network_file_system(path)
    else:
        engine_kwargs["pool_pre_ping"] = True  # a connection the server dropped is replaced
        engine_kwargs["connect_args"] = _server_connect_args(url)
    with _schema_lock(url, path):
        rdb = _open_rdb(url, path, engine_kwargs)
    if rdb.engine.dialect.name == "postgresql":
        _bound_waits(rdb.engine)
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


def _seconds(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


def _bound_waits(engine: Any) -> None:
    """Every PostgreSQL session of ``engine`` gets ``idle_in_transaction_session_timeout`` and
    ``lock_timeout`` (set per connection, so they also hold behind PgBouncer, which refuses
    startup options). The lock limit is longer than the idle one: a worker waiting behind a
    frozen one is freed by the server ending the frozen session, not by giving up."""
    from sqlalchemy import event

    idle_ms = int(_seconds(ENV_PG_IDLE, 30) * 1000)
    lock_ms = int(_seconds(ENV_PG_LOCK, 60) * 1000)

    def _limits(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")
        cur.execute(f"SET lock_timeout = {lock_ms}")
        cur.close()
        dbapi_conn.commit()

    event.listen(engine, "connect", _limits)
    # psycopg runs executemany in pipeline mode, and after it the server does not arm the idle
    # limit: a worker frozen right after one (the claim's attrs, a trial's epochs) held its
    # locks for ever, checked by hand on PostgreSQL 15 with psycopg 3.3. So inserts of many
    # rows go as one multi-row INSERT (SQLAlchemy's "insertmanyvalues", one round trip as
    # before), and any other executemany is followed by one empty statement that re-arms it.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    event.listen(engine, "after_cursor_execute", _rearm_idle_limit)
    engine.dispose()  # reconnect so every pooled connection has the limits


def _rearm_idle_limit(
    conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool
) -> None:
    if executemany and statement.lstrip()[:6].upper() != "INSERT":
        conn.connection.dbapi_connection.execute("SELECT 1")  # its own cursor: rowcount kept


def _warn_network_file_system(path: Path) -> None:
    """Warn when the SQLite file lies on a network file system: its locking is unreliable
    there (SQLite's own documentation), so several workers can corrupt the database."""
    fs = file_system_type(path)
    if fs is not None and (fs in NETWORK_FILE_SYSTEMS or fs.startswith(("nfs", "smb"))):
        _logger.warning(
            "the SQLite storage %s is on a network file system (%s), where file locking is "
            "unreliable: several processes can corrupt it; keep the file on a local disk, "
            "or use PostgreSQL (--storage postgresql://user@host/db) to share a study "
            "between machines",
            path,
            fs,
        )


def file_system_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system ``path`` (or its nearest existing folder) lies on, from
    the mount table (``/proc/self/mounts``); ``None`` where there is none (not Linux)."""
    try:
        text = Path(mounts or MOUNTS).read_text()
    except OSError:
        return None
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if (target == point or point in target.parents) and (
            best is None or len(str(point)) > best[0]
        ):
            best = (len(str(point)), fields[2])
    return None if best is None else best[1]


@contextlib.contextmanager
def _schema_lock(url: str, path: Path | None) -> Iterator[None]:
    """Serialise opening (and so creating the schema of) a storage among processes.

    Optuna creates its tables with check-then-create; two processes opening a new database
    at once both see no table and one fails ("table studies already exists", or on
    PostgreSQL a unique violation in its catalogue). For a SQLite file an exclusive ``flock``
    on the file's folder (not on the database file: closing another descriptor of it would
    drop SQLite's own POSIX locks) makes the second wait for the first; on PostgreSQL a
    transaction advisory lock does (transaction-level, so it also holds behind PgBouncer in
    transaction mode, where a session lock could be taken and released on two different
    server connections), held only while the schema is created on that one connection.
    """
    if path is not None:
        with _folder_lock(path):
            yield
        return
    if not url.startswith(("postgresql", "postgres")):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=_server_connect_args(url))
        conn = engine.connect()
    except Exception:  # unreachable or no driver: opening says so, with the fix
        yield
        return
    try:
        # The schema is created here, under the lock, on this one connection, then committed
        # (which releases the lock) before Optuna opens the storage: opening then creates
        # nothing, and never holds two connections at once (behind a small transaction pool,
        # workers holding one each and waiting for a second would wait for one another).
        with conn.begin():
            conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("hpstudy schema")}
            )
            o.create_schema(conn)
    except Exception:  # no permission to create, or a broken server: opening says so
        pass
    finally:
        conn.close()
        engine.dispose()
    yield


@contextlib.contextmanager
def _folder_lock(path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` (stable across processes)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# How long create/resume wait for another one queuing the same experiment.
PLAN_LOCK_WAIT_S = 600.0


@contextlib.contextmanager
def experiment_lock(storage: BaseStorage, experiment: str) -> Iterator[None]:
    """Hold the experiment's planning lock: one ``create`` or ``resume`` at a time creates
    its studies, writes their attrs and queues their grid points and manual configurations,
    so two started at the same moment never queue a configuration twice (each judges what is
    missing only once the other is done). PostgreSQL: a transaction advisory lock in a
    transaction of its own connection, exempt from the idle-transaction limit (released when
    it ends or the process dies; transaction-level, so it also holds behind PgBouncer in
    transaction mode); MySQL: ``GET_LOCK``; a SQLite file: ``flock`` on its folder. Workers
    (claims, results) never take it."""
    backend = rdb_backend(storage)
    if backend is None:
        yield
        return
    engine = backend.engine
    dialect = engine.dialect.name
    if dialect == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with _folder_lock(Path(database)):
            yield
        return
    from sqlalchemy import text

    key = _lock_key(f"hpstudy experiment {experiment}")
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            take = text("SELECT pg_try_advisory_xact_lock(:k)").bindparams(k=key)
            free = None  # released when the transaction ends (leaving this block)
        elif dialect in ("mysql", "mariadb"):
            take = text("SELECT GET_LOCK(:n, 0)").bindparams(n=f"hpstudy:{key}")
            free = text("SELECT RELEASE_LOCK(:n)").bindparams(n=f"hpstudy:{key}")
        else:
            yield
            return
        deadline = time.monotonic() + PLAN_LOCK_WAIT_S
        said = False
        while not conn.execute(take).scalar():
            if time.monotonic() > deadline:
                raise StorageError(
                    f"another create or resume of experiment {experiment!r} has been queuing "
                    f"its studies for {PLAN_LOCK_WAIT_S:.0f} s; wait for it, or stop it and run "
                    f"'hpstudy resume {experiment}'"
                )
            if not said:
                _logger.info("waiting for another create or resume of %s to finish", experiment)
                said = True
            time.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a lost connection has released it already
                if free is not None:
                    conn.execute(free)
                conn.rollback()


def _open_rdb(url: str, path: Path | None, engine_kwargs: dict[str, Any]) -> RDBStorage:
    if path is not None:
        try:
            with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it once
                conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as e:
            damaged = damaged_database(e, url)
            raise StorageError(
                damaged or f"cannot open SQLite storage {redact_url(url)}: {e}"
            ) from e
    try:
        rdb, at_head = o.make_rdb(url, engine_kwargs)
        if not at_head:
            _check_schema_version(rdb, url)
        return rdb
    except StorageError:
        raise
    except ImportError as e:
        raise StorageError(
            f"the database driver for {url.split(':')[0]} is not installed ({e}); for PostgreSQL: pip install 'psycopg[binary]'"
        ) from e
    except Exception as e:  # SQLAlchemy raises many kinds for a bad URL or an unreachable server
        damaged = damaged_database(e, url)
        if damaged is not None:
            raise StorageError(damaged) from e
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
        query = _reads().poll
        engine = self._rdb.engine

        def attempt() -> list[tuple[int, int, TrialState]]:
            with engine.connect() as conn:
                # state: a TrialState
                return [(r[0], r[1], r[2]) for r in conn.execute(query, {"b_study": study_id})]

        return retrying("reading trial states", attempt)

    def running_health(self, study_id: int) -> list[tuple[int, str | None, float | None]]:
        """(trial id, worker id, seconds since its last heartbeat) of RUNNING trials.

        Heartbeats are written and compared in one clock: the database's own, in UTC
        (:func:`db_utc_now`), so neither machines' clocks nor sessions' time zones (``PGTZ``)
        need to agree.
        """
        if self._rdb is None:
            return []
        reads = _reads()
        engine = self._rdb.engine

        def attempt() -> tuple[Any, list[Any]]:
            with engine.connect() as conn:
                now = conn.execute(_now_query(conn.dialect.name)).scalar_one()
                return now, list(conn.execute(reads.running_health, {"b_study": study_id}).all())

        now, rows = retrying("reading heartbeats", attempt)
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

        bound: dict[str, Any]
        if trial_ids is None:
            queries, bound = _reads().fetch_of_study, {"b_study": study_id}
        else:
            queries, bound = _reads().fetch_of_trials, {"b_trials": sorted(trial_ids)}
        engine = self._rdb.engine

        def attempt() -> dict[str, Any]:
            with engine.connect() as conn:
                return {
                    name: conn.execute(query, bound).mappings().all()
                    for name, query in queries.items()
                }

        rows = retrying("reading trials", attempt)
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


@dataclass(frozen=True)
class _Reads:
    """TrialReader's statements (see :mod:`._rows` for why they are built once)."""

    poll: Any
    running_health: Any
    fetch_of_study: dict[str, Any]  # the rows that make FrozenTrials, table by table
    fetch_of_trials: dict[str, Any]


@functools.cache
def _reads() -> _Reads:
    from sqlalchemy import and_, bindparam, select

    trials, beats, attrs = o.TRIALS, o.HEARTBEATS, o.USER_ATTRS
    tables = {
        "trials": trials,
        "values": o.VALUES,
        "params": o.PARAMS,
        "user": attrs,
        "system": o.SYSTEM_ATTRS,
        "steps": o.STEPS,
    }
    of_study = select(trials.c.trial_id).where(trials.c.study_id == bindparam("b_study"))
    return _Reads(
        poll=select(trials.c.trial_id, trials.c.number, trials.c.state).where(
            trials.c.study_id == bindparam("b_study")
        ),
        running_health=select(trials.c.trial_id, attrs.c.value_json, beats.c.heartbeat)
        .select_from(
            trials.outerjoin(beats, beats.c.trial_id == trials.c.trial_id).outerjoin(
                attrs, and_(attrs.c.trial_id == trials.c.trial_id, attrs.c.key == "worker")
            )
        )
        .where(trials.c.study_id == bindparam("b_study"), trials.c.state == TrialState.RUNNING),
        fetch_of_study={n: select(t).where(t.c.trial_id.in_(of_study)) for n, t in tables.items()},
        fetch_of_trials={
            n: select(t).where(t.c.trial_id.in_(bindparam("b_trials", expanding=True)))
            for n, t in tables.items()
        },
    )


@functools.cache
def _now_query(dialect: str) -> Any:
    from sqlalchemy import select

    return select(db_utc_now(dialect))


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


def damaged_database(error: BaseException, url: str | None) -> str | None:
    """One line for an error caused by a damaged database file, or ``None`` for any other.

    A corrupted page of a SQLite file surfaces as SQLite's "database disk image is malformed"
    (or "file is not a database"), often wrapped by Optuna in a ``StorageInternalError`` that
    wrongly suggests "exceeding max length"; this finds SQLite's own words in the chain.
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        orig = getattr(cause, "orig", None)  # SQLAlchemy keeps the driver's exception here
        for candidate in (cause, orig):
            if isinstance(candidate, sqlite3.DatabaseError) and not isinstance(
                candidate, sqlite3.OperationalError
            ):
                words = str(candidate).splitlines()[0] if str(candidate) else "damaged"
                where = redact_url(url) if url else "the storage"
                path = _sqlite_path(url) if url else None
                check = f"sqlite3 {path} 'PRAGMA integrity_check'" if path else "its own tools"
                return (
                    f"the storage {where} is damaged ({words}); restore it "
                    f"from a copy, or check and recover it with {check} (and '.recover')"
                )
        cause = cause.__cause__ or cause.__context__
    return None
