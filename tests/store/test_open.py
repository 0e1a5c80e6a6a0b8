"""Opening storages: concurrent schema creation, and one clock for heartbeats."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpstudy.store import TrialReader, TrialWriter, open_storage
from tests.conftest import tiny_study_text


@pytest.mark.slow
def test_two_creates_racing_on_a_new_sqlite_file_both_succeed(tmp_path: Path) -> None:
    """Both processes reach the schema creation of the same new file at the same moment (a
    file barrier just before opening it)."""
    url = f"sqlite:///{tmp_path / 'new' / 'db.sqlite'}"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "HPSTUDY_START_BARRIER": f"{barrier}:2:open"}
    procs = []
    for name in ("first", "second"):
        study = tmp_path / f"{name}.toml"
        text = tiny_study_text(strategies=("random",), n_trials=1)
        study.write_text(text.replace('name = "tiny"', f'name = "{name}"'))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "hpstudy", "create", str(study), "--storage", url,
                 "--no-run"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            )
        )  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(url))
    assert names == sorted(
        f"{e}.{t}.random.s0" for e in ("first", "second") for t in ("iris", "diabetes")
    )


def test_heartbeats_written_in_one_time_zone_are_fresh_in_another(postgres_url: str) -> None:
    """A worker whose session runs in Asia/Tokyo beats; a UTC session (and a third zone)
    reads the heartbeat's age as seconds, not 9 hours."""
    tokyo = open_storage(postgres_url + "?options=-c%20timezone%3DAsia/Tokyo")
    study_id = tokyo.create_new_study([StudyDirection.MAXIMIZE], "clock")
    added = TrialWriter(tokyo).add_trial(study_id, TrialState.RUNNING, {}, {})
    assert added is not None
    for zone in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        reader = TrialReader(open_storage(postgres_url + f"?options=-c%20timezone%3D{zone}"))
        ((trial_id, worker, age),) = reader.running_health(study_id)
        assert trial_id == added[0] and worker is not None
        assert age is not None and -300 < age < 300, (zone, age)  # a clock, not a zone offset


def test_a_sqlite_file_on_a_network_file_system_gets_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The mount table says the file's folder is NFS (a mount table in /proc/self/mounts'
    format; no NFS server here): SQLite's locking is unreliable there, the user is told."""
    from hpstudy.store import _storage

    shared = tmp_path / "shared"
    shared.mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw,relatime 0 0\n"
        f"server:/export {shared} nfs4 rw,relatime,vers=4.2 0 0\n"
        f"server:/other {tmp_path / 'sharedx'} cifs rw 0 0\n"
    )
    monkeypatch.setattr(_storage, "MOUNTS", str(mounts))
    assert _storage.file_system_type(shared / "sub" / "db.sqlite") == "nfs4"
    assert _storage.file_system_type(tmp_path / "local.db") == "ext4"
    with caplog.at_level("WARNING", logger="hpstudy"):
        open_storage(f"sqlite:///{tmp_path / 'local.db'}")
    assert "network file system" not in caplog.text
    with caplog.at_level("WARNING", logger="hpstudy"):
        open_storage(f"sqlite:///{shared / 'db.sqlite'}")
    assert "network file system (nfs4)" in caplog.text and "PostgreSQL" in caplog.text
