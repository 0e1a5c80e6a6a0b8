"""Two `create` or `resume` processes of one experiment lined up at the same instruction (the
start barrier at `plan`, just before each creates studies and queues configurations), on
SQLite and on PostgreSQL: every grid point and manual configuration is queued once and run
once, no WAITING trial is left, nothing dies with a raw database error; and two `create` on an
empty PostgreSQL database at once (the schema-creation race)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import tiny_study_text
from tests.runner.test_processes import _assert_exact_experiment

pytestmark = pytest.mark.slow

# iris only: manual (2), grid (4 points; budget 3 -> 3 of them), random (3); 2-epoch trials.
STUDY = (
    tiny_study_text(strategies=("manual", "grid", "random"), n_trials=3, pruner="none")
    .replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    .replace("max_epochs = 3", "max_epochs = 2")
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


def _env(
    barrier: Path | None = None, n: int = 2, point: str = "plan", **extra: str
) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HPSTUDY_CRASH", "HPSTUDY_START"))
    }
    if barrier is not None:
        barrier.mkdir(exist_ok=True)
        env["HPSTUDY_START_BARRIER"] = f"{barrier}:{n}:{point}"
    return {**env, **extra}


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpstudy", "-q", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _together(args: list[list[str]], barrier: Path, point: str = "plan") -> list[tuple[int, str]]:
    """Run the commands at once, each held at the barrier until all are there."""
    procs = [_start(a, _env(barrier, len(args), point)) for a in args]
    out = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        out.append((p.returncode, err))
    return out


def _no_raw_errors(results: list[tuple[int, str]]) -> None:
    for _, err in results:
        assert "Traceback" not in err and "IntegrityError" not in err, err


def _queued_keys(url: str) -> None:
    """No grid point or manual configuration was queued twice: each key has exactly one
    original (re-runs carry `retry_of`)."""
    for summary in optuna.get_all_study_summaries(url):
        trials = optuna.load_study(study_name=summary.study_name, storage=url).trials
        keys = [
            t.system_attrs.get("grid_id", t.user_attrs.get("manual_index"))
            for t in trials
            if "retry_of" not in t.user_attrs
            and ("grid_id" in t.system_attrs or "manual_index" in t.user_attrs)
        ]
        assert len(keys) == len(set(keys)), (summary.study_name, sorted(keys))


def test_two_creates_of_one_file_at_once_make_one_experiment(tmp_path: Path, url: str) -> None:
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    results = _together([["create", str(study), "--storage", url]] * 2, tmp_path / "b")
    _no_raw_errors(results)
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results  # one creates and runs; the other is told to resume
    (loser,) = [err for code, err in results if code == 2]
    assert "already has" in loser and "hpstudy resume tiny" in loser
    _assert_exact_experiment(url, budget=3, n_studies=3)
    _queued_keys(url)


def test_two_resumes_finishing_a_killed_create_queue_each_configuration_once(
    tmp_path: Path, url: str
) -> None:
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    # Killed after the manual study and one grid point were queued.
    killed = subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", "create", str(study), "--storage", url],
        capture_output=True, text=True, timeout=600, env=_env(HPSTUDY_CRASH_AT="queue:4"),
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    results = _together([["resume", "tiny", "--storage", url]] * 2, tmp_path / "b")
    _no_raw_errors(results)
    assert [code for code, _ in results] == [0, 0], results
    _assert_exact_experiment(url, budget=3, n_studies=3)
    _queued_keys(url)


def test_two_resumes_raising_the_budget_at_once_queue_the_new_points_once(
    tmp_path: Path, url: str
) -> None:
    study = tmp_path / "s.toml"
    study.write_text(STUDY)
    created = subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", "create", str(study), "--storage", url,
         "--no-run", "--n-trials", "2"],
        capture_output=True, text=True, timeout=600, env=_env(),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    results = _together(
        [["resume", "tiny", "--storage", url, "--n-trials", "4"]] * 2, tmp_path / "b"
    )
    _no_raw_errors(results)
    assert [code for code, _ in results] == [0, 0], results
    _assert_exact_experiment(url, budget=4, n_studies=3)
    _queued_keys(url)


def test_waiting_trials_are_never_claimed_beyond_the_budget(tmp_path: Path) -> None:
    """Five WAITING trials of a study whose budget is 3 (a budget lowered after queuing, or
    re-runs queued by recoveries), claimed by two processes at once: three run."""
    from hpstudy.config import parse_config
    from hpstudy.store import TrialWriter, experiment_studies, open_storage
    from hpstudy.strategies import distributions

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = tmp_path / "s.toml"
    grid_only = tiny_study_text(strategies=("grid",), n_trials=3, pruner="none")
    study.write_text(grid_only.replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', ""))
    created = subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", "create", str(study), "--storage", url, "--no-run"],
        capture_output=True, text=True, timeout=600, env=_env(),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    storage = open_storage(url)
    (info,) = experiment_studies(storage, "tiny")
    study_id = info.study_id
    dists = distributions(parse_config(study.read_text(), source=str(study)))
    writer = TrialWriter(storage)
    for lr in (0.02, 0.03):  # two more configurations queued beyond the three grid points
        writer.add_trial(
            study_id, TrialState.WAITING, {"n_layers": 1, "n_units": 8, "lr": lr}, dists
        )
    results = _together([["worker", "tiny", "--storage", url]] * 2, tmp_path / "b", point="claim")
    _no_raw_errors(results)
    assert [code for code, _ in results] == [0, 0], results
    trials = optuna.load_study(study_name=info.name, storage=url).trials
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE"] * 3 + ["WAITING"] * 2, states


def test_two_creates_on_an_empty_postgresql_database_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Both open the empty database at the same moment (Optuna's schema creation raced);
    one creates the schema, the other waits for it and goes on."""
    files = []
    for name in ("first", "second"):
        path = tmp_path / f"{name}.toml"
        path.write_text(STUDY.replace('name = "tiny"', f'name = "{name}"'))
        files.append(path)
    results = _together(
        [["create", str(f), "--storage", postgres_url, "--no-run"] for f in files],
        tmp_path / "b",
        point="open",
    )
    _no_raw_errors(results)
    assert [code for code, _ in results] == [0, 0], results
    names = sorted(
        s.study_name.split(".")[0] for s in optuna.get_all_study_summaries(postgres_url)
    )
    assert names == ["first"] * 3 + ["second"] * 3
