"""Strategies: the strategy registry (samplers, budgets, what is queued at create), pruner
factories, the search space and grid expansion."""

from __future__ import annotations

from hpstudy.strategies._factories import (
    distribution,
    distributions,
    grid_points,
    make_pruner,
)
from hpstudy.strategies._registry import (
    STRATEGY_REGISTRY,
    QueuedConfiguration,
    Strategy,
    check_dependencies,
    derive_seed,
    make_sampler,
    strategy,
    study_budget,
)

__all__ = [
    "STRATEGY_REGISTRY",
    "QueuedConfiguration",
    "Strategy",
    "check_dependencies",
    "derive_seed",
    "distribution",
    "distributions",
    "grid_points",
    "make_pruner",
    "make_sampler",
    "strategy",
    "study_budget",
]
