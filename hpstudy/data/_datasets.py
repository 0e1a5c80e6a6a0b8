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
from hpstudy.data._csv import one_column_hint, read_table

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
    categorical: tuple[str, ...] = ()  # declared categorical inputs (labels as strings)


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
    """Read and check a task's CSV, collecting every problem of the file before refusing it."""
    assert task_config.csv is not None and task_config.target is not None
    path, target, kind, task = (
        task_config.csv,
        task_config.target,
        task_config.kind,
        task_config.name,
    )
    if kind is None and task_config.loss is not None:
        kind = "regression"  # a regression loss says so (counts have few distinct values)
    elif kind is None and task_config.class_weight is not None:
        kind = "classification"
    table = read_table(path, task_config.sep, task_config.quotechar, what=f"task {task!r}")
    frame = table.frame
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20]))
        raise ConfigError(
            f"task {task!r}: target column {target!r} not in {path} (read as "
            f"{table.describe_sep()}-separated); its columns are: {shown}{one_column_hint(table)}"
        )
    problems: list[str] = []
    notes: list[str] = []
    for name, positions in table.duplicates.items():
        problems.append(
            f"task {task!r}: column name {name!r} appears {len(positions)} times in the header of "
            f"{path} (columns {', '.join(map(str, positions))}); rename or remove the copies"
        )
    y_series = frame.pop(target)
    missing_y = y_series.isna().to_numpy()
    if missing_y.any():
        n = int(missing_y.sum())
        if task_config.drop_missing_target:
            notes.append(
                f"task {task!r}: {n} row(s) of {path} have no target {target!r} (line(s) "
                f"{_lines(missing_y)}); left out (drop_missing_target = true)"
            )
            keep = ~missing_y
            frame, y_series = frame[keep], y_series[keep]
            line_of = np.flatnonzero(keep) + 2
        else:
            problems.append(
                f"task {task!r}: target column {target!r} has {n} missing value(s) at line(s) "
                f"{_lines(missing_y)}; fill them, or add drop_missing_target = true to the task "
                "to leave those rows out"
            )
            line_of = np.arange(len(frame)) + 2
    else:
        line_of = np.arange(len(frame)) + 2
    frame = frame.reset_index(drop=True)
    y_series = y_series.reset_index(drop=True)
    frame, ignored = _select_columns(frame, task_config, problems)
    declared = [c for c in task_config.categorical if c in frame.columns]
    unknown = [c for c in task_config.categorical if c not in frame.columns]
    if unknown:
        where = "the inputs" if set(unknown) & set(ignored) else str(path)
        problems.append(
            f"task {task!r}: categorical names column(s) not in {where}: "
            f"{', '.join(map(repr, unknown))}; its inputs are: {', '.join(map(str, frame.columns[:20]))}"
        )
    for column in declared:  # integer codes become category labels ('1', '2', ...)
        frame[column] = frame[column].map(_label)
    empty = [str(c) for c in frame.columns if frame[c].isna().all()]
    if empty:
        frame = frame.drop(columns=empty)
        ignored += tuple(empty)
        notes.append(
            f"task {task!r}: column(s) {', '.join(map(repr, empty))} of {path} have no value at "
            "all; dropped (the saved model ignores them too)"
        )
    if frame.shape[1] == 0:
        problems.append(f"task {task!r}: {path} has no feature columns besides {target!r}")
    if len(frame) < 20:
        problems.append(
            f"task {task!r}: {path} has {len(frame)} rows with a target; at least 20 are needed "
            "to split it"
        )
    if kind != "classification":
        try:
            y_series = _numeric_target(y_series, task, target, path, stated=kind, line_of=line_of)
        except ConfigError as e:
            problems.extend(e.problems)
            y_series = pd.to_numeric(y_series, errors="coerce")
        if pd.api.types.is_numeric_dtype(y_series):
            problems += _finite_problems(y_series, f"target {target!r}", task, path, line_of, True)
    for column in frame.columns:
        if column in declared:
            continue
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            stray = _stray_strings(values)
            if stray is not None:
                problems.append(
                    f"task {task!r}: column {column!r} of {path} is numeric except "
                    f"{int(stray.sum())} value(s) {_values(values[stray])} at line(s) "
                    f"{_lines(stray, line_of)}; fix those cells (or leave them empty: missing "
                    f"values are imputed), or declare the column categorical = [{str(column)!r}]"
                )
                continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            problems += _finite_problems(values, f"column {column!r}", task, path, line_of, False)
    if task_config.features is None:
        notes += _identifier_like(frame.drop(columns=declared), task, path)
    if problems:
        raise ConfigError(problems + [f"(note) {n}" for n in notes])
    inferred = _infer_kind(y_series)
    if kind is None:
        kind = inferred
    y = y_series.to_numpy()
    if kind == "regression":
        y = y.astype(np.float64)
        if len(np.unique(y)) == 1:
            notes.append(
                f"task {task!r}: target {target!r} is constant ({y[0]:g} in every row); "
                "every model predicts it exactly and there is nothing to compare"
            )
        if task_config.loss == "poisson" and (y < 0).any():
            bad = y < 0
            raise ConfigError(
                f"task {task!r}: loss = 'poisson' needs a target of counts >= 0, but {target!r} "
                f"has {int(bad.sum())} negative value(s) at line(s) {_lines(bad, line_of)}; use "
                "loss = 'mse' or fix those rows"
            )
    elif task_config.loss is not None:
        raise ConfigError(
            f"task {task!r}: loss = {task_config.loss!r} is for regression, but target {target!r} "
            "looks like class labels; set kind = 'regression' or remove loss"
        )
    if kind == "regression" and task_config.class_weight is not None:
        raise ConfigError(
            f"task {task!r}: class_weight is for classification, but target {target!r} looks "
            "like a regression target; set kind = 'classification' or remove class_weight"
        )
    imputed = _imputation_note(frame, task, declared)
    if imputed:
        notes.append(imputed)
    return RawData(
        X=frame,
        y=y,
        kind=kind,
        ignored=ignored,
        warnings=tuple(notes),
        categorical=tuple(declared),
    )


def _label(value: object) -> object:
    """A declared category's label: integral numbers without '.0' (1.0 -> '1')."""
    if pd.isna(value):
        return np.nan
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values(values: pd.Series, limit: int = 5) -> str:
    return ", ".join(repr(v) for v in pd.unique(values)[:limit])


# A text column with at least this share of its values parsing as numbers is a numeric column
# with stray strings (a typo, "n/a", "?"), not a category.
_MOSTLY_NUMERIC = 0.8


def _stray_strings(values: pd.Series) -> np.ndarray | None:
    """The rows of a text column that are not numbers, when nearly all others are."""
    present = values.notna()
    if not present.any():
        return None
    numbers = pd.to_numeric(values.where(present), errors="coerce")
    bad = (present & numbers.isna()).to_numpy()
    if bad.sum() == 0 or (~bad[present.to_numpy()]).mean() < _MOSTLY_NUMERIC:
        return None
    return bad


def _imputation_note(frame: pd.DataFrame, task: str, categorical: list[str]) -> str:
    """One line: how many feature values are missing and how they are filled."""
    counts = frame.isna().sum()
    counts = counts[counts > 0]
    if counts.empty:
        return ""
    numeric = [
        c
        for c in counts.index
        if c not in categorical
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    n_num = int(counts[numeric].sum()) if numeric else 0
    n_cat = int(counts.sum()) - n_num
    per_column = ", ".join(f"{c} {int(n)}" for c, n in counts.items())
    how = []
    if n_num:
        how.append(f"{n_num} numeric with the training rows' median")
    if n_cat:
        how.append(f"{n_cat} categorical with the training rows' most frequent value")
    return (
        f"task {task!r}: {int(counts.sum())} missing feature value(s) are imputed: "
        f"{' and '.join(how)} ({per_column})"
    )


def _lines(mask: pd.Series | np.ndarray, line_of: np.ndarray | None = None, limit: int = 5) -> str:
    """The file's line numbers (the header is line 1) of the first rows where ``mask`` holds;
    ``line_of`` maps rows to lines when some rows were left out."""
    rows = np.flatnonzero(np.asarray(mask))
    lines = rows + 2 if line_of is None else line_of[rows]
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _select_columns(
    frame: pd.DataFrame, task: TaskConfig, problems: list[str]
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The task's ``features`` (or all columns but ``drop``) and the columns left out; names
    not in the file are added to ``problems``."""
    named = task.features if task.features is not None else task.drop
    unknown = [c for c in named if c not in frame.columns]
    if unknown:
        key = "features" if task.features is not None else "drop"
        shown = ", ".join(map(str, frame.columns[:20]))
        problems.append(
            f"task {task.name!r}: {key} names column(s) not in {task.csv}: "
            f"{', '.join(map(repr, unknown))}; its columns are: {shown}"
        )
    keep = (
        [c for c in task.features if c in frame.columns]
        if task.features is not None
        else [c for c in frame.columns if c not in task.drop]
    )
    ignored = tuple(str(c) for c in frame.columns if c not in keep)
    return frame[keep], ignored


def _numeric_target(
    y: pd.Series,
    task: str,
    target: str,
    path: str,
    stated: str | None,
    line_of: np.ndarray | None = None,
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
        f"{values} at line(s) {_lines(bad, line_of)}; {fix}"
    )


# Beyond this magnitude a value's square overflows float64: standardising it gives inf/nan.
_MAX_ABS = 1e150


def _finite_problems(
    values: pd.Series, what: str, task: str, path: str, line_of: np.ndarray, is_target: bool
) -> list[str]:
    """Infinite and overflowing numbers (missing feature values are fine: they are imputed)."""
    x = values.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        infinite = np.isinf(x)
        huge = np.abs(np.where(infinite, 0.0, x)) > _MAX_ABS
    fix = (
        "replace them with the right values, or drop those rows (drop_missing_target = true "
        "leaves out rows whose target cell is empty)"
        if is_target
        else "replace them, or leave the cells empty (missing feature values are imputed)"
    )
    problems = []
    if infinite.any():
        problems.append(
            f"task {task!r}: {what} of {path} has {int(infinite.sum())} infinite value(s) at "
            f"line(s) {_lines(infinite, line_of)}; {fix}"
        )
    if huge.any():
        problems.append(
            f"task {task!r}: {what} of {path} has {int(huge.sum())} value(s) beyond 1e150 "
            f"(largest {np.nanmax(np.abs(np.where(infinite, 0.0, x))):.3g}) at line(s) "
            f"{_lines(huge, line_of)}; they cannot be standardised: rescale the column (e.g. log "
            "or a unit) or fix those rows"
        )
    return problems


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
