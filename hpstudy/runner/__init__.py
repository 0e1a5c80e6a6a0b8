"""Runner: create studies in storage, run their trials, list what the storage holds.

What trains (create, resume, the worker loop) is imported on first use (PEP 562): it needs
torch, and ``list``, ``status`` and ``delete`` import this package without training anything
(``tests/test_imports.py`` checks that they never import torch or scikit-learn).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hpstudy.runner._delete import DeletePlan, TrialsRunningError, delete_experiment, plan_delete
from hpstudy.runner._listing import StudyRow, list_studies
from hpstudy.runner._progress import Progress, RichProgress
from hpstudy.runner._status import StudyStatus, experiment_status
from hpstudy.store import (
    DEFAULT_STORAGE,
    StudyCounts,
    StudyInfo,
    TrialReader,
    open_storage,
    resolve_storage_url,
)

if TYPE_CHECKING:
    from hpstudy.runner._create import apply_overrides, create_experiment, create_studies
    from hpstudy.runner._parallel import run_with_jobs
    from hpstudy.runner._resume import DriftError, resume_experiment
    from hpstudy.runner._run import DataCache, StudyResult, run_studies, run_study
    from hpstudy.store import TrialWriter

_LAZY = {
    "apply_overrides": "_create",
    "create_experiment": "_create",
    "create_studies": "_create",
    "run_with_jobs": "_parallel",
    "DriftError": "_resume",
    "resume_experiment": "_resume",
    "DataCache": "_run",
    "StudyResult": "_run",
    "run_studies": "_run",
    "run_study": "_run",
    "TrialWriter": "hpstudy.store",  # the writer's statements: not for commands that only read
}

__all__ = [
    "DEFAULT_STORAGE",
    "DataCache",
    "DeletePlan",
    "DriftError",
    "Progress",
    "RichProgress",
    "StudyCounts",
    "StudyInfo",
    "StudyResult",
    "StudyRow",
    "StudyStatus",
    "TrialReader",
    "TrialsRunningError",
    "TrialWriter",
    "apply_overrides",
    "create_experiment",
    "create_studies",
    "delete_experiment",
    "experiment_status",
    "list_studies",
    "open_storage",
    "plan_delete",
    "resolve_storage_url",
    "resume_experiment",
    "run_with_jobs",
    "run_studies",
    "run_study",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = _LAZY[name]
        if module.startswith("_"):
            module = f"hpstudy.runner.{module}"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'hpstudy.runner' has no attribute {name!r}")
