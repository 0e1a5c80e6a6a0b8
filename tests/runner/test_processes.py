"""Real processes: kill -9, SIGINT and SIGTERM mid-trial, then resume; four processes on one
SQLite file (PostgreSQL workers: test_workers.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpstudy.runner import resume_experiment
from hpstudy.store import counts_toward_budget
from tests.conftest import tiny_study_text

pytestmark = pytest.mark.slow


# Trials of ~0.2-0.5 s (digits, 25 epochs, no pruning or early stopping): easy to hit mid-trial.
def _slow(strategies: tuple[str, ...] = ("manual", "grid", "random"), n_trials: int = 4) -> str:
    return (
        tiny_study_text(strategies=strategies, n_trials=n_trials, pruner="none")
        .replace('name = "iris"\ndataset = "iris"', 'name = "digits"\ndataset = "digits"')
        .replace("max_epochs = 3", "max_epochs = 25")
        .replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    )


SLOW = _slow()


def _hpstudy(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpstudy", *args]


def _states(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        return Counter(state for (state,) in conn.execute("SELECT state FROM trials"))


def _finished_before(url: str) -> set[tuple[str, int, float | None]]:
    out = set()
    for summary in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        out |= {
            (summary.study_name, t.number, t.value)
            for t in study.trials
            if t.state == TrialState.COMPLETE
        }
    return out


def _assert_exact_experiment(
    url: str, n_manual: int = 2, grid_size: int = 4, budget: int = 4, n_studies: int | None = None
) -> None:
    """Budgets met exactly, nothing RUNNING or WAITING, each grid point and manual config
    finished once, no parameterless trial counted or re-run, no counted crash."""
    summaries = optuna.get_all_study_summaries(url)
    if n_studies is not None:
        assert len(summaries) == n_studies, [s.study_name for s in summaries]
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        trials = study.get_trials(deepcopy=False)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], (
            summary.study_name
        )
        counted = [t for t in trials if counts_toward_budget(t)]
        strategy = study.user_attrs["strategy"]
        expected = {"manual": n_manual, "grid": min(grid_size, budget)}.get(strategy, budget)
        assert len(counted) == expected, (
            summary.study_name,
            [(t.number, t.state, t.user_attrs) for t in trials],
        )
        assert all(set(t.params) == {"n_layers", "n_units", "lr"} for t in counted)
        assert all(t.state != TrialState.FAIL for t in counted)  # no counted crash
        if strategy == "grid":
            assert sorted(t.system_attrs["grid_id"] for t in counted) == list(range(expected))
        if strategy == "manual":
            assert sorted(t.user_attrs["manual_index"] for t in counted) == list(range(n_manual))
        for t in trials:  # every non-counted trial is a crash whose configuration ran again
            if not counts_toward_budget(t):
                assert t.state == TrialState.FAIL
                reason = t.user_attrs["fail_reason"]
                if not t.params:  # died before its parameters were stored: a new number ran
                    assert "before its parameters were stored" in reason
                    assert strategy not in ("manual", "grid")
                else:
                    assert reason.startswith(("interrupted", "stale")), reason
                    assert any(c.user_attrs.get("retry_of") == t.number for c in trials)


@pytest.fixture
def slow_study(tmp_path: Path) -> Path:
    path = tmp_path / "slow.toml"
    path.write_text(SLOW)
    return path


@pytest.mark.parametrize(
    "sig", ["KILL", "INT", "TERM", "HUP"], ids=["kill-9", "sigint", "sigterm", "sighup"]
)
def test_signal_mid_trial_then_resume_gives_exactly_the_experiment(
    tmp_path: Path, slow_study: Path, sig: str
) -> None:
    """The signal is sent from inside the 60th epoch of the run (the 10th epoch of its third
    trial, the grid's first; 25 epochs that never stop early): the victim trial is
    mid-training, whatever the machine's load."""
    db = tmp_path / "db.sqlite"
    url = f"sqlite:///{db}"
    proc = subprocess.run(
        _hpstudy("create", str(slow_study), "--storage", url),
        capture_output=True,
        env={**os.environ, "HPSTUDY_CRASH_AT": f"train:60:{sig}"},
        timeout=600,
    )
    before = _finished_before(url)
    assert len(before) == 2
    if sig == "KILL":
        assert proc.returncode == -signal.SIGKILL
        assert _states(db)["RUNNING"] == 1  # the zombie Optuna alone would keep forever
    else:
        assert proc.returncode == 130, proc.stderr.decode()
        text = proc.stderr.decode()
        assert "recorded as FAIL (interrupted)" in text
        assert f"resume with: hpstudy resume tiny --storage {url}" in text
        assert _states(db)["RUNNING"] == 0
        failed = [
            t
            for s in optuna.get_all_study_summaries(url)
            for t in optuna.load_study(study_name=s.study_name, storage=url).trials
            if t.state == TrialState.FAIL
        ]
        assert len(failed) == 1 and failed[0].user_attrs["fail_reason"].startswith("interrupted")
        assert failed[0].user_attrs["epochs"] == 9  # recorded with the epochs it trained
    resume_experiment("tiny", url)
    assert before <= _finished_before(url)  # no finished trial lost
    _assert_exact_experiment(url)


def test_four_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("manual", "grid", "random", "tpe"), n_trials=6))
    db = tmp_path / "db.sqlite"
    url = f"sqlite:///{db}"
    # The four workers claim their first trial together (3-epoch trials take milliseconds
    # once start-up is paid before forking: a worker scheduled late could find none left).
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    done = subprocess.run(
        _hpstudy("-q", "create", str(study), "--storage", url, "--n-jobs", "4"),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HPSTUDY_START_BARRIER": f"{barrier}:4"},
    )
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stderr.lower()
    for summary in optuna.get_all_study_summaries(url):
        trials = optuna.load_study(study_name=summary.study_name, storage=url).trials
        assert not [t for t in trials if t.state == TrialState.FAIL]  # no "database is locked"
    _assert_exact_experiment(url, grid_size=4, budget=6)
    workers = {
        t.user_attrs["worker"]
        for s in optuna.get_all_study_summaries(url)
        for t in optuna.load_study(study_name=s.study_name, storage=url).trials
    }
    assert len(workers) >= 2  # the trials really were shared out


@pytest.mark.parametrize("sig", ["INT", "HUP"], ids=["ctrl-c", "terminal-closed"])
def test_ctrl_c_to_the_process_group_of_parallel_workers(tmp_path: Path, sig: str) -> None:
    """A terminal's Ctrl-C (or its SIGHUP when it is closed) reaches the parent and every
    worker; all record and re-queue, none counts as a crash. The signal is sent to the
    process group from inside a worker's 30th epoch."""
    slow_study = tmp_path / "slow.toml"
    slow_study.write_text(SLOW.replace("n_trials = 4", "n_trials = 8"))
    db = tmp_path / "db.sqlite"
    url = f"sqlite:///{db}"
    proc = subprocess.run(
        _hpstudy("create", str(slow_study), "--storage", url, "--n-jobs", "2"),
        capture_output=True, start_new_session=True, timeout=600,
        env={**os.environ, "HPSTUDY_CRASH_AT": f"train:30:pg{sig}"},
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr.decode()
    assert "resume with: hpstudy resume tiny" in proc.stderr.decode()
    assert _states(db)["RUNNING"] == 0
    reasons = [
        t.user_attrs["fail_reason"]
        for s in optuna.get_all_study_summaries(url)
        for t in optuna.load_study(study_name=s.study_name, storage=url).trials
        if t.state == TrialState.FAIL
    ]
    assert reasons and all(r.startswith("interrupted") for r in reasons), reasons
    before = _finished_before(url)
    resume_experiment("tiny", url, n_jobs=2)
    assert before <= _finished_before(url)
    _assert_exact_experiment(url, budget=8)


def test_a_killed_worker_process_the_others_finish_and_the_results_are_shown(
    tmp_path: Path,
) -> None:
    """`--n-jobs 2`, one worker killed (kill -9, as the out-of-memory killer would) while it
    trains: the other re-runs its trial and finishes every study; the run says which worker
    died and shows the results (exit 0), rather than "interrupted" (exit 130)."""
    slow_study = tmp_path / "slow.toml"
    slow_study.write_text(SLOW.replace("n_trials = 4", "n_trials = 8"))
    db = tmp_path / "db.sqlite"
    url = f"sqlite:///{db}"
    proc = subprocess.Popen(
        _hpstudy("-q", "create", str(slow_study), "--storage", url, "--n-jobs", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if not db.exists():
            continue
        try:
            with sqlite3.connect(db, timeout=60) as conn:
                row = conn.execute(
                    "SELECT a.value_json FROM trials t JOIN trial_user_attributes a "
                    "ON a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'worker' "
                    "LIMIT 1"
                ).fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            continue
        if row is not None:
            victim = int(json.loads(row[0]).split(":")[1])
    assert victim is not None, "no trial was seen running"
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"(pid {victim}) was killed by SIGKILL" in err and "interrupted" not in err, err
    assert "experiment tiny" in out and "tiny.digits.random.s0" in out, out
    _assert_exact_experiment(url, budget=8)
    reasons = [
        t.user_attrs.get("fail_reason", "")
        for s in optuna.get_all_study_summaries(url)
        for t in optuna.load_study(study_name=s.study_name, storage=url).trials
    ]
    # its trial, re-run (none if the kill fell between two of its trials)
    assert sum(r.startswith("stale") for r in reasons) <= 1, reasons


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` and their states (``R``, ``S``, ``T`` stopped...)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(stat.parent.name)] = fields[0]
    return out


def _wait(condition: Callable[[], Any], what: str, proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (value := condition()) or proc.poll() is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_after_the_others_ran_out_of_work_is_replaced(tmp_path: Path) -> None:
    """The race CI once hit: the other worker has already exited (nothing left to claim; the
    victim's trial was alive) when the last one is killed. The parent starts a replacement that
    finds the trial stale and re-runs it: exit 0, the death named, the budget exact.

    Deterministic: one trial; the worker that runs it stops itself in its first epoch
    (``train:1:STOP``), and is killed only once its sibling is gone. The replacement stops at
    the same point (same environment) and is let go (SIGCONT)."""
    study = tmp_path / "one.toml"
    study.write_text(_slow(strategies=("random",), n_trials=1))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    proc = subprocess.Popen(
        _hpstudy("-q", "create", str(study), "--storage", url, "--n-jobs", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HPSTUDY_CRASH_AT": "train:1:STOP"},
    )  # fmt: skip
    try:
        stopped = lambda: [p for p, state in _children(proc.pid).items() if state == "T"]  # noqa: E731
        (victim,) = _wait(stopped, "the trial's worker to stop in its first epoch", proc)
        _wait(lambda: list(_children(proc.pid)) == [victim], "the other worker to exit", proc)
        os.kill(victim, signal.SIGKILL)
        replacement = _wait(
            lambda: [p for p in stopped() if p != victim], "a replacement worker", proc
        )
        assert len(replacement) == 1, replacement
        os.kill(replacement[0], signal.SIGCONT)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"(pid {victim}) was killed by SIGKILL" in err, err
    (summary,) = optuna.get_all_study_summaries(url)
    trials = optuna.load_study(study_name=summary.study_name, storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], trials
    assert trials[0].user_attrs["fail_reason"].startswith("stale"), trials[0].user_attrs
    assert trials[1].params == trials[0].params


def test_a_run_started_with_nohup_outlives_the_terminal(tmp_path: Path, slow_study: Path) -> None:
    """SIGHUP ignored at start (what `nohup` does): the closed terminal's SIGHUP, sent from
    inside an epoch, is still ignored and the run finishes."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    proc = subprocess.run(
        _hpstudy("-q", "create", str(slow_study), "--storage", url),
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "HPSTUDY_CRASH_AT": "train:60:HUP"},
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _assert_exact_experiment(url)
    assert not _states(tmp_path / "db.sqlite")["FAIL"]
