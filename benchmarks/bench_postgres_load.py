"""Load test of coordination on one PostgreSQL database: 8, 16 and 32 worker processes.

Trials cost nothing (a test objective: the trial's value is a fixed function of its
parameters, no training), so what is measured is the coordination itself: claiming trials,
storing parameters and results, syncing each worker's copy of the study. For each number of
workers, on a fresh database each:

- **hpstudy**: N processes each running what ``hpstudy worker NAME`` runs
  (``resume_experiment(join=True)``), with ``train`` replaced by the test objective;
- **plain Optuna**: N processes each running ``study.optimize`` on the same study kind, with
  the same storage URL, the same sampler (the one hpstudy builds for the study: a
  ``RandomSampler`` seeded with the study seed, as every worker of a user's script would be)
  and the same objective, stopped by ``MaxTrialsCallback(budget)``.

Both start their first claim at the same moment (a file barrier). Measured: trials per second
(counted trials over the span from the first trial's start to the last one's end), claim
latency (the transaction that creates a trial: hpstudy's budget-guarded claim of a number
and sample index, or of a queued grid trial; Optuna's ``create_new_trial``; median and 99th
percentile over every claim), connections held
(``pg_stat_activity`` for that database, sampled every 0.1 s: peak, and peak per worker
process), duplicates (counted trials whose parameters another counted trial of the study
already had), lost trials (left RUNNING or WAITING, or failed), and the budget (counted trials
against it). The load average of the machine is printed with each run: on a shared 2-core
machine 32 processes are CPU-starved, and the figures say so.

Run:  .venv/bin/python benchmarks/bench_postgres_load.py [--workers 8 16 32] [--trials 640]
      [--url postgresql://postgres@127.0.0.1:5432/test] [--systems hpstudy optuna]
      [--strategy random] [--json results.json] [--heartbeat-interval 0.2 --trial-seconds 1]
      [--task lookup]  (a published benchmark's table: hpstudy's batched path)
      (``--systems hpstudy hpstudy-prepared``: what turning prepared statements off costs)
(``--url``: any database on the server, used to create and drop a fresh one per run; default
``$HPSTUDY_TEST_POSTGRES_URL``.)
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = "load"
# Seconds each trial sleeps (--trial-seconds; 0: trials cost nothing).
TRIAL_SECONDS = 0.0

STUDY = """
name = "{name}"
seeds = 1
strategies = ["{strategy}"]

[budget]
n_trials = {trials}

[training]
max_epochs = 1
patience = 0

[pruner]
type = "none"

[[tasks]]
name = "iris"
dataset = "iris"

[space]
n_layers = {{ low = 1, high = 3 }}
n_units = {{ low = 8, high = 256, log = true }}
dropout = {{ low = 0.0, high = 0.5 }}
lr = {{ low = 1e-4, high = 1e-1, log = true }}
batch_size = 32
"""

# --task lookup: a published tabular benchmark's table (issue 18): a trial is a lookup, and
# hpstudy's workers claim and finish trials in batches (runner/_lookup.py). The benchmark's
# whole space (no [space]: its own levels), 62,208 configurations, so independent draws
# collide by chance only about n^2 / (2 * 62,208) times.
LOOKUP_BENCHMARK = "fcnet/protein_structure"
LOOKUP_STUDY = """
name = "{name}"
seeds = 1
strategies = ["{strategy}"]

[budget]
n_trials = {trials}

[[tasks]]
benchmark = "fcnet/protein_structure"
"""
LOOKUP_CONFIGURATIONS = 62_208


def zero_cost_value(params: dict[str, Any]) -> float:
    """The test objective: a smooth function of the parameters, in the metric's range."""
    lr, units, dropout = params["lr"], params["n_units"], params["dropout"]
    return 1.0 / (1.0 + (math.log10(lr) + 2.5) ** 2 + (math.log2(units) - 6) ** 2 / 10 + dropout)


@contextmanager
def fresh_database(base: str) -> Iterator[str]:
    import sqlalchemy

    name = f"hpstudy_load_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    admin.dispose()  # no connection may cross the fork of the workers
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


class ConnectionSampler(threading.Thread):
    """Samples ``pg_stat_activity`` for one database every 0.1 s (its own connection, to
    another database, is not counted)."""

    def __init__(self, base: str, database: str) -> None:
        super().__init__(daemon=True)
        self.base, self.database = base, database
        self.samples: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.base)
        query = sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db")
        with engine.connect() as conn:
            while not self.stop.is_set():
                self.samples.append(int(conn.execute(query, {"db": self.database}).scalar_one()))
                conn.commit()
                time.sleep(0.1)
        engine.dispose()


# -- the workers (forked from this process: the patches below are inherited) ----------------


def _record(out: Path, index: int, data: dict[str, Any]) -> None:
    (out / f"worker-{index}.json").write_text(json.dumps(data))


def _timed(method: Any, claims: list[float]) -> Any:
    """``method`` with each call's seconds appended to ``claims``."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            claims.append(time.perf_counter() - t0)

    return wrapper


def hpstudy_worker(url: str, out: Path, index: int, prepared: bool = False) -> None:
    """What ``hpstudy worker load`` runs, with the test objective instead of training.
    ``prepared``: with psycopg's server-side prepared statements (its default, which
    hpstudy turns off for PgBouncer's sake), to measure what turning them off costs."""
    import optuna

    import hpstudy.runner._lookup as lookup
    import hpstudy.runner._run as run
    import hpstudy.store._storage as storage_module
    from hpstudy.runner import resume_experiment
    from hpstudy.store import TrialWriter
    from hpstudy.training import TrainResult

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    claims: list[float] = []
    started: list[float] = []

    def train(params: dict[str, Any], *args: Any, **kwargs: Any) -> TrainResult:
        time.sleep(TRIAL_SECONDS)
        score = zero_cost_value(params)
        return TrainResult(score, 1, 1, 0.0, False, [score], 1)

    barrier = run.start_barrier

    def start_barrier(point: str = "claim") -> None:
        barrier(point)
        if not started:
            started.append(time.time())

    def timed(method: Any) -> Any:
        return _timed(method, claims)

    if prepared:
        storage_module._server_connect_args = lambda url: {}  # type: ignore[assignment]
    run.train = train  # type: ignore[assignment]
    run.warm_up = lambda device: None  # type: ignore[assignment]
    run.start_barrier = start_barrier  # type: ignore[assignment]
    lookup.start_barrier = start_barrier  # type: ignore[assignment]
    # a claim: a new number with its sample index (random, TPE) or a queued trial (grid)
    TrialWriter.claim_number = timed(TrialWriter.claim_number)  # type: ignore[method-assign]
    TrialWriter.claim = timed(TrialWriter.claim)  # type: ignore[method-assign]
    # lookup tasks: a batch of new numbers, or of queued trials, in one transaction
    TrialWriter.add_running_trials = timed(TrialWriter.add_running_trials)  # type: ignore[method-assign]
    TrialWriter.claim_many = timed(TrialWriter.claim_many)  # type: ignore[method-assign]
    resume_experiment(EXPERIMENT, url, join=True)
    _record(out, index, {"claims": claims, "start": started[0], "end": time.time()})


def optuna_worker(url: str, out: Path, index: int) -> None:
    """A plain Optuna worker: ``study.optimize`` on the same study, storage, sampler and
    objective, until the study has ``budget`` COMPLETE trials."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.storages import RDBStorage
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from hpstudy._faults import start_barrier
    from hpstudy.runner._resume import resolve_experiment
    from hpstudy.store import open_storage
    from hpstudy.store._optuna import rdb_backend
    from hpstudy.strategies import distributions, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = open_storage(url, create=False)
    config, (info,), _ = resolve_experiment(EXPERIMENT, opened, url)
    backend = rdb_backend(opened)
    if backend is not None:
        backend.engine.dispose()  # only the Optuna storage below holds connections
    dists = {**distributions(config)}
    fixed = config.fixed_params()
    lookup = None
    if config.tasks[0].benchmark is not None:  # --task lookup: the table's value
        from hpstudy.config._benchmarks import repetition_for
        from hpstudy.data._benchmarks import load_table

        table = load_table(config.tasks[0].benchmark)
        repetition = repetition_for(info.seed, config.tasks[0].benchmark)

        def lookup(params: dict[str, Any]) -> float:
            return table.lookup(params, repetition)[0]

    claims: list[float] = []
    RDBStorage._create_new_trial = _timed(RDBStorage._create_new_trial, claims)  # type: ignore[method-assign]

    def objective(trial: optuna.Trial) -> float:
        params: dict[str, Any] = dict(fixed)
        for name, dist in dists.items():
            if isinstance(dist, FloatDistribution):
                params[name] = trial.suggest_float(
                    name, dist.low, dist.high, log=dist.log, step=dist.step
                )
            elif isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(
                    name, dist.low, dist.high, log=dist.log, step=dist.step
                )
            elif isinstance(dist, CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, list(dist.choices))
        time.sleep(TRIAL_SECONDS)
        return zero_cost_value(params) if lookup is None else lookup(params)

    study = optuna.load_study(
        study_name=info.name,
        storage=RDBStorage(url),
        sampler=make_sampler(info.strategy, config, info.seed, 0),
    )
    start_barrier()
    start = time.time()
    study.optimize(
        objective,
        callbacks=[MaxTrialsCallback(info.budget, states=(TrialState.COMPLETE,))],
        gc_after_trial=False,
    )
    _record(out, index, {"claims": claims, "start": start, "end": time.time()})


# -- one run ------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_once(system: str, n_workers: int, args: argparse.Namespace) -> dict[str, Any]:
    import optuna
    from optuna.trial import TrialState

    from hpstudy.store import counts_toward_budget

    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.url) as url:
        folder = Path(tmp)
        study = folder / "load.toml"
        text = LOOKUP_STUDY if args.task == "lookup" else STUDY
        study.write_text(text.format(name=EXPERIMENT, strategy=args.strategy, trials=args.trials))
        created = subprocess.run(
            [sys.executable, "-m", "hpstudy", "-q", "create", str(study), "--storage", url,
             "--no-run"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if created.returncode != 0:
            raise SystemExit(created.stderr)
        barrier = folder / "barrier"
        barrier.mkdir()
        os.environ["HPSTUDY_START_BARRIER"] = f"{barrier}:{n_workers}"
        context = multiprocessing.get_context("fork")
        workers = [
            context.Process(target=optuna_worker, args=(url, folder, i))
            if system == "optuna"
            else context.Process(
                target=hpstudy_worker, args=(url, folder, i, system == "hpstudy-prepared")
            )
            for i in range(n_workers)
        ]
        load_before = os.getloadavg()[0]
        for w in workers:
            w.start()
        sampler = ConnectionSampler(args.url, url.rsplit("/", 1)[1])
        sampler.start()
        for w in workers:
            w.join()
        sampler.stop.set()
        sampler.join()
        del os.environ["HPSTUDY_START_BARRIER"]
        load_after = os.getloadavg()[0]
        codes = [w.exitcode for w in workers]
        records = [json.loads(p.read_text()) for p in sorted(folder.glob("worker-*.json"))]
        (summary,) = optuna.get_all_study_summaries(url)
        trials = optuna.load_study(study_name=summary.study_name, storage=url).get_trials(
            deepcopy=False
        )
    states = Counter(t.state for t in trials)
    counted = [t for t in trials if counts_toward_budget(t)]
    complete = [t for t in counted if t.state == TrialState.COMPLETE]
    configs = Counter(tuple(sorted(t.params.items())) for t in complete)
    starts = [t.datetime_start for t in complete if t.datetime_start]
    ends = [t.datetime_complete for t in complete if t.datetime_complete]
    span = (max(ends) - min(starts)).total_seconds()
    claims = [c for r in records for c in r["claims"]]
    lost = states[TrialState.RUNNING] + states[TrialState.WAITING] + states[TrialState.FAIL]
    return {
        "system": system,
        "workers": n_workers,
        "exit_codes_nonzero": sum(c != 0 for c in codes),
        "budget": args.trials,
        "counted": len(counted),
        "complete": len(complete),
        "duplicates": sum(n - 1 for n in configs.values()),
        "lost": lost,
        "trials_per_s": len(complete) / span if span > 0 else float("nan"),
        "span_s": span,
        "claims": len(claims),
        "claim_median_ms": 1000 * statistics.median(claims) if claims else float("nan"),
        "claim_p99_ms": 1000 * _percentile(claims, 0.99) if claims else float("nan"),
        "connections_peak": max(sampler.samples, default=0),
        "connections_median": statistics.median(sampler.samples) if sampler.samples else 0,
        "load_before": load_before,
        "load_after": load_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--trials", type=int, default=640, help="budget of the one study")
    parser.add_argument(
        "--systems",
        nargs="+",
        default=["hpstudy", "optuna"],
        choices=["hpstudy", "optuna", "hpstudy-prepared"],
        help="hpstudy-prepared: hpstudy with psycopg's server-side prepared statements on",
    )
    parser.add_argument("--strategy", default="random")
    parser.add_argument(
        "--task",
        choices=["objective", "lookup"],
        default="objective",
        help="objective: the test objective on iris's space, one trial per claim (the path of "
        f"trained tasks); lookup: {LOOKUP_BENCHMARK}'s table, hpstudy claiming and finishing "
        "in batches (the path of benchmark tasks)",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "HPSTUDY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        help="seconds between a running trial's heartbeats (default hpstudy's, 10 s, longer "
        "than any trial here: a small value shows the heartbeat thread's connection)",
    )
    parser.add_argument(
        "--trial-seconds",
        type=float,
        default=0.0,
        help="each trial sleeps this long (default 0: trials cost nothing); with a longer "
        "trial than --heartbeat-interval, the heartbeat thread's connection shows",
    )
    args = parser.parse_args()
    global TRIAL_SECONDS
    TRIAL_SECONDS = args.trial_seconds
    if args.heartbeat_interval is not None:  # read when hpstudy.runner is imported
        os.environ["HPSTUDY_HEARTBEAT_INTERVAL"] = str(args.heartbeat_interval)
    # Loaded before forking: every worker starts with torch, optuna and hpstudy imported.
    import hpstudy.runner  # noqa: F401
    import hpstudy.strategies  # noqa: F401

    print(
        f"{os.cpu_count()} CPUs; budget {args.trials} trials of one {args.strategy} study; "
        f"task: {args.task}"
    )
    if args.task == "lookup":
        n = args.trials
        print(
            f"a finite space of {LOOKUP_CONFIGURATIONS} configurations: independent draws "
            f"repeat one by chance about {n * (n - 1) / (2 * LOOKUP_CONFIGURATIONS):.0f} times "
            "in the budget; only duplicates above that are coordination's"
        )
    header = (
        "| system | workers | trials/s | claim median ms | claim p99 ms | connections peak "
        "(per worker) | counted/budget | duplicates | lost | load avg before/after |"
    )
    print(header)
    print("|" + "---|" * 10)
    rows = []
    for n in args.workers:
        for system in args.systems:
            r = run_once(system, n, args)
            rows.append(r)
            print(
                f"| {system} | {n} | {r['trials_per_s']:.0f} | {r['claim_median_ms']:.1f} | "
                f"{r['claim_p99_ms']:.1f} | {r['connections_peak']} "
                f"({r['connections_peak'] / n:.2f}) | {r['counted']}/{r['budget']} | "
                f"{r['duplicates']} | {r['lost']} | {r['load_before']:.1f}/{r['load_after']:.1f} |",
                flush=True,
            )
    by = {(r["system"], r["workers"]): r for r in rows}
    for n in args.workers:
        if ("hpstudy", n) in by and ("optuna", n) in by:
            ratio = by[("hpstudy", n)]["trials_per_s"] / by[("optuna", n)]["trials_per_s"]
            print(f"{n} workers: hpstudy / plain Optuna trials per second = {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
