"""Split a task's data per seed and preprocess it, fitting only on the training part.

Seed k draws one train/validation/test split (stratified for classification) that every
strategy at seed k shares. The test part is kept aside: search never sees it.

scikit-learn is imported inside the functions that use it: the report and the read-only
commands import this module (for :class:`TaskData`) and must not pay for it. During search,
data whose columns are all numeric and complete (every built-in data set) is standardised
with NumPy, as ``StandardScaler`` does, without building a ``ColumnTransformer``; a saved
model's preprocessing (:func:`prepare_final`) keeps scikit-learn's fitted transformer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hpstudy._errors import ConfigError
from hpstudy.config._schema import METRICS, OBJECTIVES, TaskConfig
from hpstudy.data._datasets import RawData, load_data

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer


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
        metric: The task's metric (what the report compares on test data).
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
    objective: str = ""  # what training selects on (a trial's value); "" = the metric
    loss: str = ""  # "" : the kind's default; "poisson": counts, log link, raw (unscaled) target

    @property
    def select(self) -> str:
        """The selection objective: the validation score each epoch reports."""
        return self.objective or self.metric


def _approximate_mode(counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """scikit-learn's ``utils.extmath._approximate_mode``: per class, how many of ``n_draws``
    rows to take so the draw keeps the class proportions, ties broken at random."""
    continuous = counts / counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def train_test_split(
    index: np.ndarray, test_size: float, seed: int, stratify: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.model_selection.train_test_split(index, test_size=..., random_state=seed,
    stratify=...)``, the same rows in the same order, without importing scikit-learn (about
    as slow to import as torch; ``tests/data/test_prepare.py`` compares the two on many sizes,
    class balances and seeds).

    Raises:
        ValueError: As scikit-learn would: a part would be empty, or a class has one row or
            more classes than a part has rows.
    """
    n = len(index)
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(
            f"with n_samples={n} and test_size={test_size} one of the two parts would be empty"
        )
    rng = np.random.RandomState(seed)
    if stratify is None:
        permutation = rng.permutation(n)
        return index[permutation[n_test:]], index[permutation[:n_test]]
    classes, y_indices, class_counts = np.unique(stratify, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError(
            "The least populated classes in y have only 1 member, which is too few: "
            f"{classes[class_counts < 2].tolist()}"
        )
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError(
            f"train ({n_train} rows) and test ({n_test} rows) must each have at least as many "
            f"rows as there are classes ({len(classes)})"
        )
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        permuted = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(permuted[: n_i[i]])
        test.extend(permuted[n_i[i] : n_i[i] + t_i[i]])
    return index[rng.permutation(train)], index[rng.permutation(test)]


def split_indices(
    y: np.ndarray, kind: str, seed: int, test_size: float, val_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (train, valid, test) row indices for ``seed``; stratified for classification.

    ``val_size`` and ``test_size`` are fractions of the whole data set.
    """
    index = np.arange(len(y))
    stratify = y if kind == "classification" else None
    try:
        rest, test = train_test_split(index, test_size, seed, stratify)
        strat_rest = y[rest] if stratify is not None else None
        train, valid = train_test_split(rest, val_size / (1.0 - test_size), seed, strat_rest)
    except ValueError as e:
        raise ConfigError(
            f"cannot split the data ({len(y)} rows) into train/validation/test: {e}; "
            "use more rows, fewer classes, or other test_size/val_size"
        ) from e
    return np.sort(train), np.sort(valid), np.sort(test)


def make_preprocessor(X: pd.DataFrame) -> ColumnTransformer:
    """Numeric columns: median-impute + standardise; others: impute + one-hot encode."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

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


def _all_numeric_complete(X: pd.DataFrame) -> bool:
    """Whether every column is numeric (not bool) with no missing value: the preprocessor
    then only standardises, which :func:`standardize` does without scikit-learn."""
    return all(
        pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
        for c in X.columns
    ) and not bool(X.isna().to_numpy().any())


def standardize(X_train: np.ndarray, X_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``StandardScaler().fit(X_train)`` applied to both parts, in its arithmetic: float64,
    the mean, the corrected two-pass population variance, and a scale of 1 for a column
    indistinguishable from a constant (``tests/data/test_prepare.py`` checks it against
    :func:`make_preprocessor` bit for bit)."""
    X = np.asarray(X_train, dtype=np.float64)
    n = X.shape[0]
    total = X.sum(axis=0)
    mean = total / n
    centred = X - total / n
    correction = centred.sum(axis=0)
    variance = ((centred**2).sum(axis=0) - correction**2 / n) / n
    eps = np.finfo(np.float64).eps
    constant = variance <= n * eps * variance + (n * mean * eps) ** 2
    scale = np.sqrt(variance)
    scale[constant] = 1.0
    return (X - mean) / scale, (np.asarray(X_valid, dtype=np.float64) - mean) / scale


def make_fold(
    raw: RawData,
    y: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    task: TaskConfig | None = None,
    n_classes: int = 0,
    *,
    keep: bool = False,
) -> Fold:
    """Fit preprocessing on ``train`` rows only and transform both parts; ``keep``: with the
    fitted scikit-learn preprocessor (a saved model needs its numbers).

    A ``poisson`` task keeps its target as counts (the network predicts their log); a task
    with ``class_weight = "balanced"`` gets its weights from the training rows.
    """
    pre: ColumnTransformer | None = None
    if not keep and _all_numeric_complete(raw.X):
        # As the ColumnTransformer receives them (pandas' column-major blocks): the sums run
        # in the same order, so the numbers are the same to the last bit.
        Xt, Xv = standardize(
            raw.X.iloc[train].to_numpy(dtype=np.float64),
            raw.X.iloc[valid].to_numpy(dtype=np.float64),
        )
    else:
        pre = make_preprocessor(raw.X)
        Xt = pre.fit_transform(raw.X.iloc[train])
        Xv = pre.transform(raw.X.iloc[valid])
    # C order: row slices of the training tensor must be contiguous for fast matmuls.
    X_train = np.ascontiguousarray(Xt, dtype=np.float32)
    X_valid = np.ascontiguousarray(Xv, dtype=np.float32)
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
    """The class labels in the order of the encoded class indices (sorted, as scikit-learn's
    ``LabelEncoder`` sorts them)."""
    y = raw.y.astype(str) if raw.y.dtype == object else raw.y
    return [str(c) for c in np.unique(y)]


def _encoded(task: TaskConfig, raw: RawData) -> tuple[RawData, np.ndarray, int, str, str]:
    """Categoricals as strings, the target encoded (class indices or floats), the metric and
    the selection objective."""
    raw = dataclasses.replace(raw, X=_categorical_as_str(raw.X))
    if raw.kind == "classification":
        # LabelEncoder().fit_transform: the index of each label among the sorted labels.
        labels = raw.y.astype(str) if raw.y.dtype == object else raw.y
        y = np.unique(labels, return_inverse=True)[1].reshape(-1)
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
    select = task.resolved_select(raw.kind)
    if OBJECTIVES[select][0] != raw.kind:
        raise ConfigError(
            f"task {task.name!r}: select = {select!r} is for {OBJECTIVES[select][0]}, but the "
            f"target looks like {raw.kind}; set kind = {OBJECTIVES[select][0]!r} or another select"
        )
    return raw, np.asarray(y), n_classes, metric, select


def prepare_task(task: TaskConfig, seed: int, raw: RawData | None = None) -> TaskData:
    """Load (unless given), split for ``seed`` and preprocess the data of ``task``."""
    raw, y, n_classes, metric, select = _encoded(task, raw or load_data(task))
    train, valid, test = split_indices(y, raw.kind, seed, task.test_size, task.val_size)
    if task.cv_folds:
        from sklearn.model_selection import KFold, StratifiedKFold

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
        objective=select,
        loss=task.loss or "",
    )


def prepare_final(
    task: TaskConfig,
    seed: int,
    raw: RawData | None = None,
    *,
    all_rows: bool = False,
    keep: bool = False,
) -> TaskData:
    """Seed ``seed``'s split for the final evaluation: train+validation to train on, the test
    split (never seen during search) to score on, preprocessing fitted on train+validation.

    ``all_rows``: train on every labelled row instead (test included; the test score is then
    no longer held out, and the caller must say so). ``keep``: with the fitted scikit-learn
    preprocessor (a saved model needs its numbers; scoring does not).
    """
    raw, y, n_classes, metric, select = _encoded(task, raw or load_data(task))
    train, valid, test = split_indices(y, raw.kind, seed, task.test_size, task.val_size)
    fit_on = np.arange(len(y)) if all_rows else np.sort(np.concatenate([train, valid]))
    fold = make_fold(raw, y, fit_on, test, task, n_classes, keep=keep)
    return TaskData(
        kind=raw.kind, metric=metric, n_features=fold.X_train.shape[1], n_classes=n_classes,
        folds=(fold,), test_index=test, objective=select, loss=task.loss or "",
    )  # fmt: skip
