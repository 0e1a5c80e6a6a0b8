"""Strategies: sampler and pruner factories, the search space, grid expansion and budgets."""

from __future__ import annotations

from hpstudy.strategies._factories import (
    check_dependencies,
    derive_seed,
    distribution,
    distributions,
    grid_points,
    make_pruner,
    make_sampler,
    study_budget,
)

__all__ = [
    "check_dependencies",
    "derive_seed",
    "distribution",
    "distributions",
    "grid_points",
    "make_pruner",
    "make_sampler",
    "study_budget",
]
