from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpstudy.cli import app
from hpstudy.config import load_config
from hpstudy.runner import DriftError, create_experiment, resume_experiment
from tests.conftest import tiny_study_text

runner = CliRunner()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _n_trials(url: str) -> dict[str, int]:
    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(url)}


def test_resume_by_name_meets_budgets_without_rerunning(tmp_path: Path, storage_url: str) -> None:
    study = _write(tmp_path / "s.toml", tiny_study_text(strategies=("random", "tpe"), n_trials=2))
    create_experiment(load_config(study), storage_url)
    before = _n_trials(storage_url)
    _, results = resume_experiment("tiny", storage_url)
    assert _n_trials(storage_url) == before  # nothing to do: never overshoot
    assert all(r.reason == "budget met" for r in results)


def test_budget_increase_and_new_seed_are_accepted(tmp_path: Path, storage_url: str) -> None:
    study = _write(tmp_path / "s.toml", tiny_study_text(strategies=("grid", "random"), n_trials=2))
    create_experiment(load_config(study), storage_url)
    _write(
        study,
        tiny_study_text(strategies=("grid", "random"), n_trials=4).replace(
            "seeds = 1", "seeds = 2"
        ),
    )
    resume_experiment(str(study), storage_url)
    counts = _n_trials(storage_url)
    assert counts["tiny.iris.random.s0"] == 4 and counts["tiny.iris.grid.s0"] == 4  # topped up
    assert counts["tiny.iris.random.s1"] == 4  # the new seed's studies were created and run
    grid = optuna.load_study(study_name="tiny.iris.grid.s0", storage=storage_url)
    assert sorted(t.system_attrs["grid_id"] for t in grid.trials) == [0, 1, 2, 3]
    assert grid.user_attrs["budget"]["n_trials"] == 4


def test_incomparable_change_is_refused_with_a_diff(tmp_path: Path, storage_url: str) -> None:
    study = _write(tmp_path / "s.toml", tiny_study_text(strategies=("random",), n_trials=1))
    create_experiment(load_config(study), storage_url)
    before = _n_trials(storage_url)
    _write(
        study,
        tiny_study_text(strategies=("random",), n_trials=1)
        .replace("high = 1e-1", "high = 0.5")
        .replace("max_epochs = 3", "max_epochs = 4"),
    )
    with pytest.raises(DriftError) as info:
        resume_experiment(str(study), storage_url, n_trials=3)
    message = str(info.value)
    assert "space.lr.high: 0.1 -> 0.5" in message and "training.max_epochs: 3 -> 4" in message
    assert "--force" in message
    assert _n_trials(storage_url) == before  # refused before anything ran

    result = runner.invoke(app, ["resume", str(study), "--storage", storage_url])
    assert (
        result.exit_code == 2
        and "space.lr.high: 0.1 -> 0.5" in result.stderr
        and "Traceback" not in result.output
    )

    forced = runner.invoke(
        app, ["-q", "resume", str(study), "--storage", storage_url, "--force", "--n-trials", "2"]
    )
    assert forced.exit_code == 0, forced.output
    assert all(n == 2 for n in _n_trials(storage_url).values())


def test_unknown_experiment_exits_2(storage_url: str, tmp_path: Path) -> None:
    create_experiment(
        load_config(
            _write(tmp_path / "s.toml", tiny_study_text(strategies=("random",), n_trials=1))
        ),
        storage_url,
        run=False,
    )
    result = runner.invoke(app, ["resume", "nope", "--storage", storage_url])
    assert result.exit_code == 2 and "experiment 'nope' not found" in result.stderr
    result = runner.invoke(app, ["status", "nope", "--storage", storage_url])
    assert result.exit_code == 2


def test_status_shows_counts(tmp_path: Path, storage_url: str) -> None:
    create_experiment(
        load_config(
            _write(tmp_path / "s.toml", tiny_study_text(strategies=("random",), n_trials=2))
        ),
        storage_url,
    )
    result = runner.invoke(app, ["status", "tiny", "--storage", storage_url])
    assert result.exit_code == 0
    assert "tiny.iris.random.s0" in result.stdout and "2/2" in result.stdout
    assert "2 of 2 studies have met their budget" in result.stdout


def _csv_study(tmp_path: Path) -> Path:
    rows = "".join(f"{i % 7},{(i * 3) % 5},{i % 7 + 0.5 * ((i * 3) % 5)}\n" for i in range(60))
    (tmp_path / "d.csv").write_text("a,b,y\n" + rows)
    text = tiny_study_text(strategies=("random",), n_trials=1)
    text = text.replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    text = text.replace(
        'name = "iris"\ndataset = "iris"', 'name = "d"\ncsv = "d.csv"\ntarget = "y"'
    )
    return _write(tmp_path / "s.toml", text)


def test_a_training_change_is_named_alone_not_as_a_data_change(
    tmp_path: Path, storage_url: str
) -> None:
    """Only training.max_epochs changed, the CSV untouched: the diff says that, and counts 1."""
    study = _csv_study(tmp_path)
    create_experiment(load_config(study), storage_url, run=False)
    _write(study, study.read_text().replace("max_epochs = 3", "max_epochs = 4"))
    result = runner.invoke(app, ["resume", str(study), "--storage", storage_url])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "(1 change that would make new trials incomparable" in message, message
    assert "training.max_epochs: 3 -> 4" in message
    assert "contents" not in message and "problems" not in message
    assert len(message.splitlines()) == 1


def test_a_changed_csv_is_named_as_the_data_change(tmp_path: Path, storage_url: str) -> None:
    study = _csv_study(tmp_path)
    create_experiment(load_config(study), storage_url, run=False)
    data = tmp_path / "d.csv"
    data.write_text(data.read_text() + "1,1,9.5\n")
    with pytest.raises(DriftError) as info:
        resume_experiment(str(study), storage_url)
    message = str(info.value)
    assert (
        f"(1 change that would make new trials incomparable with the stored ones: tasks[d]: the contents of {data} changed since create)"
        in message
    )
    # the same data copied elsewhere with a copied study file is not a change: only max_epochs
    data.write_text(data.read_text().rsplit("1,1,9.5\n", 1)[0])
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "d.csv").write_bytes(data.read_bytes())
    _write(copy / "s.toml", study.read_text().replace("max_epochs = 3", "max_epochs = 5"))
    with pytest.raises(DriftError) as info:
        resume_experiment(str(copy / "s.toml"), storage_url)
    message = str(info.value)
    assert "(1 change that would make" in message and "training.max_epochs: 3 -> 5" in message
