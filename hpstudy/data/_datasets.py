"""Load a task's raw data: scikit-learn's built-in data sets or the user's CSV file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hpstudy._errors import ConfigError
from hpstudy.config._schema import TaskConfig

# A numeric target with at most this many distinct integer values is a class label.
_MAX_INFERRED_CLASSES = 20


@dataclass(frozen=True)
class RawData:
    """Features and target before any split or preprocessing.

    Attributes:
        X: Feature table; numeric and categorical (object/string) columns, missing values allowed.
        y: Target (class labels of any type, or floats for regression).
        kind: ``"classification"`` or ``"regression"``.
    """

    X: pd.DataFrame
    y: np.ndarray
    kind: str


def load_data(task: TaskConfig) -> RawData:
    """Load the data of ``task``. Raises :class:`ConfigError` for an unusable CSV."""
    if task.dataset is not None:
        return _load_builtin(task.dataset)
    assert task.csv is not None and task.target is not None
    return _load_csv(task.csv, task.target, task.kind, task.name)


def _load_builtin(name: str) -> RawData:
    from sklearn import datasets

    if name == "friedman1":
        # Generated, so fixed here once: every seed and strategy sees the same data.
        X, y = datasets.make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=0)
        kind = "regression"
    else:
        loader = {
            "digits": datasets.load_digits,
            "breast_cancer": datasets.load_breast_cancer,
            "wine": datasets.load_wine,
            "iris": datasets.load_iris,
            "diabetes": datasets.load_diabetes,
        }[name]
        bunch = loader()
        X, y = bunch.data, bunch.target
        kind = "regression" if name == "diabetes" else "classification"
    columns = [f"x{i}" for i in range(X.shape[1])]
    return RawData(
        X=pd.DataFrame(X.astype(np.float64), columns=columns), y=np.asarray(y), kind=kind
    )


def _load_csv(path: str, target: str, kind: str | None, task: str) -> RawData:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise ConfigError(f"task {task!r}: cannot read CSV {path}: {e}") from e
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        raise ConfigError(
            f"task {task!r}: target column {target!r} not in {path}; its columns are: {shown}"
        )
    y_series = frame.pop(target)
    if y_series.isna().any():
        n = int(y_series.isna().sum())
        raise ConfigError(
            f"task {task!r}: target column {target!r} has {n} missing values; drop those rows"
        )
    if frame.shape[1] == 0:
        raise ConfigError(f"task {task!r}: {path} has no feature columns besides {target!r}")
    if len(frame) < 20:
        raise ConfigError(
            f"task {task!r}: {path} has {len(frame)} rows; at least 20 are needed to split it"
        )
    inferred = _infer_kind(y_series)
    if kind is None:
        kind = inferred
    elif kind == "regression" and not pd.api.types.is_numeric_dtype(y_series):
        raise ConfigError(
            f"task {task!r}: kind = 'regression' but target {target!r} is not numeric; use kind = 'classification'"
        )
    y = y_series.to_numpy()
    if kind == "regression":
        y = y.astype(np.float64)
    return RawData(X=frame, y=y, kind=kind)


def _infer_kind(y: pd.Series) -> str:
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.to_numpy(dtype=np.float64)
    integral = bool(np.all(np.equal(np.mod(values, 1), 0)))
    if integral and len(np.unique(values)) <= _MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"
