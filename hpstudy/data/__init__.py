"""Data: load built-in or CSV data, split per seed, preprocess on the training part only."""

from __future__ import annotations

from hpstudy.data._datasets import RawData, load_data
from hpstudy.data._prepare import (
    Fold,
    TaskData,
    make_preprocessor,
    prepare_final,
    prepare_task,
    split_indices,
)

__all__ = [
    "Fold",
    "RawData",
    "TaskData",
    "load_data",
    "make_preprocessor",
    "prepare_final",
    "prepare_task",
    "split_indices",
]
