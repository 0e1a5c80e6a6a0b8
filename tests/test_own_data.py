"""A data scientist's own file end to end: a tab-separated count regression with an ID column,
searched with a Poisson loss, saved with train-best, and used by predict, which refuses
values training would have refused (or imputes them with --impute) and passes IDs through."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hpstudy.cli import app
from hpstudy.config import load_config
from hpstudy.runner import create_experiment
from hpstudy.saved_model import load_model, train_best

runner = CliRunner()

STUDY = """
name = "counts"
seeds = 2
strategies = ["random"]

[budget]
n_trials = 3

[training]
max_epochs = 8
patience = 0

[[tasks]]
name = "visits"
csv = "visits.tsv"
target = "visits"
drop = ["id"]
categorical = ["region"]
loss = "poisson"

[space]
n_units = { low = 8, high = 32 }
lr = { low = 3e-3, high = 3e-2, log = true }
n_layers = 1
dropout = 0.0
"""


def _visits(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 80, n)
    region = rng.integers(1, 4, n)  # integer codes of a category
    rate = np.exp(0.02 * (age - 50) + 0.4 * (region == 2))
    return pd.DataFrame(
        {
            "id": [f"p{seed}-{i}" for i in range(n)],
            "age": np.round(age, 1),
            "region": region,
            "visits": rng.poisson(rate * 3),
        }
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("counts")
    _visits(200, 0).to_csv(root / "visits.tsv", sep="\t", index=False)
    (root / "s.toml").write_text(STUDY)
    url = f"sqlite:///{root / 'hpstudy.db'}"
    create_experiment(load_config(root / "s.toml"), url)
    path, _ = train_best(url, "counts", "visits", root / "model")
    return path, url


def test_poisson_model_predicts_counts_never_negative(
    model_dir: tuple[Path, str], tmp_path: Path
) -> None:
    path, _ = model_dir
    meta = json.loads((path / "model.json").read_text())
    assert meta["target"]["link"] == "log"
    assert [c["column"] for c in meta["preprocessing"]["categorical"]] == ["region"]
    assert meta["preprocessing"]["categorical"][0]["categories"] == ["1", "2", "3"]
    new = _visits(300, 1)
    new.loc[::7, "age"] = new["age"] * 10  # far outside the training range
    predictions = load_model(path).predict_frame(new)
    assert (predictions["prediction"] >= 0).all() and predictions["prediction"].notna().all()
    assert list(predictions.columns) == ["id", "prediction"]  # the dropped ID passes through
    assert predictions["id"].tolist() == new["id"].tolist()


def test_train_best_test_score_is_the_saved_models_score_on_the_test_rows(
    model_dir: tuple[Path, str],
) -> None:
    from hpstudy.data import prepare_final
    from hpstudy.data._datasets import load_data

    path, url = model_dir
    meta = json.loads((path / "model.json").read_text())
    config = load_config(Path(url.removeprefix("sqlite:///")).parent / "s.toml")
    task = config.task("visits")
    raw = load_data(task)
    test = prepare_final(task, meta["trained_on"]["seed"], raw).test_index
    frame = raw.X.iloc[test].copy()
    frame["visits"] = raw.y[test]
    score = load_model(path).score_frame(frame)
    assert score == pytest.approx(meta["scores"]["test_rmse"], rel=1e-5)


@pytest.mark.parametrize(
    ("cell", "label"), [("abc", "text"), ("inf", "infinite"), ("1e200", ">1e150")]
)
def test_predict_refuses_what_training_refuses_and_imputes_on_request(
    model_dir: tuple[Path, str], tmp_path: Path, cell: str, label: str
) -> None:
    path, _ = model_dir
    new = _visits(20, 2).astype({"age": object})
    new.loc[[3, 11], "age"] = cell
    data = tmp_path / "new.csv"
    new.to_csv(data, index=False)
    result = runner.invoke(app, ["predict", str(path), str(data)])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert f"column 'age' has 2 {label} value(s)" in message and "line(s) 5, 13" in message
    assert "--impute" in message and result.stdout == ""

    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(path), str(data), "--impute", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 unusable number(s) in 'age' (--impute)" in result.stderr
    predictions = pd.read_csv(out)
    assert np.isfinite(predictions["prediction"]).all() and len(predictions) == 20
    # an imputed cell predicts exactly what an empty cell predicts
    empty = new.copy()
    empty.loc[[3, 11], "age"] = np.nan
    expected = load_model(path).predict_frame(empty)["prediction"].to_numpy()
    assert np.allclose(predictions["prediction"].to_numpy(), expected)


def test_predict_id_columns(model_dir: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = model_dir
    new = _visits(10, 3)
    new.insert(0, "row", range(100, 110))  # not in the training file
    data = tmp_path / "new.csv"
    new.to_csv(data, index=False)
    out = tmp_path / "p.csv"
    result = runner.invoke(
        app, ["predict", str(path), str(data), "--id", "row", "--id", "id", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["row", "id", "prediction"]
    assert predictions["row"].tolist() == list(range(100, 110))
    result = runner.invoke(app, ["predict", str(path), str(data), "--id", "nope"])
    assert (
        result.exit_code == 2 and "--id names column(s) not in the data: 'nope'" in result.stderr
    )
    # without --id, a column the model does not know is still refused
    result = runner.invoke(app, ["predict", str(path), str(data)])
    assert result.exit_code == 2 and "unexpected column(s) row" in result.stderr


def test_empty_cells_are_imputed_with_one_line(
    model_dir: tuple[Path, str], tmp_path: Path
) -> None:
    path, _ = model_dir
    new = _visits(10, 4)
    new.loc[2, "age"] = np.nan
    new.loc[5, "region"] = np.nan  # the codes are now read as floats: 2.0 must still be '2'
    data = tmp_path / "new.tsv"
    new.to_csv(data, sep="\t", index=False)  # predict sniffs the delimiter too
    result = runner.invoke(app, ["predict", str(path), str(data)])
    assert result.exit_code == 0, result.output
    assert "imputed 2 empty cell(s)" in result.stderr
    predictions = pd.read_csv(__import__("io").StringIO(result.stdout))
    full = load_model(path).predict_frame(_visits(10, 4))
    keep = [i for i in range(10) if i not in (2, 5)]
    assert np.allclose(
        predictions["prediction"].to_numpy()[keep], full["prediction"].to_numpy()[keep]
    )


def test_train_best_all_rows_measures_held_out_first(
    model_dir: tuple[Path, str], tmp_path: Path
) -> None:
    path, url = model_dir
    held_out = json.loads((path / "model.json").read_text())
    result = runner.invoke(
        app, ["train-best", "counts", "--storage", url, "--all-rows", "-o", str(tmp_path / "all")]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "all" / "model.json").read_text())
    assert meta["trained_on"]["rows"] == "all labelled rows"
    assert meta["scores"]["test_rmse"] == held_out["scores"]["test_rmse"]  # the same recipe
    assert "train_rmse" in meta["scores"]
    assert meta["trained_on"]["trial"] == held_out["trained_on"]["trial"]
    assert load_model(tmp_path / "all").predict_frame(_visits(5, 9)).shape == (5, 2)


def test_retraining_runs_with_the_trials_thread_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test-score retraining (hpstudy.scoring) uses one torch thread, as trials do, not
    torch's default of one per core; the caller's setting is restored after."""
    import torch

    import hpstudy.training
    from hpstudy.config import parse_config
    from hpstudy.scoring import retrain
    from tests.conftest import tiny_study_text

    config = parse_config(tiny_study_text(strategies=("random",), n_trials=2))
    seen: list[int] = []
    real = hpstudy.training.train

    def spy(*args: Any, **kwargs: Any) -> Any:  # the real training, watched
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(hpstudy.training, "train", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        params = {**config.fixed_params(), "n_layers": 1, "n_units": 8, "lr": 0.01}
        done = retrain(config.task("iris"), 0, params, 3, repeats=2)
        assert seen == [1, 1] and len(done.scores) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
