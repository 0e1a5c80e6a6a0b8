"""The connection budget on PostgreSQL: a server out of connection slots gets one line saying
what to change (never a driver traceback), and workers reach the database through PgBouncer in
transaction mode (Debian's package), where psycopg must not use server-side prepared
statements: a pool of 2 server connections shared by every worker, each transaction on any
of them.

Real servers only: the test PostgreSQL (``$HPSTUDY_TEST_POSTGRES_URL``, skipped where unset,
like every PostgreSQL test; ``.ci/run`` sets it and installs pgbouncer) and a pgbouncer process
started here. The slot limit is a role's CONNECTION LIMIT (the same refusal, SQLSTATE 53300,
as max_connections; the shared test server's max_connections cannot be lowered per test).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hpstudy._errors import too_many_connections
from tests.conftest import tiny_study_text
from tests.runner.test_processes import _assert_exact_experiment
from tests.runner.test_workers import _assert_all_distinct, _workers_of


def _hpstudy(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpstudy", *args]


@contextmanager
def limited_role(server_url: str, database_url: str, limit: int) -> Iterator[str]:
    """A login role allowed ``limit`` connections, owning the database of ``database_url``;
    yields that database's URL as this role."""
    import sqlalchemy

    role = f"hpstudy_limited_{uuid.uuid4().hex[:8]}"
    database = database_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}"))
        conn.execute(sqlalchemy.text(f"ALTER DATABASE {database} OWNER TO {role}"))
    owner = sqlalchemy.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:  # tables a create made as postgres
        for kind in ("TABLES", "SEQUENCES"):
            conn.execute(sqlalchemy.text(f"GRANT ALL ON ALL {kind} IN SCHEMA public TO {role}"))
        conn.execute(sqlalchemy.text(f"GRANT ALL ON SCHEMA public TO {role}"))
    try:
        host = database_url.split("@", 1)[1]
        yield f"postgresql://{role}@{host}"
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"ALTER DATABASE {database} OWNER TO postgres"))
            conn.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"
                ),
                {"r": role},
            )
        with owner.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP OWNED BY {role}"))  # its grants
        owner.dispose()
        for _ in range(50):  # a terminated session ends a moment later
            try:
                with admin.connect() as conn:
                    conn.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))
                break
            except sqlalchemy.exc.DBAPIError:
                time.sleep(0.1)
        admin.dispose()


def test_a_server_out_of_connection_slots_gets_one_line_saying_what_to_change(
    tmp_path: Path, postgres_url: str
) -> None:
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text())
    server = os.environ["HPSTUDY_TEST_POSTGRES_URL"]
    with limited_role(server, postgres_url, 0) as url:
        done = subprocess.run(
            _hpstudy("create", str(study), "--storage", url, "--no-run"),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = lines
    assert line.startswith("error: the database server refused a connection: too many connections")
    assert 'too many connections for role "hpstudy_limited_' in line  # the server's own words
    for fix in ("fewer workers", "max_connections", "PgBouncer in transaction mode"):
        assert fix in line


def test_a_worker_process_refused_a_connection_mid_run_says_so_in_one_line(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two worker processes (--n-jobs 2) under a role allowed one connection: the first takes
    it, the second is refused. The run exits 1 with the same one-line message and the
    command that resumes; nothing is half-written (every trial run is finished, none left
    RUNNING)."""
    import optuna
    from optuna.trial import TrialState

    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",), n_trials=4))
    server = os.environ["HPSTUDY_TEST_POSTGRES_URL"]
    created = subprocess.run(
        _hpstudy("-q", "create", str(study), "--storage", postgres_url, "--no-run"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    with limited_role(server, postgres_url, 1) as url:
        done = subprocess.run(
            _hpstudy("-q", "resume", "tiny", "--storage", url, "--n-jobs", "2"),
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "too many connections" in errors[0], done.stderr
        assert "max_connections" in errors[0]
    for summary in optuna.get_all_study_summaries(postgres_url):
        trials = optuna.load_study(study_name=summary.study_name, storage=postgres_url).trials
        assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_commands_open_the_storage_with_one_connection_at_a_time(
    tmp_path: Path, postgres_url: str
) -> None:
    """Optuna's own schema check holds a session while it opens a second connection (two
    slots per process, and a deadlock behind a small transaction pool when workers open at
    once); hpstudy checks the schema one connection at a time: a role allowed a single
    connection can run status and a worker whose trials end before any heartbeat."""
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",), n_trials=2))
    created = subprocess.run(
        _hpstudy("-q", "create", str(study), "--storage", postgres_url, "--no-run"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    with limited_role(os.environ["HPSTUDY_TEST_POSTGRES_URL"], postgres_url, 1) as url:
        for command in (["status", "tiny"], ["worker", "tiny"], ["status", "tiny"]):
            done = subprocess.run(
                _hpstudy("-q", *command, "--storage", url),
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert done.returncode == 0, (command, done.stderr)
    assert "2 of 2 studies have met their budget" in done.stdout


def test_a_storage_of_another_schema_version_is_refused_in_one_line(tmp_path: Path) -> None:
    """The schema check hpstudy does in place of Optuna's still refuses an old schema, with
    the upgrade command."""
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",), n_trials=2))
    created = subprocess.run(
        _hpstudy("-q", "create", str(study), "--storage", url, "--no-run"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = 'v3.0.0.d'"))
    engine.dispose()
    done = subprocess.run(
        _hpstudy("status", "tiny", "--storage", url), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: storage {url} has Optuna's table schema v3.0.0.d, this optuna reads "
        f"{_head_version()}; upgrade it: optuna storage upgrade --storage {url}"
    ]


def _head_version() -> str:
    from optuna.storages import RDBStorage

    storage = RDBStorage("sqlite:///:memory:")
    try:
        return storage.get_head_version()
    finally:
        storage.engine.dispose()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("connection failed: FATAL:  sorry, too many clients already", True),
        (
            "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
            True,
        ),
        ('FATAL:  too many connections for database "x"', True),
        ("ERROR: no more connections allowed (max_client_conn)", True),  # PgBouncer
        ("(1040, 'Too many connections')", True),  # MySQL
        ('connection failed: FATAL:  password authentication failed for user "x"', False),
        ("could not translate host name", False),
    ],
)
def test_only_a_refusal_for_lack_of_slots_is_called_too_many_connections(
    text: str, found: bool
) -> None:
    wrapped = RuntimeError("while running a trial")
    wrapped.__cause__ = OSError(text)
    assert (too_many_connections(wrapped) is not None) == found
    if found:
        message = too_many_connections(wrapped)
        assert message is not None and "\n" not in message


# -- PgBouncer in transaction mode -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pgbouncer(server_url: str, pool_size: int = 2) -> Iterator[tuple[str, Path]]:
    """Debian's pgbouncer in transaction mode in front of the test server, with ``pool_size``
    server connections per database shared by every client; yields (server URL through it,
    its log). It refuses to run as root: started as the database's system user then."""
    exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(exe).exists():
        pytest.fail("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)")
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="hpstudy-pgbouncer-"))
    folder.chmod(0o755)
    host_port = server_url.split("@", 1)[1].split("/", 1)[0]
    host, _, server_port = host_port.partition(":")
    (folder / "userlist.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={host} port={server_port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""
    )
    command = [exe, "-q", str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        for f in folder.iterdir():
            shutil.chown(f, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        yield f"postgresql://postgres@127.0.0.1:{port}", folder / "pgbouncer.log"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_workers_through_pgbouncer_in_transaction_mode_finish_exactly(
    tmp_path: Path, postgres_url: str
) -> None:
    """create, then three workers started together, all through a 2-connection transaction
    pool: more clients than server connections, so consecutive transactions of one worker
    land on different server connections (a prepared statement would be missing there)."""
    database = postgres_url.rsplit("/", 1)[1]
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("manual", "grid", "random", "tpe"), n_trials=6))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    with pgbouncer(os.environ["HPSTUDY_TEST_POSTGRES_URL"]) as (bouncer, log):
        url = f"{bouncer}/{database}"
        created = subprocess.run(
            _hpstudy("-q", "create", str(study), "--storage", url, "--no-run"),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        env = {**os.environ, "HPSTUDY_START_BARRIER": f"{barrier}:3"}
        workers = [
            subprocess.Popen(
                _hpstudy("-q", "worker", "tiny", "--storage", url),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )  # fmt: skip
            for _ in range(3)
        ]
        errors = [w.communicate(timeout=600)[1].decode() for w in workers]
        assert [w.returncode for w in workers] == [0, 0, 0], errors
        assert not any("prepared statement" in e for e in errors), errors
        status = subprocess.run(
            _hpstudy("status", "tiny", "--storage", url),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert status.returncode == 0 and "8 of 8 studies have met their budget" in status.stdout
        logged = log.read_text()
    assert "login attempt" in logged or "pool_mode" in logged or logged  # it served them
    _assert_exact_experiment(postgres_url, grid_size=4, budget=6, n_studies=8)
    _assert_all_distinct(postgres_url)
    assert len(_workers_of(postgres_url)) == 3
