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
