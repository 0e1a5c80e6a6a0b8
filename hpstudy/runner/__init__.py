"""Runner: create studies in storage, run their trials, list what the storage holds."""

from __future__ import annotations

from hpstudy.runner._create import apply_overrides, create_experiment, create_studies
from hpstudy.runner._delete import DeletePlan, TrialsRunningError, delete_experiment, plan_delete
from hpstudy.runner._listing import StudyRow, list_studies
from hpstudy.runner._parallel import run_with_jobs
from hpstudy.runner._progress import Progress, RichProgress
from hpstudy.runner._resume import DriftError, resume_experiment
from hpstudy.runner._run import DataCache, StudyResult, run_studies, run_study
from hpstudy.runner._status import StudyStatus, experiment_status
from hpstudy.store import (
    DEFAULT_STORAGE,
    StudyCounts,
    StudyInfo,
    TrialReader,
    TrialWriter,
    open_storage,
    resolve_storage_url,
)

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
