"""The exception hierarchy. Each error carries the process exit code the CLI uses for it."""

from __future__ import annotations


class HpStudyError(Exception):
    """Root of every error hpstudy raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class ConfigError(HpStudyError):
    """A study file (or a command-line option) is invalid. Nothing has been written."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = prefix + self.problems[0]
        else:
            lines = [f"{prefix}{len(self.problems)} problems:"]
            lines += [f"  - {p}" for p in self.problems]
            message = "\n".join(lines)
        super().__init__(message)


class UsageError(HpStudyError):
    """The command cannot run as asked (for example, the experiment already exists)."""

    exit_code = 2


class StorageError(HpStudyError):
    """The storage cannot be opened, read or written."""

    exit_code = 1


class DatabaseError(StorageError):
    """The database failed mid-run for longer than hpstudy retries (``HPSTUDY_DB_RETRY_SECONDS``),
    or with an error hpstudy does not retry. Every finished trial is stored; resume continues."""

    exit_code = 1


class WorkerDied(HpStudyError):
    """A worker process of ``--n-jobs`` died (killed, or an error) and the others could not
    finish every study. ``results`` holds how each study stands, to show before the error."""

    exit_code = 1

    def __init__(self, message: str, results: list[object]) -> None:
        super().__init__(message)
        self.results = results


class DependencyError(HpStudyError):
    """An optional dependency needed by the study file is not installed."""

    exit_code = 2


class Interrupted(HpStudyError):
    """The run was interrupted (Ctrl-C, SIGTERM or SIGHUP); storage has been left consistent."""

    exit_code = 130


# What database servers and poolers say when they refuse a connection for lack of slots:
# PostgreSQL (SQLSTATE 53300: max_connections, a role's or a database's CONNECTION LIMIT),
# PgBouncer (max_client_conn, max_db_connections) and MySQL (error 1040).
_TOO_MANY = (
    "too many clients already",
    "too many connections",
    "remaining connection slots are reserved",
    "no more connections allowed",
)

# The connections one hpstudy worker process holds at most (measured: see
# docs/user-guide.md, "How many connections").
CONNECTIONS_PER_WORKER = 2


def too_many_connections(error: BaseException) -> str | None:
    """A one-line message with what to change when ``error`` (or its cause) is a database
    server refusing a connection because its connection slots are used up; else ``None``."""
    seen: BaseException | None = error
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        text = " ".join(str(seen).split())
        if any(phrase in text.lower() for phrase in _TOO_MANY):
            said = text.split("(Background on this error", 1)[0].strip()
            said = said[said.rfind("FATAL:") :] if "FATAL:" in said else said
            return (
                f"the database server refused a connection: too many connections ({said[:200].strip()}); "
                f"each hpstudy worker process holds up to {CONNECTIONS_PER_WORKER} connections: run "
                "fewer workers (--n-jobs, the array size, parallelism), raise the server's "
                "max_connections (postgresql.conf, then restart it) or the role's or database's "
                "CONNECTION LIMIT, or put PgBouncer in transaction mode in front of it (see "
                "docs/user-guide.md, 'How many connections')"
            )
        seen = seen.__cause__ or seen.__context__
    return None
