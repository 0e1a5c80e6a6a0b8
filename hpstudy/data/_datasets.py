"""Load a task's raw data: scikit-learn's built-in data sets or the user's CSV file."""

from __future__ import annotations

import csv
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    ignored: tuple[str, ...] = ()  # columns of the file that are not inputs (besides the target)
    warnings: tuple[str, ...] = ()  # what a person should know about the data (shown at create)


def load_data(task: TaskConfig) -> RawData:
    """Load the data of ``task``. Raises :class:`ConfigError` for an unusable CSV."""
    if task.dataset is not None:
        return _load_builtin(task.dataset)
    assert task.csv is not None and task.target is not None
    return _load_csv(task)


# Generated data sets: the generator's parameters are fixed here once (random_state included),
# so every seed and strategy sees the same rows; the seed only chooses the split. Documented in
# docs/study-file.md (a test checks the two agree).
GENERATED: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (kind, scikit-learn generator, its arguments)
    "friedman1": (
        "regression", "make_friedman1",
        {"n_samples": 1000, "n_features": 10, "noise": 1.0, "random_state": 0},
    ),
    # Friedman #2 and #3 at Friedman's 3:1 signal-to-noise ratio (noise as in Breiman 1996)
    "friedman2": ("regression", "make_friedman2", {"n_samples": 5000, "noise": 125.0, "random_state": 0}),
    "friedman3": ("regression", "make_friedman3", {"n_samples": 5000, "noise": 0.1, "random_state": 0}),
    # Gaussian clusters on hypercube vertices (Guyon's Madelon design), 3 classes
    "hypercube": (
        "classification", "make_classification",
        {"n_samples": 5000, "n_features": 20, "n_informative": 8, "n_redundant": 4,
         "n_classes": 3, "n_clusters_per_class": 2, "class_sep": 1.0, "flip_y": 0.02,
         "random_state": 0},
    ),
    # binary: is the squared norm of 10 standard normal features above 9.34 (chi2 median)?
    "hastie": ("classification", "make_hastie_10_2", {"n_samples": 5000, "random_state": 0}),
}  # fmt: skip


def _load_builtin(name: str) -> RawData:
    shipped = _read_shipped(name)
    if shipped is not None:
        X, y = shipped
    else:
        from sklearn import datasets

        if name in GENERATED:
            _, generator, kwargs = GENERATED[name]
            X, y = getattr(datasets, generator)(**kwargs)
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
    kind = (
        GENERATED[name][0]
        if name in GENERATED
        else "regression"
        if name == "diabetes"
        else "classification"
    )
    columns = [f"x{i}" for i in range(X.shape[1])]
    return RawData(
        X=pd.DataFrame(X.astype(np.float64), columns=columns), y=np.asarray(y), kind=kind
    )


# scikit-learn's small data sets are files in its package (datasets/data/). Reading them as
# its loaders do, without importing scikit-learn, keeps it out of every training process
# on these data (its import costs about as much as torch's). Their layout is scikit-learn's
# own: tests/data/test_builtin.py checks the arrays against its loaders, and a missing file
# falls back to them.
_SHIPPED_CSV = {"iris": "iris.csv", "wine": "wine_data.csv", "breast_cancer": "breast_cancer.csv"}


def _shipped_folder() -> Path | None:
    """scikit-learn's datasets/data folder, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")  # a top-level package: nothing is executed
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _read_shipped(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(X, y) of a scikit-learn data set shipped as a file, or None (generated or missing)."""
    folder = _shipped_folder()
    if folder is None:
        return None
    try:
        if name == "digits":  # load_digits
            with gzip.open(folder / "digits.csv.gz", "rt", encoding="utf-8") as f:
                data = np.loadtxt(f, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int, copy=False)
        if (
            name == "diabetes"
        ):  # load_diabetes(scaled=True): sklearn.preprocessing.scale, / sqrt(n)
            with gzip.open(folder / "diabetes_data_raw.csv.gz", "rt", encoding="utf-8") as f:
                X = np.loadtxt(f)
            with gzip.open(folder / "diabetes_target.csv.gz", "rt", encoding="utf-8") as f:
                y = np.loadtxt(f)
            mean, std = np.nanmean(X, 0), np.nanstd(X, 0)
            X -= mean
            X /= std
            X /= X.shape[0] ** 0.5
            return X, y
        if name in _SHIPPED_CSV:  # load_csv_data: a header row (n_samples, n_features, names)
            with open(folder / _SHIPPED_CSV[name], encoding="utf-8") as f:
                rows = csv.reader(f)
                header = next(rows)
                n_samples, n_features = int(header[0]), int(header[1])
                X = np.empty((n_samples, n_features))
                y = np.empty((n_samples,), dtype=int)
                for i, row in enumerate(rows):
                    X[i] = np.asarray(row[:-1], dtype=np.float64)
                    y[i] = np.asarray(row[-1], dtype=int)
            return X, y
    except (OSError, ValueError):
        return None
    return None


def _load_csv(task_config: TaskConfig) -> RawData:
    assert task_config.csv is not None and task_config.target is not None
    path, target, kind, task = (
        task_config.csv,
        task_config.target,
        task_config.kind,
        task_config.name,
    )
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
    frame, ignored = _select_columns(frame, task_config)
    notes: list[str] = []
    empty = [str(c) for c in frame.columns if frame[c].isna().all()]
    if empty:
        frame = frame.drop(columns=empty)
        ignored += tuple(empty)
        notes.append(
            f"task {task!r}: column(s) {', '.join(map(repr, empty))} of {path} have no value at "
            "all; dropped (the saved model ignores them too)"
        )
    if frame.shape[1] == 0:
        raise ConfigError(f"task {task!r}: {path} has no feature columns besides {target!r}")
    if len(frame) < 20:
        raise ConfigError(
            f"task {task!r}: {path} has {len(frame)} rows; at least 20 are needed to split it"
        )
    if kind != "classification":
        y_series = _numeric_target(y_series, task, target, path, stated=kind)
        if pd.api.types.is_numeric_dtype(y_series):
            _check_finite(y_series, f"target {target!r}", task, path)
    inferred = _infer_kind(y_series)
    if kind is None:
        kind = inferred
    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(
            frame[column]
        ):
            _check_finite(frame[column], f"column {column!r}", task, path)
    y = y_series.to_numpy()
    if kind == "regression":
        y = y.astype(np.float64)
        if len(np.unique(y)) == 1:
            notes.append(
                f"task {task!r}: target {target!r} is constant ({y[0]:g} in every row); "
                "every model predicts it exactly and there is nothing to compare"
            )
    if task_config.features is None:
        notes += _identifier_like(frame, task, path)
    return RawData(X=frame, y=y, kind=kind, ignored=ignored, warnings=tuple(notes))


def _lines(mask: pd.Series | np.ndarray, limit: int = 5) -> str:
    """The file's line numbers (the header is line 1) of the first rows where ``mask`` holds."""
    rows = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(r + 2) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _select_columns(frame: pd.DataFrame, task: TaskConfig) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The task's ``features`` (or all columns but ``drop``) and the columns left out."""
    named = task.features if task.features is not None else task.drop
    unknown = [c for c in named if c not in frame.columns]
    if unknown:
        key = "features" if task.features is not None else "drop"
        shown = ", ".join(map(str, frame.columns[:20]))
        raise ConfigError(
            f"task {task.name!r}: {key} names column(s) not in {task.csv}: "
            f"{', '.join(map(repr, unknown))}; its columns are: {shown}"
        )
    keep = (
        list(task.features)
        if task.features is not None
        else [c for c in frame.columns if c not in task.drop]
    )
    ignored = tuple(str(c) for c in frame.columns if c not in keep)
    return frame[keep], ignored


def _numeric_target(
    y: pd.Series, task: str, target: str, path: str, stated: str | None
) -> pd.Series:
    """A regression (or not yet inferred) target as numbers; mostly-numeric targets with a few
    strings are refused, naming those values and their lines."""
    if pd.api.types.is_numeric_dtype(y):
        return y
    numbers = pd.to_numeric(y, errors="coerce")
    bad = numbers.isna()
    if stated is None and bad.mean() > 0.5:
        return y  # labels, not numbers: classification
    values = ", ".join(repr(v) for v in pd.unique(y[bad])[:5])
    fix = "fix or drop those rows, or set kind = 'classification' if the target is labels"
    raise ConfigError(
        f"task {task!r}: target {target!r} of {path} is numeric except {int(bad.sum())} value(s) "
        f"{values} at line(s) {_lines(bad)}; {fix}"
    )


# Beyond this magnitude a value's square overflows float64: standardising it gives inf/nan.
_MAX_ABS = 1e150


def _check_finite(values: pd.Series, what: str, task: str, path: str) -> None:
    """Refuse infinite and overflowing numbers (missing values are fine: they are imputed)."""
    x = values.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(x)
        huge = np.abs(np.where(infinite, 0.0, x)) > _MAX_ABS
    if infinite.any():
        raise ConfigError(
            f"task {task!r}: {what} of {path} has {int(infinite.sum())} infinite value(s) at "
            f"line(s) {_lines(infinite)}; replace them, or leave the cells empty (missing "
            "feature values are imputed)"
        )
    if huge.any():
        raise ConfigError(
            f"task {task!r}: {what} of {path} has {int(huge.sum())} value(s) beyond 1e150 "
            f"(largest {np.nanmax(np.abs(x)):.3g}) at line(s) {_lines(huge)}; they cannot be "
            "standardised: rescale the column (e.g. log or a unit) or fix those rows"
        )


# A text column with at least this share of distinct values looks like an identifier.
_NEAR_UNIQUE = 0.5


def _identifier_like(frame: pd.DataFrame, task: str, path: str) -> list[str]:
    notes = []
    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column].dropna()
        distinct = values.nunique()
        if len(values) >= 20 and distinct >= _NEAR_UNIQUE * len(values):
            notes.append(
                f"task {task!r}: text column {column!r} of {path} has {distinct} distinct values "
                f"in {len(values)} rows (an identifier?); it becomes about one input per value. "
                f"Leave it out with drop = [{str(column)!r}] or list the inputs with features = [...]"
            )
    return notes


def _infer_kind(y: pd.Series) -> str:
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.to_numpy(dtype=np.float64)
    integral = bool(np.all(np.equal(np.mod(values, 1), 0)))
    if integral and len(np.unique(values)) <= _MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"
