"""Reference models beside the chosen model: cached when a (task, seed) is scored, equal to an
independent scikit-learn fit on the same split, shown first in the report, absent (and
harmless) in caches and files made before they existed."""

from __future__ import annotations

import dataclasses
import gzip
import math
import re
from pathlib import Path

import numpy as np
import pytest

from hpstudy.config import parse_config
from hpstudy.runner import create_experiment, resume_experiment
from hpstudy.scoring import REFERENCES, REFERENCES_ATTR, cached_references, reference_seed
from hpstudy.store import experiment_studies, open_storage
from tests.conftest import tiny_study_text


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A tiny experiment run by ``create`` (iris + diabetes, grid and random, 2 seeds)."""
    tmp = tmp_path_factory.mktemp("references")
    url = f"sqlite:///{tmp / 'hpstudy.db'}"
    text = tiny_study_text(("grid", "random"), n_trials=2).replace("seeds = 1", "seeds = 2")
    create_experiment(parse_config(text), url)
    return url, tmp


def _attrs(url: str) -> dict[tuple[str, int, str], dict]:
    storage = open_storage(url, create=False)
    return {
        (i.task, i.seed, i.strategy): storage.get_study_user_attrs(i.study_id)
        for i in experiment_studies(storage, "tiny")
    }


def _independent(task_name: str, seed: int, config_text: str) -> dict[str, object]:
    """The three references fit here with scikit-learn's own metrics, on the original scale."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, mean_squared_error, r2_score

    from hpstudy.data import prepare_final

    config = parse_config(config_text)
    data = prepare_final(config.task(task_name), seed)
    fold = data.folds[0]
    rs = reference_seed(seed)
    if data.kind == "classification":
        models = {
            "mean_or_majority": DummyClassifier(strategy="most_frequent"),
            "linear": LogisticRegression(max_iter=1000),
            "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=rs),
        }
        return {
            k: accuracy_score(
                fold.y_valid, m.fit(fold.X_train, fold.y_train).predict(fold.X_valid)
            )
            for k, m in models.items()
        }
    # regression: fit on the targets in their own units (the cached fit used standardised ones)
    y_train = fold.y_train.astype(np.float64) * fold.y_std + fold.y_mean
    y_test = fold.y_valid.astype(np.float64) * fold.y_std + fold.y_mean
    models = {
        "mean_or_majority": DummyRegressor(),
        "linear": Ridge(),
        "hist_gradient_boosting": HistGradientBoostingRegressor(random_state=rs),
    }
    out: dict[str, object] = {}
    r2 = {}
    for k, m in models.items():
        pred = m.fit(fold.X_train, y_train).predict(fold.X_valid)
        out[k] = math.sqrt(mean_squared_error(y_test, pred))
        r2[k] = r2_score(y_test, pred)
    out["r2"] = r2
    out["test_variance"] = float(np.var(y_test))
    return out


def test_after_create_references_are_cached_per_seed_and_equal_an_independent_fit(
    finished: tuple[str, Path],
) -> None:
    url, _ = finished
    attrs = _attrs(url)
    text = tiny_study_text(("grid", "random"), n_trials=2).replace("seeds = 1", "seeds = 2")
    seen = {}
    for (task, seed, _), a in attrs.items():
        refs = cached_references(a)
        assert refs is not None, (task, seed)
        # one fit per (task, seed): every strategy's study holds the same numbers
        assert seen.setdefault((task, seed), refs) == refs
    assert set(seen) == {(t, s) for t in ("iris", "diabetes") for s in (0, 1)}
    for (task, seed), refs in seen.items():
        want = _independent(task, seed, text)
        for k in REFERENCES:
            assert refs[k] == pytest.approx(want[k], rel=1e-5, abs=1e-9), (task, seed, k)
        if task == "diabetes":
            for k in REFERENCES:
                assert refs["r2"][k] == pytest.approx(want["r2"][k], rel=1e-5, abs=1e-6)  # type: ignore[index]
            assert refs["test_variance"] == pytest.approx(want["test_variance"], rel=1e-9)
            # predicting the mean of training rows: R^2 near 0, never better than the linear fit
            assert refs["r2"]["mean_or_majority"] <= 0.05
            assert refs["linear"] < refs["mean_or_majority"]
        else:
            assert "r2" not in refs
    # the two seeds draw different splits, so their numbers differ
    assert seen[("diabetes", 0)] != seen[("diabetes", 1)]


def test_the_model_line_is_first_and_its_numbers_come_from_the_cache(
    finished: tuple[str, Path], tmp_path: Path
) -> None:
    from hpstudy.analysis import analyze
    from hpstudy.analysis._prose import model_sentence
    from hpstudy.report._html import render_html
    from hpstudy.report._results_page import experiment_markdown
    from hpstudy.report._source import table_from_storage

    url, _ = finished
    analysis = analyze(table_from_storage(url, "tiny", warn=False))
    attrs = _attrs(url)
    for s in analysis.summaries:
        line = s.model
        assert line is not None
        assert line.reference_seeds == 2
        for k in REFERENCES:
            per_seed = [attrs[(s.task, seed, "grid")][REFERENCES_ATTR][k] for seed in (0, 1)]
            assert line.references[k] == pytest.approx(float(np.median(per_seed)))
        # the model's score: its strategy's best trial at each seed, from the cached test scores
        scores = (s.best_scores or {})[line.strategy]
        assert line.seeds == len(scores) == 2
        assert line.median == pytest.approx(float(np.median(list(scores.values()))))
        assert (line.low, line.high) == (min(scores.values()), max(scores.values()))
        sentence = model_sentence(line)
        assert sentence.startswith("Your model (")
        assert f"test {s.metric} {line.median:.4g}" in sentence
        if s.task == "diabetes":
            var = {
                seed: attrs[(s.task, seed, "grid")][REFERENCES_ATTR]["test_variance"]
                for seed in (0, 1)
            }
            r2 = float(np.median([1 - v * v / var[seed] for seed, v in scores.items()]))
            assert line.r2 == pytest.approx(r2)
            assert f"R^2 {line.r2:.4g}" in sentence and "predicting the mean" in sentence
        else:
            assert "predicting the majority class" in sentence and "R^2" not in sentence
    html = render_html(analysis, {})
    html = html[html.index("</head><body>") :]  # after plotly.js
    first_task = html.index("<h2>")
    headline = html.index("class='headline'")
    for s in analysis.summaries:
        at = html.index("Your model (", html.index(f"<b>{s.task}</b>"))
        assert headline < at < first_task  # right after the headline, before any table
    md = experiment_markdown(tmp_path / "tiny.csv.gz", analysis)
    for s in analysis.summaries:
        head = md.index(f"### {s.task} ({s.metric}, {s.direction})")
        assert md[head + 2].startswith("Your model (")


def test_raw_results_carry_the_references_and_old_files_read_without_them(
    finished: tuple[str, Path], tmp_path: Path
) -> None:
    from hpstudy.analysis import analyze, read_results
    from hpstudy.report._html import render_html
    from hpstudy.report._results import write_trials_csv_gz
    from hpstudy.report._results_page import experiment_markdown
    from hpstudy.report._source import table_from_storage

    url, _ = finished
    table = table_from_storage(url, "tiny", warn=False)
    path = tmp_path / "tiny.csv.gz"
    write_trials_csv_gz(table, path)
    back = read_results(path)
    assert [s.references for s in back.studies] == [s.references for s in table.studies]
    assert all(s.references is not None for s in back.studies)
    assert analyze(back).summaries[0].model == analyze(table).summaries[0].model

    # a table without references (as exported before they existed): no column, same bytes
    # whatever the storage holds, no line, no crash
    old = dataclasses.replace(
        table, studies=tuple(dataclasses.replace(s, references=None) for s in table.studies)
    )
    old_path = tmp_path / "old.csv.gz"
    write_trials_csv_gz(old, old_path)
    with gzip.open(old_path, "rt") as f, gzip.open(path, "rt") as g:
        old_header, new_header = f.readline(), g.readline()
    assert "reference_scores" not in old_header and "reference_scores" in new_header
    analysis = analyze(read_results(old_path))
    assert all(s.model is None for s in analysis.summaries)
    assert "Your model" not in render_html(analysis, {})
    assert not any("Your model" in line for line in experiment_markdown(old_path, analysis))


def test_an_old_storage_without_references_renders_and_resume_fills_them(
    tmp_path: Path,
) -> None:
    from hpstudy.analysis import analyze
    from hpstudy.report._html import render_html
    from hpstudy.report._source import table_from_storage

    url = f"sqlite:///{tmp_path / 'old.db'}"
    text = tiny_study_text(("random",), n_trials=2).replace(
        '[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', ""
    )
    create_experiment(parse_config(text), url)
    storage = open_storage(url, create=False)
    infos = experiment_studies(storage, "tiny")
    before = {i.name: storage.get_study_user_attrs(i.study_id)[REFERENCES_ATTR] for i in infos}
    for i in infos:  # as a storage made before references existed
        storage.set_study_user_attr(i.study_id, REFERENCES_ATTR, None)
    analysis = analyze(table_from_storage(url, "tiny", warn=False))
    assert [s.model for s in analysis.summaries] == [None]
    assert not re.search("Your model", render_html(analysis, {}))
    resume_experiment("tiny", url)
    storage = open_storage(url, create=False)
    after = {i.name: storage.get_study_user_attrs(i.study_id)[REFERENCES_ATTR] for i in infos}
    assert after == before  # deterministic: the same numbers again
    assert analyze(table_from_storage(url, "tiny", warn=False)).summaries[0].model is not None
