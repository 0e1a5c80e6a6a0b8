"""The incremental percentile rule decides exactly as Optuna's MedianPruner / PercentilePruner."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState, create_trial

from hpstudy.strategies._percentile import IncrementalPercentilePruner, linear_percentile

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore:.*(NaN|invalid value):RuntimeWarning")


def _value(rng: np.random.Generator) -> float:
    """Accuracy-like values on a coarse grid (ties with the percentile happen), some NaN,
    now and then an infinity."""
    u = rng.random()
    if u < 0.05:
        return math.nan
    if u < 0.07:
        return float(rng.choice([math.inf, -math.inf]))
    return float(rng.integers(0, 12)) / 11


def _history(rng: np.random.Generator, max_step: int) -> dict[int, float]:
    """Steps in random order with gaps, as a trial reports them."""
    steps = sorted(rng.choice(max_step + 1, size=rng.integers(1, max_step + 2), replace=False))
    return {int(s): _value(rng) for s in steps}


@pytest.mark.parametrize("seed", range(20))
def test_the_percentile_is_numpys_to_the_bit(seed: int) -> None:
    """Sizes 1-40, ties, infinities, every percentile the pruners use and random ones."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        values = [_value(rng) for _ in range(int(rng.integers(1, 41)))]
        q = float(rng.choice([0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 100.0, rng.uniform(0, 100)]))
        expected = float(np.nanpercentile(np.array(values, dtype=float), q))
        got = linear_percentile(sorted(v for v in values if not math.isnan(v)), q)
        assert got == expected or (math.isnan(got) and math.isnan(expected)), (values, q)
    assert math.isnan(linear_percentile([], 50.0))


@pytest.mark.parametrize("seed", range(40))
def test_every_decision_equals_optunas_on_random_histories(seed: int) -> None:
    """Random settings and histories; trials complete between the running trial's reports
    (so the per-step values must take them in), one pruner object for the whole study, as the
    runner keeps it; every decision is compared with Optuna's pruner asked the same."""
    rng = np.random.default_rng(seed)
    percentile = float(rng.choice([0.0, 10.0, 25.0, 50.0, 50.0, 75.0, 100.0, rng.uniform(0, 100)]))
    settings = dict(
        n_startup_trials=int(rng.integers(0, 5)),
        n_warmup_steps=int(rng.integers(0, 4)),
        interval_steps=int(rng.integers(1, 4)),
        n_min_trials=int(rng.integers(1, 4)),
    )
    ours = IncrementalPercentilePruner(percentile, **settings)
    theirs = (
        optuna.pruners.MedianPruner(**settings)
        if percentile == 50.0
        else optuna.pruners.PercentilePruner(percentile, **settings)
    )
    study = optuna.create_study(direction=str(rng.choice(["minimize", "maximize"])))
    decisions, pruned = 0, 0
    for _ in range(30):  # running trials, one after another
        if rng.random() < 0.6:  # another worker's trials complete (or fail, or are pruned)
            for _ in range(int(rng.integers(1, 3))):
                state = TrialState.COMPLETE if rng.random() < 0.8 else TrialState.PRUNED
                values = _history(rng, 12)  # the final value plays no part in pruning
                study.add_trial(create_trial(state=state, value=0.5, intermediate_values=values))
        reported: dict[int, float] = {}
        for step, value in _history(rng, 12).items():
            reported[step] = value
            trial = FrozenTrial(
                number=len(study.get_trials(deepcopy=False)), state=TrialState.RUNNING, value=None, values=None,
                datetime_start=None, datetime_complete=None, params={}, distributions={},
                user_attrs={}, system_attrs={}, intermediate_values=dict(reported),
                trial_id=10_000,
            )  # fmt: skip
            expected = theirs.prune(study, trial)
            assert ours.prune(study, trial) == expected, (seed, step, reported)
            decisions += 1
            pruned += expected
            if rng.random() < 0.1:  # a trial completes while this one trains
                values = _history(rng, 12)
                study.add_trial(
                    create_trial(state=TrialState.COMPLETE, value=0.5, intermediate_values=values)
                )
    assert decisions > 100
    if settings["n_startup_trials"] < 30:
        assert 0 < pruned < decisions  # both kinds of decision were compared


def test_a_new_study_object_is_never_answered_from_the_last_ones_values() -> None:
    """Two studies with the same number of completed trials but different values at a step
    (the runner rebuilds its local copy): each gets its own percentile."""
    pruner = IncrementalPercentilePruner(50.0, n_startup_trials=1)
    running = create_trial(state=TrialState.RUNNING, intermediate_values={0: 0.5})
    low, high = (optuna.create_study(direction="maximize") for _ in range(2))
    low.add_trial(create_trial(value=0.1, intermediate_values={0: 0.1}))
    high.add_trial(create_trial(value=0.9, intermediate_values={0: 0.9}))
    assert pruner.prune(low, running) is False  # 0.5 beats the median 0.1
    assert pruner.prune(high, running) is True  # 0.5 is below the median 0.9


@pytest.mark.parametrize(
    "args, match",
    [((101.0,), "Percentile"), ((50.0, -1), "startup"), ((50.0, 0, 0, 0), "interval")],
)
def test_bad_settings_are_refused_as_optuna_refuses_them(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IncrementalPercentilePruner(*args)
