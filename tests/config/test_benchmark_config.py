"""Study files whose tasks name a published tabular benchmark (``benchmark = "fcnet/..."``)."""

from __future__ import annotations

import pytest

from hpstudy import ConfigError
from hpstudy.config import parse_config
from hpstudy.config._benchmarks import BENCHMARK_NAMES, FAMILIES

BENCH = """
name = "bench"
seeds = 2
strategies = {strategies}

[budget]
n_trials = {n_trials}

[[tasks]]
benchmark = "hpobench_nn/credit_g"

[[tasks]]
benchmark = "hpobench_nn/vehicle"
{extra}
"""


def bench_text(
    strategies: tuple[str, ...] = ("grid", "random", "tpe"),
    n_trials: int = 8,
    extra: str = "",
    space: str = "depth = { grid = [1, 3] }\nwidth = { choices = [16, 64, 256], grid = [64, 256] }\n",
) -> str:
    quoted = "[" + ", ".join(f'"{s}"' for s in strategies) + "]"
    return (
        BENCH.format(strategies=quoted, n_trials=n_trials, extra=extra)
        + "\n[space]\n"
        + space
        + "alpha = 1e-8\nbatch_size = 64\nlearning_rate_init = 0.001668100\n"
    )


def test_benchmark_space_is_the_tables_levels_narrowed_by_the_file() -> None:
    config = parse_config(bench_text())
    levels = FAMILIES["hpobench_nn"].levels
    assert config.benchmark_family == "hpobench_nn"
    assert [t.name for t in config.tasks] == ["credit_g", "vehicle"]
    assert {t.metric for t in config.tasks} == {"balanced_accuracy"}
    assert config.pruner.type == "none"
    assert list(config.space) == list(levels)  # the table's names, in its order
    assert config.space["depth"].choices == levels["depth"]  # not narrowed: every level
    assert config.space["depth"].grid == (1, 3)
    assert config.space["width"].choices == (16, 64, 256)
    assert config.space["width"].grid == (64, 256)
    # numbers name the table's level they are close to, and become that level exactly
    assert config.fixed_params() == {
        "alpha": 1e-8,
        "batch_size": 64,
        "learning_rate_init": 1.6681006e-3,
    }
    assert config.grid_size() == 4


def test_every_benchmark_name_is_valid_and_an_absent_hyperparameter_takes_every_level() -> None:
    for name in BENCHMARK_NAMES:
        family = FAMILIES[name.split("/")[0]]
        text = f'name = "b"\nstrategies = ["random"]\n[budget]\nn_trials = 5\n[[tasks]]\nbenchmark = "{name}"\n'
        config = parse_config(text)
        assert config.tasks[0].benchmark == name
        assert {n: p.choices for n, p in config.space.items()} == family.levels
        assert config.tasks[0].metric == family.metric


def test_trained_tasks_keep_their_fingerprint() -> None:
    """The new key is left out of a trained task's identity (stored experiments resume)."""
    from hpstudy.config._schema import _task_identity
    from tests.conftest import tiny_study_text

    base = parse_config(tiny_study_text())
    for task in base.tasks:
        assert "benchmark" not in _task_identity(task)
    # the same task with select = accuracy is the task as stored before selection moved to
    # cross-entropy: its fingerprint is the one experiments made then carry
    old = parse_config(
        tiny_study_text().replace('dataset = "iris"', 'dataset = "iris"\nselect = "accuracy"')
    )
    assert old.fingerprint(old.tasks[0]) == "b4ec3cd69bfb4eca"


def test_benchmark_fingerprint_depends_on_the_benchmark_and_space() -> None:
    a = parse_config(bench_text())
    b = parse_config(bench_text().replace("batch_size = 64", "batch_size = 16"))
    assert a.fingerprint(a.tasks[0]) != a.fingerprint(a.tasks[1])
    assert a.fingerprint(a.tasks[0]) != b.fingerprint(b.tasks[0])


BAD = [
    (
        "value off the table lists the allowed levels",
        r"space\.width\.choices\[1\]: 20 is off the table; the table's levels of width are \[16, 25, 40, 64, 101, 161, 256, 406, 645, 1024\]",
        lambda t: t.replace("choices = [16, 64, 256]", "choices = [16, 20]"),
    ),
    (
        "fixed value off the table",
        r"space\.batch_size: 65 is off the table",
        lambda t: t.replace("batch_size = 64", "batch_size = 65"),
    ),
    (
        "grid value not among the narrowed choices",
        r"space\.width\.grid\[1\]: 256 is not one of space\.width\.choices \[16, 64\]",
        lambda t: t.replace("choices = [16, 64, 256]", "choices = [16, 64]"),
    ),
    (
        "a range instead of levels",
        r"space\.depth\.low: a benchmark's hyperparameter takes its table's levels",
        lambda t: t.replace("depth = { grid = [1, 3] }", "depth = { low = 1, high = 3 }"),
    ),
    (
        "a trained model's hyperparameter",
        r"space\.dropout: not a hyperparameter of the hpobench_nn tables; choose from alpha, batch_size, depth, learning_rate_init, width",
        lambda t: t + "dropout = 0.2\n",
    ),
    (
        "a pruner",
        r"pruner: a benchmark task has no learning curves .* cannot be pruned",
        lambda t: t.replace("[[tasks]]", '[pruner]\ntype = "median"\n\n[[tasks]]', 1),
    ),
    (
        "training settings",
        r"training: does not apply to benchmark tasks",
        lambda t: t.replace("[[tasks]]", "[training]\nmax_epochs = 5\n\n[[tasks]]", 1),
    ),
    (
        "a trained task beside benchmark tasks",
        r"tasks: benchmark tasks and trained tasks .* never pooled with real training",
        lambda t: t.replace("[space]", '[[tasks]]\ndataset = "iris"\n\n[space]'),
    ),
    (
        "two benchmark families",
        r"tasks: benchmark tasks of one study file must come from one benchmark .* fcnet, hpobench_nn",
        lambda t: t.replace("hpobench_nn/vehicle", "fcnet/protein_structure"),
    ),
    (
        "an unknown benchmark",
        r"tasks\[1\]\.benchmark: unknown benchmark 'hpobench_nn/iris'; choose from fcnet/protein_structure",
        lambda t: t.replace("hpobench_nn/vehicle", "hpobench_nn/iris"),
    ),
    (
        "a data-set key on a benchmark task",
        r"tasks\[0\]\.test_size: does not apply to a benchmark task",
        lambda t: t.replace('"hpobench_nn/credit_g"', '"hpobench_nn/credit_g"\ntest_size = 0.3'),
    ),
    (
        "another metric",
        r"tasks\[0\]\.metric: the hpobench_nn tables hold balanced_accuracy only, got 'accuracy'",
        lambda t: t.replace(
            '"hpobench_nn/credit_g"', '"hpobench_nn/credit_g"\nmetric = "accuracy"'
        ),
    ),
]


@pytest.mark.parametrize(("case", "message", "edit"), BAD, ids=[b[0] for b in BAD])
def test_bad_benchmark_study_file_is_refused_with_the_fix(case: str, message: str, edit) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        parse_config(edit(bench_text()))
    assert e.value.exit_code == 2


@pytest.mark.parametrize("name", ["cmaes", "qmc"])
def test_strategies_that_cannot_search_levels_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{name}' cannot search a benchmark's levels"):
        parse_config(bench_text(strategies=("random", name)))


def test_benchmark_metrics_are_refused_on_trained_tasks() -> None:
    from tests.conftest import tiny_study_text

    text = tiny_study_text().replace(
        'dataset = "iris"', 'dataset = "iris"\nmetric = "balanced_accuracy"'
    )
    with pytest.raises(
        ConfigError, match=r"tasks\[0\]\.metric: balanced_accuracy is only for benchmark tasks"
    ):
        parse_config(text)


def test_manual_picks_name_the_tables_levels() -> None:
    manual = "\n[[manual]]\ndepth = 2\nwidth = 64.0\n"
    config = parse_config(bench_text(strategies=("manual", "random")) + manual)
    assert config.manual == ({"depth": 2, "width": 64},)
    with pytest.raises(
        ConfigError, match=r"manual\[0\]\.width: 100 is not one of space\.width\.choices"
    ):
        parse_config(bench_text(strategies=("manual", "random")) + manual.replace("64.0", "100"))
    with pytest.raises(
        ConfigError, match=r"manual\[0\]\.lr: unknown hyperparameter; choose from alpha"
    ):
        parse_config(bench_text(strategies=("manual", "random")) + manual + "lr = 0.1\n")


def test_shipped_benchmark_experiment_keeps_its_promises() -> None:
    """studies/bench*.toml: all 12 data sets, grid/random/TPE on >= 100 seeds, the grid's full
    budget for every strategy, the same bounding box for every strategy, reasons and a run
    time in the header (issue 18)."""
    import re
    from pathlib import Path

    from hpstudy.config import load_config

    files = sorted((Path(__file__).resolve().parents[2] / "studies").glob("bench*.toml"))
    configs = [load_config(p) for p in files]
    assert {t.benchmark for c in configs for t in c.tasks} == set(BENCHMARK_NAMES)
    for path, config in zip(files, configs, strict=True):
        assert {"grid", "random", "tpe"} <= set(config.strategies)
        assert len(config.seeds) >= 100
        assert config.budget.n_trials == config.grid_size() and not config.budget.grid_subset
        levels = FAMILIES[str(config.benchmark_family)].levels
        for name, p in config.searched_params().items():
            assert p.choices is not None and p.grid is not None
            # grid's extremes are the ends of random's levels, and random has every table
            # level between them
            assert (min(p.grid), max(p.grid)) == (p.choices[0], p.choices[-1]), name
            inside = [lv for lv in levels[name] if p.choices[0] <= lv <= p.choices[-1]]
            assert list(p.choices) == inside, name
        assert all(t.margin is not None for t in config.tasks)
        header = path.read_text().split("\nname =")[0]
        assert re.search(
            r"(MEASURED run time: (\d+ min )?\d+ s|ESTIMATED run time: about \d+ min) with --n-jobs 2",
            header,
        ), path
        assert "pre-registered" in header and "Rules" in header
