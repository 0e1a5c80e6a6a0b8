from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hpstudy.analysis import analyze
from hpstudy.cli import app
from hpstudy.config import parse_config
from hpstudy.report import table_from_storage
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text

runner = CliRunner()


def test_report_and_export_from_the_cli(tmp_path: Path, storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("grid", "random"), n_trials=3)), storage_url
    )
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["-q", "report", "tiny", "--storage", storage_url, "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Task iris" in page and "Task diabetes" in page and '<table class="summary">' in page
    assert f"report: {out}" in result.stdout
    assert "Against grid search (3 of 4 points) on held-out test scores" in result.stdout

    # test scores were cached when the studies finished: the report read them
    summaries = analyze(table_from_storage(storage_url, "tiny")).summaries
    assert all(r.test.n == 1 for s in summaries for r in s.rows)
    assert "lack test scores" not in result.stderr

    result = runner.invoke(
        app,
        [
            "-q",
            "export",
            "tiny",
            "--storage",
            storage_url,
            "-f",
            "json",
            "-o",
            str(tmp_path / "e.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "e.json").read_text())
    assert len(payload["trials"]) == 4 * 3 and {
        "lr",
        "n_layers",
        "n_units",
        "epochs_trained",
        "seconds",
    } <= set(payload["trials"][0])
    assert {r["strategy"] for r in payload["summary"]} == {"grid", "random"}
    assert set(payload["verdicts"]) == {"iris", "diabetes"}

    result = runner.invoke(
        app, ["-q", "export", "tiny", "--storage", storage_url, "-o", str(tmp_path / "e.csv")]
    )
    assert result.exit_code == 0
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert (
        lines[0].startswith(
            "experiment,task,strategy,seed,study,number,state,value,epochs_trained,seconds"
        )
        and len(lines) == 13
    )
    assert (tmp_path / "e.summary.csv").read_text().startswith("task,metric,direction,strategy")


def test_partial_experiment_report_says_what_is_missing(tmp_path: Path, storage_url: str) -> None:
    from hpstudy.runner import DataCache, Progress, open_storage, run_studies

    config = parse_config(tiny_study_text(strategies=("grid", "random"), n_trials=3))
    infos, _ = create_experiment(config, storage_url, run=False)
    iris_grid = [i for i in infos if i.name == "tiny.iris.grid.s0"]
    run_studies(config, open_storage(storage_url), iris_grid, DataCache(config), Progress())
    result = runner.invoke(
        app, ["-q", "report", "tiny", "--storage", storage_url, "-o", str(tmp_path / "p.html")]
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "p.html").read_text()
    assert page.count("This task is not complete") == 2
    assert "tiny.iris.random.s0: 0 of 3 trials finished" in page
    assert "tiny.diabetes.grid.s0: 0 of 3 trials finished, 3 waiting" in page


def test_bad_export_format_exits_2(storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=1)), storage_url
    )
    result = runner.invoke(app, ["export", "tiny", "--storage", storage_url, "-f", "xml"])
    assert result.exit_code == 2 and "--format must be csv, csv.gz or json" in result.stderr


def test_report_of_unknown_experiment_exits_2(storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=1)), storage_url, run=False
    )
    result = runner.invoke(app, ["report", "nope", "--storage", storage_url])
    assert result.exit_code == 2 and "experiment 'nope' not found" in result.stderr


def test_best_prints_the_best_configuration_per_task(storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("grid", "random"), n_trials=3)), storage_url
    )
    result = runner.invoke(app, ["best", "tiny", "--storage", storage_url, "--json"])
    assert result.exit_code == 0, result.output
    found = {b["task"]: b for b in json.loads(result.stdout)}
    assert set(found) == {"iris", "diabetes"}
    iris = found["iris"]
    assert {"n_layers", "n_units", "lr", "dropout", "optimizer"} <= set(iris["params"])
    values = [
        t.value
        for s in table_from_storage(storage_url, "tiny").of("iris")
        for t in s.runs
        if t.value is not None
    ]
    # iris selects on validation cross-entropy: the best is the lowest; its test scores were
    # cached when its study finished
    assert iris["objective"] == "cross_entropy" and iris["metric"] == "accuracy"
    assert iris["value"] == min(values) and len(iris["test_scores"]) == 3
    narrowed = runner.invoke(
        app, ["best", "tiny", "--storage", storage_url, "--task", "iris", "--strategy", "random"]
    )
    assert narrowed.exit_code == 0 and narrowed.stdout.startswith("iris: validation cross_entropy")
    wrong = runner.invoke(app, ["best", "tiny", "--storage", storage_url, "--task", "wine"])
    assert wrong.exit_code == 2 and "task 'wine' is not in experiment 'tiny'" in wrong.stderr
