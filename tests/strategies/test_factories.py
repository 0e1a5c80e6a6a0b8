from __future__ import annotations

import optuna
import pytest

from hpstudy import DependencyError
from hpstudy.config import parse_config
from hpstudy.strategies import (
    check_dependencies,
    derive_seed,
    distributions,
    grid_points,
    make_pruner,
    make_sampler,
    study_budget,
)
from hpstudy.strategies._percentile import IncrementalPercentilePruner
from tests.conftest import tiny_study_text

CONFIG = parse_config(
    tiny_study_text(strategies=("manual", "grid", "random", "tpe", "gp", "cmaes", "qmc"))
)


@pytest.mark.parametrize(
    "strategy, cls",
    [
        ("manual", optuna.samplers.RandomSampler),
        ("grid", optuna.samplers.RandomSampler),  # grid points are queued, never sampled
        ("random", optuna.samplers.RandomSampler),
        ("tpe", optuna.samplers.TPESampler),
        ("gp", optuna.samplers.GPSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("qmc", optuna.samplers.QMCSampler),
    ],
)
def test_each_strategy_gets_its_sampler(strategy: str, cls: type) -> None:
    assert isinstance(make_sampler(strategy, CONFIG, 1, 0), cls)


def test_grid_is_the_product_in_a_seed_shuffled_order() -> None:
    points = grid_points(CONFIG, seed=0)
    assert len(points) == 2 * 2 * 1
    assert sorted(gid for gid, _ in points) == [0, 1, 2, 3]
    combos = {(p["n_layers"], p["n_units"], p["lr"]) for _, p in points}
    assert combos == {(1, 8, 0.01), (1, 32, 0.01), (2, 8, 0.01), (2, 32, 0.01)}
    orders = {
        tuple(tuple(sorted(p.items())) for _, p in grid_points(CONFIG, seed=s)) for s in range(6)
    }
    assert len(orders) > 1  # different seeds visit the grid in different orders
    assert grid_points(CONFIG, seed=3) == grid_points(CONFIG, seed=3)


def test_budgets() -> None:
    assert study_budget(CONFIG, "manual") == 2
    assert study_budget(CONFIG, "grid") == 3  # min(grid size 4, n_trials 3)
    assert study_budget(CONFIG, "tpe") == 3


def test_distributions_of_searched_params_only() -> None:
    dists = distributions(CONFIG)
    assert set(dists) == {"n_layers", "n_units", "lr"}
    assert dists["n_units"] == optuna.distributions.IntDistribution(8, 32, log=True)


@pytest.mark.parametrize(
    "text, cls",
    [
        ('type = "none"', optuna.pruners.NopPruner),
        ('type = "median"', IncrementalPercentilePruner),
        ('type = "percentile"\npercentile = 10.0', IncrementalPercentilePruner),
        ('type = "successive_halving"', optuna.pruners.SuccessiveHalvingPruner),
        ('type = "hyperband"', optuna.pruners.HyperbandPruner),
    ],
)
def test_each_pruner(text: str, cls: type) -> None:
    config = parse_config(tiny_study_text().replace('type = "median"', text))
    assert isinstance(make_pruner(config.pruner), cls)


@pytest.mark.parametrize("text, percentile", [("", 50.0), ("\npercentile = 10.0", 10.0)])
def test_median_and_percentile_pruners_carry_the_study_files_settings(
    text: str, percentile: float
) -> None:
    kind = "median" if not text else "percentile"
    pruner_text = (
        f'type = "{kind}"{text}\nn_startup_trials = 3\nn_warmup_steps = 2\ninterval_steps = 2'
    )
    config = parse_config(tiny_study_text().replace('type = "median"', pruner_text))
    pruner = make_pruner(config.pruner)
    assert isinstance(pruner, IncrementalPercentilePruner)
    assert (pruner.percentile, pruner.n_startup_trials, pruner.n_warmup_steps) == (
        percentile,
        3,
        2,
    )
    assert pruner.interval_steps == 2


def test_trial_seeds_differ_by_trial_number_and_strategy() -> None:
    assert derive_seed(0, 0, "tpe") == derive_seed(0, 0, "tpe")
    assert (
        len(
            {
                derive_seed(0, 0, "tpe"),
                derive_seed(0, 5, "tpe"),
                derive_seed(0, 0, "random"),
                derive_seed(1, 0, "tpe"),
            }
        )
        == 4
    )


def test_missing_optional_dependency_is_reported_before_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else real(name, *a)
    )
    with pytest.raises(
        DependencyError,
        match="strategy 'cmaes' needs the 'cmaes' package; install it with: pip install cmaes",
    ):
        check_dependencies(("tpe", "cmaes"))
    check_dependencies(("tpe", "gp"))
