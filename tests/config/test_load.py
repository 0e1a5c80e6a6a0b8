from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hpstudy import ConfigError
from hpstudy.config import load_config, parse_config
from tests.conftest import tiny_study_text


def test_tiny_study_file_is_valid() -> None:
    config = parse_config(tiny_study_text())
    assert config.name == "tiny"
    assert config.strategies == ("manual", "grid", "random", "tpe")
    assert [t.name for t in config.tasks] == ["iris", "diabetes"]
    assert config.space["n_units"].log is True
    assert config.space["n_units"].grid == (8, 32)
    assert config.space["dropout"].searched is False
    assert config.fixed_params()["epochs"] == 3  # epochs not searched: training.max_epochs
    assert config.manual[0] == {"n_layers": 1, "n_units": 16, "lr": 0.01}


def test_seeds_count_and_list() -> None:
    assert parse_config(tiny_study_text().replace("seeds = 1", "seeds = 3")).seeds == (0, 1, 2)
    assert parse_config(tiny_study_text().replace("seeds = 1", "seeds = [4, 7]")).seeds == (4, 7)


def test_fingerprint_ignores_budget_but_not_space() -> None:
    base = parse_config(tiny_study_text())
    more = parse_config(tiny_study_text(n_trials=50))
    other = parse_config(tiny_study_text().replace("dropout = 0.1", "dropout = 0.2"))
    task = base.tasks[0]
    assert base.fingerprint(task) == more.fingerprint(task)
    assert base.fingerprint(task) != other.fingerprint(task)


def test_margin_and_baseline_are_report_only_and_keep_the_fingerprint() -> None:
    base = parse_config(tiny_study_text())
    text = tiny_study_text().replace('dataset = "iris"', 'dataset = "iris"\nmargin = "2%"')
    marked = parse_config(text + '\n[report]\nbaseline = "random"\n')
    assert marked.tasks[0].margin == "2%" and marked.tasks[1].margin is None
    assert marked.tasks[0].resolved_margin("accuracy") == "2%"
    assert marked.tasks[1].resolved_margin("rmse") == "1%"  # the metric's default
    assert marked.baseline() == "random" and base.baseline() == "grid"
    for a, b in zip(base.tasks, marked.tasks, strict=True):
        assert base.fingerprint(a) == marked.fingerprint(b)
    # the value main computed before margins and select existed: a task that selects on its
    # metric (as every stored experiment did) keeps it, so those still resume; the new default
    # (validation cross-entropy) is another fingerprint: old and new trials never mix silently
    legacy = dataclasses.replace(base.tasks[0], select="accuracy")
    assert base.fingerprint(legacy) == "b4ec3cd69bfb4eca"
    assert base.fingerprint(base.tasks[0]) != "b4ec3cd69bfb4eca"


def test_default_baseline_without_grid_is_the_first_non_manual_strategy() -> None:
    config = parse_config(tiny_study_text(strategies=("manual", "tpe", "random")))
    assert config.baseline() == "tpe"


BAD = [
    ("name = 'x y'", "name: must be a name", lambda t: t.replace('name = "tiny"', "name = 'x y'")),
    ("unknown top key", "colour: unknown key", lambda t: "colour = 1\n" + t),
    (
        "unknown strategy",
        r"strategies\[1\]: unknown strategy 'grdi'",
        lambda t: t.replace('"grid"', '"grdi"'),
    ),
    ("no budget", "budget.n_trials: is required", lambda t: t.replace("n_trials = 3", "")),
    (
        "budget zero",
        "budget.n_trials: must be an integer between 1",
        lambda t: t.replace("n_trials = 3", "n_trials = 0"),
    ),
    (
        "bad device",
        "training.device: must be one of auto, cpu, cuda, got 'tpu'",
        lambda t: t.replace("patience = 0", 'patience = 0\ndevice = "tpu"'),
    ),
    (
        "bad pruner",
        "pruner.type: must be one of",
        lambda t: t.replace('type = "median"', 'type = "asha"'),
    ),
    (
        "pruner setting of another pruner",
        "pruner.reduction_factor: unknown key",
        lambda t: t.replace('type = "median"', 'type = "median"\nreduction_factor = 3'),
    ),
    (
        "unknown dataset",
        r"tasks\[0\].dataset: unknown data set 'irsi'",
        lambda t: t.replace('dataset = "iris"', 'dataset = "irsi"'),
    ),
    (
        "metric of the wrong kind",
        r"tasks\[1\].metric: accuracy is not a regression metric",
        lambda t: t.replace('dataset = "diabetes"', 'dataset = "diabetes"\nmetric = "accuracy"'),
    ),
    (
        "csv missing",
        r"tasks\[0\].csv: file not found",
        lambda t: t.replace('dataset = "iris"', 'csv = "nope.csv"\ntarget = "y"'),
    ),
    (
        "csv without target",
        r"tasks\[0\].target: is required",
        lambda t: t.replace('dataset = "iris"', 'csv = "nope.csv"'),
    ),
    (
        "log with low 0",
        "space.weight_decay.low: must be > 0 when log = true, got 0.0",
        lambda t: t.replace(
            "batch_size = 32",
            "batch_size = 32\nweight_decay = { low = 0.0, high = 0.1, log = true }",
        ),
    ),
    (
        "lr of 0",
        r"space.lr.low: lr must be in \(0, 10\], got 0.0$",
        lambda t: t.replace("low = 1e-3", "low = 0.0"),
    ),
    (
        "low above high",
        "space.n_layers: low must be < high",
        lambda t: t.replace("low = 1, high = 2", "low = 3, high = 2"),
    ),
    (
        "unknown hyperparameter",
        "space.momentum: unknown hyperparameter",
        lambda t: t + "\n[space.momentum]\nlow = 0.1\nhigh = 0.9\n",
    ),
    (
        "categorical value",
        "space.activation: must be one of relu",
        lambda t: t.replace("batch_size = 32", 'batch_size = 32\nactivation = "selu"'),
    ),
    (
        "grid outside range",
        r"space.n_units.grid\[1\]: grid value 64 is outside",
        lambda t: t.replace("grid = [8, 32]", "grid = [8, 64]"),
    ),
    (
        "grid missing",
        "space.lr.grid: is required by the grid strategy",
        lambda t: t.replace(", grid = [1e-2]", ""),
    ),
    (
        "dropout too high",
        "space.dropout: dropout must be in",
        lambda t: t.replace("dropout = 0.1", "dropout = 1.5"),
    ),
    (
        "manual missing param",
        r"manual\[1\]: missing searched parameter\(s\) lr",
        lambda t: t.replace("lr = 0.003", ""),
    ),
    (
        "manual outside range",
        r"manual\[0\].lr: must be a number in space.lr",
        lambda t: t.replace("lr = 0.01", "lr = 5.0"),
    ),
    (
        "manual fixed param",
        r"manual\[0\].dropout: dropout is not searched",
        lambda t: t.replace("lr = 0.01", "lr = 0.01\ndropout = 0.3"),
    ),
    (
        "manual without strategy",
        "manual: the manual strategy needs",
        lambda t: t.split("[[manual]]")[0],
    ),
    ("not toml", "not valid TOML", lambda t: t + "\n[[[\n"),
    (
        "epochs above max",
        "space.epochs: epochs must be between 1 and training.max_epochs = 3",
        lambda t: t.replace("batch_size = 32", "batch_size = 32\nepochs = 10"),
    ),
    (
        "grid below its size",
        r"budget.n_trials: 3 is below the grid's 4 points.*grid_subset = true",
        lambda t: t.replace("grid_subset = true", ""),
    ),
    (
        "grid_subset not a bool",
        "budget.grid_subset: must be true or false, got 'yes'",
        lambda t: t.replace("grid_subset = true", 'grid_subset = "yes"'),
    ),
    (
        "negative margin",
        r"tasks\[0\].margin: must be a number > 0 .* got -0.01",
        lambda t: t.replace('dataset = "iris"', 'dataset = "iris"\nmargin = -0.01'),
    ),
    (
        "margin percentage",
        r"tasks\[0\].margin: .*percentage.* got '1 percent'",
        lambda t: t.replace('dataset = "iris"', 'dataset = "iris"\nmargin = "1 percent"'),
    ),
    (
        "baseline not listed",
        r"report.baseline: must be one of this file's strategies \(manual, grid, random, tpe\), got 'gp'",
        lambda t: t + '\n[report]\nbaseline = "gp"\n',
    ),
    ("unknown report key", "report.colour: unknown key", lambda t: t + "\n[report]\ncolour = 1\n"),
]


IRIS = 'dataset = "iris"'
DIABETES = 'dataset = "diabetes"'
BAD_SELECT = [
    ("unknown", IRIS, '"bogus"', r"tasks\[0\]\.select: 'bogus' is not an objective for a classification task; choose from accuracy, f1_macro, roc_auc, log_loss, cross_entropy"),
    ("regression", DIABETES, '"cross_entropy"', r"tasks\[1\]\.select: .* is not an objective for a regression task; choose from rmse, mae, r2"),
    ("not a string", IRIS, "1", r"tasks\[0\]\.select: 1 is not an objective"),
]  # fmt: skip


@pytest.mark.parametrize("case, task, value, match", BAD_SELECT, ids=[b[0] for b in BAD_SELECT])
def test_bad_select_names_the_task_the_value_and_the_choices(
    case: str, task: str, value: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(tiny_study_text().replace(task, f"{task}\nselect = {value}"))


def test_select_defaults_to_cross_entropy_for_classification_and_metric_for_regression() -> None:
    config = parse_config(tiny_study_text())
    iris, diabetes = config.tasks
    assert iris.select is None and iris.resolved_select("classification") == "cross_entropy"
    assert diabetes.resolved_select("regression") == "rmse"
    chosen = parse_config(tiny_study_text().replace(IRIS, f'{IRIS}\nselect = "accuracy"'))
    assert chosen.tasks[0].resolved_select("classification") == "accuracy"
    # selecting on another objective makes trials incomparable: another fingerprint
    assert chosen.fingerprint(chosen.tasks[0]) != config.fingerprint(iris)
    # a regression task that says its default changes nothing
    said = parse_config(tiny_study_text().replace(DIABETES, f'{DIABETES}\nselect = "rmse"'))
    assert said.fingerprint(said.tasks[1]) == config.fingerprint(diabetes)


@pytest.mark.parametrize("case, match, mutate", BAD, ids=[b[0] for b in BAD])
def test_bad_study_file_names_key_and_fix(case: str, match: str, mutate: object) -> None:
    text = mutate(tiny_study_text())  # type: ignore[operator]
    with pytest.raises(ConfigError, match=match):
        parse_config(text)


def test_every_problem_is_reported_at_once() -> None:
    text = tiny_study_text().replace('"grid"', '"grdi"').replace("n_trials = 3", "n_trials = -1")
    text = text.replace("dropout = 0.1", "dropout = 2.0")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert len(info.value.problems) == 3
    assert "3 problems" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="study file not found"):
        load_config(tmp_path / "missing.toml")


def test_csv_path_is_relative_to_the_study_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("a,y\n1,2\n")
    text = tiny_study_text().replace('dataset = "iris"', 'csv = "data/d.csv"\ntarget = "y"')
    study = tmp_path / "s.toml"
    study.write_text(text)
    config = load_config(study)
    assert config.tasks[0].csv == str((tmp_path / "data" / "d.csv").resolve())
