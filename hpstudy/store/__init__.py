"""Storage: opening Optuna storages, cheap reads, batched concurrency-safe writes, the study-attr
contract, experiment lookup and the stored study file.

Runner and report both depend on this package (never on each other for storage).
:mod:`hpstudy.store._optuna` is the only module in hpstudy that touches Optuna's private
pieces; ``tests/store/test_optuna_contract.py`` checks each of them against the installed
Optuna.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpstudy.store._experiments import experiment_studies, require_experiment, stored_config
from hpstudy.store._identity import worker_id
from hpstudy.store._optuna import check_versions
from hpstudy.store._storage import (
    DEFAULT_STORAGE,
    ENV_STORAGE,
    TrialReader,
    experiment_lock,
    open_storage,
    read_only_reason,
    resolve_storage_url,
)
from hpstudy.store._studies import (
    STUDY_ATTRS,
    UNCOUNTED_REASONS,
    StudyCounts,
    StudyInfo,
    best_value,
    counts_toward_budget,
    is_interrupted,
    study_attrs,
)

if TYPE_CHECKING:
    from hpstudy.store._writer import MAX_CRASHES, TrialWriter


def __getattr__(name: str) -> Any:
    # The writer (and its statements, built at import) on first use: commands that only read
    # never need it (see hpstudy/store/_rows.py).
    if name in ("MAX_CRASHES", "TrialWriter"):
        from hpstudy.store import _writer

        return getattr(_writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_STORAGE",
    "ENV_STORAGE",
    "MAX_CRASHES",
    "STUDY_ATTRS",
    "UNCOUNTED_REASONS",
    "StudyCounts",
    "StudyInfo",
    "TrialReader",
    "TrialWriter",
    "best_value",
    "check_versions",
    "counts_toward_budget",
    "experiment_lock",
    "experiment_studies",
    "is_interrupted",
    "open_storage",
    "read_only_reason",
    "require_experiment",
    "resolve_storage_url",
    "stored_config",
    "study_attrs",
    "worker_id",
]
