"""Study files: load, validate, and the vocabulary of allowed values."""

from __future__ import annotations

from hpstudy.config._load import load_config, parse_config
from hpstudy.config._schema import (
    BUILTIN_DATASETS,
    DEFAULT_MARGINS,
    HYPERPARAMETERS,
    METRICS,
    OBJECTIVES,
    STRATEGIES,
    BudgetConfig,
    ExperimentConfig,
    ParamConfig,
    PrunerConfig,
    ReportConfig,
    TaskConfig,
    TrainingConfig,
    is_valid_name,
    study_name,
)

__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_MARGINS",
    "HYPERPARAMETERS",
    "METRICS",
    "OBJECTIVES",
    "STRATEGIES",
    "BudgetConfig",
    "ExperimentConfig",
    "ParamConfig",
    "PrunerConfig",
    "ReportConfig",
    "TaskConfig",
    "TrainingConfig",
    "is_valid_name",
    "load_config",
    "parse_config",
    "study_name",
]
