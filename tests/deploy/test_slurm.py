"""deploy/slurm/ on a real one-node SLURM cluster (Debian's slurmctld, slurmd and munge, set up
by deploy/slurm/local-cluster.sh) over a fresh PostgreSQL database: the quickstart (smaller
budgets and epochs) submitted with deploy/slurm/submit.sh ends with every budget met exactly,
no configuration twice, nothing RUNNING or WAITING and the report written; and the same
holds when one array task is cancelled (scancel) in the middle of a trial: that trial is
recorded as interrupted, run again and never counted.

Runs where ``$HPSTUDY_TEST_SLURM`` is set and, like every PostgreSQL test, where
``$HPSTUDY_TEST_POSTGRES_URL`` is set: ``.ci/run`` sets both, so CI never skips it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from hpstudy.store import counts_toward_budget
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SLURM = ROOT / "deploy" / "slurm"
HPSTUDY = Path(sys.executable).parent / "hpstudy"
PASSWORD = "s3cret-slurm-pw"  # the test server trusts every local connection and ignores it
PARAMS = {"n_layers", "n_units", "dropout", "lr"}
WAIT = 900  # seconds; the machine is shared and slow, the scheduler polls every 2 s


@pytest.fixture(scope="module")
def cluster() -> None:
    if not os.environ.get("HPSTUDY_TEST_SLURM"):
        pytest.skip("HPSTUDY_TEST_SLURM is not set (.ci/run sets it and starts the cluster)")
    done = subprocess.run(
        [str(SLURM / "local-cluster.sh")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


def quickstart(epochs: int, n_trials: int, tasks: tuple[str, ...]) -> str:
    """studies/quickstart.toml with a smaller budget (grid: a subset of its points), fixed
    epochs (no early stop, no pruning: a trial's length is known) and only ``tasks``."""
    text = (ROOT / "studies" / "quickstart.toml").read_text()
    text = re.sub(
        r"^n_trials = \d+", f"n_trials = {n_trials}\ngrid_subset = true", text, flags=re.M
    )
    text = re.sub(r"^max_epochs = \d+", f"max_epochs = {epochs}", text, flags=re.M)
    text = re.sub(r"^patience = \d+", "patience = 0", text, flags=re.M)
    text = re.sub(r"\[pruner\]\n(.*\n)*?\n", '[pruner]\ntype = "none"\n\n', text)
    for task in ("digits", "diabetes"):
        if task not in tasks:
            text = re.sub(rf'\[\[tasks\]\]\nname = "{task}"\n(.*\n)*?\n', "", text)
    return text


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSTUDY_")}
    user, rest = url.split("://", 1)[1].split("@", 1)
    secret_url = f"postgresql://{user}:{PASSWORD}@{rest}"
    return {**env, "HPSTUDY_STORAGE": secret_url, "HPSTUDY": str(HPSTUDY)}


_SUBMITTED: list[str] = []


@pytest.fixture(autouse=True)
def _cancel_leftovers() -> Iterator[None]:
    """A failed test leaves no job running against its dropped database."""
    yield
    if _SUBMITTED:
        subprocess.run(["scancel", *_SUBMITTED], capture_output=True, timeout=60)
        _SUBMITTED.clear()


def _submit(tmp_path: Path, env: dict[str, str], n: int) -> tuple[str, str]:
    done = subprocess.run(
        [str(SLURM / "submit.sh"), "quickstart", str(n)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    workers = re.search(r"^workers: (\d+)", done.stdout, re.M)
    finish = re.search(r"^resume\+report: (\d+)", done.stdout, re.M)
    assert workers and finish, done.stdout
    _SUBMITTED.extend([workers.group(1), finish.group(1)])
    return workers.group(1), finish.group(1)


def _job(job: str) -> dict[str, str]:
    """``scontrol show job`` as key=value pairs (one array task: ``JOBID_TASK``)."""
    out = subprocess.run(
        ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=60
    ).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out.splitlines()[0])) if out.strip() else {}


def _wait_ended(job: str) -> dict[str, str]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        info = _job(job)
        if info.get("JobState") not in (None, "PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return info
        time.sleep(2)
    raise AssertionError(f"job {job} did not end within {WAIT} s: {_job(job)}")


def _studies(url: str) -> dict[str, list[FrozenTrial]]:
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=url).get_trials()
        for s in optuna.get_all_study_summaries(url)
    }


def _assert_exact(url: str, budget: int, n_studies: int) -> dict[str, list[FrozenTrial]]:
    """Every budget met exactly, nothing left RUNNING or WAITING, no configuration run twice
    (a re-run of an interrupted trial repeats it on purpose and is the one counted), and
    every uncounted trial an interrupted one whose configuration ran again."""
    studies = _studies(url)
    assert len(studies) == n_studies, sorted(studies)
    for name, trials in studies.items():
        states = Counter(t.state for t in trials)
        assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0, (name, states)
        counted = [t for t in trials if counts_toward_budget(t)]
        expected = 2 if name.split(".")[2] == "manual" else budget
        assert len(counted) == expected, (name, [(t.number, t.state) for t in trials])
        assert all(set(t.params) >= PARAMS and t.state != TrialState.FAIL for t in counted)
        configs = Counter(tuple(sorted(t.params.items())) for t in counted)
        assert max(configs.values()) == 1, (name, configs)
        for t in trials:
            if not counts_toward_budget(t):
                assert t.user_attrs["fail_reason"].startswith(("interrupted", "stale")), t
                assert any(c.user_attrs.get("retry_of") == t.number for c in counted), t
    return studies


def _outputs(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted(tmp_path.glob("hpstudy-*.out")))


def _create(tmp_path: Path, env: dict[str, str], text: str) -> None:
    study = tmp_path / "quickstart.toml"
    study.write_text(text)
    done = subprocess.run(
        [str(HPSTUDY), "-q", "create", str(study), "--no-run"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_submit_runs_the_quickstart_exactly_and_reports(cluster: None, tmp_path: Path) -> None:
    with fresh_postgres_database("hpstudy_slurm") as url:
        env = _env(url)
        _create(tmp_path, env, quickstart(epochs=3, n_trials=4, tasks=("digits", "diabetes")))
        workers, finish = _submit(tmp_path, env, 3)
        info = _wait_ended(finish)
        logs = _outputs(tmp_path)
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, logs)
        for task in range(3):
            assert _job(f"{workers}_{task}")["JobState"] == "COMPLETED", logs
        _assert_exact(url, budget=4, n_studies=8)
        report = tmp_path / "reports" / "quickstart.html"
        assert report.stat().st_size > 10_000 and "quickstart" in report.read_text()
        assert PASSWORD not in logs


def _just_started_trial_of_a_task(url: str, array_job: str) -> tuple[int, str, str]:
    """(trial number, study, array task id) of a trial that one of the tasks of ``array_job``
    started less than half a second ago (its worker's pid has that job's SLURM_ARRAY_JOB_ID
    in its environment): a trial of several seconds, so a signal sent now lands inside it."""
    import sqlalchemy

    query = sqlalchemy.text(
        "SELECT t.number, s.study_name, a.value_json, "
        "EXTRACT(EPOCH FROM timezone('UTC', now()) - t.datetime_start) "
        "FROM trials t JOIN studies s USING (study_id) JOIN trial_user_attributes a "
        "ON a.trial_id = t.trial_id AND a.key = 'worker' WHERE t.state = 'RUNNING'"
    )
    engine = sqlalchemy.create_engine(url)
    deadline = time.monotonic() + WAIT
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(query).all()
            for number, study, worker, age in rows:
                if age is None or float(age) > 0.5:
                    continue
                pid = int(json.loads(worker).split(":")[1])
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                env = dict(e.decode().partition("=")[::2] for e in environ if b"=" in e)
                if env.get("SLURM_ARRAY_JOB_ID") == array_job:
                    return number, study, env["SLURM_ARRAY_TASK_ID"]
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"no trial of array job {array_job} was seen starting")


def test_scancel_of_a_task_mid_trial_loses_and_counts_nothing(
    cluster: None, tmp_path: Path
) -> None:
    """Digits trials of 60 epochs without early stop (a second or more each): the task is
    cancelled within half a second of one of its trials starting, so the SIGTERM lands
    inside that trial (checked: the trial is recorded as interrupted, not as finished)."""
    with fresh_postgres_database("hpstudy_slurm") as url:
        env = _env(url)
        _create(tmp_path, env, quickstart(epochs=60, n_trials=2, tasks=("digits",)))
        workers, finish = _submit(tmp_path, env, 2)
        number, study, task = _just_started_trial_of_a_task(url, workers)
        cancelled = subprocess.run(
            ["scancel", f"{workers}_{task}"], capture_output=True, text=True, timeout=60
        )
        assert cancelled.returncode == 0, cancelled.stderr
        info = _wait_ended(finish)
        logs = _outputs(tmp_path)
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info, logs)
        assert _job(f"{workers}_{task}")["JobState"] == "CANCELLED", logs
        studies = _assert_exact(url, budget=2, n_studies=4)
        (victim,) = [t for t in studies[study] if t.number == number]
        assert victim.state == TrialState.FAIL, victim
        assert victim.user_attrs["fail_reason"].startswith("interrupted"), victim.user_attrs
        assert not counts_toward_budget(victim)
        (rerun,) = [t for t in studies[study] if t.user_attrs.get("retry_of") == number]
        assert rerun.state == TrialState.COMPLETE and rerun.params == victim.params
        assert f"interrupted during trial {number} of {study}" in logs
        assert (tmp_path / "reports" / "quickstart.html").stat().st_size > 10_000
        assert PASSWORD not in logs
        assert json.dumps(PASSWORD) not in logs
