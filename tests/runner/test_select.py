"""Selection objective on resume: storages made before classification selected on
cross-entropy keep selecting on accuracy; old and new selections never mix silently."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna
import pytest

from hpstudy.config import parse_config
from hpstudy.runner import create_experiment, resume_experiment
from hpstudy.runner._resume import DriftError
from tests.conftest import tiny_study_text

IRIS = 'dataset = "iris"'


def _old_storage(tmp_path: Path) -> tuple[str, Path, str]:
    """A storage as hpstudy made it before ``select`` existed: iris trials selected on
    validation accuracy, the stored study file without ``select``, no objective attrs."""
    text = tiny_study_text(("grid", "random"), n_trials=2)
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    create_experiment(parse_config(text.replace(IRIS, f'{IRIS}\nselect = "accuracy"')), url)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "DELETE FROM study_user_attributes WHERE key IN ('objective', 'objective_direction')"
        )
        conn.execute(
            "UPDATE study_user_attributes SET value_json = ? WHERE key = 'study_file'",
            (json.dumps(text),),
        )
        conn.execute("DELETE FROM trial_user_attributes WHERE key = 'validation_metric'")
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return url, path, text


def _iris(url: str) -> list[optuna.Study]:
    return [
        optuna.load_study(study_name=f"tiny.iris.{s}.s0", storage=url) for s in ("grid", "random")
    ]


def _attrs(url: str, key: str) -> set[object]:
    db = url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.study_name, a.value_json FROM study_user_attributes a "
            "JOIN studies s USING (study_id) WHERE a.key = ?",
            (key,),
        ).fetchall()
    return {(name, json.loads(v)) for name, v in rows}


@pytest.mark.parametrize("by", ["name", "file"])
def test_resume_of_a_storage_made_before_select_keeps_selecting_on_accuracy(
    tmp_path: Path, by: str
) -> None:
    url, path, _ = _old_storage(tmp_path)
    prints = _attrs(url, "fingerprint")
    resume_experiment("tiny" if by == "name" else str(path), url, n_trials=4)
    for study in _iris(url):
        assert study.direction == optuna.study.StudyDirection.MAXIMIZE
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        assert len(study.trials) >= 4 and complete
        # every trial, old and new, is a validation accuracy (k of 30 rows), none a loss
        assert all(0 <= t.value <= 1 and round(t.value * 30, 6).is_integer() for t in complete)  # type: ignore[operator]
        assert all("validation_metric" not in t.user_attrs for t in study.trials)
    # the stored studies now say so, and keep their fingerprints
    assert {v for n, v in _attrs(url, "objective") if ".iris." in n} == {"accuracy"}
    assert _attrs(url, "fingerprint") == prints


def test_resume_with_a_file_that_selects_otherwise_is_refused_as_drift(tmp_path: Path) -> None:
    url, path, text = _old_storage(tmp_path)
    path.write_text(text.replace(IRIS, f'{IRIS}\nselect = "cross_entropy"'))
    with pytest.raises(DriftError, match=r"tasks\[iris\]\.select: 'accuracy' -> 'cross_entropy'"):
        resume_experiment(str(path), url)
    assert {v for n, v in _attrs(url, "objective") if ".iris." in n} == set()  # nothing written


def test_new_experiments_select_classification_on_cross_entropy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    create_experiment(parse_config(tiny_study_text(("random",), n_trials=3)), url)
    (study,) = [optuna.load_study(study_name="tiny.iris.random.s0", storage=url)]
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert _attrs(url, "objective") == {
        ("tiny.iris.random.s0", "cross_entropy"),
        ("tiny.diabetes.random.s0", "rmse"),
    }
    assert ("tiny.iris.random.s0", "accuracy") in _attrs(url, "metric")
    for t in study.trials:
        if t.state.name == "COMPLETE":
            assert 0 <= t.user_attrs["validation_metric"] <= 1 and t.value > 0  # type: ignore[operator]
