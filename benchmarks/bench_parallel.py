"""Benchmark worker processes: trials per minute with ``--n-jobs 2`` against ``--n-jobs 1``.

Runs the real command, ``hpstudy -q create studies/quickstart.toml --n-trials N --n-jobs J``,
on a fresh SQLite file per run (the quickstart tasks: digits and diabetes, all four core
strategies), alternating J = 1 and J = 2 so machine noise hits both alike. Wall time is the
whole command, process start-up included. Overhead with several workers is the share of
worker time not spent inside ``train()``: (J x wall - sum of trial seconds) / sum of trial
seconds, start-up, storage, sampling and the idle tail included.

Run:  .venv/bin/python benchmarks/bench_parallel.py [--n-trials 40] [--repeats 2]
      [--baseline DIR]   (DIR: another hpstudy source tree, e.g. ``git archive main``, run
      alternately with this one through PYTHONPATH: a same-run before/after comparison)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent


def run_once(
    n_jobs: int, n_trials: int, workdir: Path, tag: str, source: Path | None = None
) -> dict[str, float]:
    db = workdir / f"{tag}.db"
    url = f"sqlite:///{db}"
    cmd = [
        sys.executable,
        "-m",
        "hpstudy",
        "-q",
        "create",
        str(ROOT / "studies" / "quickstart.toml"),
        "--storage",
        url,
        "--n-trials",
        str(n_trials),
        "--n-jobs",
        str(n_jobs),
    ]
    t0 = time.perf_counter()
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    trials = [
        t
        for s in optuna.get_all_study_summaries(url)
        for t in optuna.load_study(study_name=s.study_name, storage=url).get_trials(deepcopy=False)
    ]
    seconds = sum(t.user_attrs.get("seconds", 0.0) for t in trials)
    # Steady state: from the first trial's start to the last trial's end (start-up excluded).
    span = (
        max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    ).total_seconds()
    return {
        "wall": wall,
        "trials": len(trials),
        "per_minute": 60 * len(trials) / wall,
        "steady_per_minute": 60 * len(trials) / span,
        "overhead": (n_jobs * wall - seconds) / seconds,
        "steady_overhead": (n_jobs * span - seconds) / seconds,
        "workers": len({t.user_attrs.get("worker") for t in trials}),
    }


def _summary(label: str, runs: dict[int, list[dict[str, float]]]) -> float:
    one = statistics.median(r["per_minute"] for r in runs[1])
    two = statistics.median(r["per_minute"] for r in runs[2])
    print(
        f"{label}trials/min: --n-jobs 1 {one:.0f}, --n-jobs 2 {two:.0f} -> speed-up {two / one:.2f}x (target >= 1.7x)"
    )
    one_s = statistics.median(r["steady_per_minute"] for r in runs[1])
    two_s = statistics.median(r["steady_per_minute"] for r in runs[2])
    print(
        f"{label}once started (first trial start to last trial end): {one_s:.0f} vs {two_s:.0f} trials/min -> {two_s / one_s:.2f}x"
    )
    print(
        f"{label}overhead (median): --n-jobs 1 "
        f"{100 * statistics.median(r['overhead'] for r in runs[1]):.1f}%, --n-jobs 2 "
        f"{100 * statistics.median(r['overhead'] for r in runs[2]):.1f}% of trial time (target <= 5%); once started: "
        f"{100 * statistics.median(r['steady_overhead'] for r in runs[1]):.1f}% and "
        f"{100 * statistics.median(r['steady_overhead'] for r in runs[2]):.1f}%"
    )
    return two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another hpstudy source tree to compare")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trees: dict[str, Path | None] = {"": None}
    if args.baseline is not None:
        trees = {"this tree: ": None, "baseline: ": args.baseline}
    runs = {label: {1: [], 2: []} for label in trees}  # type: dict[str, dict[int, list[dict[str, float]]]]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n_jobs in (1, 2):
                for t, (label, source) in enumerate(trees.items()):
                    tag = f"j{n_jobs}r{r}t{t}"
                    result = run_once(n_jobs, args.n_trials, Path(tmp), tag, source)
                    runs[label][n_jobs].append(result)
                    print(
                        f"{label}--n-jobs {n_jobs} run {r}: {result['trials']:.0f} trials in {result['wall']:.1f} s = "
                        f"{result['per_minute']:.0f} trials/min ({result['steady_per_minute']:.0f} once started), overhead {100 * result['overhead']:.1f}% "
                        f"({100 * result['steady_overhead']:.1f}% once started) "
                        f"({result['workers']:.0f} worker processes ran trials)"
                    )
    best = {label: _summary(label, r) for label, r in runs.items()}
    if args.baseline is not None:
        print(
            f"--n-jobs 2 trials/min, this tree / baseline: {best['this tree: '] / best['baseline: ']:.2f}x"
        )


if __name__ == "__main__":
    main()
