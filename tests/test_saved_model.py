"""train-best -> predict round trips, and models that were tampered with fail safely."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hpstudy.cli import app
from hpstudy.config import load_config, parse_config
from hpstudy.data import prepare_final
from hpstudy.data._datasets import load_data
from hpstudy.report._collect import collect_experiment
from hpstudy.runner import create_experiment
from hpstudy.saved_model import ModelError, load_model, train_best
from tests.conftest import tiny_study_text

runner = CliRunner()


def _test_frame(config, task: str, seed: int, target: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    task_config = config.task(task)
    raw = load_data(task_config)
    test = prepare_final(task_config, seed, raw).test_index
    frame = raw.X.iloc[test].copy()
    frame[target] = raw.y[test]
    return frame


@pytest.mark.parametrize("task", ["iris", "diabetes"])
def test_train_best_then_predict_reproduces_the_reported_test_score(
    tmp_path: Path, storage_url: str, task: str
) -> None:
    config = parse_config(
        tiny_study_text(strategies=("random",), n_trials=3).replace(
            "max_epochs = 3", "max_epochs = 8"
        )
    )
    create_experiment(config, storage_url)  # test scores cached when each study finished
    path, meta = train_best(storage_url, "tiny", task, tmp_path / "model")
    study = next(
        s
        for s in collect_experiment(storage_url, "tiny").of(task)
        if s.info.name == meta["trained_on"]["study"]
    )
    reported = study.attrs["test_scores"]["scores"][0]
    assert meta["scores"][f"test_{meta['metric']}"] == pytest.approx(reported, rel=1e-5)
    model = load_model(path)
    frame = _test_frame(config, task, meta["trained_on"]["seed"], meta["target"]["column"])
    assert model.score_frame(frame) == pytest.approx(reported, rel=1e-4)
    predictions = model.predict_frame(frame.drop(columns=[meta["target"]["column"]]))
    assert len(predictions) == len(frame)
    if task == "iris":
        assert set(predictions["prediction"]) <= {"0", "1", "2"}
        assert np.allclose(
            predictions[[c for c in predictions if c.startswith("proba_")]].sum(axis=1), 1.0
        )


def test_csv_model_from_the_cli_with_categorical_columns(tmp_path: Path, storage_url: str) -> None:
    rng = np.random.default_rng(0)
    rows = ["area,district,price"]
    for i in range(120):
        area = rng.uniform(30, 150)
        district = ["north", "south", ""][i % 3]
        rows.append(
            f"{area:.1f},{district},{area * 3 + (20 if district == 'north' else 0) + rng.normal() * 5:.2f}"
        )
    (tmp_path / "houses.csv").write_text("\n".join(rows) + "\n")
    text = tiny_study_text(strategies=("random",), n_trials=2).replace(
        'name = "iris"\ndataset = "iris"', 'name = "houses"\ncsv = "houses.csv"\ntarget = "price"'
    )
    text = text.replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    study_file = tmp_path / "s.toml"
    study_file.write_text(text)
    create_experiment(load_config(study_file), storage_url)
    model_dir = tmp_path / "m"
    result = runner.invoke(
        app, ["train-best", "tiny", "--storage", storage_url, "-o", str(model_dir)]
    )
    assert result.exit_code == 0, result.output
    assert (model_dir / "weights.pt").exists() and json.loads(
        (model_dir / "model.json").read_text()
    )["columns"] == ["area", "district"]

    new = tmp_path / "new.csv"
    new.write_text(
        "area,district\n50,north\n120,west\n80,\n"
    )  # an unseen category and a missing one
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["predict", str(model_dir), str(new), "-o", str(out)])
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(out)
    assert (
        list(preds.columns) == ["prediction"]
        and len(preds) == 3
        and preds["prediction"].notna().all()
    )

    (tmp_path / "bad.csv").write_text("area,colour\n50,red\n")
    result = runner.invoke(app, ["predict", str(model_dir), str(tmp_path / "bad.csv")])
    assert result.exit_code == 2
    assert "missing column(s) district; unexpected column(s) colour" in result.stderr


class _Exploit:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {_Exploit.marker}",))

    marker = ""


def test_tampered_models_fail_safely(tmp_path: Path, storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=2)), storage_url
    )
    path, _ = train_best(storage_url, "tiny", "iris", tmp_path / "model")
    assert load_model(path).meta["task"] == "iris"

    # a pickle that would run a command when unpickled: weights_only refuses it
    _Exploit.marker = str(tmp_path / "pwned")
    weights = (path / "weights.pt").read_bytes()
    with open(path / "weights.pt", "wb") as f:
        pickle.dump(_Exploit(), f)
    with pytest.raises(ModelError, match="damaged or was tampered with"):
        load_model(path)
    assert not (tmp_path / "pwned").exists()

    # weights that do not fit the architecture the JSON describes
    (path / "weights.pt").write_bytes(weights)
    meta = json.loads((path / "model.json").read_text())
    meta["params"]["n_units"] = 3
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="damaged or was tampered with"):
        load_model(path)

    (path / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        load_model(path)
    with pytest.raises(ModelError, match="not a saved hpstudy model"):
        load_model(tmp_path)
