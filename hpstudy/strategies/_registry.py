"""The strategy registry: one entry per strategy, read wherever a strategy's kind matters.

Each entry says what the strategy is called in prose, which optional packages it needs,
whether its configurations are queued when the study is created (manual picks, grid points)
or sampled trial by trial, how its budget is set, and how its sampler is made.

Seeding: a sampled trial's sampler is seeded from (study seed, the trial's claimed sample
index, strategy). The index is claimed in storage before sampling (the smallest one no trial
holds, under the study's lock; see ``TrialWriter.claim_number``), so two workers never seed
two trials alike, whatever moment they start, and a re-run after a crash draws what the
crashed attempt would have drawn.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from hpstudy._errors import DependencyError
from hpstudy.config._schema import STRATEGY_NAMES, ExperimentConfig


def derive_seed(seed: int, number: int, strategy: str = "") -> int:
    """Seed of the sampler that proposes the trial of sample index ``number`` of a study of
    ``strategy``.

    Distinct sample indexes give independent streams (no two workers share one, and a run
    replays one only to redraw a trial that crashed before its parameters were stored); the
    strategy is mixed in so that random search and TPE's random
    start-up trials are independent draws.
    """
    salt = int.from_bytes(strategy.encode()[:8].ljust(8, b"\0"), "little")
    return int(np.random.SeedSequence([seed, number, salt]).generate_state(1)[0])


SamplerFactory = Callable[[ExperimentConfig, int, int], optuna.samplers.BaseSampler]


@dataclass(frozen=True)
class QueuedConfiguration:
    """A configuration queued at create: a grid point or a manual pick.

    ``key`` (a ``grid_id`` system attr or a ``manual_index`` user attr) identifies it, so it
    is queued once whatever crashed before.
    """

    key: str
    index: int
    params: dict[str, Any]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]


QueueFactory = Callable[[ExperimentConfig, int, int], list[QueuedConfiguration]]


@dataclass(frozen=True)
class Strategy:
    """What hpstudy knows about one search strategy.

    Attributes:
        name: The study-file name.
        label: The name in prose (reports, status).
        needs: Optional packages the sampler imports.
        queued: Its configurations are queued at create (manual, grid), never sampled.
        budget: Finished trials a study aims for, given the study file.
        sampler: ``(config, study seed, sample index) -> sampler`` for a sampled trial.
        configurations: ``(config, study seed, budget) -> configurations`` to queue.
    """

    name: str
    label: str
    needs: tuple[str, ...]
    queued: bool
    budget: Callable[[ExperimentConfig], int]
    sampler: SamplerFactory | None
    configurations: QueueFactory | None = None


def _n_trials(config: ExperimentConfig) -> int:
    return config.budget.n_trials


def _grid_size(config: ExperimentConfig) -> int:
    size = 1
    for p in config.searched_params().values():
        size *= len(p.grid or ())
    return min(size, config.budget.n_trials)


def _random(config: ExperimentConfig, seed: int, number: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=derive_seed(seed, number, "random"))


def _tpe(config: ExperimentConfig, seed: int, number: int) -> optuna.samplers.BaseSampler:
    # Optuna 5's TPE defaults to multivariate + constant liar: running trials of other
    # workers (in the local copy with their parameters) are treated as bad, and the per-trial
    # seed keeps two workers from turning the same history into the same proposal.
    return optuna.samplers.TPESampler(seed=derive_seed(seed, number, "tpe"))


def _gp(config: ExperimentConfig, seed: int, number: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=derive_seed(seed, number, "gp"))


def _cmaes(config: ExperimentConfig, seed: int, number: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(
        seed=derive_seed(seed, number, "cmaes"), warn_independent_sampling=False
    )


def _qmc(config: ExperimentConfig, seed: int, number: int) -> optuna.samplers.BaseSampler:
    from hpstudy.store._optuna import NumberedQMCSampler

    # One scrambled sequence per study (its seed), indexed by the trial's sample index.
    sampler = NumberedQMCSampler(
        seed=derive_seed(seed, 0, "qmc"),
        scramble=True,
        independent_sampler=optuna.samplers.RandomSampler(seed=derive_seed(seed, number, "qmc")),
        warn_independent_sampling=False,
    )
    sampler.sample_index = number
    return sampler


def _grid_points(config: ExperimentConfig, seed: int, budget: int) -> list[QueuedConfiguration]:
    from hpstudy.strategies._factories import grid_points

    space = {n: list(p.grid or ()) for n, p in sorted(config.searched_params().items())}
    return [
        QueuedConfiguration("grid_id", gid, params, {}, {"grid_id": gid, "search_space": space})
        for gid, params in grid_points(config, seed)[:budget]
    ]


def _manual_picks(config: ExperimentConfig, seed: int, budget: int) -> list[QueuedConfiguration]:
    return [
        QueuedConfiguration("manual_index", i, dict(params), {"manual_index": i}, {})
        for i, params in enumerate(config.manual)
    ]


STRATEGY_REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "manual",
            STRATEGY_NAMES["manual"].label,
            (),
            True,
            lambda c: len(c.manual),
            None,
            _manual_picks,
        ),
        Strategy("grid", STRATEGY_NAMES["grid"].label, (), True, _grid_size, None, _grid_points),
        Strategy("random", STRATEGY_NAMES["random"].label, (), False, _n_trials, _random),
        Strategy("tpe", STRATEGY_NAMES["tpe"].label, (), False, _n_trials, _tpe),
        Strategy("gp", STRATEGY_NAMES["gp"].label, ("scipy", "torch"), False, _n_trials, _gp),
        Strategy("cmaes", STRATEGY_NAMES["cmaes"].label, ("cmaes",), False, _n_trials, _cmaes),
        Strategy("qmc", STRATEGY_NAMES["qmc"].label, ("scipy",), False, _n_trials, _qmc),
    )
}


def strategy(name: str) -> Strategy:
    """The registry entry of ``name`` (a :class:`ValueError` for an unknown one)."""
    try:
        return STRATEGY_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}") from None


def check_dependencies(strategies: tuple[str, ...]) -> None:
    """Fail now, not at trial 11, when a strategy's optional dependency is missing."""
    for name in strategies:
        for module in strategy(name).needs:
            if importlib.util.find_spec(module) is None:
                raise DependencyError(
                    f"strategy {name!r} needs the '{module}' package; "
                    f"install it with: pip install {module}  (or remove {name!r} from strategies)"
                )


def study_budget(config: ExperimentConfig, name: str) -> int:
    """Finished trials a study of strategy ``name`` aims for."""
    return strategy(name).budget(config)


def make_sampler(
    name: str, config: ExperimentConfig, seed: int, number: int
) -> optuna.samplers.BaseSampler:
    """The sampler that proposes the trial of sample index ``number`` of a study of ``name`` with study seed
    ``seed``. Queued strategies get a random sampler that never draws (their trials carry
    fixed parameters)."""
    entry = strategy(name)
    if entry.sampler is None:
        return optuna.samplers.RandomSampler(seed=derive_seed(seed, number, name))
    return entry.sampler(config, seed, number)
