"""Test scores retrained by several processes: the same scores as one process, each study's
cache written, and nothing retrained a second time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hpstudy.config import parse_config
from hpstudy.report import _test_scores
from hpstudy.report._collect import collect_experiment
from hpstudy.report._html import picks_needed, score_cache, stored_config
from hpstudy.report._test_scores import ATTR, ATTR_BY_TRIAL
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("parallel")
    text = tiny_study_text(strategies=("manual", "random"), n_trials=4).replace(
        "seeds = 1", "seeds = 2"
    )
    create_experiment(parse_config(text), f"sqlite:///{tmp / 'h.db'}")
    return tmp / "h.db"


def _score(path: Path, n_jobs: int) -> tuple[dict[str, dict[int, list[float]]], list[str]]:
    url = f"sqlite:///{path}"
    data = collect_experiment(url, "tiny")
    config = stored_config(data, url)
    scored: list[str] = []
    out = _test_scores.test_scores(
        config, data.studies, score_cache(url), scored.append,
        picks=picks_needed(data, config), n_jobs=n_jobs,
    )  # fmt: skip
    return {name: {n: ts.scores for n, ts in by.items()} for name, by in out.items()}, scored


def test_parallel_retraining_gives_one_process_scores_and_caches_each_study(
    storage: Path, tmp_path: Path
) -> None:
    serial, parallel = tmp_path / "serial.db", tmp_path / "parallel.db"
    for copy in (serial, parallel):  # the WAL included
        with sqlite3.connect(storage) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
    one, scored_one = _score(serial, 1)
    two, scored_two = _score(parallel, 3)
    assert one == two
    assert sorted(scored_one) == sorted(scored_two) and len(scored_one) >= len(one) > 0
    # every study's cache is in the storage: a second pass retrains nothing
    again, scored_again = _score(parallel, 3)
    assert again == two and scored_again == []
    for study in collect_experiment(f"sqlite:///{parallel}", "tiny").studies:
        assert study.attrs[ATTR]["scores"] == two[study.info.name][study.attrs[ATTR]["trial"]]
        assert set(study.attrs[ATTR_BY_TRIAL]) == {str(n) for n in two[study.info.name]}
