"""Commands that only read never import torch or scikit-learn (checked in a real process).

Importing torch costs about a second and scikit-learn almost as much on an idle machine
(16 s for ``best`` on a busy one): a command that trains or preprocesses nothing must not pay
for them. Each command runs in a fresh interpreter through the console entry point, and that
process reports what it imported when it exits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import tiny_study_text

HEAVY = ("torch", "sklearn")

# Runs the CLI as the console script does, then writes every module it imported.
_RUN = textwrap.dedent(
    """
    import atexit, json, os, sys

    def _report() -> None:
        names = sorted(sys.modules)
        with open(os.environ["MODULES_OUT"], "w") as f:
            json.dump(names, f)

    atexit.register(_report)
    sys.argv = ["hpstudy", *sys.argv[1:]]
    from hpstudy.cli import main

    main()
    """
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A finished tiny experiment with its test scores cached, and its raw results file."""
    from hpstudy.config import parse_config
    from hpstudy.report import export_experiment
    from hpstudy.runner import create_experiment

    folder = tmp_path_factory.mktemp("imports")
    url = f"sqlite:///{folder / 'hpstudy.db'}"
    text = tiny_study_text(("grid", "random"), n_trials=2)
    config = parse_config(text, str(folder / "tiny.toml"))
    create_experiment(config, url)
    export_experiment(url, "tiny", "csv.gz", folder / "tiny.csv.gz")  # caches the test scores
    return folder, url


def _imported(args: list[str], cwd: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    out = cwd / "modules.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "MODULES_OUT": str(out)}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    names = json.loads(out.read_text())
    return [*names, *sorted({m.split(".")[0] for m in names})], proc


READ_ONLY = [
    ["status", "tiny"],
    ["list"],
    ["best", "tiny"],
    ["best", "tiny", "--json"],
    ["export", "tiny", "-f", "csv", "-o", "out/tiny.csv"],
    ["export", "tiny", "-f", "json", "-o", "out/tiny.json"],
    ["export", "tiny", "-f", "csv.gz", "-o", "out/again.csv.gz"],
    ["delete", "tiny", "--yes"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:3]))
def test_reading_commands_import_neither_torch_nor_scikit_learn(
    finished: tuple[Path, str], args: list[str], tmp_path: Path
) -> None:
    folder, _ = finished
    for db in folder.glob("hpstudy.db*"):  # with its write-ahead log; delete spoils no other
        shutil.copy(db, tmp_path / db.name)
    (tmp_path / "out").mkdir()
    modules, proc = _imported([*args, "--storage", str(tmp_path / "hpstudy.db")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "optuna" in modules  # it did read the storage
    assert [m for m in HEAVY if m in modules] == [], (args, proc.stdout)
    assert "alembic" not in modules  # an existing storage opens without Optuna's migrations


def test_results_from_files_import_neither_torch_nor_scikit_learn(
    finished: tuple[Path, str], tmp_path: Path
) -> None:
    folder, _ = finished
    for name in ("tiny.csv.gz", "tiny.toml"):
        shutil.copy(folder / name, tmp_path / name)
    modules, proc = _imported(["results", "tiny.csv.gz", "-o", "results.md"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results.md").read_text().count("tiny") > 0
    assert [m for m in HEAVY if m in modules] == []


@pytest.mark.parametrize(
    "args, absent",
    [
        (["--help"], (*HEAVY, "optuna", "pandas")),
        (["--version"], (*HEAVY, "optuna", "pandas")),
        (["status", "--help"], HEAVY),  # the options' callback sets Optuna's log level
    ],
)
def test_help_and_version_import_nothing_heavy(
    args: list[str], absent: tuple[str, ...], tmp_path: Path
) -> None:
    modules, proc = _imported(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout or "hpstudy" in proc.stdout
    assert [m for m in absent if m in modules] == []


def test_the_check_sees_torch_when_a_command_trains(tmp_path: Path) -> None:
    """The same check on a command that trains finds torch: it can fail."""
    (tmp_path / "tiny.toml").write_text(tiny_study_text(("random",), n_trials=1))
    modules, proc = _imported(["-q", "create", "tiny.toml", "--storage", "t.db"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "torch" in modules
    assert "torch._dynamo" not in modules  # the training loop's optimizers are hpstudy's own
    # trials on built-in data need no scikit-learn, but scoring does when the studies end: the
    # final model's saved preprocessing (prepare_final keeps its ColumnTransformer) and the
    # reference models (hpstudy.scoring._references)
    assert "sklearn.ensemble" in modules and "sklearn.compose" in modules
