from __future__ import annotations

from pathlib import Path

import pytest

from hpstudy import UsageError
from hpstudy.config import parse_config
from hpstudy.report import table_from_storage
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
    table = table_from_storage(storage_url, "tiny")
    by_name = {s.name: s for s in table.studies}
    for study in data.studies:
        assert len(study.trials) == 3 and study.missing is None
        own = by_name[study.info.name]
        assert own.finished == 3 and own.missing is None
        assert [t.number for t in own.runs] == sorted(t.number for t in study.trials)
        stored = {t.number: t for t in study.trials}
        for t in own.runs:
            assert t.epochs == stored[t.number].user_attrs["epochs"]
            assert (t.value is None) == (t.state != "COMPLETE")


def test_partial_experiment_says_what_is_missing(storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("grid",), n_trials=3)), storage_url, run=False
    )
    study = collect_experiment(storage_url, "tiny").of("iris")[0]
    assert study.missing == "0 of 3 trials finished, 3 waiting"
    (own,) = table_from_storage(storage_url, "tiny").of("iris", "grid")
    assert own.runs == [] and own.missing == study.missing


def test_unknown_experiment(storage_url: str, tmp_path: Path) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=1)), storage_url, run=False
    )
    with pytest.raises(UsageError, match="experiment 'nope' not found"):
        collect_experiment(storage_url, "nope")
