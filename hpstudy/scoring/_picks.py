"""Which trials need test scores: one rule over plain per-study records."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# Fractions of the baseline's total epochs at which each strategy's pick is scored.
FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)


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


def _better(value: float, best: float | None, direction: str) -> bool:
    if best is None:
        return True
    return value > best if direction == "maximize" else value < best


def best_number(trials: Iterable[TrialRow], direction: str) -> int | None:
    """The best COMPLETE trial (the first in run order among equals); ``None`` without one."""
    best, pick = None, None
    for t in sorted(trials, key=lambda t: t.number):
        value = t.value if t.state == "COMPLETE" else None
        if value is not None and not math.isnan(value) and _better(value, best, direction):
            best, pick = value, t.number
    return pick


def pick_at_budget(trials: Sequence[Any], direction: str, budget: float) -> int | None:
    """The trial a strategy would have picked had it stopped after ``budget`` epochs: the
    best COMPLETE trial among those it had finished within the budget, in run order.
    ``trials`` have ``number``, ``state``, ``value`` and ``epochs``."""
    spent, best, pick = 0.0, None, None
    for t in sorted(trials, key=lambda t: t.number):
        spent += float(t.epochs)
        if spent > budget * (1 + 1e-9):
            break
        value = t.value if t.state == "COMPLETE" else None
        if value is not None and not math.isnan(value) and _better(value, best, direction):
            best, pick = value, t.number
    return pick


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
    """The baseline among ``strategies`` (those that ran): the configured one when it ran,
    else grid, else the first non-manual strategy."""
    for candidate in (configured or "grid", "grid"):
        if candidate in strategies:
            return candidate
    return next((s for s in strategies if s != "manual"), strategies[0])
