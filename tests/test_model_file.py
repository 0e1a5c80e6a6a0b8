"""A saved model's files are checked before anything is allocated from them: model.json against
its schema, both files against the digests that bind them, sizes from the weights' shapes.
And a CSV with an empty column trains, saves and predicts on the same columns."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hpstudy._model_check import DIGEST_KEY, meta_sha256
from hpstudy.cli import app
from hpstudy.saved_model import ModelError, load_model
from tests.conftest import tiny_study_text

runner = CliRunner()


def _csv_rows(n: int, rng: np.random.Generator) -> list[str]:
    rows = ["size,colour,empty,label"]
    for i in range(n):
        size = rng.normal(10, 3)
        colour = ["red", "green", "blue"][i % 3]
        label = "small" if size < 8 else "large" if size > 12 else "mid"
        rows.append(f"{size:.3f},{colour},,{label}")
    return rows


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained from the CLI on a CSV with an all-empty column."""
    root = tmp_path_factory.mktemp("model")
    (root / "d.csv").write_text("\n".join(_csv_rows(150, np.random.default_rng(0))) + "\n")
    text = tiny_study_text(strategies=("random",), n_trials=2)
    text = text.replace(
        'name = "iris"\ndataset = "iris"', 'name = "d"\ncsv = "d.csv"\ntarget = "label"'
    )
    text = text.replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    (root / "s.toml").write_text(text)
    url = f"sqlite:///{root / 'hp.db'}"
    created = subprocess.run(
        [sys.executable, "-m", "hpstudy", "create", str(root / "s.toml"), "--storage", url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert created.returncode == 0, created.stderr
    # one warning for the empty column, and not scikit-learn's own
    assert created.stderr.count("'empty'") == 1, created.stderr
    assert "Skipping features without any observed values" not in created.stderr
    trained = runner.invoke(app, ["train-best", "tiny", "--storage", url, "-o", str(root / "m")])
    assert trained.exit_code == 0, trained.output
    return root


def test_an_empty_column_agrees_between_training_model_and_predict(saved: Path) -> None:
    meta = json.loads((saved / "m" / "model.json").read_text())
    assert meta["columns"] == ["size", "colour"] and meta["ignored_columns"] == ["empty"]
    # the training file itself (with its empty column and the target) predicts
    out = saved / "pred.csv"
    result = runner.invoke(
        app, ["predict", str(saved / "m"), str(saved / "d.csv"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(out)
    assert len(predictions) == 150 and set(predictions["prediction"]) <= {"small", "mid", "large"}
    # and so does a file without the empty column
    (saved / "new.csv").write_text("size,colour\n5,red\n15,blue\n")
    result = runner.invoke(app, ["predict", str(saved / "m"), str(saved / "new.csv")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].startswith("small")


def _reseal(meta: dict[str, Any]) -> None:
    """What a determined editor would do: recompute the model.json digest after an edit."""
    meta[DIGEST_KEY]["model_sha256"] = meta_sha256(meta)


def _edit(
    change: Callable[[dict[str, Any]], None], reseal: bool = False
) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        change(meta)
        if reseal:
            _reseal(meta)
        (folder / "model.json").write_text(json.dumps(meta))

    return apply


def _flip_a_weight_byte(folder: Path) -> None:
    data = bytearray((folder / "weights.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "weights.pt").write_bytes(bytes(data))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = meta
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_DELETE = object()

CASES = [
    ("missing columns", _edit(_set("columns", _DELETE)), r"missing key\(s\) columns"),
    ("missing preprocessing", _edit(_set("preprocessing", _DELETE)), r"missing key\(s\) preprocessing"),
    ("empty classes", _edit(_set("target.classes", [])), r"target.classes must list at least 2 distinct class labels, got \[\]"),
    ("scale 0", _edit(_set("preprocessing.numeric.0.scale", 0.0)), r"preprocessing.numeric\[0\].scale must be a finite number > 0, got 0.0"),
    ("nan median", _edit(_set("preprocessing.numeric.0.median", float("nan"))), r"preprocessing.numeric\[0\].median must be a finite number, got nan"),
    ("edited mean", _edit(_set("preprocessing.numeric.0.mean", 3.0)), r"does not match its digest \(edited after it was saved\)"),
    ("edited class order", _edit(lambda m: m["target"]["classes"].reverse()), r"does not match its digest"),
    ("huge n_units", _edit(_set("params.n_units", 20000)), r"does not match its digest"),
    ("huge n_units resealed", _edit(_set("params.n_units", 20000), reseal=True), r"says n_layers = \d+, n_units = 20000 but weights.pt has \d+ hidden layer\(s\) of \d+ units"),
    ("huge n_layers resealed", _edit(_set("params.n_layers", 10**7), reseal=True), r"says n_layers = 10000000, .* but weights.pt has"),
    ("n_features resealed", _edit(_set("n_features", 60000), reseal=True), r"n_features is 60000 but the preprocessing makes 4 inputs"),
    ("old format", _edit(_set("format", "hpstudy-model/1")), r"saved by an older hpstudy \(no digests\)"),
    ("no digest", _edit(_set("digest", _DELETE)), r"missing key\(s\) digest"),
    ("weights edited", _flip_a_weight_byte, r"weights.pt is damaged or was tampered with: it does not match the digest"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "damage", "match"), CASES, ids=[c[0] for c in CASES])
def test_a_damaged_model_is_refused_with_one_clear_error(
    saved: Path, tmp_path: Path, case: str, damage: Callable[[Path], None], match: str
) -> None:
    folder = tmp_path / "m"
    shutil.copytree(saved / "m", folder)
    assert load_model(folder).meta["task"] == "d"  # the copy is fine before the damage
    damage(folder)
    with pytest.raises(ModelError, match=match):
        load_model(folder)
    result = runner.invoke(app, ["predict", str(folder), str(saved / "d.csv")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_weights_from_another_model_are_refused(saved: Path, tmp_path: Path) -> None:
    import torch

    folder = tmp_path / "m"
    shutil.copytree(saved / "m", folder)
    state = torch.load(folder / "weights.pt", weights_only=True)
    torch.save({k: v + 1 for k, v in state.items()}, folder / "weights.pt")
    with pytest.raises(ModelError, match="does not match the digest in model.json"):
        load_model(folder)
