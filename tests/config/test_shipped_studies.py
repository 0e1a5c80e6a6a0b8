"""Every study file shipped in studies/ loads, and the full experiment's files keep the promises
the comparison rests on (issue 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpstudy.config import load_config
from hpstudy.config._schema import BUILTIN_DATASETS
from hpstudy.data._datasets import GENERATED
from hpstudy.model import resolve_init

STUDIES = Path(__file__).resolve().parents[2] / "studies"
SHIPPED = sorted(STUDIES.glob("*.toml"))
FULL = [p for p in SHIPPED if p.name.startswith("full-")]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_study_file_validates(path: Path) -> None:
    config = load_config(path)
    assert config.tasks and config.strategies


@pytest.mark.parametrize("path", FULL, ids=lambda p: p.name)
def test_full_experiment_files_keep_the_comparison_fair(path: Path) -> None:
    config = load_config(path)
    searched = config.searched_params()
    # the same bounding box for every strategy: grid's extremes are random's range ends
    for name, p in searched.items():
        if p.kind == "categorical":
            assert set(p.grid or ()) == set(p.choices or ()), name
        else:
            assert p.grid is not None and min(p.grid) == p.low and max(p.grid) == p.high, name
    # random and TPE run up to grid's full budget
    assert {"grid", "random", "tpe"} <= set(config.strategies)
    assert config.budget.n_trials == config.grid_size() and not config.budget.grid_subset
    assert len(config.seeds) >= 20
    for task in config.tasks:
        assert task.margin is not None, task.name  # a margin chosen for each task
    # manual picks from common practice: 20% dropout, ReLU, initialisation matched to it
    if "manual" in config.strategies:
        fixed = config.fixed_params()
        for pick in config.manual:
            q = {**fixed, **pick}
            assert q["dropout"] == 0.2 and q["activation"] == "relu"
            assert resolve_init(q["init"], "relu") == "kaiming"
    # the header states the measured run time with --n-jobs 2 (or, before the file has run, an
    # estimate) and how the estimate was computed
    header = path.read_text().split("\nname =")[0]
    assert re.search(
        r"(MEASURED run time: (\d+ min )?\d+ s|ESTIMATED run time: about \d+ min) with --n-jobs 2",
        header,
    ), path
    assert "benchmarks/profile_tasks.py" in header


def test_the_full_experiment_covers_what_the_issue_asks() -> None:
    configs = [load_config(p) for p in FULL]
    assert configs, "no studies/full-*.toml"
    tasks = {t.dataset for c in configs for t in c.tasks}
    for kind in ("classification", "regression"):
        own = {t for t in tasks if BUILTIN_DATASETS.get(str(t)) == kind}
        assert len(own) >= 3, kind
        assert any(
            GENERATED.get(str(t), ("", "", {"n_samples": 0}))[2]["n_samples"] >= 5000 for t in own
        )
    dims = {len(c.searched_params()) for c in configs}
    assert min(dims) <= 4 and max(dims) >= 8  # at least two space sizes
    names = set().union(*(c.searched_params() for c in configs))
    assert {"n_layers", "n_units", "dropout", "init", "activation", "lr", "optimizer",
            "batch_size", "weight_decay"} <= names  # fmt: skip
    # one arm without pruning, the rest with
    assert {c.pruner.type == "none" for c in configs} == {True, False}
