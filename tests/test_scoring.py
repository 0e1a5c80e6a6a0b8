"""Test scores are computed beside training, when studies finish; reports only read them."""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hpstudy.config import parse_config
from hpstudy.runner import create_experiment
from hpstudy.scoring import (
    ATTR,
    ATTR_BY_TRIAL,
    FRACTIONS,
    TEST_REPEATS,
    StudyTrials,
    TestScore,
    TrialRow,
    best_number,
    cached_scores,
    merged_attrs,
    pick_at_budget,
    picks_needed,
)
from hpstudy.store import TrialWriter, experiment_studies, open_storage
from tests.conftest import fresh_postgres_database, tiny_study_text

STRATEGIES = ("manual", "grid", "random", "tpe")


def _study(name: str, strategy: str, rows: list[TrialRow], baseline: bool = False) -> StudyTrials:
    return StudyTrials(name, strategy, "minimize", baseline, tuple(rows))


def _random_rows(rng: random.Random, n: int) -> list[TrialRow]:
    rows = []
    for number in range(n):
        state = rng.choice(["COMPLETE", "COMPLETE", "PRUNED", "FAIL"])
        value = round(rng.uniform(0, 1), 2) if state == "COMPLETE" else None  # ties happen
        rows.append(TrialRow(number, state, value, rng.randint(1, 20)))
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_picks_needed_are_each_best_and_the_picks_at_every_fraction_of_the_baseline(
    seed: int,
) -> None:
    rng = random.Random(seed)
    studies = [
        _study("grid", "grid", _random_rows(rng, rng.randint(0, 12)), baseline=True),
        _study("random", "random", _random_rows(rng, rng.randint(0, 12))),
        _study("manual", "manual", _random_rows(rng, rng.randint(0, 4))),
    ]
    needed = picks_needed(studies)
    total = sum(t.epochs for t in studies[0].trials)
    for s in studies:
        complete = {t.number: t.value for t in s.trials if t.state == "COMPLETE"}
        wanted = needed.get(s.name, set())
        assert wanted <= set(complete)  # only COMPLETE trials are ever scored
        if not complete:
            assert not wanted
            continue
        best = best_number(s.trials, s.direction)
        assert best in wanted and complete[best] == min(complete.values())
        # ties go to the first in run order: the trial that would have been picked
        assert best == min(n for n, v in complete.items() if v == complete[best])
        picks = {pick_at_budget(s.trials, s.direction, f * total) for f in FRACTIONS} - {None}
        assert wanted == ({best} if s.strategy == "manual" else {best} | picks)
    # the baseline stopped at its own full budget picks its best
    grid = studies[0]
    assert pick_at_budget(grid.trials, "minimize", total) == best_number(grid.trials, "minimize")


def test_without_a_finished_baseline_only_the_best_trials_are_needed() -> None:
    rows = [TrialRow(0, "COMPLETE", 0.5, 4), TrialRow(1, "COMPLETE", 0.2, 4)]
    studies = [_study("random", "random", rows), _study("tpe", "tpe", rows[:1])]
    assert picks_needed(studies) == {"random": {1}, "tpe": {0}}


def test_a_pick_takes_only_trials_finished_within_the_budget_in_run_order() -> None:
    rows = [
        TrialRow(0, "COMPLETE", 0.5, 10),
        TrialRow(1, "PRUNED", None, 2),
        TrialRow(2, "COMPLETE", 0.3, 10),
        TrialRow(3, "COMPLETE", 0.1, 10),
    ]
    assert pick_at_budget(rows, "minimize", 9) is None
    assert pick_at_budget(rows, "minimize", 21) == 0
    assert pick_at_budget(rows, "minimize", 22) == 2
    assert pick_at_budget(rows, "maximize", 100) == 0


def test_old_caches_of_plain_lists_still_read_and_merging_drops_nothing() -> None:
    old = {
        ATTR: {"trial": 3, "scores": [0.9, 0.8]},
        ATTR_BY_TRIAL: {"3": [0.9, 0.8], "7": [0.5]},
    }
    cache = cached_scores(old)
    assert cache == {3: TestScore(3, (0.9, 0.8)), 7: TestScore(7, (0.5,))}
    new = {9: TestScore(9, (0.7, 0.6), (0.4, 0.5))}
    merged = merged_attrs(old, new, best=9)
    assert set(cached_scores(merged)) == {3, 7, 9}
    assert merged[ATTR] == {"trial": 9, "scores": [0.7, 0.6], "cross_entropy": [0.4, 0.5]}
    assert cached_scores(merged)[9].cross_entropy == (0.4, 0.5)
    # the best trial not scored (yet): the stored best entry stays
    assert merged_attrs(old, {}, best=11)[ATTR] == old[ATTR]
    assert math.isclose(cache[3].mean, 0.85)


def _add_scores(url: str, study_id: int, numbers: list[int], barrier: object) -> None:
    writer = TrialWriter(open_storage(url, create=False))
    barrier.wait()  # type: ignore[attr-defined]
    for n in numbers:
        new = {n: TestScore(n, (float(n),))}
        writer.update_study_user_attrs(
            study_id, (ATTR, ATTR_BY_TRIAL), lambda s, new=new: merged_attrs(s, new, None)
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_adding_scores_at_once_lose_none(tmp_path: Path, backend: str) -> None:
    if backend == "sqlite":
        _race(f"sqlite:///{tmp_path / 'race.db'}")
    else:
        with fresh_postgres_database() as url:
            _race(url)


def _race(url: str) -> None:
    storage = open_storage(url)
    study_id = storage.create_new_study([], "race")
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_add_scores, args=(url, study_id, list(range(k, 40, 2)), barrier))
        for k in (0, 1)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
        assert w.exitcode == 0
    cache = cached_scores(open_storage(url, create=False).get_study_user_attrs(study_id))
    assert sorted(cache) == list(range(40))
    assert all(ts.scores == (float(n),) for n, ts in cache.items())


# -- a real tiny experiment ----------------------------------------------------------------


def _caches(url: str) -> dict[str, dict[str, object]]:
    storage = open_storage(url, create=False)
    return {
        i.name: {
            k: v
            for k, v in storage.get_study_user_attrs(i.study_id).items()
            if k in (ATTR, ATTR_BY_TRIAL)
        }
        for i in experiment_studies(storage, "tiny")
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A tiny experiment run by ``create`` (iris + diabetes, every core strategy, 2 seeds)."""
    tmp = tmp_path_factory.mktemp("scored")
    url = f"sqlite:///{tmp / 'hpstudy.db'}"
    text = tiny_study_text(STRATEGIES, n_trials=4).replace("seeds = 1", "seeds = 2")
    create_experiment(parse_config(text), url)
    return url, tmp


def test_after_create_every_score_the_report_needs_is_cached(finished: tuple[str, Path]) -> None:
    from hpstudy.report._collect import collect_experiment
    from hpstudy.report._test_scores import best_trial, missing_test_scores
    from hpstudy.store import stored_config

    url, _ = finished
    data = collect_experiment(url, "tiny")
    assert missing_test_scores(data, stored_config(data.studies[0].info, url)) == []
    for s in data.studies:
        cache = cached_scores(s.attrs)
        best = best_trial(s)
        assert best is not None and s.attrs[ATTR]["trial"] == best.number
        for ts in cache.values():
            assert len(ts.scores) == TEST_REPEATS
            # classification records test cross-entropy beside accuracy; regression does not
            if s.info.kind == "classification":
                assert len(ts.cross_entropy) == TEST_REPEATS
                assert all(0 <= a <= 1 for a in ts.scores) and all(c > 0 for c in ts.cross_entropy)
            else:
                assert ts.cross_entropy == ()
        if s.info.strategy != "manual":  # the equal-compute picks are scored too
            assert len(cache) >= 1


def test_report_and_export_retrain_nothing(finished: tuple[str, Path]) -> None:
    url, tmp = finished
    before = _caches(url)
    probe = (
        "import sys\n"
        "from hpstudy.cli import app\n"
        "try:\n"
        f"    app([*sys.argv[1:], '--storage', {url!r}])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "loaded = [m for m in ('hpstudy.training', 'hpstudy.data._prepare') if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    for args in (
        ["report", "tiny", "-o", str(tmp / "r.html")],
        ["export", "tiny", "-f", "csv.gz", "-o", str(tmp / "t.csv.gz")],
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        assert "LOADED []" in done.stdout  # nothing that trains was even imported
        assert "lack test scores" not in done.stderr
    assert _caches(url) == before


def test_resume_fills_scores_a_storage_lacks_and_they_equal_the_workers(
    finished: tuple[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from typer.testing import CliRunner

    from hpstudy.analysis import analyze
    from hpstudy.cli import app
    from hpstudy.report import table_from_storage

    url, tmp = finished
    db = tmp_path / "copy.db"
    with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    copy = f"sqlite:///{db}"
    expected = _caches(copy)
    with sqlite3.connect(db) as conn:  # a storage made before scoring moved beside training
        conn.execute(
            "DELETE FROM study_user_attributes WHERE key IN (?, ?)", (ATTR, ATTR_BY_TRIAL)
        )
    with caplog.at_level("WARNING", logger="hpstudy"):
        summaries = analyze(table_from_storage(copy, "tiny")).summaries  # report's: reads only
    assert "16 of 16 studies lack test scores" in caplog.text
    assert f"hpstudy resume tiny --storage {copy}" in caplog.text
    assert all(math.isnan(r.test.median) for s in summaries for r in s.rows)
    assert _caches(copy) == {name: {} for name in expected}
    resumed = CliRunner().invoke(app, ["resume", "tiny", "--storage", copy, "--n-jobs", "2"])
    assert resumed.exit_code == 0, resumed.output
    n = sum(len(c[ATTR_BY_TRIAL]) for c in expected.values())  # type: ignore[arg-type]
    assert f"test scores: {n} configuration(s) retrained" in resumed.stderr
    # deterministic: two processes of a pool compute exactly what the finishing workers did
    assert _caches(copy) == expected
    again = CliRunner().invoke(app, ["resume", "tiny", "--storage", copy])
    assert again.exit_code == 0 and "test scores" not in again.stderr  # nothing left to do


def test_classification_selects_on_cross_entropy_so_accuracy_ties_decide_nothing(
    finished: tuple[str, Path],
) -> None:
    from hpstudy.report._collect import collect_experiment
    from hpstudy.report._test_scores import best_trial

    url, _ = finished
    data = collect_experiment(url, "tiny")
    tied_somewhere = False
    for s in data.of("iris"):
        assert (s.info.metric, s.info.objective) == ("accuracy", "cross_entropy")
        assert s.info.objective_direction == "minimize" and s.info.direction == "maximize"
        complete = [t for t in s.trials if t.state.name == "COMPLETE"]
        accuracy = [t.user_attrs["validation_metric"] for t in complete]
        top = [t for t, a in zip(complete, accuracy, strict=True) if a == max(accuracy)]
        tied_somewhere |= len(top) > 1
        values = [t.value for t in complete]
        assert len(set(values)) == len(values)  # no two trials tie on cross-entropy
        best = best_trial(s)
        assert best is not None and best.value == min(values)  # type: ignore[type-var]
    assert tied_somewhere  # validation accuracy ties at the top, as on the shipped runs
    stored = json.loads(
        sqlite3.connect(url.removeprefix("sqlite:///"))
        .execute("SELECT value_json FROM study_user_attributes WHERE key = 'objective' LIMIT 1")
        .fetchone()[0]
    )
    assert stored in ("cross_entropy", "rmse")


def test_the_workers_that_finish_studies_score_everything_without_a_final_pass(
    tmp_path: Path,
) -> None:
    """``run_studies`` is the workers' loop alone (no pass at the end, as in ``create``): the
    finish that completes each study scores what its (task, seed) now allows, so once every
    study has finished, every best trial and every equal-compute pick is cached."""
    from hpstudy.report._collect import collect_experiment
    from hpstudy.report._test_scores import missing_test_scores
    from hpstudy.runner import Progress
    from hpstudy.runner._run import DataCache, run_studies

    url = f"sqlite:///{tmp_path / 'h.db'}"
    config = parse_config(tiny_study_text(("manual", "grid", "random"), n_trials=3))
    infos, _ = create_experiment(config, url, run=False)
    data = collect_experiment(url, "tiny")
    assert len(missing_test_scores(data, config)) == 0  # nothing finished: nothing needed
    run_studies(config, open_storage(url, create=False), infos, DataCache(config), Progress())
    data = collect_experiment(url, "tiny")
    assert missing_test_scores(data, config) == []
    picks = sum(len(cached_scores(s.attrs)) for s in data.studies)
    assert picks > len(data.studies)  # more than the best trials: the picks too
