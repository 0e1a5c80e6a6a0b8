from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpstudy.runner._local import LocalStudy


def _completed(number_of_trials: int, values: list[float]) -> list[optuna.trial.FrozenTrial]:
    trials = []
    for i in range(number_of_trials):
        t = create_trial(
            params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, value=values[-1],
            intermediate_values=dict(enumerate(values, start=1)), state=TrialState.COMPLETE,
        )  # fmt: skip
        t.number = i
        trials.append(t)
    return trials


def test_median_pruner_prunes_a_poor_trial_without_storage() -> None:
    local = LocalStudy(
        "s", "maximize", optuna.samplers.RandomSampler(seed=0), optuna.pruners.MedianPruner(2, 1)
    )
    local.refresh(_completed(3, [0.5, 0.7, 0.8, 0.9]))
    local_id, params, _ = local.sample({"x": FloatDistribution(0, 1)})
    assert 0 <= params["x"] <= 1
    assert not local.should_prune(local_id, 1, 0.6)  # warm-up step
    assert local.should_prune(local_id, 2, 0.1)  # far below the median 0.7 at step 2


def test_good_trial_is_not_pruned() -> None:
    local = LocalStudy(
        "s", "minimize", optuna.samplers.RandomSampler(seed=0), optuna.pruners.MedianPruner(2, 0)
    )
    local.refresh(_completed(3, [5.0, 4.0, 3.0]))
    local_id, _, _ = local.sample({"x": FloatDistribution(0, 1)})
    assert not local.should_prune(local_id, 1, 1.0)
    assert not local.should_prune(local_id, 2, 1.0)


def test_successive_halving_rung_attrs_are_collected_for_storage() -> None:
    local = LocalStudy(
        "s",
        "maximize",
        optuna.samplers.RandomSampler(seed=0),
        optuna.pruners.SuccessiveHalvingPruner(1, 2),
    )
    local.refresh([])
    local_id, _, _ = local.sample({"x": FloatDistribution(0, 1)})
    local.should_prune(local_id, 1, 0.5)
    assert local.system_attrs(local_id)["completed_rung_0"] == 0.5


def test_local_numbers_match_stored_numbers_and_waiting_trials_are_not_popped() -> None:
    waiting = create_trial(
        state=TrialState.WAITING, params={"x": 0.1}, distributions={"x": FloatDistribution(0, 1)}
    )
    waiting.number = 3
    local = LocalStudy(
        "s", "maximize", optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()
    )
    local.refresh([*_completed(3, [1.0]), waiting])
    assert local.storage.get_trial(local.local_id(3)).state == TrialState.RUNNING
    local_id, _, _ = local.sample({"x": FloatDistribution(0, 1)})
    assert local.storage.get_trial(local_id).number == 4
