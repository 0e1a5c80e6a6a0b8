from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpstudy import ConfigError
from hpstudy.config import TaskConfig
from hpstudy.data import load_data, prepare_task, split_indices


def _csv(tmp_path: Path, n: int = 120) -> Path:
    rng = np.random.default_rng(0)
    lines = ["size,colour,weight,label"]
    for i in range(n):
        size = "" if i % 10 == 0 else f"{rng.normal(10, 3):.3f}"  # missing numeric values
        colour = "" if i % 7 == 0 else ["red", "green", "blue"][i % 3]  # missing categories
        lines.append(f"{size},{colour},{rng.normal():.3f},{'yes' if i % 2 else 'no'}")
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _task(csv: Path | None = None, **kw: object) -> TaskConfig:
    base: dict[str, object] = dict(
        name="t", dataset=None if csv else "iris", csv=str(csv) if csv else None,
        target="label" if csv else None, kind=None, metric=None,
    )  # fmt: skip
    base.update(kw)
    return TaskConfig(**base)  # type: ignore[arg-type]


def test_csv_with_categorical_and_missing_values(tmp_path: Path) -> None:
    data = prepare_task(_task(_csv(tmp_path)), seed=0)
    assert data.kind == "classification" and data.n_classes == 2 and data.metric == "accuracy"
    fold = data.folds[0]
    # 2 numeric columns + 3 one-hot colours; no NaN survives imputation
    assert fold.X_train.shape[1] == 5
    assert np.isfinite(fold.X_train).all() and np.isfinite(fold.X_valid).all()
    # the scaler is fitted on the training rows only: they are centred, validation rows are not exactly
    assert np.allclose(fold.X_train[:, :2].mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(fold.X_valid[:, :2].mean(axis=0), 0.0, atol=1e-5)
    assert fold.X_train.flags["C_CONTIGUOUS"]


def test_kind_is_inferred_from_the_target(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rng = np.random.default_rng(1)
    path.write_text(
        "x,y\n" + "\n".join(f"{rng.normal():.4f},{rng.normal() * 100:.4f}" for _ in range(60))
    )
    data = prepare_task(_task(path, target="y"), seed=0)
    assert data.kind == "regression" and data.metric == "rmse" and data.n_classes == 0
    fold = data.folds[0]
    assert abs(float(fold.y_train.mean())) < 1e-5 and fold.y_std > 10  # standardised target


def test_missing_target_column_names_the_columns(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match="target column 'price' not in .*its columns are: size, colour, weight, label",
    ):
        load_data(_task(_csv(tmp_path), target="price"))


def test_seed_fixes_the_split_and_different_seeds_differ() -> None:
    y = np.repeat(np.arange(3), 50)
    a = split_indices(y, "classification", 0, 0.2, 0.2)
    b = split_indices(y, "classification", 0, 0.2, 0.2)
    c = split_indices(y, "classification", 1, 0.2, 0.2)
    assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    assert not np.array_equal(a[2], c[2])
    train, valid, test = a
    assert len(set(train) | set(valid) | set(test)) == 150  # a partition
    assert len(test) == 30 and len(valid) == 30
    assert np.bincount(y[test]).tolist() == [10, 10, 10]  # stratified


def test_cross_validation_folds_cover_train_and_validation() -> None:
    data = prepare_task(_task(cv_folds=3), seed=0)
    assert len(data.folds) == 3
    sizes = [len(f.y_valid) for f in data.folds]
    assert sum(sizes) == 150 - len(data.test_index)


def test_metric_of_the_wrong_kind_for_an_inferred_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="metric 'rmse' is for regression"):
        prepare_task(_task(_csv(tmp_path), metric="rmse"), seed=0)


@pytest.mark.parametrize("seed", range(6))
def test_standardize_equals_scikit_learns_preprocessor_bit_for_bit(seed: int) -> None:
    """Random tables with constant columns, large offsets, tiny spreads and integers: the
    NumPy path gives exactly the numbers of the fitted ColumnTransformer."""
    import pandas as pd

    from hpstudy.data import make_preprocessor
    from hpstudy.data._prepare import standardize

    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(2, 300)), int(rng.integers(1, 12))
    X = rng.standard_normal((n, k)) * 10.0 ** rng.integers(-8, 8, k) + 10.0 ** rng.integers(
        -3, 9, k
    )
    X[:, 0] = 7.25  # a constant column
    if k > 1:
        X[:, 1] = rng.integers(0, 5, n)  # integer-valued
    if k > 2:
        X[:, 2] = 1e9 + rng.standard_normal(n) * 1e-9  # constant to float64's precision
    train, valid = np.arange(n)[: max(1, n // 2)], np.arange(n)[n // 2 :]
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(k)])
    pre = make_preprocessor(frame)
    expected_train = pre.fit_transform(frame.iloc[train])
    expected_valid = pre.transform(frame.iloc[valid])
    got_train, got_valid = standardize(
        frame.iloc[train].to_numpy(dtype=np.float64), frame.iloc[valid].to_numpy(dtype=np.float64)
    )
    assert np.array_equal(got_train, expected_train)
    assert np.array_equal(got_valid, expected_valid)


@pytest.mark.parametrize(
    "dataset", ["digits", "iris", "diabetes", "breast_cancer", "wine", "friedman1"]
)
def test_builtin_data_is_prepared_as_the_column_transformer_would(dataset: str) -> None:
    """Search standardises built-in data without scikit-learn's ColumnTransformer; its
    arrays equal the transformer's (what prepare_final, which keeps it, computes)."""
    from hpstudy.data import make_preprocessor
    from hpstudy.data._prepare import make_fold

    task = TaskConfig(dataset, dataset, csv=None, target=None, kind=None, metric=None)
    raw = load_data(task)
    for seed in (0, 3):
        (fold,) = prepare_task(task, seed, raw).folds
        assert fold.preprocessor is None
        y = np.arange(len(raw.y))  # the targets do not matter here
        train, valid, _ = split_indices(raw.y, raw.kind, seed, task.test_size, task.val_size)
        kept = make_fold(raw, y, train, valid, keep=True)
        assert kept.preprocessor is not None and type(kept.preprocessor) is type(
            make_preprocessor(raw.X)
        )
        assert np.array_equal(fold.X_train, kept.X_train)
        assert np.array_equal(fold.X_valid, kept.X_valid)


@pytest.mark.parametrize("seed", range(40))
def test_train_test_split_equals_scikit_learns(seed: int) -> None:
    """Random sizes, test fractions, class counts and balances (rare classes included), with
    and without stratification: the same rows in the same order as scikit-learn's."""
    from sklearn.model_selection import train_test_split as theirs

    from hpstudy.data._prepare import train_test_split

    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, 600))
    test_size = float(rng.uniform(0.05, 0.6))
    index = np.sort(rng.choice(10 * n, n, replace=False))  # not 0..n-1: values are returned
    k = int(rng.integers(2, 8))
    y = rng.choice(k, n, p=rng.dirichlet(np.ones(k) * 0.7))
    for stratify in (None, y):
        try:
            expected = theirs(index, test_size=test_size, random_state=seed, stratify=stratify)
        except ValueError:
            with pytest.raises(ValueError):
                train_test_split(index, test_size, seed, stratify)
            continue
        got = train_test_split(index, test_size, seed, stratify)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
