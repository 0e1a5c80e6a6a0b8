"""Profile a study file before running it: per-trial time by task, and an estimate of the run.

Runs ``--trials`` random-search trials per task at ``--seeds`` seeds with one worker
(``--n-jobs 1``) into a temporary SQLite storage, under the file's own space, training
settings and pruner, and prints per task the mean wall time of a trial (claim to finish, as
stored) and its mean epochs. It also times TPE's own sampling over a whole study of the
file's budget on its space (a trivial objective, in memory, as hpstudy samples on its local
copy). Then it estimates the whole file's run time:

    [ sum over tasks of  seeds x (budget x (searching strategies + 0.2 for TPE, which prunes
      less) + manual picks) x (trial time + 7 ms of hpstudy's own per-trial overhead,
      docs/benchmarks.md)  +  TPE studies x TPE's sampling time per study ]  /  1.5

The 1.5 speed-up of two worker processes on two cores is the measured 1.4-1.7x
(docs/benchmarks.md); grid and random trials are taken to cost what random's do (both
average over the same box). It is an estimate: the machine is shared, and test-set
retraining at the first report comes on top, in one process; it is estimated as

    sum over tasks of  seeds x (searching strategies x 4 scored trials (the best and the
    equal-compute picks, of up to 6) + manual) x 3 training seeds x 1.33 (train+validation
    has 4/3 of the training rows) x trial time

``--one-seed TASK`` checks the estimate instead: it runs seed 0 of TASK at the file's full
budget (every strategy, one worker) and times it, then the first report (with its test-set
retraining) and a second one (cached scores).

Run:  .venv/bin/python benchmarks/profile_tasks.py studies/full-4d-a.toml --trials 16
      .venv/bin/python benchmarks/profile_tasks.py studies/full-4d-d.toml --one-seed friedman1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import optuna

from hpstudy.config import ExperimentConfig, load_config
from hpstudy.config._schema import BudgetConfig
from hpstudy.report._collect import collect_experiment
from hpstudy.runner import create_experiment

PARALLEL_SPEEDUP = 1.5
TPE_FACTOR = 1.2
OVERHEAD_S = 0.007


def tpe_sampling_seconds(config: ExperimentConfig) -> float:
    """Seconds TPE spends proposing a whole study's trials on the file's space."""
    from hpstudy.strategies import distributions

    dists = distributions(config)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    for k in range(config.budget.n_trials):
        trial = study.ask(dists)
        study.tell(trial, float(k % 7))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="+")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--one-seed", metavar="TASK", help="time seed 0 of TASK at full budget")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.one_seed:
        for path in args.study:
            one_seed(path, args.one_seed)
        return
    for path in args.study:
        config = load_config(path)
        probe = replace(
            config,
            strategies=("random",),
            seeds=tuple(range(args.seeds)),
            budget=BudgetConfig(n_trials=args.trials),
        )
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'p.db'}"
            start = time.perf_counter()
            create_experiment(probe, url, n_jobs=1)
            wall = time.perf_counter() - start
            data = collect_experiment(url, config.name)
        searching = [s for s in config.strategies if s != "manual"]
        budget = config.budget.n_trials
        tpe_s = tpe_sampling_seconds(config) if "tpe" in searching else 0.0
        total = len(config.tasks) * len(config.seeds) * tpe_s / PARALLEL_SPEEDUP
        retraining = 0.0
        print(f"{path}: {args.trials} random trials x {args.seeds} seed(s) per task, "
              f"--n-jobs 1, {wall:.0f} s in all")  # fmt: skip
        for task in data.tasks():
            trials = [t for s in data.of(task) for t in s.trials if t.datetime_complete]
            seconds = [
                (t.datetime_complete - t.datetime_start).total_seconds()  # type: ignore[operator]
                for t in trials
            ]
            per_trial = statistics.mean(seconds)
            epochs = statistics.mean(int(t.user_attrs.get("epochs", 0)) for t in trials)
            n = len(config.seeds) * (
                budget * (len(searching) - ("tpe" in searching))
                + budget * ("tpe" in searching) * TPE_FACTOR
                + len(config.manual) * ("manual" in config.strategies)
            )
            estimate = n * (per_trial + OVERHEAD_S) / PARALLEL_SPEEDUP
            total += estimate
            scored = len(searching) * 4 + ("manual" in config.strategies)
            retraining += len(config.seeds) * scored * 3 * 1.33 * per_trial
            print(f"  {task:14s} {per_trial:6.3f} s/trial  {epochs:5.1f} epochs/trial  "
                  f"-> {n:.0f} trial-equivalents, {estimate / 60:5.1f} min with --n-jobs 2")  # fmt: skip
        print(f"  TPE sampling: {tpe_s:.1f} s per {budget}-trial study")
        print(f"  ESTIMATED total with --n-jobs 2: {total / 60:.0f} min")
        print(f"  ESTIMATED test-set retraining at the first report: {retraining / 60:.0f} min")


def one_seed(path: str, task: str) -> None:
    """Seed 0 of ``task`` at the file's full budget, one worker, then two reports."""
    from hpstudy.report import write_report

    config = load_config(path)
    config = replace(config, tasks=tuple(t for t in config.tasks if t.name == task), seeds=(0,))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'one.db'}"
        start = time.perf_counter()
        create_experiment(config, url, n_jobs=1)
        run = time.perf_counter() - start
        start = time.perf_counter()
        write_report(url, config.name, Path(tmp) / "first.html")
        first = time.perf_counter() - start
        start = time.perf_counter()
        page, _ = write_report(url, config.name, Path(tmp) / "second.html")
        second = time.perf_counter() - start
        size = page.stat().st_size / 1e6
    print(f"{path} {task}, seed 0 at full budget, --n-jobs 1: run {run:.0f} s; first report "
          f"{first:.0f} s (with test-set retraining); second report {second:.1f} s, {size:.1f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
