"""Sampler and pruner factories, the search space, grid expansion and budgets."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpstudy._errors import DependencyError
from hpstudy.config._schema import ExperimentConfig, ParamConfig, PrunerConfig

# strategy -> modules it needs beyond the core dependencies
_NEEDS: dict[str, tuple[str, ...]] = {
    "gp": ("scipy", "torch"),
    "cmaes": ("cmaes",),
    "qmc": ("scipy",),
}


def check_dependencies(strategies: tuple[str, ...]) -> None:
    """Fail now, not at trial 11, when a strategy's optional dependency is missing."""
    for strategy in strategies:
        for module in _NEEDS.get(strategy, ()):
            if importlib.util.find_spec(module) is None:
                raise DependencyError(
                    f"strategy {strategy!r} needs the '{module}' package; "
                    f"install it with: pip install {module}  (or remove {strategy!r} from strategies)"
                )


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


def derive_seed(seed: int, n_existing: int, strategy: str = "") -> int:
    """Sampler seed of one run of a study.

    A seeded sampler re-proposes the same parameters after a resume (optuna#3255), so each run
    mixes in how many trials the study already holds; the strategy is mixed in too, so that
    random search and TPE's random start-up trials are independent draws.
    """
    salt = int.from_bytes(strategy.encode()[:8].ljust(8, b"\0"), "little")
    return int(np.random.SeedSequence([seed, n_existing, salt]).generate_state(1)[0])


def grid_sampler(config: ExperimentConfig, seed: int) -> optuna.samplers.GridSampler:
    space = {name: list(p.grid or ()) for name, p in config.searched_params().items()}
    return optuna.samplers.GridSampler(space, seed=seed)


def grid_points(config: ExperimentConfig, seed: int) -> list[tuple[int, dict[str, Any]]]:
    """Every grid point as (grid_id, params), in GridSampler's seed-shuffled order."""
    sampler = grid_sampler(config, seed)
    names = sampler._param_names  # GridSampler's own order, so grid ids match its bookkeeping
    return [
        (gid, dict(zip(names, point, strict=True))) for gid, point in enumerate(sampler._all_grids)
    ]


def study_budget(config: ExperimentConfig, strategy: str) -> int:
    """Finished trials a study of ``strategy`` aims for."""
    if strategy == "manual":
        return len(config.manual)
    if strategy == "grid":
        size = 1
        for p in config.searched_params().values():
            size *= len(p.grid or ())
        return min(size, config.budget.n_trials)
    return config.budget.n_trials


def make_sampler(
    strategy: str, config: ExperimentConfig, seed: int
) -> optuna.samplers.BaseSampler:
    """The sampler of ``strategy``, seeded with ``seed`` (already derived for this run)."""
    samplers = optuna.samplers
    if strategy in ("random", "manual"):
        # Manual trials are enqueued with fixed values; the sampler never draws for them.
        return samplers.RandomSampler(seed=seed)
    if strategy == "grid":
        return grid_sampler(config, seed)
    if strategy == "tpe":
        return samplers.TPESampler(seed=seed)
    if strategy == "gp":
        return samplers.GPSampler(seed=seed)
    if strategy == "cmaes":
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if strategy == "qmc":
        return samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    raise ValueError(f"unknown strategy {strategy!r}")


def make_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """One of Optuna's pruners with the study file's settings."""
    pruners = optuna.pruners
    s = config.settings
    if config.type == "none":
        return pruners.NopPruner()
    if config.type == "median":
        return pruners.MedianPruner(
            s["n_startup_trials"], s["n_warmup_steps"], s["interval_steps"]
        )
    if config.type == "percentile":
        return pruners.PercentilePruner(
            s["percentile"], s["n_startup_trials"], s["n_warmup_steps"], s["interval_steps"]
        )
    if config.type == "successive_halving":
        return pruners.SuccessiveHalvingPruner(
            s["min_resource"], s["reduction_factor"], s["min_early_stopping_rate"]
        )
    if config.type == "hyperband":
        return pruners.HyperbandPruner(s["min_resource"], s["max_resource"], s["reduction_factor"])
    raise ValueError(f"unknown pruner {config.type!r}")
