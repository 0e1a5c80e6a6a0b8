"""Where the quickstart's time goes once started: training, and everything around it by part.

Runs ``studies/quickstart.toml`` (digits and diabetes, manual, grid, random and TPE, 100
trials) in this process on a fresh SQLite file with one worker and no progress display, as
``hpstudy -q create`` does, with timers wrapped around the runner's parts (this script's own
instrumentation; the wrappers add about a microsecond a call):

- training: ``train()`` minus the per-epoch hook (the trials' own work);
- the per-epoch hook: Optuna's pruner on the local copy, progress, live flushes;
- sampling: the sampler's own ``sample`` (TPE's Parzen estimators, counted apart as the issue
  asks), and making the per-trial sampler;
- storage: every transaction of ``TrialWriter`` and every read of ``TrialReader``/the local
  copy's sync, stale-trial recovery;
- test scoring: a finished study's picks retrained and scored on the test split, and its
  reference models, in the worker that finished it (issues 16 and 20): work the report needs,
  not orchestration, counted apart;
- the rest of the loop (memory check, counting, bookkeeping), by difference.

Overhead once started = (``run_studies`` time - warm-up - test scoring - training) /
training; "without sampling" takes the sampling part out as well.

Each part is timed on two clocks: wall time, and the CPU time of this process
(``time.process_time``, under a microsecond a reading). On a machine other work keeps busy a
process run under ``nice`` gets a few percent of a core, so a wall-clock interval of a few
microseconds now and then holds a whole wait for the CPU: wall shares of the small parts are
then noise, while CPU shares are not disturbed (no part waits on disk: SQLite commits
without ``fsync`` in WAL mode with ``synchronous=NORMAL``).

Run:  .venv/bin/python benchmarks/bench_overhead.py [--repeats 3] [--study studies/quickstart.toml]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from hpstudy.config import load_config
from hpstudy.runner import _parallel, _run, create_experiment
from hpstudy.runner._local import LocalStudy
from hpstudy.store import TrialReader, TrialWriter

ROOT = Path(__file__).resolve().parent.parent
SPENT: dict[str, float] = defaultdict(float)  # wall seconds per part
CPU: dict[str, float] = defaultdict(float)  # CPU seconds per part
# CPU seconds and calls of each storage call (counted as in its part: outermost only)
STORAGE_CPU: dict[str, float] = defaultdict(float)
STORAGE_CALLS: dict[str, int] = defaultdict(int)
_active: list[str] = []
_CONTAINERS = {"run_studies", "train()"}  # parts inside these are counted on their own


def _timed(part: str, fn: Callable[..., Any], call: str = "") -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # A part inside another part (a read inside a sync, a flush inside the epoch hook)
        # counts once, in the outer one; training and the whole run contain the others.
        counted = all(a in _CONTAINERS for a in _active)
        _active.append(part)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _active.pop()
            if counted:
                SPENT[part] += time.perf_counter() - t0
                CPU[part] += time.process_time() - c0
                if call:
                    STORAGE_CPU[call] += time.process_time() - c0
                    STORAGE_CALLS[call] += 1

    return wrapper


def _instrument() -> None:
    for name in (
        "add_trial",
        "claim_number",
        "set_params",
        "claim",
        "finish",
        "write_intermediate",
        "heartbeat",
        "fail_and_requeue",
    ):
        setattr(TrialWriter, name, _timed("storage", getattr(TrialWriter, name), name))
    for name in ("poll", "fetch", "running_health"):
        if hasattr(TrialReader, name):
            setattr(TrialReader, name, _timed("storage", getattr(TrialReader, name), name))
    LocalStudy.sync = _timed("storage", LocalStudy.sync, "sync")  # type: ignore[method-assign]
    _run.recover_stale = _timed("storage", _run.recover_stale, "recover_stale")
    LocalStudy.sample = _timed("sampling", LocalStudy.sample)  # type: ignore[method-assign]
    _run.make_sampler = _timed("sampling", _run.make_sampler)
    _run.warm_up = _timed("warm-up", _run.warm_up)
    _run._score_finished = _timed("test scoring", _run._score_finished)
    _run.train = _timed("train()", _run.train)
    hook = _run._EpochReporter.__call__
    _run._EpochReporter.__call__ = _timed("per-epoch hook", hook)  # type: ignore[method-assign]
    _parallel.run_studies = _timed("run_studies", _parallel.run_studies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--study", default=str(ROOT / "studies" / "quickstart.toml"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _instrument()
    config = load_config(args.study)
    shares: dict[str, dict[str, list[float]]] = {
        "wall": defaultdict(list),
        "CPU": defaultdict(list),
    }
    for r in range(args.repeats):
        SPENT.clear()
        CPU.clear()
        STORAGE_CPU.clear()
        STORAGE_CALLS.clear()
        with tempfile.TemporaryDirectory() as tmp:
            _, results = create_experiment(config, f"sqlite:///{Path(tmp) / 'o.db'}")
        n = sum(res.counts.finished for res in results)
        for clock, spent in (("wall", SPENT), ("CPU", CPU)):
            hook = spent["per-epoch hook"]
            training = spent["train()"] - hook
            once_started = spent["run_studies"] - spent["warm-up"] - spent["test scoring"]
            rest = once_started - spent["train()"] - spent["sampling"] - spent["storage"]
            parts = {
                "per-epoch hook": hook,
                "sampling": spent["sampling"],
                "storage": spent["storage"],
                "rest of the loop": rest,
            }
            overhead = once_started - training
            own = overhead - spent["sampling"]
            print(
                f"run {r} ({clock}): {n} trials, once started {once_started:.2f} s, "
                f"training {training:.2f} s, overhead {overhead / training:.1%} "
                f"({1000 * overhead / n:.1f} ms a trial), without sampling {own / training:.1%} "
                f"({1000 * own / n:.1f} ms); "
                + ", ".join(f"{k} {v / training:.1%}" for k, v in parts.items())
                + f"; warm-up {spent['warm-up']:.2f} s, test scoring {spent['test scoring']:.2f} s"
            )
            if clock == "CPU":
                print(
                    "  storage by call (CPU ms a trial, calls): "
                    + ", ".join(
                        f"{k} {1000 * v / n:.2f} ({STORAGE_CALLS[k]})"
                        for k, v in sorted(STORAGE_CPU.items(), key=lambda kv: -kv[1])
                    )
                )
            shares[clock]["overhead"].append(overhead / training)
            shares[clock]["without sampling"].append(own / training)
            for k, v in parts.items():
                shares[clock][k].append(v / training)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("medians, as shares of training time:    wall     CPU")
    for k in shares["wall"]:
        wall, cpu = (statistics.median(shares[c][k]) for c in ("wall", "CPU"))
        print(f"  {k:34s} {wall:6.1%}  {cpu:6.1%}")


if __name__ == "__main__":
    main()
