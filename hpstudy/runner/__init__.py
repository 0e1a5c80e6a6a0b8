"""Runner: create studies in storage, run their trials, list what the storage holds."""

from __future__ import annotations

from hpstudy.runner._create import apply_overrides, create_experiment, create_studies, run_studies
from hpstudy.runner._listing import StudyRow, list_studies
from hpstudy.runner._parallel import run_with_jobs
from hpstudy.runner._progress import Progress, RichProgress
from hpstudy.runner._resume import DriftError, resume_experiment
from hpstudy.runner._run import DataCache, StudyResult, run_study
from hpstudy.runner._status import StudyStatus, experiment_status
from hpstudy.runner._storage import DEFAULT_STORAGE, TrialReader, open_storage, resolve_storage_url
from hpstudy.runner._studies import StudyCounts, StudyInfo
from hpstudy.runner._writer import TrialWriter

__all__ = [
    "DEFAULT_STORAGE",
    "DataCache",
    "DriftError",
    "Progress",
    "RichProgress",
    "StudyCounts",
    "StudyInfo",
    "StudyResult",
    "StudyRow",
    "StudyStatus",
    "TrialReader",
    "TrialWriter",
    "apply_overrides",
    "create_experiment",
    "create_studies",
    "experiment_status",
    "list_studies",
    "open_storage",
    "resolve_storage_url",
    "resume_experiment",
    "run_with_jobs",
    "run_studies",
    "run_study",
]
