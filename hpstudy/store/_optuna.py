"""The one door to Optuna's private pieces. Nothing else in hpstudy touches them.

Each assumption made here is checked against the installed Optuna by
``tests/store/test_optuna_contract.py``; :func:`check_versions` refuses an Optuna (or torch)
outside the tested range before anything runs, with a one-line error that names the tested
versions and how to install them.

What hpstudy relies on, and why:

- The RDB schema (``optuna.storages._rdb.models``): trials are claimed, finished and queued
  with a few batched SQLAlchemy Core statements on Optuna's own tables (Optuna's public API
  costs two queries per parameter and cannot claim a trial and check a budget atomically).
- ``_CachedStorage._backend``: the RDB storage behind ``get_storage(RDBStorage)``.
- ``Study._thread_local.cached_all_trials``: the trial cache samplers (TPE) read; dropped
  before a trial the local copy did not create through ``Study.ask``.
- ``GridSampler._param_names`` / ``_all_grids``: the grid in GridSampler's own order, so the
  ``grid_id`` hpstudy queues is the one GridSampler's bookkeeping uses.
- ``QMCSampler._find_sample_id``: replaced so the sample index is the stored trial number
  (Optuna counts it in a study system attr, which each worker's local copy holds separately:
  two workers would draw the same point).
- ``FrozenTrial._trial_id`` and ``Study._study_id``: read only.
- ``RDBStorage.scoped_session`` and ``models.StudyModel``: several studies are deleted in one
  transaction (Optuna's ``delete_study`` commits one study at a time); study ids and names
  are listed without their attrs when one attr is not valid JSON (``study_rows``).
- ``optuna.storages._rdb.storage._VersionManager``: while :func:`make_rdb` constructs an
  ``RDBStorage``, a subclass stands in that skips alembic when the database is already
  stamped with Optuna's schema head (:data:`SCHEMA_HEAD`): importing alembic to learn the
  head cost ~0.2 s of CPU on every open, about a fifth of ``hpstudy status``. Any other
  database (new, older, newer) goes through Optuna's own code and messages.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial

from hpstudy._errors import DependencyError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study._frozen import FrozenStudy  # not exported by optuna 5

# The range this module's assumptions (and _backprop's aten kernels) hold for: checked with
# optuna 5.0.0 and torch 2.13.0 (constraints.txt pins them); patch releases are accepted, and
# tests/store/test_optuna_contract.py re-checks every assumption on what is installed.
TESTED = {"optuna": ("5.0.0", "5.0.999"), "torch": ("2.13.0", "2.13.999")}
INSTALL = "pip install -c constraints.txt -e .  (optuna==5.0.0, torch==2.13.0)"

TRIALS = models.TrialModel.__table__
STUDIES = models.StudyModel.__table__
STUDY_USER_ATTRS = models.StudyUserAttributeModel.__table__
USER_ATTRS = models.TrialUserAttributeModel.__table__
SYSTEM_ATTRS = models.TrialSystemAttributeModel.__table__
HEARTBEATS = models.TrialHeartbeatModel.__table__
PARAMS = models.TrialParamModel.__table__
VALUES = models.TrialValueModel.__table__
STEPS = models.TrialIntermediateValueModel.__table__
value_to_stored = models.TrialValueModel.value_to_stored_repr
stored_to_value = models.TrialValueModel.stored_repr_to_value
step_to_stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
stored_to_step = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def version_problem(package: str, found: str) -> str | None:
    """Why ``found`` (a version of ``package``) is outside the tested range, or ``None``."""
    low, high = TESTED[package]
    if _release(low) <= _release(found)[:3] <= _release(high):
        return None
    span = low if low == high else f"{low.rsplit('.', 1)[0]}.x"
    return (
        f"hpstudy is tested with {package} {span}, found {package} {found}; "
        f"install the tested versions: {INSTALL}"
    )


def check_versions() -> None:
    """Refuse an Optuna or torch outside the tested range (one line, with the fix).

    Raises:
        DependencyError: A version outside :data:`TESTED`.
    """
    for package in TESTED:
        try:
            found = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        problem = version_problem(package, found)
        if problem is not None:
            raise DependencyError(problem)


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDB storage behind ``storage`` (Optuna wraps it in a cache), or ``None``."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


# The alembic revision of Optuna 5.0's RDB schema (``RDBStorage.get_head_version()``; the
# contract test checks it against the installed Optuna's).
SCHEMA_HEAD = "v3.2.0.a"


def _stamped_revision(engine: Any) -> str | None:
    """The revision in the ``alembic_version`` table, or None (no such table or row)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def _quick_version_manager() -> type:
    from optuna.storages._rdb import storage as rdb_storage

    class QuickVersionManager(rdb_storage._VersionManager):
        """Optuna's version manager, without alembic for a database at :data:`SCHEMA_HEAD`."""

        def _init_alembic(self) -> None:
            self._revision = _stamped_revision(self.engine)
            if self._revision is None:  # a new database: Optuna stamps it
                super()._init_alembic()

        def check_table_schema_compatibility(self) -> None:
            if self._revision == SCHEMA_HEAD:
                return
            super().check_table_schema_compatibility()

    return QuickVersionManager


def create_schema(conn: Any) -> None:
    """Create Optuna's tables, its version row and the alembic stamp at :data:`SCHEMA_HEAD`
    on ``conn`` (one connection, inside the caller's transaction), as ``RDBStorage`` would on
    a new database; what exists already is left as it is. Optuna's own creation opens a second
    connection while holding the first, which deadlocks behind a small transaction pool."""
    from optuna.storages._rdb import models
    from optuna.version import __version__ as optuna_version
    from sqlalchemy import insert, select, text

    models.BaseModel.metadata.create_all(conn, checkfirst=True)
    version = models.VersionInfoModel.__table__
    if conn.execute(select(version.c.version_info_id)).first() is None:
        conn.execute(
            insert(version).values(
                version_info_id=1, schema_version=models.SCHEMA_VERSION,
                library_version=optuna_version,
            )
        )  # fmt: skip
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
    )
    if conn.execute(text("SELECT version_num FROM alembic_version")).first() is None:
        conn.execute(
            text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": SCHEMA_HEAD}
        )


def make_rdb(url: str, engine_kwargs: dict[str, Any]) -> tuple[RDBStorage, bool]:
    """``RDBStorage(url, engine_kwargs=...)``, opened without importing alembic when the
    database is already at Optuna's schema head (see the module docstring), and without
    Optuna's compatibility check, which holds one connection while it opens another (two slots
    per process just to open; behind a small transaction pool, workers starting together
    could wait on each other). Returns the storage and whether its schema is at the head; the
    caller checks any other schema one connection at a time."""
    from optuna.storages._rdb import storage as rdb_storage

    original = rdb_storage._VersionManager
    rdb_storage._VersionManager = _quick_version_manager()  # type: ignore[misc,assignment]
    try:
        rdb = RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=True)
    finally:
        rdb_storage._VersionManager = original  # type: ignore[misc]
    return rdb, _stamped_revision(rdb.engine) == SCHEMA_HEAD


def wrap_rdb(rdb: RDBStorage) -> BaseStorage:
    """``rdb`` as Optuna's own code uses it (wrapped in its trial cache)."""
    return optuna.storages.get_storage(rdb)


def trial_id(trial: FrozenTrial) -> int:
    """The storage id of a trial (Optuna keeps it private)."""
    return int(trial._trial_id)


def study_id(study: optuna.Study | FrozenStudy) -> int:
    """The storage id of a study."""
    return int(study._study_id)


def study_rows(storage: BaseStorage) -> list[tuple[int, str]]:
    """(id, name) of every study, reading no attr (so one that is not valid JSON cannot
    fail the listing)."""
    rdb = rdb_backend(storage)
    if rdb is None:
        return [(study_id(s), s.study_name) for s in storage.get_all_studies()]
    from sqlalchemy import select

    session = rdb.scoped_session()
    try:
        rows = session.execute(
            select(STUDIES.c.study_id, STUDIES.c.study_name).order_by(STUDIES.c.study_id)
        ).all()
    finally:
        session.close()
    return [(int(i), str(n)) for i, n in rows]


def delete_studies(storage: BaseStorage, study_ids: list[int], *, force: bool) -> list[int]:
    """Delete ``study_ids`` with their trials, all or none.

    On RDB storages one transaction: it starts with a write on the studies' rows (so SQLite
    takes its write lock up front and PostgreSQL locks the rows a worker's claim locks), then,
    unless ``force``, refuses when any of their trials is RUNNING, then deletes through
    Optuna's ORM cascades. Other storages: Optuna's ``delete_study`` per study (a re-run
    deletes what is left).

    Returns:
        The ids of the RUNNING trials that stopped the deletion (empty when it was done).
    """
    from optuna.trial import TrialState
    from sqlalchemy import select, update

    rdb = rdb_backend(storage)
    if rdb is None:
        running = [
            trial_id(t)
            for s in study_ids
            for t in storage.get_all_trials(s, deepcopy=False, states=(TrialState.RUNNING,))
        ]
        if running and not force:
            return running
        for s in study_ids:
            storage.delete_study(s)
        return []
    session = rdb.scoped_session()
    try:
        session.execute(
            update(STUDIES)
            .where(STUDIES.c.study_id.in_(study_ids))
            .values(study_name=STUDIES.c.study_name)
        )
        running = list(
            session.execute(
                select(TRIALS.c.trial_id).where(
                    TRIALS.c.study_id.in_(study_ids), TRIALS.c.state == TrialState.RUNNING
                )
            ).scalars()
        )
        if running and not force:
            session.rollback()
            return running
        for s in study_ids:
            study = session.get(models.StudyModel, s)
            if study is not None:
                session.delete(study)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return []


def clear_trial_cache(study: optuna.Study) -> None:
    """Drop the trial cache samplers read, as ``Study.ask`` does before a new trial."""
    study._thread_local.cached_all_trials = None


def grid_order(sampler: optuna.samplers.GridSampler) -> list[dict[str, Any]]:
    """GridSampler's grid, index = its ``grid_id``, as parameter dicts."""
    names = sampler._param_names
    return [dict(zip(names, point, strict=True)) for point in sampler._all_grids]


class NumberedQMCSampler(optuna.samplers.QMCSampler):
    """QMCSampler whose sample index is claimed in storage: ``sample_index`` when set (the
    runner sets the trial's claimed sample index), else the trial's stored number.

    Optuna's counter lives in study system attrs; on a per-worker local copy every worker
    would start at 0 and draw the same points. The index is claimed in storage, so distinct
    trials get distinct points of one scrambled sequence, whichever worker runs them.
    """

    _number = 0
    sample_index: int | None = None

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        self._number = trial.number
        return super().sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        self._number = trial.number
        return super().sample_relative(study, trial, search_space)

    def _find_sample_id(self, study: optuna.Study, search_space: dict[str, Any]) -> int:
        return self._number if self.sample_index is None else self.sample_index
