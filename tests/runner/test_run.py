from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hpstudy import StorageError, UsageError
from hpstudy.config import parse_config
from hpstudy.runner import create_experiment, list_studies, open_storage
from hpstudy.strategies import grid_points
from tests.conftest import tiny_study_text


def _studies(url: str) -> dict[str, optuna.Study]:
    names = [s.study_name for s in optuna.get_all_study_summaries(url)]
    return {n: optuna.load_study(study_name=n, storage=url) for n in names}


@pytest.mark.slow
def test_create_runs_every_study_to_its_budget(storage_url: str) -> None:
    config = parse_config(tiny_study_text(n_trials=4))
    infos, results = create_experiment(config, storage_url)
    assert len(infos) == 2 * 4 and len(results) == 8
    studies = _studies(storage_url)
    assert sorted(studies) == sorted(
        f"tiny.{t}.{s}.s0"
        for t in ("iris", "diabetes")
        for s in ("manual", "grid", "random", "tpe")
    )
    for name, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        expected = {"manual": 2, "grid": 4, "random": 4, "tpe": 4}[name.split(".")[2]]
        assert len(trials) == expected, name
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        for t in trials:
            assert t.user_attrs["epochs"] == len(t.intermediate_values) >= 1
            assert t.user_attrs["seconds"] > 0 and t.user_attrs["n_params"] > 0
            assert set(t.params) == {"n_layers", "n_units", "lr"}
        attrs = study.user_attrs
        assert attrs["experiment"] == "tiny" and attrs["seed"] == 0
        assert attrs["direction"] == ("maximize" if ".iris." in name else "minimize")
        assert attrs["metric"] == ("accuracy" if ".iris." in name else "rmse")
        assert attrs["study_file"] == config.text and len(attrs["fingerprint"]) == 16
    # manual configurations ran in the file's order; the grid visited each point once
    manual = studies["tiny.iris.manual.s0"].get_trials()
    assert [t.params for t in manual] == list(config.manual)
    grid = studies["tiny.iris.grid.s0"].get_trials()
    assert sorted(t.system_attrs["grid_id"] for t in grid) == [0, 1, 2, 3]
    assert sorted(map(str, (t.params for t in grid))) == sorted(
        map(str, (p for _, p in grid_points(config, 0)))
    )


def test_grid_budget_takes_the_first_points_in_seed_order(storage_url: str) -> None:
    config = parse_config(tiny_study_text(strategies=("grid",), n_trials=2))
    create_experiment(config, storage_url)
    study = optuna.load_study(study_name="tiny.iris.grid.s0", storage=storage_url)
    assert [t.params for t in study.trials] == [p for _, p in grid_points(config, 0)[:2]]


def test_diverging_trial_is_recorded_as_fail_and_the_study_goes_on(storage_url: str) -> None:
    text = tiny_study_text(strategies=("manual",)).replace("high = 1e-1", "high = 10.0")
    text = text.replace("lr = 0.01", "lr = 10.0").replace(
        "batch_size = 32", 'batch_size = 32\noptimizer = "sgd"'
    )
    _, results = create_experiment(parse_config(text), storage_url)
    diabetes = optuna.load_study(study_name="tiny.diabetes.manual.s0", storage=storage_url).trials
    assert diabetes[0].state == TrialState.FAIL
    assert diabetes[0].user_attrs["fail_reason"].startswith("diverged: training loss is nan")
    assert diabetes[1].state in (TrialState.COMPLETE, TrialState.PRUNED)
    counts = {r.name: r.counts for r in results}["tiny.diabetes.manual.s0"]
    assert counts.failed == 1 and counts.finished == 2  # a diverged configuration is a result


def test_existing_experiment_is_refused_and_storage_untouched(storage_url: str) -> None:
    config = parse_config(tiny_study_text(strategies=("random",), n_trials=1))
    create_experiment(config, storage_url, run=False)
    before = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage_url)}
    with pytest.raises(UsageError, match="experiment 'tiny' already has 2 of its 2 studies"):
        create_experiment(config, storage_url)
    after = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage_url)}
    assert before == after


def test_pruner_prunes_poor_trials_end_to_end(storage_url: str) -> None:
    # lr spans 1e-6..1e-1: the slow learners fall below the median after the warm-up.
    text = tiny_study_text(strategies=("random",), n_trials=16).replace("low = 1e-3", "low = 1e-6")
    text = text.replace("max_epochs = 3", "max_epochs = 6").replace(
        'type = "median"', 'type = "median"\nn_startup_trials = 3\nn_warmup_steps = 2'
    )
    _, results = create_experiment(parse_config(text), storage_url)
    assert sum(r.counts.pruned for r in results) > 0
    for r in results:
        assert r.counts.finished == 16
    pruned = [
        t
        for t in optuna.load_study(study_name="tiny.iris.random.s0", storage=storage_url).trials
        if t.state == TrialState.PRUNED
    ]
    for t in pruned:
        assert t.user_attrs["epochs"] == len(t.intermediate_values) < 6
        assert t.value == t.intermediate_values[max(t.intermediate_values)]


def test_list_counts_trials(storage_url: str) -> None:
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=2)), storage_url
    )
    rows, others = list_studies(storage_url)
    assert others == 0
    assert [(r.info.name, r.counts.finished, r.info.budget) for r in rows] == [
        ("tiny.diabetes.random.s0", 2, 2),
        ("tiny.iris.random.s0", 2, 2),
    ]


def test_reading_a_missing_storage_does_not_create_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(StorageError, match="does not exist"):
        list_studies(url)
    assert not (tmp_path / "none.db").exists()


def test_unreachable_storage_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot open storage postgresql://"):
        open_storage("postgresql://nobody@127.0.0.1:1/none")


class PerTrialSampler(optuna.samplers.BaseSampler):
    """Optuna's own sampler of a strategy, made afresh for each trial with hpstudy's seed for
    that trial number: the reference for what hpstudy's workers propose."""

    def __init__(self, strategy: str, config: Any) -> None:
        self.strategy, self.config = strategy, config
        self.current: optuna.samplers.BaseSampler | None = None

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        from hpstudy.strategies import make_sampler

        self.current = make_sampler(self.strategy, self.config, 0, trial.number)
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> Any:
        assert self.current is not None
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: Any) -> Any:
        assert self.current is not None
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: Any, name: str, dist: Any) -> Any:
        assert self.current is not None
        return self.current.sample_independent(study, trial, name, dist)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        assert self.current is not None
        self.current.after_trial(study, trial, state, values)


@pytest.mark.parametrize("strategy", ["random", "tpe", "qmc"])
def test_local_sampling_and_pruning_make_the_same_decisions_as_optuna(
    storage_url: str, strategy: str
) -> None:
    """hpstudy samples and prunes on a local copy; Optuna's own optimize() with
    report/should_prune per epoch must reach the very same trials, states and epochs."""
    from hpstudy.data import prepare_task
    from hpstudy.training import train

    n_trials = 14  # TPE: 10 random start-up trials, then 4 TPE proposals
    text = tiny_study_text(strategies=(strategy,), n_trials=n_trials).replace(
        "max_epochs = 3", "max_epochs = 6"
    )
    text = text.replace("low = 1e-3", "low = 1e-5").replace(
        'type = "median"', 'type = "median"\nn_startup_trials = 3\nn_warmup_steps = 2'
    )
    config = parse_config(text)
    create_experiment(config, storage_url, run=True)
    ours = optuna.load_study(study_name=f"tiny.iris.{strategy}.s0", storage=storage_url).trials

    data = prepare_task(config.tasks[0], 0)
    assert data.select == "cross_entropy"  # iris selects (and prunes) on cross-entropy
    study = optuna.create_study(
        storage=storage_url, study_name="reference", direction="minimize",
        sampler=PerTrialSampler(strategy, config),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    )  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        params = {
            **config.fixed_params(),
            "n_layers": trial.suggest_int("n_layers", 1, 2),
            "n_units": trial.suggest_int("n_units", 8, 32, log=True),
            "lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
        }

        def on_epoch(epoch: int, value: float) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        result = train(params, data, seed=0, max_epochs=6, on_epoch=on_epoch)
        if result.pruned:
            raise optuna.TrialPruned()
        return result.score

    study.optimize(objective, n_trials=n_trials)
    reference = study.trials
    assert any(t.state == TrialState.PRUNED for t in reference)
    assert [(t.params, t.state, t.intermediate_values) for t in ours] == [
        (t.params, t.state, t.intermediate_values) for t in reference
    ]


def test_csv_task_with_categorical_columns_and_cross_validation(
    tmp_path: Path, storage_url: str
) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["area,district,rooms,price"]
    for i in range(80):
        area = rng.uniform(30, 150)
        district = ["north", "south", ""][i % 3]  # one missing in three
        lines.append(
            f"{area:.1f},{district},{'' if i % 9 == 0 else i % 5 + 1},{area * 3 + rng.normal() * 5:.2f}"
        )
    (tmp_path / "houses.csv").write_text("\n".join(lines) + "\n")
    text = tiny_study_text(strategies=("random",), n_trials=2)
    text = text.replace(
        'name = "iris"\ndataset = "iris"',
        'name = "houses"\ncsv = "houses.csv"\ntarget = "price"\ncv_folds = 3',
    )
    study_file = tmp_path / "s.toml"
    study_file.write_text(text)
    from hpstudy.config import load_config

    _, results = create_experiment(load_config(study_file), storage_url)
    study = optuna.load_study(study_name="tiny.houses.random.s0", storage=storage_url)
    assert study.user_attrs["kind"] == "regression" and study.user_attrs["metric"] == "rmse"
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    for t in study.trials:
        assert t.user_attrs["epochs"] == 3 * len(t.intermediate_values)  # 3 folds trained
    assert {r.name: r.counts.finished for r in results}["tiny.houses.random.s0"] == 2


def test_timeout_stops_starting_new_trials(storage_url: str) -> None:
    text = tiny_study_text(strategies=("random",), n_trials=10_000).replace(
        "n_trials = 10000", "n_trials = 10000\ntimeout = 1.0"
    )
    _, results = create_experiment(parse_config(text), storage_url)
    for r in results:
        assert r.reason == "timeout"
        assert 0 < r.counts.finished < 10_000


def test_a_live_worker_fails_and_requeues_a_trial_without_heartbeat(storage_url: str) -> None:
    import sqlalchemy

    from hpstudy.runner import TrialReader, TrialWriter
    from hpstudy.runner._recover import recover_stale
    from hpstudy.strategies import distributions

    config = parse_config(tiny_study_text(strategies=("grid",), n_trials=4))
    infos, _ = create_experiment(config, storage_url, run=False)
    storage = open_storage(storage_url)
    study_id = infos[0].study_id
    writer, reader = TrialWriter(storage), TrialReader(storage)
    # Another machine's worker claimed grid point 0, then its heartbeats stopped 90 s ago.
    other = TrialWriter(storage)
    other.worker = "elsewhere:4242"
    waiting = [t for t in storage.get_all_trials(study_id) if t.state == TrialState.WAITING]
    assert other.claim(waiting[0]._trial_id)
    with writer.engine.begin() as conn:
        conn.execute(
            sqlalchemy.text(
                "UPDATE trial_heartbeats SET heartbeat = datetime('now', '-90 seconds')"
            )
        )
    assert (
        recover_stale(reader, writer, study_id, grace=300) == []
    )  # still within the grace period
    assert recover_stale(reader, writer, study_id, grace=60) == [4]
    trials = storage.get_all_trials(study_id)
    assert trials[0].state == TrialState.FAIL
    assert (
        trials[0]
        .user_attrs["fail_reason"]
        .startswith("stale: no heartbeat from worker elsewhere:4242")
    )
    assert trials[4].state == TrialState.WAITING and trials[4].params == trials[0].params
    assert (
        trials[4].user_attrs["retry_of"] == 0
        and trials[4].system_attrs["grid_id"] == trials[0].system_attrs["grid_id"]
    )
    assert set(distributions(config)) == set(trials[4].distributions)


def test_fast_fetch_builds_the_trials_optuna_builds(storage_url: str) -> None:
    from hpstudy.runner import TrialReader

    text = tiny_study_text(strategies=("manual", "grid"), n_trials=4).replace(
        "lr = 0.01", "lr = 0.099"
    )
    text = text.replace("high = 1e-1", "high = 10.0").replace("lr = 0.099", "lr = 10.0")
    text = text.replace(
        "batch_size = 32", 'batch_size = 32\noptimizer = "sgd"'
    )  # a FAIL trial too
    infos, _ = create_experiment(parse_config(text), storage_url)
    storage = open_storage(storage_url)
    for info in infos:
        expected = storage.get_all_trials(info.study_id)
        got = TrialReader(storage).fetch(info.study_id, {t._trial_id for t in expected})
        assert got == expected
        assert TrialReader(storage).fetch(info.study_id, None) == expected
        assert [t.datetime_start for t in got] == [t.datetime_start for t in expected]
    assert any(
        t.state == TrialState.FAIL for i in infos for t in storage.get_all_trials(i.study_id)
    )


def test_live_flush_of_running_epochs_writes_each_epoch_once(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpstudy.runner import _run

    monkeypatch.setattr(_run, "LIVE_FLUSH_SECONDS", 0.0)  # flush after every epoch
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=2)), storage_url
    )
    for name in ("tiny.iris.random.s0", "tiny.diabetes.random.s0"):
        for t in optuna.load_study(study_name=name, storage=storage_url).trials:
            assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs"] + 1))
