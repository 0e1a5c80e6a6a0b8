"""Carry on through database faults: retry a storage transaction with backoff.

A worker's storage transactions are short and each is all-or-nothing, so a transaction that
fails because the database went away (restarted, the connection killed, unreachable for a
while, a lock wait or an idle transaction cut short by the server's timeouts, SQLite's disk
full or file locked) can simply run again on a new connection. :func:`retrying` does that
with exponential backoff for up to ``HPSTUDY_DB_RETRY_SECONDS`` (default 120 s), logging one
warning per outage; after that it raises :class:`~hpstudy.DatabaseError`: one line, and the
CLI adds the command that resumes. What is never retried: errors that say the data or the
code is wrong (a unique violation, a missing table).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from hpstudy._errors import DatabaseError

_logger = logging.getLogger("hpstudy")
T = TypeVar("T")

ENV_RETRY_SECONDS = "HPSTUDY_DB_RETRY_SECONDS"
# SQLite's messages for a fault that passes (another writer, a full disk freed, a file system
# that comes back); anything else from SQLite (no such table, malformed) is not retried.
_SQLITE_TRANSIENT = ("locked", "full", "disk i/o", "unable to open", "busy")


def retry_seconds() -> float:
    """How long a worker keeps retrying one transaction (``HPSTUDY_DB_RETRY_SECONDS``)."""
    try:
        return max(0.0, float(os.environ.get(ENV_RETRY_SECONDS, 120)))
    except ValueError:
        return 120.0


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database fault that a new attempt can get past."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error, InterfaceError):
        return True  # the connection broke (server restarted, connection killed, network)
    message = str(error.orig).lower()
    if "sqlite" in type(error.orig).__module__:
        return isinstance(error, OperationalError) and any(m in message for m in _SQLITE_TRANSIENT)
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code is not None:
        # 08: connection exception; 57: operator intervention (admin shutdown, terminated,
        # cannot connect now); 53: insufficient resources (disk full, too many connections);
        # 55P03 lock_not_available (lock_timeout); 25P03 idle_in_transaction_session_timeout;
        # 40001/40P01: serialization failure, deadlock (PostgreSQL rolled back; run again).
        return code[:2] in ("08", "57", "53") or code in ("55P03", "25P03", "40001", "40P01")
    return isinstance(error, OperationalError)


_DATABASE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "sqlite3", "pymysql", "MySQLdb")


def database_cause(error: BaseException) -> BaseException | None:
    """The database error behind ``error``: itself when SQLAlchemy or a driver raised it, or
    the one Optuna's ``StorageInternalError`` wraps (whose own message blames "invalid data"
    whatever happened); ``None`` for anything else. Checked by module name, so callers (the
    CLI) need not import SQLAlchemy to ask."""
    seen: BaseException | None = error
    while seen is not None:
        if any(c.__module__.split(".")[0] in _DATABASE_MODULES for c in type(seen).__mro__):
            return seen
        if type(seen).__name__ != "StorageInternalError":
            return None
        seen = seen.__cause__ or seen.__context__
    return None


def one_line(error: BaseException) -> str:
    """A database error as one short line: its type and the driver's first line."""
    orig = getattr(error, "orig", None) or error
    text = " ".join(str(orig).split())
    return f"{type(orig).__name__}: {text[:300]}"


def retrying(what: str, attempt: Callable[[], T], *, seconds: float | None = None) -> T:
    """Run ``attempt`` (one whole transaction); on a transient database fault run it again
    with backoff (0.5 s doubling to 8 s) until ``seconds`` (default :func:`retry_seconds`)
    have passed since the first failure.

    Raises:
        DatabaseError: The fault lasted longer than that (one line, the cause chained).
    """
    limit = retry_seconds() if seconds is None else seconds
    first: float | None = None
    delay = 0.5
    while True:
        try:
            result = attempt()
        except Exception as e:
            if not is_transient(e):
                raise
            now = time.monotonic()
            if first is None:
                first = now
                _logger.warning(
                    "database error while %s (%s); retrying for up to %.0f s (%s)",
                    what,
                    one_line(e),
                    limit,
                    ENV_RETRY_SECONDS,
                )
            if now - first >= limit:
                raise DatabaseError(
                    f"the database failed for {now - first:.0f} s while {what} ({one_line(e)}); "
                    "every finished trial is stored and a running one is re-run on resume"
                ) from e
            time.sleep(min(delay, max(0.0, first + limit - now)))
            delay = min(delay * 2, 8.0)
            continue
        if first is not None:
            _logger.warning(
                "the database works again after %.0f s (%s succeeded)",
                time.monotonic() - first,
                what,
            )
        return result
