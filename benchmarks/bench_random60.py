"""Benchmark: a 60-trial random search through hpstudy against the optuna-examples PyTorch pattern.

Both run as whole processes on a fresh SQLite file each, interleaved:

- ``hpstudy -q create benchmarks/random60/random60.toml`` (digits, random search, 60 trials,
  20 epochs, median pruner with Optuna's defaults, no early stopping);
- ``python benchmarks/random60/optuna_pattern.py`` (the same study as optuna-examples writes
  it: a DataLoader loop, ``trial.report`` + ``trial.should_prune`` every epoch, SQLite,
  ``MedianPruner()``, ``RandomSampler``; one torch thread, as hpstudy uses).

The two draw different random configurations and prune differently, so besides wall and
CPU time the epochs each trained are printed (and the time per epoch trained). hpstudy's
orchestration overhead once started is read from its storage: (last trial's end - first
trial's start - sum of the trials' training seconds) / sum of training seconds.

Run:  .venv/bin/python benchmarks/bench_random60.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

HERE = Path(__file__).resolve().parent / "random60"


def timed(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def epochs_and_overhead(url: str, hpstudy: bool) -> tuple[int, float | None]:
    """Epochs trained over all trials, and (hpstudy only) the overhead once started."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (summary,) = optuna.get_all_study_summaries(url)
    trials = optuna.load_study(study_name=summary.study_name, storage=url).get_trials(
        deepcopy=False
    )
    assert len(trials) == 60, len(trials)
    if not hpstudy:
        return sum(len(t.intermediate_values) for t in trials), None
    epochs = sum(int(t.user_attrs["epochs"]) for t in trials)
    training = sum(float(t.user_attrs["seconds"]) for t in trials)
    start = min(t.datetime_start for t in trials if t.datetime_start)
    end = max(t.datetime_complete for t in trials if t.datetime_complete)
    return epochs, ((end - start).total_seconds() - training) / training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, int]]] = {"hpstudy": [], "optuna pattern": []}
    overheads = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name in rows:
                url = f"sqlite:///{Path(tmp) / f'{name[:6]}{r}.db'}"
                if name == "hpstudy":
                    cmd = [sys.executable, "-m", "hpstudy", "-q", "create"]
                    cmd += [str(HERE / "random60.toml"), "--storage", url]
                else:
                    cmd = [sys.executable, str(HERE / "optuna_pattern.py"), url]
                wall, cpu = timed(cmd)
                epochs, overhead = epochs_and_overhead(url, name == "hpstudy")
                rows[name].append((wall, cpu, epochs))
                if overhead is not None:
                    overheads.append(overhead)
                extra = f", overhead once started {overhead:.1%}" if overhead is not None else ""
                print(
                    f"run {r} {name}: {wall:.1f} s wall, {cpu:.1f} s CPU, {epochs} epochs{extra}"
                )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    med = {n: tuple(statistics.median(x[i] for x in v) for i in range(3)) for n, v in rows.items()}
    h, o = med["hpstudy"], med["optuna pattern"]
    print(f"wall: optuna pattern / hpstudy = {o[0] / h[0]:.2f}x (target >= 3x)")
    print(f"CPU:  optuna pattern / hpstudy = {o[1] / h[1]:.2f}x")
    print(
        f"per epoch trained (wall): {1000 * o[0] / o[2]:.1f} ms against {1000 * h[0] / h[2]:.1f} ms"
        f" = {(o[0] / o[2]) / (h[0] / h[2]):.2f}x"
    )
    print(f"hpstudy overhead once started (median): {statistics.median(overheads):.1%}")


if __name__ == "__main__":
    main()
