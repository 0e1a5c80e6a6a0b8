"""Each assumption hpstudy.store._optuna makes about Optuna's private pieces, checked against
the installed Optuna. A failure here means the installed Optuna broke one; fix the door
(hpstudy/store/_optuna.py), not the callers."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hpstudy import DependencyError
from hpstudy.store import TrialReader, TrialWriter, open_storage
from hpstudy.store import _optuna as o
from hpstudy.store._optuna import check_versions, version_problem

DISTS = {"lr": FloatDistribution(1e-4, 1.0, log=True), "n_units": IntDistribution(8, 64)}


def test_installed_versions_are_in_the_tested_range() -> None:
    check_versions()


@pytest.mark.parametrize(
    "package, found, ok",
    [
        ("optuna", "5.0.0", True),
        ("optuna", "5.0.3", True),
        ("optuna", "5.1.0", False),
        ("optuna", "4.5.0", False),
        ("torch", "2.13.0+cpu", True),
        ("torch", "2.14.0", False),
    ],
)
def test_version_guard_names_the_tested_versions_and_the_install_command(
    package: str, found: str, ok: bool
) -> None:
    problem = version_problem(package, found)
    if ok:
        assert problem is None
    else:
        assert problem is not None and "\n" not in problem
        assert f"found {package} {found}" in problem and "pip install" in problem
        with pytest.raises(DependencyError):
            raise DependencyError(problem)


def test_rows_written_through_the_rdb_models_are_what_optunas_public_api_reads(
    tmp_path: Path,
) -> None:
    """The tables and columns the writer uses, and the value encodings, are Optuna's own."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    storage = open_storage(url)
    assert isinstance(o.rdb_backend(storage), optuna.storages.RDBStorage)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    writer = TrialWriter(storage)
    writer.set_study_user_attrs(study_id, {"budget": {"n_trials": 3}, "seed": 0})
    added = writer.add_trial(study_id, TrialState.RUNNING, {}, {}, budget=3)
    assert added is not None
    trial_id, number = added
    writer.set_params(trial_id, {"lr": 0.01, "n_units": 16}, DISTS, {"sampler:key": [1, 2]})
    writer.write_intermediate(trial_id, {1: 0.5, 2: float("inf")})
    assert writer.finish(
        trial_id, TrialState.COMPLETE, -math.inf, intermediate={3: float("nan")},
        user_attrs={"epochs": 3}, system_attrs={"completed_rung_0": 0.5},
    )  # fmt: skip
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs == {"budget": {"n_trials": 3}, "seed": 0}
    (t,) = study.get_trials()
    assert (t.number, t.state, t.value) == (number, TrialState.COMPLETE, -math.inf)
    assert t.params == {"lr": 0.01, "n_units": 16} and t.distributions == DISTS
    assert t.intermediate_values[1] == 0.5 and t.intermediate_values[2] == math.inf
    assert math.isnan(t.intermediate_values[3])
    assert t.system_attrs == {"sampler:key": [1, 2], "completed_rung_0": 0.5}
    assert t.user_attrs["epochs"] == 3
    assert t.datetime_start is not None and t.datetime_complete is not None
    assert o.trial_id(t) == trial_id
    assert o.study_id(study) == study_id
    # ...and the reader builds the very same FrozenTrial as Optuna's ORM loader
    (mine,) = TrialReader(storage).fetch(study_id, None)
    assert (mine.params, mine.values, mine.user_attrs, mine.system_attrs) == (
        t.params, t.values, t.user_attrs, t.system_attrs,
    )  # fmt: skip
    assert mine.datetime_start == t.datetime_start


def test_the_trial_cache_cleared_is_the_one_tpe_reads() -> None:
    """TPE reads past trials through Study._get_trials(use_cache=True); a trial added behind
    the study's back is invisible to it until clear_trial_cache."""
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.5})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    seen = study._get_trials(deepcopy=False, use_cache=True)  # fills the cache, as TPE does
    assert len(seen) == 1
    template = optuna.trial.create_trial(
        params={"x": 0.1}, distributions={"x": FloatDistribution(0, 1)}, value=0.1
    )
    study._storage.create_new_trial(study._study_id, template_trial=template)
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 1  # stale: the cache
    o.clear_trial_cache(study)
    assert len(study._get_trials(deepcopy=False, use_cache=True)) == 2
    # TPESampler's own reads go through that cache
    sampler = optuna.samplers.TPESampler(seed=0)
    calls = []
    original = optuna.Study._get_trials

    def spy(self: optuna.Study, *args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("use_cache"))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    optuna.Study._get_trials = spy  # type: ignore[method-assign]
    try:
        sampler.infer_relative_search_space(study, study.trials[0])
        sampler.sample_relative(study, study.trials[0], {"x": FloatDistribution(0, 1)})
    finally:
        optuna.Study._get_trials = original  # type: ignore[method-assign]
    assert True in calls


def test_hpstudy_grid_ids_are_gridsamplers_own() -> None:
    """grid_order(sampler)[grid_id] is the point GridSampler itself runs as that grid_id."""
    space = {"a": [1, 2, 3], "b": [0.1, 0.2]}
    sampler = optuna.samplers.GridSampler(space, seed=7)
    order = o.grid_order(optuna.samplers.GridSampler(space, seed=7))
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_int("a", 1, 3) + t.suggest_float("b", 0.1, 0.2), n_trials=6)
    for t in study.trials:
        assert order[t.system_attrs["grid_id"]] == t.params


def _qmc_point(sampler: optuna.samplers.BaseSampler, number: int) -> dict[str, float]:
    """What ``sampler`` proposes for trial ``number`` of a local copy holding one finished
    trial (so QMC has its search space), as each worker's copy would."""
    study = optuna.create_study(sampler=sampler)
    dist = FloatDistribution(0, 1)
    first = optuna.trial.create_trial(params={"x": 0.5}, distributions={"x": dist}, value=0.0)
    study.add_trial(first)
    for _ in range(1, number):  # others' running trials fill the numbers in between
        study._storage.create_new_trial(study._study_id)
    trial = study.ask()
    assert trial.number == number
    return {"x": trial.suggest_float("x", 0, 1)}


def test_numbered_qmc_sampler_indexes_the_sequence_by_trial_number() -> None:
    """Two workers' copies of the same history: Optuna's QMCSampler counts samples per copy
    (both draw the same point); the override's index is the trial number (distinct points,
    the same point for the same number). A renamed _find_sample_id fails here."""
    plain = [_qmc_point(optuna.samplers.QMCSampler(seed=3, scramble=True), n) for n in (3, 4)]
    assert plain[0] == plain[1]  # the failure mode the override exists for
    ours = [_qmc_point(o.NumberedQMCSampler(seed=3, scramble=True), n) for n in (3, 4, 3)]
    assert ours[0] != ours[1] and ours[0] == ours[2]


def test_schema_head_is_optunas(tmp_path: Path) -> None:
    """The revision that lets an open skip alembic is the installed Optuna's schema head."""
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'h.db'}")
    assert rdb.get_head_version() == o.SCHEMA_HEAD


def test_open_without_alembic_stamps_new_and_refuses_old_schemas(tmp_path: Path) -> None:
    """A new database is stamped as Optuna stamps it; one at another revision still gets
    Optuna's own check and its upgrade message; the version manager is Optuna's again after."""
    import sqlite3

    from optuna.storages._rdb import storage as rdb_storage

    from hpstudy import StorageError

    original = rdb_storage._VersionManager
    path = tmp_path / "s.db"
    open_storage(f"sqlite:///{path}").create_new_study([optuna.study.StudyDirection.MINIMIZE])
    assert rdb_storage._VersionManager is original
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (o.SCHEMA_HEAD,)
        ]
        conn.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")
    with pytest.raises(StorageError, match="optuna storage upgrade"):
        open_storage(f"sqlite:///{path}")
    assert rdb_storage._VersionManager is original
