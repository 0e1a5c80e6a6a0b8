"""The report's test-score retraining with torch's default thread count against one thread.

Before issue 20 the report (and ``train-best``) retrained in the main process with torch's
default (one thread per core), while trials run with ``training.torch_threads`` (1). This
script times the same retraining both ways, each in a fresh process, alternating the two
settings ``--repeats`` times, and prints the median seconds of each and their ratio. The
work is :func:`hpstudy.report._test_scores.retrain_test_scores` of a few configurations of a
built-in task, exactly what a report retrains per study. ``--concurrent 2`` runs two copies
of each setting at once (a report next to another process, as on a busy machine).

Run:  .venv/bin/python benchmarks/bench_retrain_threads.py [--task digits] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import sys, time, json
import torch
threads = int(sys.argv[1])
if threads > 0:
    torch.set_num_threads(threads)
import optuna
from hpstudy.config import parse_config
from hpstudy.report._test_scores import retrain_test_scores
from optuna.distributions import IntDistribution
task = sys.argv[2]
config = parse_config(f'''
name = "bench"
seeds = 1
strategies = ["random"]
[budget]
n_trials = 1
[training]
max_epochs = 40
device = "cpu"
[[tasks]]
dataset = "{task}"
[space]
n_units = {{ low = 16, high = 256 }}
''')
t0 = time.perf_counter()
for units in (64, 128, 256):
    trial = optuna.trial.create_trial(
        params={"n_units": units}, distributions={"n_units": IntDistribution(16, 256)},
        value=0.0, user_attrs={"best_epoch": 30},
    )
    retrain_test_scores(config, task, 0, trial)
print(json.dumps({"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}))
"""


def run(threads: int, task: str, concurrent: int) -> tuple[float, int]:
    """Seconds (the slowest of ``concurrent`` simultaneous children) and their thread count."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(threads), task],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(concurrent)
    ]
    results = [json.loads(p.communicate()[0]) for p in procs]
    return max(r["seconds"] for r in results), results[0]["threads"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=1)
    args = parser.parse_args()
    default, one = [], []
    default_threads = 0
    t0 = time.perf_counter()
    for _ in range(args.repeats):  # alternate, so load from other work hits both alike
        seconds, default_threads = run(0, args.task, args.concurrent)
        default.append(seconds)
        one.append(run(1, args.task, args.concurrent)[0])
    print(
        f"retraining 3 configurations x 3 seeds of {args.task}, 40 epochs, "
        f"{args.concurrent} process(es) at once, median of {args.repeats} "
        f"(cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}):"
    )
    print(
        f"  torch default ({default_threads} threads): {statistics.median(default):.2f} s  {default}"
    )
    print(f"  1 thread (as trials, issue 20):     {statistics.median(one):.2f} s  {one}")
    print(
        f"  ratio default / 1 thread: {statistics.median(default) / statistics.median(one):.2f}x"
    )
    print(f"  (wall {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
