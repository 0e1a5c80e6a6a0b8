"""Regret on published tabular benchmarks: the distance of a pick's test score (the mean of the
repetitions its study did not observe) to the table's best over the study file's space, and of
the best-so-far validation value to the best validation value, 0 best. A planted case whose
answer is known; trained tasks unchanged; the shipped raw results against an independent
computation from the csv.gz and the raw table."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from hpstudy.analysis import Study, Trial, TrialTable, analyze, read_results
from hpstudy.analysis._anytime import study_curve
from hpstudy.analysis._summary import summary_rows
from hpstudy.analysis._table import OPTIMUM_COLUMN, Optimum, regret
from hpstudy.config import parse_config
from tests.analysis.test_pipeline import _table as trained_table

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "results" / "bench").glob("*.csv.gz"))

BENCH = """
name = "planted"
seeds = 4
strategies = ["grid", "random"]

[budget]
n_trials = 8

[[tasks]]
benchmark = "hpobench_nn/credit_g"

[space]
depth = { choices = [1, 2, 3], grid = [1, 3] }
width = { choices = [16, 64, 256, 1024], grid = [16, 1024] }
batch_size = { choices = [16, 256], grid = [16, 256] }
learning_rate_init = 0.0016681006
alpha = 1e-8
"""
# A study file holds one benchmark family: the minimising task is a file of its own.
FCNET = """
name = "planted-fcnet"
seeds = 4
strategies = ["grid", "random"]

[budget]
n_trials = 8

[[tasks]]
benchmark = "fcnet/protein_structure"

[space]
n_units_1 = { choices = [16, 64], grid = [16, 64] }
n_units_2 = { choices = [16, 64], grid = [16, 64] }
init_lr = { choices = [0.0005, 0.001], grid = [0.0005, 0.001] }
activation_fn_1 = "relu"
activation_fn_2 = "relu"
batch_size = 32
dropout_1 = 0.0
dropout_2 = 0.0
lr_schedule = "cosine"
"""

# Binary fractions: every planted difference is exact.
OPTIMUM = {"maximize": Optimum(1.0, 0.75), "minimize": Optimum(0.0, 0.125)}
PICK_TEST = {("maximize", "grid"): 0.5, ("maximize", "random"): 0.625,
             ("minimize", "grid"): 0.5, ("minimize", "random"): 0.25}  # fmt: skip
PLANTED_REGRET = {("maximize", "grid"): 0.25, ("maximize", "random"): 0.125,
                  ("minimize", "grid"): 0.375, ("minimize", "random"): 0.125}  # fmt: skip


def _value(direction: str, n: int) -> float:
    """Trial n's validation value: improving with n (so the best so far is trial n's), the
    last one 1/16 short of the optimum's validation value."""
    step = (n + 9) / 16  # 0.5625 ... 1.0 for n = 0 ... 7
    return step - 1 / 16 if direction == "maximize" else 1 - step + 1 / 16


def planted(text: str = BENCH) -> TrialTable:
    """Per task, strategy and seed, 8 trials whose validation values improve by 1/16 each; the
    last (the best) is scored with the planted test score; the others worse by 1/4."""
    config = parse_config(text)
    fixed = config.fixed_params()
    choices = {n: p.choices for n, p in config.searched_params().items()}
    configs = [dict(zip(choices, c, strict=True)) for c in itertools.product(*choices.values())]
    studies = []
    for task in config.tasks:
        direction = "maximize" if task.benchmark.startswith("hpobench") else "minimize"  # type: ignore[union-attr]
        metric = "balanced_accuracy" if direction == "maximize" else "mse"
        for strategy, seed in itertools.product(("grid", "random"), range(4)):
            pick = PICK_TEST[(direction, strategy)]
            worse = pick - 0.25 if direction == "maximize" else pick + 0.25
            trials = tuple(
                Trial(n, "COMPLETE", _value(direction, n), epochs=100, seconds=1.0,
                      params={**fixed, **configs[(n + seed) % len(configs)]},
                      test_scores=(pick,) * 4 if n == 7 else (worse,) * 4)
                for n in range(8)
            )  # fmt: skip
            studies.append(
                Study(f"{config.name}.{task.name}.{strategy}.s{seed}", config.name, task.name,
                      strategy, seed, metric, direction, "benchmark", 8, trials=trials,
                      benchmark=str(task.benchmark), repetition=seed % 4,
                      optimum=OPTIMUM[direction])
            )  # fmt: skip
    return TrialTable(config.name, config, tuple(studies), from_tables=True)


@pytest.mark.parametrize("text", [BENCH, FCNET], ids=["maximize", "minimize"])
def test_planted_regret_is_found_in_the_metric_units_zero_best(text: str) -> None:
    table = planted(text)
    analysis = analyze(table)
    (summary,) = analysis.summaries
    direction = summary.direction
    for row in summary.rows:
        expected = PLANTED_REGRET[(direction, row.strategy)]
        assert row.test_regret is not None
        assert (row.test_regret.median, row.test_regret.low, row.test_regret.high) == (
            expected, expected, expected)  # fmt: skip
        assert row.test_regret.n == 4
    # the verdict's difference is the difference of regrets (positive = random better)
    (v,) = summary.verdicts
    assert (
        v.difference == PLANTED_REGRET[(direction, "grid")] - PLANTED_REGRET[(direction, "random")]
    )
    # a winner's regret is its mean test score's (one optimum at every seed here)
    assert summary.winners
    for w in summary.winners:
        assert w.test_regret == regret(w.test, OPTIMUM[direction].test, direction) >= 0
    full = {e.strategy: e for e in summary.equal or [] if e.fraction == 1.0}
    for strategy, e in full.items():
        assert e.test_regret is not None
        assert e.test_regret.median == PLANTED_REGRET[(direction, strategy)]
    # anytime in validation regret: after k trials the best so far is trial k-1's value,
    # (9 - k) / 16 from the optimum's
    assert summary.anytime_regret is not None
    for r in summary.anytime_regret:
        assert r.trials == (1, 2, 4, 8) and r.seeds == 4
        assert r.median == tuple((9 - k) / 16 for k in r.trials)
        assert r.q25 == r.median == r.q75


@pytest.mark.parametrize("text", [BENCH, FCNET], ids=["maximize", "minimize"])
def test_the_anytime_curve_in_regret_is_the_curve_shifted_to_the_optimum(text: str) -> None:
    table = planted(text)
    for s in table.studies:
        raw, inreg = study_curve(s), study_curve(s, in_regret=True)
        assert s.optimum is not None
        assert np.array_equal(inreg.trials, raw.trials)
        assert np.array_equal(inreg.epochs, raw.epochs)
        expected = [regret(float(v), s.optimum.validation, s.direction) for v in raw.best]
        assert inreg.best.tolist() == expected
        assert (inreg.best >= 0).all() and np.all(np.diff(inreg.best) <= 0)


def test_regret_is_signed_so_that_zero_is_best_in_either_direction() -> None:
    rng = np.random.default_rng(0)
    for _ in range(1000):
        best, score = (float(x) for x in rng.normal(size=2))
        up, down = max(best, score), min(best, score)
        assert regret(down, up, "maximize") >= 0 and regret(up, down, "minimize") >= 0
        assert regret(best, best, "maximize") == regret(best, best, "minimize") == 0
    assert math.isnan(regret(math.nan, 1.0, "maximize"))


def test_trained_tasks_have_no_regret_and_their_page_is_unchanged() -> None:
    from hpstudy.report._results_page import experiment_markdown

    table = trained_table(seeds=6)
    summary = analyze(table).summaries[0]
    assert all(r.test_regret is None for r in summary.rows)
    assert all(e.test_regret is None for e in summary.equal or [])
    assert all(w.test_regret is None for w in summary.winners or [])
    assert summary.anytime_regret is None
    assert "regret" not in "\n".join(experiment_markdown(Path("x.csv.gz"), analyze(table)))
    with pytest.raises(ValueError, match="no known optimum"):
        study_curve(table.studies[0], in_regret=True)


def test_the_page_gives_regret_beside_the_score_and_says_which_score(tmp_path: Path) -> None:
    from hpstudy.analysis._prose import TEST_REGRET_NOTE, VALIDATION_REGRET_NOTE
    from hpstudy.report._results_page import experiment_markdown

    page = "\n".join(
        line for text in (BENCH, FCNET)
        for line in experiment_markdown(tmp_path / "planted.csv.gz", analyze(planted(text)))
    )  # fmt: skip
    assert TEST_REGRET_NOTE in page and VALIDATION_REGRET_NOTE in page
    assert "mean of the repetitions its study did not observe" in TEST_REGRET_NOTE
    rows = [r for r in page.splitlines() if r.startswith("| grid search | 4 |")]
    # summary row: test score then its regret (max task: 0.5 and 0.25; min task: 0.5, 0.375)
    assert any("| 0.5 | 0.25 |" in r for r in rows) and any("| 0.5 | 0.375 |" in r for r in rows)
    assert "after 8 trials" in page and "validation regret of" in page


def test_export_gives_regret_on_benchmark_tasks_only() -> None:
    from hpstudy.report._export import comparison_rows, summary_rows

    for text in (BENCH, FCNET):
        summaries = analyze(planted(text)).summaries
        rows = summary_rows(summaries)
        assert {r["test_regret_median"] for r in rows} == {
            PLANTED_REGRET[(r["direction"], r["strategy"])] for r in rows
        }
        (c,) = comparison_rows(summaries)
        assert all("test_regret_median" in e for e in c["equal_compute"])
    trained = analyze(trained_table(seeds=6)).summaries
    assert not any("regret" in k for r in summary_rows(trained) for k in r)
    assert not any(
        "regret" in k for c in comparison_rows(trained) for e in c["equal_compute"] for k in e
    )


def test_the_optimum_survives_export_and_only_benchmark_files_carry_it(tmp_path: Path) -> None:
    from hpstudy.report._results import write_trials_csv_gz

    table = planted(FCNET)
    write_trials_csv_gz(table, tmp_path / "planted.csv.gz")
    back = read_results(tmp_path / "planted.csv.gz")
    assert [s.optimum for s in back.studies] == [s.optimum for s in table.studies]
    trained = trained_table(seeds=2)
    write_trials_csv_gz(trained, tmp_path / "trained.csv.gz")
    with gzip.open(tmp_path / "trained.csv.gz", "rt") as f:
        assert OPTIMUM_COLUMN not in next(csv.reader(f))


def test_tables_from_benchmarks_and_real_training_are_never_pooled() -> None:
    from hpstudy._errors import ConfigError
    from hpstudy.analysis import analyze_many

    with pytest.raises(ConfigError, match="never pooled with real training"):
        analyze_many([trained_table(seeds=2), planted()])


# ---------------------------------------------------------------- the shipped raw results


def _raw_optima(benchmark: str, space: dict[str, tuple[object, ...]]) -> dict[int, float]:
    """Per repetition, the best test score over ``space``, computed from the raw table file
    alone: every configuration key decoded, the mean of the other repetitions by hand."""
    from hpstudy.config._benchmarks import family_of
    from hpstudy.data._benchmarks import data_folder, safe_unpickle

    family = family_of(benchmark)
    path = data_folder() / family.folder / f"{benchmark.split('/')[1]}.pkl"
    raw = safe_unpickle(path.read_bytes())
    names = list(family.levels)
    allowed = [{i for i, level in enumerate(family.levels[n]) if level in space[n]} for n in names]
    pick = max if family.direction == "maximize" else min
    reps = family.repetitions
    best: dict[int, float] = {}
    for key, row in raw.items():
        if not all(int(d) in ok for d, ok in zip(key, allowed, strict=True)):
            continue
        values = row[family.value_key]
        for r in range(reps):
            test = math.fsum(v for i, v in enumerate(values) if i != r) / (reps - 1)
            best[r] = pick(best.get(r, test), test)
    return best


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_regret_equals_an_independent_computation(path: Path) -> None:
    """Each study's best trial (by validation, first of equals) read from the csv.gz rows, its
    test score the mean of its test_scores, the table's optimum over the study file's space
    brute-forced from the raw table: the analysis's regret is that distance, and never below
    0 (nor is any anytime curve's)."""
    table = read_results(path)
    config = table.config
    space = {n: p.choices if p.searched else (p.value,) for n, p in config.space.items()}
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    by_study: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_study.setdefault(row["study"], []).append(row)
    optima = {t.benchmark: _raw_optima(str(t.benchmark), space) for t in config.tasks}
    independent: dict[tuple[str, str], list[float]] = {}
    studies = {s.name: s for s in table.studies}
    for name, own in by_study.items():
        r0 = own[0]
        sign = 1.0 if r0["direction"] == "maximize" else -1.0
        done = sorted((r for r in own if r["state"] == "COMPLETE"), key=lambda r: int(r["number"]))
        best = done[0]
        for r in done[1:]:
            if sign * float(r["value"]) > sign * float(best["value"]):
                best = r
        scores = json.loads(best["test_scores"])
        test = math.fsum(scores) / len(scores)
        top = optima[r0["benchmark"]][int(r0["repetition"])]
        assert _close(json.loads(r0[OPTIMUM_COLUMN])["test"], top)  # the stored optimum
        expected = sign * (top - test)
        assert expected > -1e-12
        study = studies[name]
        got = study.test_regret(study.best())
        assert got >= 0.0 and _close(got, expected), (name, got, expected)
        independent.setdefault((r0["task"], r0["strategy"]), []).append(expected)
        curve = study_curve(study, in_regret=True).best
        assert (curve[~np.isnan(curve)] >= 0.0).all()
    for task in table.tasks():
        for row in summary_rows(table, task):
            own = independent[(task, row.strategy)]
            assert row.test_regret is not None and row.test_regret.n == len(own)
            assert _close(row.test_regret.median, float(np.median(own)))
            assert _close(row.test_regret.low, min(own)) and _close(row.test_regret.high, max(own))
