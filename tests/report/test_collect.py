from __future__ import annotations

from pathlib import Path

import pytest

from hpstudy import UsageError
from hpstudy.config import parse_config
from hpstudy.report._collect import collect_experiment
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text


def test_collect_reads_every_study_and_finished_trial(storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("grid", "random"), n_trials=3)), storage_url
    )
    data = collect_experiment(storage_url, "tiny")
    assert data.tasks() == ["diabetes", "iris"]
    assert len(data.studies) == 4 and len(data.of("iris", "grid")) == 1
    for study in data.studies:
        assert len(study.records) == 3 and study.missing is None
        assert [r.number for r in study.records] == [t.number for t in study.trials]
        assert all(
            r.epochs == t.user_attrs["epochs"]
            for r, t in zip(study.records, study.trials, strict=True)
        )
        for r in study.records:
            assert (r.value is None) == (r.state != "COMPLETE")


def test_partial_experiment_says_what_is_missing(storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("grid",), n_trials=3)), storage_url, run=False
    )
    study = collect_experiment(storage_url, "tiny").of("iris")[0]
    assert study.records == [] and study.missing == "0 of 3 trials finished, 3 waiting"


def test_unknown_experiment(storage_url: str, tmp_path: Path) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=1)), storage_url, run=False
    )
    with pytest.raises(UsageError, match="experiment 'nope' not found"):
        collect_experiment(storage_url, "nope")
