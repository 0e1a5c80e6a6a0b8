"""hpstudy: hyperparameter studies for PyTorch MLPs on tabular data, built on Optuna.

The public Python API. Names are imported on first use, so ``import hpstudy`` (and
``hpstudy --help``) stays instant: torch and optuna load only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hpstudy._errors import (
    ConfigError,
    DatabaseError,
    DependencyError,
    HpStudyError,
    Interrupted,
    StorageError,
    UsageError,
)
from hpstudy._version import __version__

if TYPE_CHECKING:
    from hpstudy.config import ExperimentConfig, load_config, parse_config
    from hpstudy.report import best_configurations, export_experiment, write_report
    from hpstudy.runner import (
        Progress,
        RichProgress,
        create_experiment,
        experiment_status,
        list_studies,
        open_storage,
        resume_experiment,
    )
    from hpstudy.saved_model import load_model, train_best

_LAZY = {
    "ExperimentConfig": "hpstudy.config",
    "load_config": "hpstudy.config",
    "parse_config": "hpstudy.config",
    "Progress": "hpstudy.runner",
    "RichProgress": "hpstudy.runner",
    "create_experiment": "hpstudy.runner",
    "load_model": "hpstudy.saved_model",
    "train_best": "hpstudy.saved_model",
    "write_report": "hpstudy.report",
    "export_experiment": "hpstudy.report",
    "best_configurations": "hpstudy.report",
    "experiment_status": "hpstudy.runner",
    "resume_experiment": "hpstudy.runner",
    "list_studies": "hpstudy.runner",
    "open_storage": "hpstudy.runner",
}

__all__ = [
    "ConfigError",
    "DatabaseError",
    "DependencyError",
    "ExperimentConfig",
    "HpStudyError",
    "Interrupted",
    "Progress",
    "RichProgress",
    "StorageError",
    "UsageError",
    "__version__",
    "best_configurations",
    "create_experiment",
    "export_experiment",
    "experiment_status",
    "list_studies",
    "load_config",
    "load_model",
    "open_storage",
    "parse_config",
    "resume_experiment",
    "train_best",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hpstudy' has no attribute {name!r}")
