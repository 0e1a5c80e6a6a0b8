"""Optuna's median and percentile pruning rule, with each step's values kept sorted.

Optuna's ``PercentilePruner`` gathers every completed trial's value at the current step and
calls ``np.nanpercentile`` each time it is asked, although those values only change when a
trial completes: on the quickstart that was most of the per-epoch hook (about 4% of
training time). :class:`IncrementalPercentilePruner` makes the same decision by the same rule,
in the same order of checks: it adds a trial's values to per-step sorted lists once, when it
sees the trial completed (a COMPLETE trial never changes), and interpolates the percentile
from the sorted list as ``np.nanpercentile`` does (its default ``linear`` method, operation
for operation, so the float is the same). ``tests/strategies/test_percentile.py`` checks the
percentile against NumPy's and every decision against Optuna's pruners on random histories.
"""

from __future__ import annotations

import bisect
import math

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


def linear_percentile(ordered: list[float], q: float) -> float:
    """``np.nanpercentile(values, q)`` of NaN-free ``values`` given sorted, with NumPy's
    arithmetic (``numpy/lib/_function_base_impl.py``: ``_quantile``, ``_get_indexes``,
    ``_lerp``); NaN for no values."""
    n = len(ordered)
    if n == 0:
        return math.nan
    index = (n - 1) * (q / 100)  # the "virtual index" of the linear method
    if index >= n - 1:  # NumPy takes the last value, with index -1 in the weight
        below = above = n - 1
        weight = index + 1
    else:
        below = math.floor(index)
        above = below + 1
        weight = index - below
    a, b = ordered[below], ordered[above]
    diff = b - a
    if weight >= 0.5:
        return b - diff * (1 - weight)
    return a + diff * weight


class IncrementalPercentilePruner(optuna.pruners.BasePruner):
    """Prune a trial whose best value so far is worse than the ``percentile`` of completed
    trials' values at the same step (``percentile=50``: Optuna's ``MedianPruner``).

    Args:
        percentile: 0-100; the top ``percentile`` of trials are kept.
        n_startup_trials: No pruning until this many trials completed.
        n_warmup_steps: No pruning before this step.
        interval_steps: Pruning checks every this many steps after the warm-up (a check is
            postponed when no value was reported at that step).
        n_min_trials: No pruning while fewer completed trials reported the current step.
    """

    def __init__(
        self,
        percentile: float,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        n_min_trials: int = 1,
    ) -> None:
        # Optuna's own checks and messages, for the same arguments.
        optuna.pruners.PercentilePruner(
            percentile, n_startup_trials, n_warmup_steps, interval_steps, n_min_trials=n_min_trials
        )
        self.percentile = percentile
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.interval_steps = interval_steps
        self.n_min_trials = n_min_trials
        self._forget(None)

    def _forget(self, study: optuna.Study | None) -> None:
        self._study = study  # held, so it cannot be freed and another take its id
        self._seen: set[int] = set()  # numbers of the completed trials counted
        self._reported: dict[int, int] = {}  # step -> completed trials reporting it (NaN too)
        self._ordered: dict[int, list[float]] = {}  # step -> their non-NaN values, sorted

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        self.take_completed(study, completed)
        return self.decide(trial.intermediate_values, study.direction == StudyDirection.MAXIMIZE)

    def decide(self, steps: dict[int, float], maximize: bool) -> bool:
        """Whether to prune a trial that reported ``steps`` (step -> value), against the
        completed trials last taken in (:meth:`take_completed`)."""
        n_completed = len(self._seen)
        if not n_completed or n_completed < self.n_startup_trials:
            return False
        if not steps:
            return False
        step = max(steps)
        if step < self.n_warmup_steps:
            return False
        # Optuna's _is_first_in_interval_step: the check falls on the first step reported in
        # each interval after the warm-up.
        lower = (step - self.n_warmup_steps) // self.interval_steps * self.interval_steps
        if max((s for s in steps if s != step), default=-1) >= lower + self.n_warmup_steps:
            return False
        finite = [v for v in steps.values() if not math.isnan(v)]
        if not finite:  # every value NaN: Optuna prunes
            return True
        best = max(finite) if maximize else min(finite)
        if self._reported.get(step, 0) < self.n_min_trials:
            return False
        q = 100 - self.percentile if maximize else self.percentile
        p = linear_percentile(self._ordered.get(step, []), q)
        if math.isnan(p):
            return False
        return best < p if maximize else best > p

    def take_completed(self, study: optuna.Study, completed: list[FrozenTrial]) -> None:
        """Take in ``study``'s COMPLETE trials: the values of those completed since the last
        call are added (all of them, for another study object)."""
        if study is not self._study:
            self._forget(study)
        if len(completed) == len(self._seen):
            return
        for t in completed:
            if t.number in self._seen:
                continue
            self._seen.add(t.number)
            for step, value in t.intermediate_values.items():
                self._reported[step] = self._reported.get(step, 0) + 1
                if not math.isnan(value):
                    bisect.insort(self._ordered.setdefault(step, []), float(value))
