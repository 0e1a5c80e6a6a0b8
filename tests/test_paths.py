"""Names read from storage are checked as strictly as names in a study file, and default output
paths stay inside their folder."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpstudy._errors import ConfigError, UsageError
from hpstudy._paths import default_output
from hpstudy.cli import app
from hpstudy.config import is_valid_name, parse_config
from tests.conftest import tiny_study_text

runner = CliRunner()


@pytest.mark.parametrize(
    "name", ["abc\n", "../../escaped", "a/b", ".hidden", "-x", "", "a b", "x\r", "é"]
)
def test_bad_names_are_refused(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(UsageError, match="is not a name of letters"):
        default_output("reports", (name,), ".html")


def test_a_trailing_newline_in_a_study_file_name_is_refused() -> None:
    text = tiny_study_text().replace('name = "tiny"', 'name = "tiny\\n"')
    with pytest.raises(
        ConfigError, match=r"name: must be a name of at most 100 letters.*got 'tiny\\n'"
    ):
        parse_config(text, source="s.toml", base_dir=Path("."))


def test_default_output_lies_in_its_folder() -> None:
    assert default_output("models", ("exp", "task")) == Path("models/exp-task")
    assert default_output("reports", ("exp",), ".csv") == Path("reports/exp.csv")


@pytest.mark.parametrize(
    "command",
    [
        ["report", "../../escaped"],
        ["export", "../../escaped"],
        ["train-best", "../../escaped"],
        ["best", "../../escaped"],
    ],
)
def test_an_experiment_name_edited_in_storage_writes_nothing_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    storage_url = f"sqlite:///{work / 'hp.db'}"
    study = work / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",), n_trials=2))
    assert (
        runner.invoke(app, ["-q", "create", str(study), "--storage", storage_url]).exit_code == 0
    )
    for summary in optuna.get_all_study_summaries(storage_url):
        optuna.load_study(study_name=summary.study_name, storage=storage_url).set_user_attr(
            "experiment", "../../escaped"
        )
    before = {p for p in tmp_path.rglob("*")}
    result = runner.invoke(app, [*command, "--storage", storage_url])
    assert result.exit_code == 2, result.output
    assert "experiment '../../escaped' not found" in result.stderr
    assert "Traceback" not in result.output
    assert {p for p in tmp_path.rglob("*")} - before <= {work / "hp.db-wal", work / "hp.db-shm"}
