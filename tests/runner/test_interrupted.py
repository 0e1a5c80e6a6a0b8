"""A real Ctrl-C (SIGINT to the process group, as a terminal sends it) mid-trial: the attempt is
shown as interrupted, apart from the configurations' failures, and its compute is counted
apart, never charged to the strategy (status, list, export)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpstudy.cli import app
from tests.conftest import tiny_study_text

pytestmark = pytest.mark.slow
runner = CliRunner()
# iris only; grid runs first: trial 0 trains 3 epochs, the 5th epoch is trial 1's second.
TEXT = tiny_study_text(strategies=("grid", "random"), n_trials=3).replace(
    '[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', ""
)


def _table(stdout: str) -> dict[str, dict[str, str]]:
    """A rich table printed by the CLI, as {first cell: {column: cell}}."""
    lines = [line for line in stdout.splitlines() if line.startswith(("┃", "│"))]
    head = [c.strip() for c in lines[0].strip("┃").split("┃")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("│").split("│")]
        rows[cells[0]] = dict(zip(head, cells, strict=True))
    return rows


def test_ctrl_c_is_shown_as_interrupted_and_its_compute_is_not_charged(tmp_path: Path) -> None:
    study = tmp_path / "s.toml"
    study.write_text(TEXT)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {**os.environ, "HPSTUDY_CRASH_AT": "train:5:pgINT"}
    stopped = subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", "create", str(study), "--storage", url],
        capture_output=True, text=True, env=env, timeout=600, start_new_session=True,
    )  # fmt: skip
    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted during trial 1 of tiny.iris.grid.s0" in stopped.stderr

    status = runner.invoke(app, ["status", "tiny", "--storage", url])
    assert status.exit_code == 0, status.output
    grid = _table(status.stdout)["tiny.iris.grid.s0"]
    assert (grid["failed"], grid["interrupted"], grid["finished"]) == ("0", "1", "1/3")
    listed = _table(runner.invoke(app, ["list", "--storage", url]).stdout)["tiny.iris.grid.s0"]
    assert (listed["failed"], listed["interrupted"]) == ("0", "1")

    resumed = runner.invoke(app, ["-q", "resume", "tiny", "--storage", url])
    assert resumed.exit_code == 0, resumed.output
    assert _table(resumed.stdout)["tiny.iris.grid.s0"]["interrupted"] == "1"
    assert "failed" not in resumed.stderr  # no "1 trial(s) failed" for an interrupt

    out = tmp_path / "x.csv"
    exported = runner.invoke(app, ["export", "tiny", "--storage", url, "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    with out.open() as f:
        trials = [r for r in csv.DictReader(f) if r["strategy"] == "grid"]
    stopped_trials = [r for r in trials if r["counted"] == "False"]
    assert [r["fail_reason"][:11] for r in stopped_trials] == ["interrupted"]
    lost = int(stopped_trials[0]["epochs_trained"])
    assert lost >= 1
    counted = sum(int(r["epochs_trained"]) for r in trials if r["counted"] == "True")
    assert counted == 9  # three 3-epoch trials; the interrupted epochs are not among them
    with out.with_suffix(".summary.csv").open() as f:
        (row,) = [r for r in csv.DictReader(f) if r["strategy"] == "grid"]
    assert (row["failed"], row["interrupted"]) == ("0", "1")
    assert float(row["epochs_median"]) == counted
    assert float(row["interrupted_epochs"]) == lost
