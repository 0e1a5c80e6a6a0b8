"""The shipped raw results of the benchmark experiment (results/bench/*.csv.gz, issue 18) are
what the study files and the tables give: every study of the file, its budget met, labelled,
values and compute the table's own, cached test scores the unobserved repetitions'. (Their section of docs/results.md is
checked in test_shipped_results.py, their regret in tests/analysis/test_regret.py.)"""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from hpstudy.analysis._table import columns_of, sidecar
from hpstudy.config import load_config, parse_config
from hpstudy.config._benchmarks import repetition_for
from hpstudy.data._benchmarks import load_table

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "results" / "bench").glob("*.csv.gz"))


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_benchmark_results_are_the_tables(path: Path) -> None:
    config = parse_config(sidecar(path).read_text())
    committed = load_config(ROOT / "studies" / sidecar(path).name)
    # the run is the committed study file's (its body; the header gained the measured time)
    assert config.text.split("\nname =")[1] == committed.text.split("\nname =")[1]
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    head, params = columns_of(config)
    assert list(rows[0])[: len(head) + len(params)] == head + params
    per_study = Counter(r["study"] for r in rows)
    assert len(per_study) == len(config.tasks) * len(config.seeds) * len(config.strategies)
    assert set(per_study.values()) == {config.budget.n_trials}  # budgets met, no failure
    assert {r["state"] for r in rows} == {"COMPLETE"} and {r["task_kind"] for r in rows} == {
        "benchmark"
    }
    fixed = config.fixed_params()
    levels = {n: p.choices for n, p in config.searched_params().items()}
    rng = random.Random(0)
    scored = [r for r in rows if r["test_scores"]]
    assert len({r["study"] for r in scored}) == len(per_study)  # every study's best is scored
    for r in rng.sample(rows, 300) + scored[:: max(1, len(scored) // 300)]:
        benchmark = r["benchmark"]
        assert benchmark == config.task(r["task"]).benchmark
        rep = repetition_for(int(r["seed"]), benchmark)
        assert int(r["repetition"]) == rep
        table = load_table(benchmark)
        params = {**fixed, **{n: next(c for c in v if str(c) == r[n]) for n, v in levels.items()}}
        value, seconds = table.lookup(params, rep)
        assert (float(r["value"]), float(r["seconds"])) == (value, seconds)
        assert int(r["epochs_trained"]) == table.family.epochs
        if r["test_scores"]:
            assert json.loads(r["test_scores"]) == table.test_scores(params, rep)
