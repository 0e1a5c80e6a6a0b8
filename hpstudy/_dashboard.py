"""``hpstudy dashboard``: optuna-dashboard on the same storage, bound to loopback by default."""

from __future__ import annotations

import ipaddress
import logging

from hpstudy._errors import DependencyError, UsageError
from hpstudy._redact import redact_url

_logger = logging.getLogger("hpstudy")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_dashboard_storage(storage_url: str) -> None:
    """Refuse a storage with no hpstudy study (the dashboard would show nothing, or crash on
    an empty database) with :class:`UsageError`."""
    from hpstudy.runner import list_studies

    rows, others = list_studies(storage_url)
    if not rows:
        raise UsageError(
            f"no hpstudy studies in {redact_url(storage_url)}"
            + (f" ({others} other studies)" if others else "")
            + "; create some with 'hpstudy create studies/quickstart.toml' or pass --storage"
        )


def check_dashboard_host(host: str, allow_remote: bool) -> None:
    """Refuse (:class:`UsageError`) an address other machines can reach unless
    ``allow_remote``: optuna-dashboard can rename and delete studies without authentication."""
    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"--host {host} is reachable from other machines and optuna-dashboard has "
            "unauthenticated endpoints that rename and delete studies; bind 127.0.0.1 (the "
            "default) and use an SSH tunnel, or pass --allow-remote to serve it anyway"
        )


def run_dashboard(
    storage_url: str, host: str = "127.0.0.1", port: int = 8080, *, allow_remote: bool = False
) -> None:
    """Serve optuna-dashboard for ``storage_url`` until interrupted.

    Raises:
        UsageError: See :func:`check_dashboard_host` and :func:`check_dashboard_storage`.
        DependencyError: optuna-dashboard is not installed.
    """
    check_dashboard_host(host, allow_remote)
    check_dashboard_storage(storage_url)
    try:
        import optuna_dashboard
    except ImportError as e:
        raise DependencyError(
            "optuna-dashboard is not installed: pip install optuna-dashboard"
        ) from e
    if not is_loopback(host):
        _logger.warning(
            "serving on %s: optuna-dashboard has unauthenticated write endpoints (rename, delete, tell); "
            "anyone who reaches this address can change the studies",
            host,
        )
    try:
        optuna_dashboard.run_server(storage_url, host=host, port=port)
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        raise UsageError(
            f"cannot serve on {host}:{port} ({e.strerror or e}); pass another --port or --host"
        ) from e
