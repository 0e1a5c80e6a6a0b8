"""`--storage`: a plain file path is a SQLite file, a bogus scheme gets the expected forms, and
a read-only SQLite file (or folder) can still be listed, status'd, reported and exported while
commands that must write refuse clearly and change nothing."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpstudy.cli import app
from hpstudy.config import parse_config
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text

runner = CliRunner()
TEXT = tiny_study_text(strategies=("random",), n_trials=1).replace(
    '[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', ""
)


@pytest.mark.parametrize("given", ["my.db", "storage/x.db", "ABSOLUTE"])
def test_a_plain_path_is_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(TEXT)
    path = str(tmp_path / "abs.db") if given == "ABSOLUTE" else given
    made = runner.invoke(app, ["create", "s.toml", "--storage", path, "--no-run"])
    assert made.exit_code == 0, made.output
    assert f"in sqlite:///{path} (not run)" in made.stdout
    assert (tmp_path / path).is_file()
    listed = runner.invoke(app, ["list"], env={"HPSTUDY_STORAGE": path})
    assert listed.exit_code == 0 and "tiny.iris.random.s0" in listed.stdout


@pytest.mark.parametrize(
    "url, hint",
    [
        ("foo://bar", "'foo' is not a database scheme"),
        ("postgres://user@host/db", "for PostgreSQL write postgresql://"),
        ("sqlite:/x.db:::", "is not a storage URL"),
    ],
)
def test_a_bogus_scheme_says_the_expected_forms(tmp_path: Path, url: str, hint: str) -> None:
    result = runner.invoke(app, ["list", "--storage", url])
    assert result.exit_code == 2
    assert hint in result.stderr
    assert "sqlite:///path.db" in result.stderr and "postgresql://user@host/db" in result.stderr
    assert "server is running" not in result.stderr and "Traceback" not in result.output


def _unprivileged() -> list[str]:
    """A command prefix under which file modes apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file read-only to us")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


@pytest.fixture(params=["file", "folder", "folder-checkpointed"])
def read_only_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A read-only database file, or a writable one in a read-only folder: with its
    write-ahead log still holding the trials, or checkpointed (the log empty)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "db.sqlite"
    create_experiment(parse_config(TEXT), f"sqlite:///{db}")
    if request.param == "folder-checkpointed":
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    is_file = request.param == "file"
    target = db if is_file else folder
    os.chmod(target, 0o444 if is_file else 0o555)
    try:
        yield db
    finally:
        os.chmod(target, 0o644 if is_file else 0o755)


def test_a_read_only_database_is_read_and_never_written(read_only_db: Path) -> None:
    prefix = _unprivileged()

    def hpstudy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "hpstudy", *args, "--storage", str(read_only_db)],
            capture_output=True, text=True, timeout=600, cwd=read_only_db.parent.parent,
        )  # fmt: skip

    for target in (str(read_only_db), f"{read_only_db}-journal"):
        probe = subprocess.run(  # the setting is real: the command cannot write the file or
            [*prefix, sys.executable, "-c", f"open({target!r}, 'ab')"],  # make its journal
            capture_output=True, text=True,
        )  # fmt: skip
        if probe.returncode != 0:
            break
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
    before = (read_only_db.stat().st_mtime_ns, read_only_db.read_bytes())

    for args in (["list"], ["status", "tiny"], ["best", "tiny"]):
        result = hpstudy(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "tiny.iris.random.s0" in result.stdout or "validation" in result.stdout
    report = hpstudy("-q", "report", "tiny", "-o", str(read_only_db.parent.parent / "r.html"))
    assert report.returncode == 0, report.stderr
    assert "lack test scores" not in report.stderr  # cached when the study finished
    assert "Traceback" not in report.stderr and "report:" in report.stdout
    exported = hpstudy("-q", "export", "tiny", "-o", str(read_only_db.parent.parent / "e.csv"))
    assert exported.returncode == 0, exported.stderr

    for args in (["resume", "tiny"], ["delete", "tiny", "--yes"]):
        refused = hpstudy("-q", *args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert "is read-only" in refused.stderr and "this command writes to it" in refused.stderr
        assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1

    assert (read_only_db.stat().st_mtime_ns, read_only_db.read_bytes()) == before
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{read_only_db}")
    assert summary.n_trials == 1 and "test_scores" in summary.user_attrs  # written by create
