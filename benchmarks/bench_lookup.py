"""Benchmark lookup trials (published tabular benchmarks): trials per second on SQLite.

A benchmark trial is a table lookup (microseconds), so orchestration is the whole cost. In
one run, on fresh SQLite files, the same lookup on ``hpobench_nn/credit_g`` (its full space,
5 hyperparameters x 3-10 levels) is run

- by hpstudy (``create`` of a one-study experiment: study creation, batched claims and
  finishes, the trial attrs ``epochs`` and ``seconds``, the test-score cache), and
- by plain Optuna (``study.optimize`` with ``suggest_categorical`` per hyperparameter and the
  same lookup and sampler; no user attrs, which only favours it), twice: on Optuna's own
  SQLite storage (``storage=URL``: rollback journal, full sync) and on the storage hpstudy
  opens for the same URL (``open_storage``: write-ahead log, ``synchronous=NORMAL``), so the
  second ratio is orchestration alone,

for random search and for TPE; each figure is the median of ``--repeats`` runs.

Run:  .venv/bin/python benchmarks/bench_lookup.py [--random 2000] [--tpe 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from hpstudy.config import parse_config
from hpstudy.config._benchmarks import repetition_for
from hpstudy.data._benchmarks import load_table
from hpstudy.runner import create_experiment, open_storage

BENCHMARK = "hpobench_nn/credit_g"
STUDY = """
name = "bench-lookup"
seeds = [0]
strategies = ["{strategy}"]

[budget]
n_trials = {n_trials}

[[tasks]]
benchmark = "{benchmark}"
"""


def time_hpstudy(strategy: str, n_trials: int, folder: Path) -> float:
    url = f"sqlite:///{folder / f'hpstudy-{strategy}.db'}"
    config = parse_config(STUDY.format(strategy=strategy, n_trials=n_trials, benchmark=BENCHMARK))
    t0 = time.perf_counter()
    _, results = create_experiment(config, url)
    elapsed = time.perf_counter() - t0
    assert results[0].counts.finished == n_trials, results
    return elapsed


def time_optuna(strategy: str, n_trials: int, folder: Path, tuned: bool) -> float:
    table = load_table(BENCHMARK)
    levels = table.family.levels
    repetition = repetition_for(0, BENCHMARK)
    url = f"sqlite:///{folder / f'optuna-{strategy}.db'}"
    sampler = (
        optuna.samplers.RandomSampler(seed=0)
        if strategy == "random"
        else optuna.samplers.TPESampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> float:
        params = {n: trial.suggest_categorical(n, list(v)) for n, v in levels.items()}
        return table.lookup(params, repetition)[0]

    t0 = time.perf_counter()
    storage = open_storage(url) if tuned else url
    study = optuna.create_study(storage=storage, sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=n_trials)
    elapsed = time.perf_counter() - t0
    assert len(study.trials) == n_trials
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=2000, help="random-search trials")
    parser.add_argument("--tpe", type=int, default=300, help="TPE trials")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_table(BENCHMARK)  # read once, outside every timing
    print(f"{BENCHMARK}, SQLite, trials per second (median of {args.repeats} runs)")
    print(
        f"{'strategy':<8} {'trials':>6} {'Optuna, its SQLite':>19} {'Optuna, WAL':>12} "
        f"{'hpstudy':>9} {'vs its SQLite':>14} {'vs WAL':>7}"
    )
    for strategy, n in (("random", args.random), ("tpe", args.tpe)):
        times: dict[str, list[float]] = {"plain": [], "wal": [], "hpstudy": []}
        for r in range(args.repeats):
            for kind in times:
                with tempfile.TemporaryDirectory() as tmp:
                    if kind == "hpstudy":
                        times[kind].append(time_hpstudy(strategy, n, Path(tmp)))
                    else:
                        times[kind].append(time_optuna(strategy, n, Path(tmp), kind == "wal"))
            print(
                f"  run {r}: {strategy} "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            )
        rate = {k: n / statistics.median(v) for k, v in times.items()}
        print(
            f"{strategy:<8} {n:>6} {rate['plain']:>19.1f} {rate['wal']:>12.1f} "
            f"{rate['hpstudy']:>9.1f} {rate['hpstudy'] / rate['plain']:>13.1f}x "
            f"{rate['hpstudy'] / rate['wal']:>6.1f}x"
        )


if __name__ == "__main__":
    main()
