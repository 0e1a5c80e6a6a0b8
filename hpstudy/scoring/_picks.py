"""Which trials need test scores: one rule over plain per-study records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from hpstudy.analysis._compute import FRACTIONS
from hpstudy.analysis._compute import pick_at_budget as _pick_at_budget
from hpstudy.analysis._summary import baseline_of
from hpstudy.analysis._table import Trial, best_of

# FRACTIONS: of the baseline's total epochs, at which each strategy's pick is scored (the
# analysis's)
__all__ = ["FRACTIONS"]


class TrialRow(NamedTuple):
    """One finished trial that counts toward its study's budget."""

    number: int
    state: str  # "COMPLETE", "PRUNED" or "FAIL"
    value: float | None  # the validation objective of a COMPLETE trial
    epochs: float  # epochs trained (times folds): the compute measure


@dataclass(frozen=True)
class StudyTrials:
    """One study at a (task, seed), as the pick rule sees it.

    Attributes:
        name: The study's name.
        strategy: Its strategy.
        direction: Direction of its trial values (the selection objective).
        baseline: Whether it is the baseline every other strategy is compared with.
        trials: Its counted finished trials.
    """

    name: str
    strategy: str
    direction: str
    baseline: bool
    trials: tuple[TrialRow, ...]


def _trials(rows: Iterable[Any]) -> list[Trial]:
    return sorted(
        (Trial(int(t.number), t.state, t.value, epochs=t.epochs) for t in rows),
        key=lambda t: t.number,
    )


def best_number(trials: Iterable[TrialRow], direction: str) -> int | None:
    """The best COMPLETE trial (the first in run order among equals); ``None`` without one.
    The analysis's rule (:func:`hpstudy.analysis._table.best_of`)."""
    best = best_of(_trials(trials), direction)
    return None if best is None else best.number


def pick_at_budget(trials: Sequence[Any], direction: str, budget: float) -> int | None:
    """The trial a strategy would have picked had it stopped after ``budget`` epochs (the
    analysis's rule, :func:`hpstudy.analysis._compute.pick_at_budget`). ``trials`` have
    ``number``, ``state``, ``value`` and ``epochs``."""
    pick = _pick_at_budget(_trials(trials), direction, budget)
    return None if pick is None else pick.number


def picks_needed(studies_at_seed: Sequence[StudyTrials]) -> dict[str, set[int]]:
    """The trials that need test scores among studies of one task at one seed: each study's
    best trial, and, when the baseline is among them, each non-manual strategy's pick at
    every fraction of the baseline's total epochs (:data:`FRACTIONS`; the baseline's own
    picks too). Give only studies whose trials are final: a pick of an unfinished study, or
    at an unfinished baseline's total, could still change."""
    needed: dict[str, set[int]] = {}
    for s in studies_at_seed:
        best = best_number(s.trials, s.direction)
        if best is not None:
            needed.setdefault(s.name, set()).add(best)
    baseline = next((s for s in studies_at_seed if s.baseline), None)
    if baseline is None:
        return needed
    total = sum(float(t.epochs) for t in baseline.trials)
    for s in studies_at_seed:
        if s.strategy == "manual":
            continue
        for f in FRACTIONS:
            pick = pick_at_budget(s.trials, s.direction, f * total)
            if pick is not None:
                needed.setdefault(s.name, set()).add(pick)
    return needed


def task_baseline(configured: str | None, strategies: Sequence[str]) -> str:
    """The baseline among ``strategies`` (those that ran): the analysis's rule."""
    return baseline_of(configured, strategies)
