"""Several real worker processes on one storage, started at the same moment (a file barrier
before each one's first claim, HPSTUDY_START_BARRIER): no duplicate proposals, one clock for
heartbeats, workers in other PID namespaces keep their trials, survivors finish a killed
worker's trial."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import tiny_study_text
from tests.runner.test_processes import _assert_exact_experiment

pytestmark = pytest.mark.slow

IRIS_ONLY = ('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")


def _study(tmp_path: Path, strategies: tuple[str, ...], n_trials: int, epochs: int = 3) -> Path:
    text = tiny_study_text(strategies=strategies, n_trials=n_trials, pruner="none")
    text = text.replace(*IRIS_ONLY).replace("max_epochs = 3", f"max_epochs = {epochs}")
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def _env(barrier: Path, n: int, **extra: str) -> dict[str, str]:
    barrier.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSTUDY_CRASH")}
    return {**env, "HPSTUDY_START_BARRIER": f"{barrier}:{n}", **extra}


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpstudy", "-q", *args]


def _trials(url: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=url).trials
        for s in optuna.get_all_study_summaries(url)
    }


def _assert_all_distinct(url: str) -> None:
    """Within every study, no configuration was proposed twice."""
    for name, trials in _trials(url).items():
        configs = [
            tuple(sorted(t.params.items()))
            for t in trials
            if t.params and "retry_of" not in t.user_attrs  # a re-run repeats on purpose
        ]
        repeated = [c for c, n in Counter(configs).items() if n > 1]
        assert not repeated, (name, repeated)


def _workers_of(url: str) -> set[str]:
    return {t.user_attrs["worker"] for ts in _trials(url).values() for t in ts if t.params}


@pytest.mark.parametrize("n_jobs", [2, 4])
def test_parallel_workers_started_together_never_propose_the_same_configuration(
    tmp_path: Path, n_jobs: int
) -> None:
    study = _study(tmp_path, ("random", "qmc", "tpe"), n_trials=12)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    done = subprocess.run(
        _cmd("create", str(study), "--storage", url, "--n-jobs", str(n_jobs)),
        capture_output=True, text=True, timeout=600, env=_env(tmp_path / "barrier", n_jobs),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _assert_exact_experiment(url, budget=12, n_studies=3)
    _assert_all_distinct(url)
    assert len(_workers_of(url)) == n_jobs  # every worker took part in the race


def test_three_workers_on_postgresql_started_together(tmp_path: Path, postgres_url: str) -> None:
    study = _study(tmp_path, ("manual", "grid", "random", "tpe", "qmc"), n_trials=8)
    created = subprocess.run(
        _cmd("create", str(study), "--storage", postgres_url, "--no-run"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    env = _env(tmp_path / "barrier", 3)
    workers = [
        subprocess.Popen(
            _cmd("worker", "tiny", "--storage", postgres_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        for _ in range(3)
    ]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err.decode()
    _assert_exact_experiment(postgres_url, grid_size=4, budget=8, n_studies=5)
    _assert_all_distinct(postgres_url)
    assert len(_workers_of(postgres_url)) == 3


def _no_stale(url: str) -> None:
    reasons = [t.user_attrs.get("fail_reason", "") for ts in _trials(url).values() for t in ts]
    assert not [r for r in reasons if r.startswith("stale")], reasons  # none was taken


def test_a_worker_in_another_time_zone_keeps_everyones_trials(
    tmp_path: Path, postgres_url: str
) -> None:
    """Heartbeats in one clock: a PGTZ=Asia/Tokyo session and a UTC one judge each other's
    live trials (checked every second) as alive."""
    study = _study(tmp_path, ("random",), n_trials=10, epochs=40)
    created = subprocess.run(
        _cmd("create", str(study), "--storage", postgres_url, "--no-run"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    workers = [
        subprocess.Popen(
            _cmd("worker", "tiny", "--storage", postgres_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(tmp_path / "barrier", 2, PGTZ=tz, HPSTUDY_HEARTBEAT_INTERVAL="1"),
        )  # fmt: skip
        for tz in ("UTC", "Asia/Tokyo")
    ]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err.decode()
    _no_stale(postgres_url)
    _assert_exact_experiment(postgres_url, budget=10, n_studies=1)
    assert len(_workers_of(postgres_url)) == 2


@pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs util-linux unshare and root for a new PID namespace",
)
def test_a_worker_in_another_pid_namespace_keeps_everyones_trials(tmp_path: Path) -> None:
    """Same hostname, other PID namespace (a container): neither worker may judge the other
    dead from its pid; heartbeats decide."""
    study = _study(tmp_path, ("random",), n_trials=10, epochs=40)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    created = subprocess.run(
        _cmd("create", str(study), "--storage", url, "--no-run"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    env = _env(tmp_path / "barrier", 2, HPSTUDY_HEARTBEAT_INTERVAL="1")
    worker = _cmd("worker", "tiny", "--storage", url)
    workers = [
        subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env),
        subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *worker],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        ),  # fmt: skip
    ]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err.decode()
    _no_stale(url)
    _assert_exact_experiment(url, budget=10, n_studies=1)
    namespaces = {w.split(":")[3] for w in _workers_of(url)}
    assert len(namespaces) == 2  # both namespaces ran trials


def test_survivors_finish_a_killed_workers_trial_before_they_exit(tmp_path: Path) -> None:
    """Three workers start together; one is killed (-9) right after it claims its first
    trial (a manual configuration: the study the others leave first). The other two exit 0
    only once that trial has been re-run: nothing is left behind. (A worker alive and beating
    when the others run out of work is left to finish its trial: that is not this case; the
    victim dies before the others can have run the other ten trials.)"""
    study = _study(tmp_path, ("manual", "grid", "random"), n_trials=6, epochs=10)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    created = subprocess.run(
        _cmd("create", str(study), "--storage", url, "--no-run"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    barrier = tmp_path / "barrier"
    workers = [
        subprocess.Popen(
            _cmd("worker", "tiny", "--storage", url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(barrier, 3, **({"HPSTUDY_CRASH_AT": "claim:1:KILL"} if i == 0 else {})),
        )  # fmt: skip
        for i in range(3)
    ]
    outcomes = [w.communicate(timeout=600) for w in workers]
    assert workers[0].returncode == -signal.SIGKILL
    for w, (_, err) in zip(workers[1:], outcomes[1:], strict=True):
        assert w.returncode == 0, err.decode()
    _assert_exact_experiment(url, grid_size=4, budget=6, n_studies=3)
    stale = [
        t
        for ts in _trials(url).values()
        for t in ts
        if t.state == TrialState.FAIL and t.user_attrs["fail_reason"].startswith("stale")
    ]
    assert len(stale) == 1 and "is gone" in stale[0].user_attrs["fail_reason"]
