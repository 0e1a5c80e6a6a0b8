"""Built-in data sets: generated ones are fixed (same rows for every seed and strategy), need no
network, and the vocabulary has enough tasks of each kind for the full experiment."""

from __future__ import annotations

import numpy as np
import pytest

from hpstudy.config import parse_config
from hpstudy.config._schema import BUILTIN_DATASETS, TaskConfig
from hpstudy.data import load_data, prepare_task
from hpstudy.data._datasets import GENERATED


def _task(name: str) -> TaskConfig:
    text = 'name = "t"\nstrategies = ["random"]\n[budget]\nn_trials = 1\n[[tasks]]\n'
    text += f'dataset = "{name}"\n'
    return parse_config(text).tasks[0]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_data_sets_are_the_same_rows_every_time(name: str) -> None:
    kind, _, kwargs = GENERATED[name]
    a, b = load_data(_task(name)), load_data(_task(name))
    assert a.kind == kind == BUILTIN_DATASETS[name]
    assert a.X.shape[0] == kwargs["n_samples"] and np.isfinite(a.X.to_numpy()).all()
    assert a.X.equals(b.X) and np.array_equal(a.y, b.y)
    if kind == "classification":
        counts = np.unique(a.y, return_counts=True)[1]
        assert len(counts) >= 2 and counts.min() > 0.2 * len(a.y)  # no class left nearly empty


def test_seeds_split_the_same_rows_differently() -> None:
    task = _task("hastie")
    s0, s1 = prepare_task(task, 0), prepare_task(task, 1)
    assert s0.folds[0].X_train.shape == s1.folds[0].X_train.shape == (3000, 10)
    assert not np.array_equal(s0.test_index, s1.test_index)


def test_enough_tasks_of_each_kind_with_a_large_one() -> None:
    rows = {n: GENERATED[n][2]["n_samples"] for n in GENERATED}
    for kind in ("classification", "regression"):
        names = [n for n, k in BUILTIN_DATASETS.items() if k == kind]
        assert len(names) >= 3, kind
        assert any(rows.get(n, 0) >= 5000 for n in names), kind


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer", "diabetes"])
def test_shipped_data_sets_read_without_scikit_learn_equal_its_loaders(name: str) -> None:
    """The files are read as scikit-learn's loaders read them: the same arrays, bit for bit."""
    from sklearn import datasets

    from hpstudy.data._datasets import _read_shipped

    shipped = _read_shipped(name)
    assert shipped is not None  # found: the fast path is the one taken
    X, y = shipped
    bunch = getattr(datasets, f"load_{name}")()
    assert X.dtype == bunch.data.dtype and np.array_equal(X, bunch.data)
    assert y.dtype == bunch.target.dtype and np.array_equal(y, bunch.target)


def test_a_shipped_data_set_loads_in_a_process_without_scikit_learn() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hpstudy.config._schema import TaskConfig\n"
        "from hpstudy.data import prepare_task\n"
        "for name in ('digits', 'diabetes', 'iris'):\n"
        "    task = TaskConfig(name, name, csv=None, target=None, kind=None, metric=None)\n"
        "    assert prepare_task(task, 3).folds[0].X_train.shape[0] > 50\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
