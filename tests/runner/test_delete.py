"""`hpstudy delete NAME`: lists, asks, deletes one experiment's studies and nothing else, and
refuses (deleting nothing) while trials of it are RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from typer.testing import CliRunner

from hpstudy.cli import app
from hpstudy.config import parse_config
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text

runner = CliRunner()
TEXT = tiny_study_text(strategies=("random",), n_trials=1)


def _two_experiments(url: str) -> None:
    create_experiment(parse_config(TEXT), url)  # tiny: 2 studies, 1 trial each
    other = TEXT.replace('name = "tiny"', 'name = "other"')
    create_experiment(parse_config(other), url, run=False)


def _studies(url: str) -> dict[str, int]:
    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(url)}


def _rows(url: str) -> dict[str, int]:
    """Rows left in Optuna's tables: a deleted study leaves no orphan trial behind."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in ("studies", "trials", "trial_params", "trial_values")
            }
    finally:
        engine.dispose()


def _check_delete_keeps_other_experiments(url: str) -> None:
    _two_experiments(url)
    before = _studies(url)

    no = runner.invoke(app, ["delete", "tiny", "--storage", url], input="n\n")
    assert no.exit_code == 1
    assert "tiny.iris.random.s0 (1 trials)" in no.stdout and "2 studies, 2 trials" in no.stdout
    assert _studies(url) == before  # asked, refused: nothing gone

    yes = runner.invoke(app, ["delete", "tiny", "--storage", url], input="y\n")
    assert yes.exit_code == 0, yes.output
    assert "deleted 2 studies (2 trials) of experiment 'tiny'" in yes.stdout
    assert _studies(url) == {k: v for k, v in before.items() if k.startswith("other.")}
    assert len(_studies(url)) == 2
    assert _rows(url) == {"studies": 2, "trials": 0, "trial_params": 0, "trial_values": 0}

    again = runner.invoke(app, ["delete", "tiny", "--storage", url, "--yes"])
    assert again.exit_code == 2 and "experiment 'tiny' not found" in again.stderr
    last = runner.invoke(app, ["delete", "other", "--storage", url, "--yes"])
    assert last.exit_code == 0 and _studies(url) == {}


def test_delete_lists_asks_and_removes_only_that_experiment(storage_url: str) -> None:
    _check_delete_keeps_other_experiments(storage_url)


def test_delete_on_postgresql_removes_only_that_experiment(postgres_url: str) -> None:
    _check_delete_keeps_other_experiments(postgres_url)


def test_delete_refuses_while_a_trial_runs_and_deletes_nothing(storage_url: str) -> None:
    _two_experiments(storage_url)
    storage = optuna.storages.RDBStorage(storage_url)
    study_id = storage.get_study_id_from_name("tiny.diabetes.random.s0")
    storage.create_new_trial(study_id)  # RUNNING, as a live worker's trial is
    before = _studies(storage_url)

    refused = runner.invoke(app, ["delete", "tiny", "--storage", storage_url, "--yes"])
    assert refused.exit_code == 1
    assert "1 RUNNING trial(s): tiny.diabetes.random.s0 trial 1" in refused.stderr
    assert "nothing was deleted" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.output
    assert _studies(storage_url) == before

    forced = runner.invoke(app, ["delete", "tiny", "--storage", storage_url, "--yes", "--force"])
    assert forced.exit_code == 0, forced.output
    assert set(_studies(storage_url)) == {"other.iris.random.s0", "other.diabetes.random.s0"}


@pytest.mark.slow
def test_a_dead_workers_trial_blocks_delete_with_the_way_out(tmp_path: Path) -> None:
    """kill -9 mid-trial leaves a RUNNING trial of a dead worker: delete names it as stale and
    says how to recover; after `hpstudy resume` it deletes."""
    study = tmp_path / "s.toml"
    study.write_text(TEXT)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {**os.environ, "HPSTUDY_CRASH_AT": "train:1:KILL"}
    killed = subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", "create", str(study), "--storage", url],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    refused = runner.invoke(app, ["delete", "tiny", "--storage", url, "--yes"])
    assert refused.exit_code == 1
    assert "stale: worker" in refused.stderr and "is gone" in refused.stderr
    assert "'hpstudy resume tiny --storage URL' first, or delete anyway with --force" in (
        refused.stderr
    )
    assert runner.invoke(app, ["-q", "resume", "tiny", "--storage", url]).exit_code == 0
    done = runner.invoke(app, ["delete", "tiny", "--storage", url, "--yes"])
    assert done.exit_code == 0, done.output
    assert _studies(url) == {}
