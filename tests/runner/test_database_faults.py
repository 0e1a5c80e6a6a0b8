"""Database faults under a real worker process: its PostgreSQL connection killed inside a
transaction, the server gone (connections cut, new ones refused) for 30 s and for longer
than the retry limit, a worker frozen (SIGSTOP) inside a write transaction, a full disk under
a SQLite file. The worker stops itself at an exact instruction (HPSTUDY_CRASH_AT=...:STOP),
the test breaks the database, then lets it go on (SIGCONT).

Each time: nothing lost (budgets exact, every configuration once), nothing counted twice,
and either the worker carried on keeping its trained result, or it exited with one line and
the command that resumes, never a traceback or a password."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import tiny_study_text
from tests.runner.test_processes import _assert_exact_experiment

pytestmark = pytest.mark.slow

# iris only: manual (2), grid (3 of 4 points), random (3); 2-epoch trials, run in that order.
STUDY = (
    tiny_study_text(strategies=("manual", "grid", "random"), n_trials=3, pruner="none")
    .replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    .replace("max_epochs = 3", "max_epochs = 2")
)
SECRET = "hunter2pw"


class Proxy:
    """A TCP proxy in front of the test PostgreSQL server that the test can cut: every open
    connection is closed and new ones are closed as soon as they arrive (what clients see of
    a restarting or unreachable server), until it is restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = True
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def proxied(postgres_url: str) -> Iterator[tuple[str, str, Proxy]]:
    """(direct URL, URL through the proxy with a password query parameter, the proxy)."""
    from sqlalchemy.engine import make_url

    direct = make_url(postgres_url)
    proxy = Proxy(direct.host or "127.0.0.1", direct.port or 5432)
    through = direct.set(host="127.0.0.1", port=proxy.port, query={"password": SECRET})
    try:
        # the test server trusts any password: it must still never be shown
        yield postgres_url, through.render_as_string(hide_password=False), proxy
    finally:
        proxy.close()


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HPSTUDY_CRASH", "HPSTUDY_START"))
    }
    return {**env, "HPSTUDY_HEARTBEAT_INTERVAL": "1", **extra}


def _hpstudy(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpstudy", "-q", *args]


def _create(tmp_path: Path, url: str) -> None:
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    done = subprocess.run(
        _hpstudy("create", str(study), "--storage", url, "--no-run"),
        capture_output=True, text=True, timeout=600, env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    """A test that fails while its worker is stopped must not leave it behind."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()  # SIGKILL ends a stopped process too
            proc.wait(timeout=60)


def _start(args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=_env(**env))
    _STARTED.append(proc)
    return proc


def _wait_stopped(proc: subprocess.Popen[bytes], log: Path, timeout: float = 600) -> None:
    """Until ``proc`` has stopped itself (SIGSTOP at its crash point)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.1)
    raise AssertionError(f"the worker never reached its crash point: {log.read_text()}")


def _finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 600) -> str:
    proc.wait(timeout=timeout)
    return log.read_text()


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for s in optuna.get_all_study_summaries(url)
        for t in optuna.load_study(study_name=s.study_name, storage=url).trials
    ]


def _nothing_rerun(url: str) -> None:
    """The trial the fault hit kept its result: no re-run, no stale or interrupted attempt."""
    trials = _trials(url)
    assert not [t for t in trials if "retry_of" in t.user_attrs], trials
    assert not [t for t in trials if t.state == TrialState.FAIL], trials


def _terminate_backends(url: str) -> int:
    """pg_terminate_backend of every connection to this test's own database (the server is
    shared with other tests: it is never restarted)."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        killed = conn.execute(
            sqlalchemy.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": name},
        ).scalar_one()
    engine.dispose()
    return int(killed)


def test_connection_killed_inside_a_transaction_worker_retries_and_keeps_its_result(
    tmp_path: Path, postgres_url: str
) -> None:
    _create(tmp_path, postgres_url)
    log = tmp_path / "worker.log"
    # Frozen inside the transaction that stores its 4th result (a grid point), row locked.
    worker = _start(_hpstudy("worker", "tiny", "--storage", postgres_url), log,
                    HPSTUDY_CRASH_AT="finish-tx:4:STOP")  # fmt: skip
    _wait_stopped(worker, log)
    assert _terminate_backends(postgres_url) >= 1
    worker.send_signal(signal.SIGCONT)
    out = _finish(worker, log)
    assert worker.returncode == 0, out
    assert "database error while storing a trial's result" in out, out
    assert "Traceback" not in out
    _assert_exact_experiment(postgres_url, budget=3, n_studies=3)
    _nothing_rerun(postgres_url)


def test_database_restarted_and_unreachable_for_30_s_worker_waits_and_carries_on(
    tmp_path: Path, proxied: tuple[str, str, Proxy]
) -> None:
    direct, through, proxy = proxied
    _create(tmp_path, direct)
    log = tmp_path / "worker.log"
    worker = _start(_hpstudy("worker", "tiny", "--storage", through), log,
                    HPSTUDY_CRASH_AT="finish:4:STOP")  # fmt: skip
    _wait_stopped(worker, log)
    proxy.cut()  # every connection closed, as by a restart; new ones refused for 30 s
    _terminate_backends(direct)
    worker.send_signal(signal.SIGCONT)
    time.sleep(30)
    assert worker.poll() is None, log.read_text()  # still waiting for the database
    proxy.restore()
    out = _finish(worker, log)
    assert worker.returncode == 0, out
    assert "database error while" in out and "works again" in out, out
    assert "Traceback" not in out and SECRET not in out
    assert "results: postgresql://postgres@127.0.0.1" in out and "password=***" in out, out
    _assert_exact_experiment(direct, budget=3, n_studies=3)
    _nothing_rerun(direct)


def test_database_gone_longer_than_the_retry_limit_one_line_error_then_resume(
    tmp_path: Path, proxied: tuple[str, str, Proxy]
) -> None:
    direct, through, proxy = proxied
    _create(tmp_path, direct)
    log = tmp_path / "worker.log"
    worker = _start(_hpstudy("worker", "tiny", "--storage", through), log,
                    HPSTUDY_CRASH_AT="finish:4:STOP", HPSTUDY_DB_RETRY_SECONDS="3")  # fmt: skip
    _wait_stopped(worker, log)
    proxy.cut()
    worker.send_signal(signal.SIGCONT)
    out = _finish(worker, log)
    assert worker.returncode == 1, out
    assert "Traceback" not in out and SECRET not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the database failed for" in errors[0], out
    assert "storing a trial's result" in errors[0]
    assert "resume with: hpstudy worker tiny --storage 'postgresql://postgres@127.0.0.1" in out
    assert "password=***" in out
    proxy.restore()
    resumed = subprocess.run(
        _hpstudy("resume", "tiny", "--storage", direct),
        capture_output=True, text=True, timeout=600, env=_env(),
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    _assert_exact_experiment(direct, budget=3, n_studies=3)
    rerun = [t for t in _trials(direct) if "retry_of" in t.user_attrs]
    assert len(rerun) == 1  # the trial whose result could not be stored, run again once


@pytest.mark.parametrize("where", ["claim-tx:2", "finish-tx:1"])
def test_a_worker_frozen_inside_a_write_transaction_does_not_block_the_others(
    tmp_path: Path, postgres_url: str, where: str
) -> None:
    """Frozen holding the study row (claiming a new number) or a trial's row (storing its
    result): the server ends its idle transaction, the other worker carries on and finishes
    every study while it is frozen; woken, it finds its claim gone or its trial taken (stale,
    re-run by the other), drops its result and exits cleanly."""
    _create(tmp_path, postgres_url)
    limits = {"HPSTUDY_PG_IDLE_IN_TRANSACTION_TIMEOUT": "3", "HPSTUDY_GRACE_PERIOD": "8",
              "HPSTUDY_SWEEP_LIMIT": "120"}  # fmt: skip
    frozen_log, other_log = tmp_path / "frozen.log", tmp_path / "other.log"
    frozen = _start(_hpstudy("-v", "worker", "tiny", "--storage", postgres_url), frozen_log,
                    HPSTUDY_CRASH_AT=f"{where}:STOP", **limits)  # fmt: skip
    try:
        _wait_stopped(frozen, frozen_log)
        other = _start(_hpstudy("worker", "tiny", "--storage", postgres_url), other_log, **limits)
        out = _finish(other, other_log, timeout=300)  # never waits for the frozen one
        assert other.returncode == 0, out
        assert frozen.poll() is None
    finally:
        frozen.send_signal(signal.SIGCONT)
    out = _finish(frozen, frozen_log)
    assert frozen.returncode == 0, out
    assert "Traceback" not in out
    _assert_exact_experiment(postgres_url, budget=3, n_studies=3)
    trials = _trials(postgres_url)
    stale = [t for t in trials if t.user_attrs.get("fail_reason", "").startswith("stale")]
    if where.startswith("finish"):
        assert "its result was dropped" in out, out
        assert len(stale) == 1 and sum("retry_of" in t.user_attrs for t in trials) == 1
    else:
        assert not stale  # the claim was rolled back with the frozen session: nothing to re-run


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs: a real file system that fills up (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler to delete."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1):  # big blocks, then the last partial one byte by byte
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("freed", [True, False], ids=["freed-after-a-while", "stays-full"])
def test_full_disk_under_sqlite(tmp_path: Path, small_disk: Path, freed: bool) -> None:
    url = f"sqlite:///{small_disk / 'db.sqlite'}"
    _create(tmp_path, url)  # closed cleanly: the next process starts a new write-ahead log
    log = tmp_path / "worker.log"
    retry = {} if freed else {"HPSTUDY_DB_RETRY_SECONDS": "3"}
    worker = _start(_hpstudy("resume", "tiny", "--storage", url), log,
                    HPSTUDY_CRASH_AT="finish:4:STOP", **retry)  # fmt: skip
    _wait_stopped(worker, log)
    filler = _fill(small_disk)
    worker.send_signal(signal.SIGCONT)
    if freed:
        deadline = time.monotonic() + 300
        while "database error while" not in log.read_text() and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.2)
        assert "full" in log.read_text(), log.read_text()
        filler.unlink()
        out = _finish(worker, log)
        assert worker.returncode == 0, out
        assert "works again" in out
        _assert_exact_experiment(url, budget=3, n_studies=3)
        _nothing_rerun(url)
        return
    out = _finish(worker, log)
    assert worker.returncode == 1, out
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "full" in errors[0], out
    assert "resume with: hpstudy resume tiny" in out
    filler.unlink()
    resumed = subprocess.run(
        _hpstudy("resume", "tiny", "--storage", url),
        capture_output=True, text=True, timeout=600, env=_env(),
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    _assert_exact_experiment(url, budget=3, n_studies=3)


def test_database_gone_outside_a_run_is_one_line_with_the_resume_command(
    tmp_path: Path, proxied: tuple[str, str, Proxy]
) -> None:
    """The server goes away after `resume` opened the storage, before it plans (where no
    retry applies): SQLAlchemy's error becomes one line and the command (exit 1)."""
    direct, through, proxy = proxied
    _create(tmp_path, direct)
    barrier = tmp_path / "pause"
    barrier.mkdir()
    log = tmp_path / "resume.log"
    # The barrier as a pause: the process waits at `plan` for a second arrival, the test.
    proc = _start(_hpstudy("resume", "tiny", "--storage", through), log,
                  HPSTUDY_START_BARRIER=f"{barrier}:2:plan")  # fmt: skip
    deadline = time.monotonic() + 600
    while not any(barrier.iterdir()) and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    proxy.cut()
    (barrier / "test").touch()
    out = _finish(proc, log)
    assert proc.returncode == 1, out
    assert "Traceback" not in out and SECRET not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: database error: "), out
    assert "resume with: hpstudy resume tiny --storage 'postgresql://postgres@127.0.0.1" in out
