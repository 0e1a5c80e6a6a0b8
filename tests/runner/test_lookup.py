"""Studies of published tabular benchmarks (a trial is a table lookup, claimed and finished in
batches): every strategy, crashes at each step then resume, parallel workers on SQLite and
PostgreSQL, export and results, the dashboard."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpstudy.config import parse_config
from hpstudy.config._benchmarks import repetition_for
from hpstudy.data._benchmarks import TEST_SCORE_NOTE, load_table
from hpstudy.runner import create_experiment, resume_experiment
from hpstudy.runner._lookup import BATCH
from hpstudy.store import counts_toward_budget
from hpstudy.strategies import derive_seed

# Two batches per sampled study (BATCH = 64), a grid of 2 x 3 x 2 = 12 points, two manual picks.
N_TRIALS = BATCH + 6
STUDY = """
name = "bench"
seeds = {seeds}
strategies = {strategies}

[budget]
n_trials = {n_trials}

[[tasks]]
benchmark = "hpobench_nn/credit_g"

[[tasks]]
benchmark = "hpobench_nn/vehicle"

[space]
depth = {{ grid = [1, 3] }}
width = {{ choices = [16, 64, 256, 1024], grid = [16, 64, 256] }}
batch_size = {{ choices = [16, 64, 256], grid = [16, 256] }}
learning_rate_init = {{ choices = [0.0016681006, 1.0], grid = [0.0016681006] }}
alpha = 1e-8
{manual}
"""
MANUAL = """
[[manual]]
depth = 2
width = 64
batch_size = 16
learning_rate_init = 0.0016681006

[[manual]]
depth = 1
width = 1024
batch_size = 256
learning_rate_init = 1.0
"""


def study_text(
    strategies: tuple[str, ...] = ("manual", "grid", "random", "tpe"),
    n_trials: int = N_TRIALS,
    seeds: int = 2,
    one_task: bool = False,
) -> str:
    quoted = "[" + ", ".join(f'"{s}"' for s in strategies) + "]"
    manual = MANUAL if "manual" in strategies else ""
    text = STUDY.format(strategies=quoted, n_trials=n_trials, seeds=seeds, manual=manual)
    if one_task:  # credit_g only: process tests load one table per process
        text = text.replace('[[tasks]]\nbenchmark = "hpobench_nn/vehicle"\n', "")
    return text


def _studies(url: str) -> list[optuna.Study]:
    return [
        optuna.load_study(study_name=s.study_name, storage=url)
        for s in optuna.get_all_study_summaries(url)
    ]


def assert_exact_lookups(url: str, text: str, n_studies: int) -> None:
    """Budgets met exactly; every counted trial COMPLETE with the table's value and compute at
    the study's repetition; grid points and manual picks once each; every uncounted trial a
    crash or interrupt whose configuration (if it had one) ran again; the study labelled; the
    best trial's test scores cached as the unobserved repetitions' values."""
    config = parse_config(text)
    fixed = config.fixed_params()
    studies = _studies(url)
    assert len(studies) == n_studies
    for study in studies:
        a = study.user_attrs
        benchmark = config.task(a["task"]).benchmark
        table = load_table(benchmark)
        rep = repetition_for(a["seed"], benchmark)
        assert (a["task_kind"], a["benchmark"], a["repetition"]) == ("benchmark", benchmark, rep)
        assert a["test_score_note"] == TEST_SCORE_NOTE
        trials = study.get_trials(deepcopy=False)
        assert [t.number for t in trials] == list(range(len(trials)))
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        counted = [t for t in trials if counts_toward_budget(t)]
        strategy = a["strategy"]
        expected = {"manual": 2, "grid": 12}.get(strategy, a["budget"]["n_trials"])
        assert len(counted) == expected, (study.study_name, len(counted))
        for t in counted:
            assert t.state == TrialState.COMPLETE
            assert set(t.params) == set(config.searched_params())
            for name, value in t.params.items():
                assert value in config.space[name].choices
            value, seconds = table.lookup({**fixed, **t.params}, rep)
            assert t.value == value
            assert t.user_attrs["seconds"] == seconds
            assert t.user_attrs["epochs"] == table.family.epochs
        if strategy == "grid":
            assert sorted(t.system_attrs["grid_id"] for t in counted) == list(range(12))
            points = {
                tuple(t.params[n] for n in ("batch_size", "depth", "width")) for t in counted
            }
            assert points == set(itertools.product((16, 256), (1, 3), (16, 64, 256)))
        if strategy == "manual":
            assert [t.user_attrs["manual_index"] for t in counted] == [0, 1]
        for t in trials:
            if not counts_toward_budget(t):
                assert t.state == TrialState.FAIL
                reason = t.user_attrs["fail_reason"]
                assert reason.startswith(("interrupted", "stale")), reason
                if t.params:
                    assert any(c.user_attrs.get("retry_of") == t.number for c in trials)
                else:
                    assert strategy not in ("manual", "grid")
        best = max(counted, key=lambda t: t.value)
        assert best.value <= a["optimum"]["validation"]
        assert a["test_scores"]["trial"] == best.number
        scores = table.test_scores({**fixed, **best.params}, rep)
        assert a["test_scores"]["scores"] == scores
        from hpstudy.scoring import cached_scores

        assert list(cached_scores(a)[best.number].scores) == scores
        assert a["optimum"]["test"] >= float(np.mean(scores))


def test_every_strategy_runs_lookups_with_the_tables_values(tmp_path: Path) -> None:
    text = study_text()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _, results = create_experiment(parse_config(text), url)
    assert all(r.reason == "budget met" or r.reason == "all configurations run" for r in results)
    assert_exact_lookups(url, text, n_studies=2 * 2 * 4)


@pytest.mark.slow
def test_gp_runs_on_a_benchmarks_levels(tmp_path: Path) -> None:
    text = study_text(strategies=("gp",), n_trials=14, seeds=1)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(text), url)
    assert_exact_lookups(url, text, n_studies=2)


def test_each_sampled_trial_is_drawn_from_its_own_numbers_seed(tmp_path: Path) -> None:
    """Random search's trial n is what a sampler seeded from (seed, n) proposes: no trial
    shares a stream with another (workers that start together, or a resumed run), and the
    study is reproducible."""
    text = study_text(strategies=("random",), seeds=1)
    config = parse_config(text)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(config, url)
    from hpstudy.strategies import distributions

    dists = distributions(config)
    for study in _studies(url):
        for t in study.get_trials(deepcopy=False):
            replay = optuna.create_study(
                sampler=optuna.samplers.RandomSampler(seed=derive_seed(0, t.number, "random"))
            )
            for _ in range(t.number):  # the same trial number in a fresh study
                replay.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
            assert replay.ask(dists).params == t.params


def test_resume_with_a_higher_budget_continues_in_batches(tmp_path: Path) -> None:
    text = study_text(strategies=("random", "tpe"), n_trials=10, seeds=1)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(text), url)
    resume_experiment("bench", url, n_trials=N_TRIALS)
    assert_exact_lookups(url, study_text(strategies=("random", "tpe"), seeds=1), n_studies=4)


def _hpstudy(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HPSTUDY_")}
    return subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", *args],
        capture_output=True, text=True, env={**base, **(env or {})}, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("crash", "signal_"),
    [
        ("claim:1:KILL", -signal.SIGKILL),  # manual picks claimed (RUNNING with parameters)
        ("sample:70:KILL", -signal.SIGKILL),  # inside the second batch of random search
        ("finish:4:INT", 130),  # Ctrl-C before a batch is stored: interrupted, re-queued
    ],
)
def test_kill_at_each_step_then_resume_gives_exactly_the_experiment(
    tmp_path: Path, crash: str, signal_: int
) -> None:
    text = study_text(strategies=("manual", "grid", "random", "tpe"), seeds=1, one_task=True)
    study = tmp_path / "bench.toml"
    study.write_text(text)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    killed = _hpstudy(["create", str(study), "--storage", url], {"HPSTUDY_CRASH_AT": crash})
    assert killed.returncode == signal_, killed.stderr
    resumed = _hpstudy(["resume", "bench", "--storage", url])
    assert resumed.returncode == 0, resumed.stderr
    assert_exact_lookups(url, text, n_studies=4)
    if not crash.startswith("queue"):  # something was claimed: it failed, uncounted
        trials = [t for s in _studies(url) for t in s.get_trials(deepcopy=False)]
        assert any(not counts_toward_budget(t) for t in trials)


@pytest.mark.slow
def test_two_workers_started_together_on_sqlite_meet_every_budget_exactly(tmp_path: Path) -> None:
    text = study_text(
        strategies=("grid", "random", "tpe"), n_trials=2 * BATCH, seeds=1, one_task=True
    )
    study = tmp_path / "bench.toml"
    study.write_text(text)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    done = _hpstudy(
        ["create", str(study), "--storage", url, "--n-jobs", "2"],
        {"HPSTUDY_START_BARRIER": f"{barrier}:2"},
    )
    assert done.returncode == 0, done.stderr
    assert_exact_lookups(url, text, n_studies=3)
    workers = {t.user_attrs["worker"] for s in _studies(url) for t in s.get_trials(deepcopy=False)}
    assert len(workers) == 2


@pytest.mark.slow
def test_three_workers_on_postgresql_meet_every_budget_exactly(
    tmp_path: Path, postgres_url: str
) -> None:
    text = study_text(
        strategies=("manual", "grid", "random"), n_trials=N_TRIALS, seeds=1, one_task=True
    )
    study = tmp_path / "bench.toml"
    study.write_text(text)
    created = _hpstudy(["create", str(study), "--storage", postgres_url, "--no-run"])
    assert created.returncode == 0, created.stderr
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSTUDY_")}
    env["HPSTUDY_START_BARRIER"] = f"{barrier}:3"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "hpstudy", "-q", "worker", "bench", "--storage", postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        for _ in range(3)
    ]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err.decode()
    assert_exact_lookups(postgres_url, text, n_studies=3)


def test_export_and_results_keep_the_label_values_and_test_scores(tmp_path: Path) -> None:
    from hpstudy.analysis import analyze, read_results
    from hpstudy.analysis._table import Optimum
    from hpstudy.report import table_from_storage
    from hpstudy.report._results import write_trials_csv_gz

    text = study_text(strategies=("grid", "random"), n_trials=12, seeds=2)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(text), url)
    out = tmp_path / "bench.csv.gz"
    write_trials_csv_gz(table_from_storage(url, "bench"), out)
    loaded = read_results(out)
    assert loaded.from_tables
    stored = {s.study_name: s for s in _studies(url)}
    assert {s.name for s in loaded.studies} == set(stored)
    for s in loaded.studies:
        study = stored[s.name]
        assert s.benchmark == study.user_attrs["benchmark"]
        assert s.repetition == study.user_attrs["repetition"]
        # the table's optimum (for regret) reaches the trial table through storage and file
        assert s.optimum is not None
        assert s.optimum == Optimum.parse(study.user_attrs["optimum"])
        assert s.test_regret(s.best()) >= 0.0
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for t in s.trials:
            assert t.value == by_number[t.number].value
            assert dict(t.params) == {**loaded.config.fixed_params(), **by_number[t.number].params}
            assert t.seconds == by_number[t.number].user_attrs["seconds"]
        best = study.user_attrs["test_scores"]
        scored = next(t for t in s.trials if t.number == best["trial"])
        assert list(scored.test_scores or ()) == best["scores"]
    analysis = analyze(loaded)
    assert {t.task for t in analysis.summaries} == {"credit_g", "vehicle"}
    from hpstudy.data._benchmarks import BENCHMARK_NOTE
    from hpstudy.report._results_page import experiment_markdown

    assert f"*{BENCHMARK_NOTE}*" in "\n".join(experiment_markdown(out, analysis))


@pytest.mark.slow
def test_dashboard_serves_benchmark_studies(tmp_path: Path) -> None:
    import time
    import urllib.request

    from tests.test_dashboard import _free_port

    text = study_text(strategies=("random",), n_trials=5, seeds=1)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(text), url)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpstudy", "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip

    def get(path: str) -> object:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return json.loads(r.read())

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get("/api/meta")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        studies = {s["study_name"]: s for s in get("/api/studies")["study_summaries"]}  # type: ignore[index]
        assert set(studies) == {"bench.credit_g.random.s0", "bench.vehicle.random.s0"}
        detail = json.dumps(get(f"/api/studies/{studies['bench.credit_g.random.s0']['study_id']}"))
        for key in ("task_kind", "benchmark", "repetition", "epochs", "seconds", "width"):
            assert f'"{key}"' in detail, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_best_shows_and_train_best_refuses_a_benchmark_experiment(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hpstudy.cli import app

    text = study_text(strategies=("random",), n_trials=5, seeds=1)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(text), url)
    best = CliRunner().invoke(app, ["best", "bench", "--storage", url, "--json"])
    assert best.exit_code == 0, best.output
    assert "credit_g" in best.stdout and "width" in best.stdout
    # regret beside the scores: the distance to the table's optimum stored with the study
    # (balanced accuracy, maximised), 0 at the optimum, never negative
    for b in json.loads(best.stdout):
        attrs = optuna.load_study(study_name=b["study"], storage=url).user_attrs
        optimum = attrs["optimum"]
        assert b["validation_regret"] == optimum["validation"] - b["value"] >= 0
        mean_test = sum(b["test_scores"]) / len(b["test_scores"])
        assert b["test_regret"] == pytest.approx(optimum["test"] - mean_test, abs=1e-12)
        assert b["test_regret"] >= 0
    plain = CliRunner().invoke(app, ["best", "bench", "--storage", url])
    assert "(mean of 4 unobserved repetitions of the table)" in plain.stdout, plain.output
    assert plain.stdout.count("regret (0 is the table's optimum): validation") == 2, plain.output
    refused = CliRunner().invoke(
        app, ["train-best", "bench", "--task", "credit_g", "--storage", url]
    )
    assert refused.exit_code == 2
    assert "looks up a published benchmark (hpobench_nn)" in refused.stderr
    assert "Traceback" not in refused.output


@pytest.mark.slow
def test_report_says_what_a_benchmarks_test_score_is(tmp_path: Path) -> None:
    from hpstudy.data._benchmarks import BENCHMARK_NOTE
    from hpstudy.report import write_report

    text = study_text(strategies=("grid", "random"), n_trials=12, seeds=2)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(text), url)
    path, analysis = write_report(url, "bench", tmp_path / "r.html")
    html = path.read_text()
    assert BENCHMARK_NOTE.replace("'", "&#x27;") in html
    assert {s.task for s in analysis.summaries} == {"credit_g", "vehicle"}
