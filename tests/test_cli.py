from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
from typer.testing import CliRunner

from hpstudy.cli import app
from tests.conftest import tiny_study_text

runner = CliRunner()


def test_create_then_list(tmp_path: Path, storage_url: str) -> None:
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("manual", "random")))
    result = runner.invoke(
        app,
        [
            "-q",
            "create",
            str(study),
            "--storage",
            storage_url,
            "--n-trials",
            "2",
            "--strategy",
            "random",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tiny.iris.random.s0" in result.stdout and "2/2" in result.stdout
    names = {s.study_name for s in optuna.get_all_study_summaries(storage_url)}
    assert names == {
        "tiny.iris.random.s0",
        "tiny.diabetes.random.s0",
    }  # --strategy narrowed the run

    listed = runner.invoke(app, ["list", "--storage", storage_url])
    assert listed.exit_code == 0
    assert "experiment tiny" in listed.stdout and "tiny.diabetes.random.s0" in listed.stdout

    again = runner.invoke(
        app, ["create", str(study), "--storage", storage_url, "--strategy", "random"]
    )
    assert again.exit_code == 2
    assert "already has 2 of its 2 studies" in again.stderr and "Traceback" not in again.output


def test_storage_from_environment(tmp_path: Path, storage_url: str) -> None:
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",)))
    result = runner.invoke(
        app, ["create", str(study), "--no-run"], env={"HPSTUDY_STORAGE": storage_url}
    )
    assert result.exit_code == 0, result.output
    assert f"created 2 studies of experiment 'tiny' in {storage_url}" in result.stdout
    assert all(s.n_trials == 0 for s in optuna.get_all_study_summaries(storage_url))


def test_bad_study_file_exits_2_naming_the_key_and_writes_nothing(tmp_path: Path) -> None:
    study = tmp_path / "bad.toml"
    study.write_text(tiny_study_text().replace("dropout = 0.1", "dropout = 1.5"))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = runner.invoke(app, ["create", str(study), "--storage", url])
    assert result.exit_code == 2
    assert "space.dropout: dropout must be in [0, 1), got 1.5" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "db.sqlite").exists()


def test_bad_csv_target_exits_2_before_storage_is_touched(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    text = tiny_study_text().replace('dataset = "iris"', 'csv = "d.csv"\ntarget = "price"')
    study = tmp_path / "s.toml"
    study.write_text(text)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    result = runner.invoke(app, ["create", str(study), "--storage", url])
    assert result.exit_code == 2
    assert (
        "target column 'price' not in" in result.stderr
        and "its columns are: a, b" in result.stderr
    )
    assert not (tmp_path / "db.sqlite").exists()


def test_bad_option_values_exit_2(tmp_path: Path, tiny_study: Path, storage_url: str) -> None:
    result = runner.invoke(
        app, ["create", str(tiny_study), "--storage", storage_url, "--strategy", "bayes"]
    )
    assert result.exit_code == 2
    assert "--strategy 'bayes' is not in the study file's strategies" in result.stderr
    result = runner.invoke(
        app, ["create", str(tiny_study), "--storage", storage_url, "--seeds", "a,b"]
    )
    assert result.exit_code == 2 and "--seeds must be" in result.stderr


def test_missing_study_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["create", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "study file not found" in result.stderr


def test_list_of_missing_storage_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["list", "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_help_does_not_import_torch_or_optuna() -> None:
    code = "import sys, hpstudy.cli; print(sorted(m for m in ('torch', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    helped = subprocess.run(
        [sys.executable, "-m", "hpstudy", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "create" in helped.stdout and "list" in helped.stdout


def test_optuna_cli_reads_the_storage(tmp_path: Path, storage_url: str) -> None:
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",), n_trials=1))
    assert (
        runner.invoke(app, ["-q", "create", str(study), "--storage", storage_url]).exit_code == 0
    )
    optuna_cli = Path(sys.executable).with_name("optuna")
    out = subprocess.run(
        [str(optuna_cli), "studies", "--storage", storage_url, "-f", "json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "tiny.iris.random.s0" in out.stdout and "tiny.diabetes.random.s0" in out.stdout


def test_version_names_hpstudy_and_the_versions_it_runs_on_without_importing_them() -> None:
    from importlib.metadata import version

    from hpstudy._version import __version__

    code = (
        "import sys; from hpstudy.cli import main; sys.argv = ['hpstudy', '--version']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    rc = e.code\n"
        "print('heavy', sorted(m for m in ('torch', 'optuna') if m in sys.modules), rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, last = done.stdout.strip().splitlines()[0], done.stdout.strip().splitlines()[-1]
    assert first.startswith(f"hpstudy {__version__} (")
    assert f"optuna {version('optuna')}" in first and f"torch {version('torch')}" in first
    assert last in ("heavy [] 0", "heavy [] None")


def test_list_and_status_show_each_studys_own_metric(tmp_path: Path, storage_url: str) -> None:
    """iris trials are selected on cross-entropy (minimize), diabetes on rmse (minimize): each
    row says its own (its best is in those units)."""
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",)))
    assert (
        runner.invoke(app, ["create", str(study), "--storage", storage_url, "--no-run"]).exit_code
        == 0
    )
    for command in (["list"], ["status", "tiny"]):
        result = runner.invoke(app, [*command, "--storage", storage_url])
        assert result.exit_code == 0, result.output
        rows = {
            line.split()[1]: line
            for line in result.stdout.splitlines()
            if "tiny." in line and ".s0" in line
        }
        assert set(rows) == {"tiny.iris.random.s0", "tiny.diabetes.random.s0"}, result.stdout
        assert "cross_entropy (minimize)" in rows["tiny.iris.random.s0"], command
        assert "rmse" not in rows["tiny.iris.random.s0"], command
        assert "rmse (minimize)" in rows["tiny.diabetes.random.s0"], command
        assert "best = " not in result.stdout  # no caption naming one task's metric for all
