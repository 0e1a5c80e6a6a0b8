"""Sampler and pruner factories, the search space, grid expansion and budgets."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpstudy.config._schema import ExperimentConfig, ParamConfig, PrunerConfig
from hpstudy.strategies._percentile import IncrementalPercentilePruner


def distribution(param: ParamConfig) -> BaseDistribution:
    """The Optuna distribution of a searched parameter."""
    if param.kind == "categorical":
        assert param.choices is not None
        return CategoricalDistribution(param.choices)
    if param.kind == "int":
        step = int(param.step) if param.step is not None else 1
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=step)  # type: ignore[arg-type]
    assert param.low is not None and param.high is not None
    return FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def distributions(config: ExperimentConfig) -> dict[str, BaseDistribution]:
    """Distributions of the searched parameters, in a stable order."""
    return {name: distribution(p) for name, p in config.searched_params().items()}


def grid_sampler(config: ExperimentConfig, seed: int) -> optuna.samplers.GridSampler:
    space = {name: list(p.grid or ()) for name, p in config.searched_params().items()}
    return optuna.samplers.GridSampler(space, seed=seed)


def grid_points(config: ExperimentConfig, seed: int) -> list[tuple[int, dict[str, Any]]]:
    """Every grid point as (grid_id, params), in GridSampler's seed-shuffled order."""
    from hpstudy.store._optuna import grid_order

    # GridSampler's own order, so grid ids match its bookkeeping.
    return list(enumerate(grid_order(grid_sampler(config, seed))))


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """One of Optuna's pruners (or its rule, for median and percentile) with the study
    file's settings."""
    pruners = optuna.pruners
    s = config.settings
    if config.type == "none":
        return pruners.NopPruner()
    if config.type in ("median", "percentile"):
        # Optuna's rule with the percentile kept per step with sorted values per step (see _percentile.py); median = 50
        percentile = 50.0 if config.type == "median" else s["percentile"]
        return IncrementalPercentilePruner(
            percentile, s["n_startup_trials"], s["n_warmup_steps"], s["interval_steps"]
        )
    if config.type == "successive_halving":
        return pruners.SuccessiveHalvingPruner(
            s["min_resource"], s["reduction_factor"], s["min_early_stopping_rate"]
        )
    if config.type == "hyperband":
        return pruners.HyperbandPruner(s["min_resource"], s["max_resource"], s["reduction_factor"])
    raise ValueError(f"unknown pruner {config.type!r}")
