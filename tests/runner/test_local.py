from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpstudy.runner._local import LocalStudy
from hpstudy.store import TrialReader

DIST = {"x": FloatDistribution(0, 1)}


def _stored(direction: str, n_completed: int, values: list[float]) -> optuna.Study:
    """A stored study (in-memory storage here; SQLite in test_run.py) with completed trials."""
    study = optuna.create_study(direction=direction)
    for _ in range(n_completed):
        study.add_trial(
            create_trial(
                params={"x": 0.5}, distributions=DIST, value=values[-1],
                intermediate_values=dict(enumerate(values, start=1)),
            )
        )  # fmt: skip
    return study


def _new_trial(stored: optuna.Study, local: LocalStudy) -> int:
    """Store a RUNNING trial without parameters (as the runner does), sync, sample for it."""
    trial_id = stored._storage.create_new_trial(stored._study_id)  # RUNNING, no parameters
    number = stored._storage.get_trial(trial_id).number
    local.sync()
    local_id, params, _ = local.sample(number, DIST)
    assert 0 <= params["x"] <= 1 and local.storage.get_trial(local_id).number == number
    return local_id


def _local(stored: optuna.Study, pruner: optuna.pruners.BasePruner) -> LocalStudy:
    local = LocalStudy(
        TrialReader(stored._storage), stored._study_id, stored.study_name,
        "maximize" if stored.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize",
        optuna.samplers.RandomSampler(seed=0), pruner,
    )  # fmt: skip
    local.sync()
    return local


def test_median_pruner_prunes_a_poor_trial_without_storage() -> None:
    stored = _stored("maximize", 3, [0.5, 0.7, 0.8, 0.9])
    local = _local(stored, optuna.pruners.MedianPruner(2, 1))
    local_id = _new_trial(stored, local)
    assert not local.should_prune(local_id, 1, 0.6)  # warm-up step
    assert local.should_prune(local_id, 2, 0.1)  # far below the median 0.7 at step 2
    assert stored.trials[-1].intermediate_values == {}  # nothing was written to the stored study


def test_good_trial_is_not_pruned() -> None:
    stored = _stored("minimize", 3, [5.0, 4.0, 3.0])
    local = _local(stored, optuna.pruners.MedianPruner(2, 0))
    local_id = _new_trial(stored, local)
    assert not local.should_prune(local_id, 1, 1.0)
    assert not local.should_prune(local_id, 2, 1.0)


def test_successive_halving_rung_attrs_are_collected_for_storage() -> None:
    stored = _stored("maximize", 0, [1.0])
    local = _local(stored, optuna.pruners.SuccessiveHalvingPruner(1, 2))
    local_id = _new_trial(stored, local)
    local.should_prune(local_id, 1, 0.5)
    assert local.system_attrs(local_id)["completed_rung_0"] == 0.5


def test_waiting_trials_keep_their_numbers_and_are_never_popped_by_the_sampler() -> None:
    stored = _stored("maximize", 3, [1.0])
    stored.enqueue_trial({"x": 0.1})
    local = _local(stored, optuna.pruners.NopPruner())
    assert [n for _, n in local.waiting()] == [3]
    assert [t.state for t in local.stored_trials()][-1] == TrialState.WAITING
    local_id = _new_trial(stored, local)
    assert local.storage.get_trial(local.local_id(3)).state == TrialState.RUNNING
    assert local.storage.get_trial(local_id).number == 4


def test_trials_finished_by_another_worker_reach_the_copy() -> None:
    stored = _stored("maximize", 1, [1.0])
    running = stored.ask()  # another worker's trial, RUNNING
    running.suggest_float("x", 0, 1)
    local = _local(stored, optuna.pruners.NopPruner())
    assert local.storage.get_trial(local.local_id(1)).state == TrialState.RUNNING
    running.report(0.3, 1)
    stored.tell(running, 0.3)
    local.sync()
    finished = local.storage.get_trial(local.local_id(1))
    assert finished.state == TrialState.COMPLETE and finished.value == 0.3
    assert finished.intermediate_values == {1: 0.3}


def test_the_median_rule_decides_on_the_local_copy_as_optunas_pruner_does() -> None:
    """The runner's median/percentile rule keeps a running trial's epochs outside the copy
    and reads the completed trials only when one completed: on random histories (other
    workers' trials completing between syncs, this worker's trials completed or pruned) it
    decides every epoch as Optuna's pruner on a twin study, and each finished trial holds
    every epoch it reported."""
    import numpy as np

    from hpstudy.strategies._percentile import IncrementalPercentilePruner

    decisions = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        direction = "maximize" if seed % 2 else "minimize"
        twins = [_stored(direction, 0, [0.0]) for _ in range(2)]
        settings = {
            "n_startup_trials": int(rng.integers(0, 4)),
            "n_warmup_steps": int(rng.integers(0, 3)),
        }
        percentile = 50.0 if seed < 4 else float(rng.uniform(0, 100))
        pruners = [
            IncrementalPercentilePruner(percentile, **settings),
            optuna.pruners.PercentilePruner(percentile, **settings),
        ]
        locals_ = [_local(stored, p) for stored, p in zip(twins, pruners, strict=True)]
        elsewhere: list[list[int]] = []  # other workers' trials seen RUNNING, per twin
        for _ in range(25):
            values = {s: float(rng.integers(0, 10)) for s in range(1, int(rng.integers(2, 9)))}
            if rng.random() < 0.3:  # another worker's trial completed
                for stored in twins:
                    stored.add_trial(
                        create_trial(params={"x": 0.5}, distributions=DIST, value=0.0,
                                     intermediate_values=values)
                    )  # fmt: skip
            elif rng.random() < 0.3:  # another worker starts a trial (synced as RUNNING)
                elsewhere.append(
                    [stored._storage.create_new_trial(stored._study_id) for stored in twins]
                )
            elif elsewhere and rng.random() < 0.5:  # ... and completes it later
                for stored, trial_id in zip(twins, elsewhere.pop(0), strict=True):
                    stored._storage.set_trial_param(trial_id, "x", 0.5, DIST["x"])
                    for step, value in values.items():
                        stored._storage.set_trial_intermediate_value(trial_id, step, value)
                    stored._storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.0])
            ids = [_new_trial(stored, local) for stored, local in zip(twins, locals_, strict=True)]
            reported: dict[int, float] = {}
            for step in range(1, int(rng.integers(2, 9))):
                reported[step] = float(rng.integers(0, 10))
                ours, theirs = (
                    local.should_prune(i, step, reported[step])
                    for local, i in zip(locals_, ids, strict=True)
                )
                assert ours == theirs, (seed, step, reported)
                decisions.append(ours)
                if ours:
                    break
            state = TrialState.PRUNED if decisions[-1] else TrialState.COMPLETE
            for stored, local, i in zip(twins, locals_, ids, strict=True):
                local.finish(i, state, reported[max(reported)], {"epochs": len(reported)})
                assert local.storage.get_trial(i).intermediate_values == reported
                stored_id = stored.trials[-1]._trial_id  # as the writer stores the result
                for step, value in reported.items():
                    stored._storage.set_trial_intermediate_value(stored_id, step, value)
                stored._storage.set_trial_state_values(stored_id, state, [reported[max(reported)]])
    assert decisions.count(True) > 10 and decisions.count(False) > 10
