"""Split a task's data per seed and preprocess it, fitting only on the training part.

Seed k draws one train/validation/test split (stratified for classification) that every
strategy at seed k shares. The test part is kept aside: search never sees it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from hpstudy._errors import ConfigError
from hpstudy.config._schema import METRICS, TaskConfig
from hpstudy.data._datasets import RawData, load_data


@dataclass(frozen=True)
class Fold:
    """Preprocessed arrays for one training run: fit on ``train``, score on ``valid``.

    Features are float32; targets are int64 class indices (classification) or float32
    standardised values (regression; ``y_mean``/``y_std`` undo the scaling).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    y_mean: float = 0.0
    y_std: float = 1.0
    preprocessor: Any = None  # the fitted ColumnTransformer (to save a final model)
    # class_weight = "balanced": per class index, rows / (classes x the class's training rows)
    class_weights: np.ndarray | None = None


@dataclass(frozen=True)
class TaskData:
    """Everything a trial of one (task, seed) needs.

    Attributes:
        kind: ``"classification"`` or ``"regression"``.
        metric: The validation metric.
        n_features: Input width after one-hot encoding.
        n_classes: Number of classes (0 for regression).
        folds: One fold (train/valid split) or ``cv_folds`` folds over train+valid.
        test_index: Row indices of the held-out test split (never used during search).
    """

    kind: str
    metric: str
    n_features: int
    n_classes: int
    folds: tuple[Fold, ...]
    test_index: np.ndarray
    loss: str = ""  # "" : the kind's default; "poisson": counts, log link, raw (unscaled) target


def split_indices(
    y: np.ndarray, kind: str, seed: int, test_size: float, val_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (train, valid, test) row indices for ``seed``; stratified for classification.

    ``val_size`` and ``test_size`` are fractions of the whole data set.
    """
    index = np.arange(len(y))
    stratify = y if kind == "classification" else None
    try:
        rest, test = train_test_split(
            index, test_size=test_size, random_state=seed, stratify=stratify
        )
        strat_rest = y[rest] if stratify is not None else None
        train, valid = train_test_split(
            rest, test_size=val_size / (1.0 - test_size), random_state=seed, stratify=strat_rest
        )
    except ValueError as e:
        raise ConfigError(
            f"cannot split the data ({len(y)} rows) into train/validation/test: {e}; "
            "use more rows, fewer classes, or other test_size/val_size"
        ) from e
    return np.sort(train), np.sort(valid), np.sort(test)


def make_preprocessor(X: pd.DataFrame) -> ColumnTransformer:
    """Numeric columns: median-impute + standardise; others: impute + one-hot encode."""
    numeric = [
        c
        for c in X.columns
        if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
    ]
    categorical = [c for c in X.columns if c not in numeric]
    transformers = []
    if numeric:
        transformers.append(
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, sparse_threshold=0.0)


def _categorical_as_str(X: pd.DataFrame) -> pd.DataFrame:
    X = X.copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]):
            X[c] = X[c].map(lambda v: np.nan if pd.isna(v) else str(v)).astype(object)
    return X


def make_fold(
    raw: RawData,
    y: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    task: TaskConfig | None = None,
    n_classes: int = 0,
) -> Fold:
    """Fit preprocessing on ``train`` rows only and transform both parts.

    A ``poisson`` task keeps its target as counts (the network predicts their log); a task
    with ``class_weight = "balanced"`` gets its weights from the training rows.
    """
    pre = make_preprocessor(raw.X)
    # C order: row slices of the training tensor must be contiguous for fast matmuls.
    X_train = np.ascontiguousarray(pre.fit_transform(raw.X.iloc[train]), dtype=np.float32)
    X_valid = np.ascontiguousarray(pre.transform(raw.X.iloc[valid]), dtype=np.float32)
    if raw.kind == "classification":
        weights = None
        if task is not None and task.class_weight == "balanced":
            k = max(n_classes, int(y.max()) + 1)
            counts = np.bincount(y[train].astype(np.int64), minlength=k).astype(np.float64)
            # a class absent from these rows gets weight 0 rather than a division by zero
            weights = np.where(counts > 0, len(train) / (k * np.maximum(counts, 1.0)), 0.0)
        return Fold(
            X_train,
            y[train].astype(np.int64),
            X_valid,
            y[valid].astype(np.int64),
            preprocessor=pre,
            class_weights=weights,
        )
    if task is not None and task.loss == "poisson":
        return Fold(
            X_train,
            y[train].astype(np.float32),
            X_valid,
            y[valid].astype(np.float32),
            preprocessor=pre,
        )
    y_train = y[train].astype(np.float64)
    mean, std = float(y_train.mean()), float(y_train.std()) or 1.0
    return Fold(
        X_train,
        ((y_train - mean) / std).astype(np.float32),
        X_valid,
        ((y[valid] - mean) / std).astype(np.float32),
        y_mean=mean,
        y_std=std,
        preprocessor=pre,
    )


def class_labels(raw: RawData) -> list[str]:
    """The class labels in the order of the encoded class indices."""
    y = raw.y.astype(str) if raw.y.dtype == object else raw.y
    return [str(c) for c in LabelEncoder().fit(y).classes_]


def _encoded(task: TaskConfig, raw: RawData) -> tuple[RawData, np.ndarray, int, str]:
    """Categoricals as strings, the target encoded (class indices or floats), and the metric."""
    raw = dataclasses.replace(raw, X=_categorical_as_str(raw.X))
    if raw.kind == "classification":
        y = LabelEncoder().fit_transform(raw.y.astype(str) if raw.y.dtype == object else raw.y)
        n_classes = int(y.max()) + 1
        if n_classes < 2:
            raise ConfigError(
                f"task {task.name!r}: the target has a single class; nothing to classify"
            )
    else:
        y, n_classes = raw.y.astype(np.float64), 0
    metric = task.resolved_metric(raw.kind)
    if METRICS[metric][0] != raw.kind:
        raise ConfigError(
            f"task {task.name!r}: metric {metric!r} is for {METRICS[metric][0]}, but the target "
            f"looks like {raw.kind}; set kind = {METRICS[metric][0]!r} or another metric"
        )
    return raw, np.asarray(y), n_classes, metric


def prepare_task(task: TaskConfig, seed: int, raw: RawData | None = None) -> TaskData:
    """Load (unless given), split for ``seed`` and preprocess the data of ``task``."""
    raw, y, n_classes, metric = _encoded(task, raw or load_data(task))
    train, valid, test = split_indices(y, raw.kind, seed, task.test_size, task.val_size)
    if task.cv_folds:
        pool = np.concatenate([train, valid])
        splitter = (
            StratifiedKFold(task.cv_folds, shuffle=True, random_state=seed)
            if raw.kind == "classification"
            else KFold(task.cv_folds, shuffle=True, random_state=seed)
        )
        try:
            parts = list(splitter.split(pool, y[pool]))
        except ValueError as e:
            raise ConfigError(f"task {task.name!r}: cannot make {task.cv_folds} folds: {e}") from e
        folds = tuple(make_fold(raw, y, pool[a], pool[b], task, n_classes) for a, b in parts)
    else:
        folds = (make_fold(raw, y, train, valid, task, n_classes),)
    return TaskData(
        kind=raw.kind,
        metric=metric,
        n_features=folds[0].X_train.shape[1],
        n_classes=n_classes,
        folds=folds,
        test_index=test,
        loss=task.loss or "",
    )


def prepare_final(
    task: TaskConfig, seed: int, raw: RawData | None = None, *, all_rows: bool = False
) -> TaskData:
    """Seed ``seed``'s split for the final evaluation: train+validation to train on, the test
    split (never seen during search) to score on, preprocessing fitted on train+validation.

    ``all_rows``: train on every labelled row instead (test included; the test score is then
    no longer held out, and the caller must say so).
    """
    raw, y, n_classes, metric = _encoded(task, raw or load_data(task))
    train, valid, test = split_indices(y, raw.kind, seed, task.test_size, task.val_size)
    fit_on = np.arange(len(y)) if all_rows else np.sort(np.concatenate([train, valid]))
    fold = make_fold(raw, y, fit_on, test, task, n_classes)
    return TaskData(
        raw.kind, metric, fold.X_train.shape[1], n_classes, (fold,), test, loss=task.loss or ""
    )
