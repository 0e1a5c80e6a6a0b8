"""Study files: load, validate, and the vocabulary of allowed values."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from hpstudy.config._load import load_config, parse_config


def __getattr__(name: str) -> Any:
    # The loader (pydantic, tomllib: about 40 ms) on first use: read commands take the
    # vocabulary from _schema and parse no study file.
    if name in ("load_config", "parse_config"):
        return getattr(importlib.import_module("hpstudy.config._load"), name)
    raise AttributeError(f"module 'hpstudy.config' has no attribute {name!r}")


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
