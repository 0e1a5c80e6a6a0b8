"""Benchmark start-up: whole commands against the imports they cannot avoid, in one run.

Each command runs as a real process (the console entry point through ``python -m hpstudy``),
interleaved with its baseline so that machine noise hits both alike; the figure is the ratio
of medians, for wall time and for CPU time (user + system of the child, steadier than wall
time on a loaded machine).

- ``status``, ``list`` and ``best`` of a finished one-trial experiment against
  ``python -c "import optuna, sqlalchemy"`` (a command that reads Optuna's storage cannot do
  with less). Target for ``status``: at most 2x.
- ``create`` of a one-trial study (digits, random search, 20 epochs at most) on a fresh
  SQLite file against ``python -c "import torch, optuna"`` (a command that trains with torch
  on Optuna's storage cannot do with less). Target: at most 2.5x.

Run:  .venv/bin/python benchmarks/bench_startup.py [--repeats 7]
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

ONE_TRIAL = """
name = "startup"
seeds = 1
strategies = ["random"]

[budget]
n_trials = 1

[training]
max_epochs = 20

[[tasks]]
name = "digits"
dataset = "digits"

[space]
n_layers = { low = 1, high = 3 }
n_units = { low = 16, high = 256, log = true }
lr = { low = 1e-4, high = 3e-2, log = true }
batch_size = 64
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    hp = [py, "-m", "hpstudy", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "startup.toml").write_text(ONE_TRIAL)
        db = str(work / "read.db")
        timed([*hp, "create", "startup.toml", "--storage", db], work)  # the storage to read
        commands = {
            "import optuna, sqlalchemy": [py, "-c", "import optuna, sqlalchemy"],
            "status": [*hp, "status", "startup", "--storage", db],
            "list": [*hp, "list", "--storage", db],
            "best": [*hp, "best", "startup", "--storage", db],
            "import torch, optuna": [py, "-c", "import torch, optuna"],
            "create (one trial)": [*hp, "create", "startup.toml"],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for r in range(args.repeats):
            for name, cmd in commands.items():
                if name.startswith("create"):
                    cmd = [*cmd, "--storage", str(work / f"create{r}.db")]
                times[name].append(timed(cmd, work))
    load = os.getloadavg()[0]
    print(f"{args.repeats} interleaved runs each; load average {load:.1f} at the end")
    print(f"{'command':28s} {'wall (median)':>14s} {'CPU (median)':>13s}")
    med = {
        n: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for n, t in times.items()
    }
    for name, (wall, cpu) in med.items():
        print(f"{name:28s} {wall:13.2f}s {cpu:12.2f}s")
    print()
    for name, base, target in [
        ("status", "import optuna, sqlalchemy", 2.0),
        ("list", "import optuna, sqlalchemy", None),
        ("best", "import optuna, sqlalchemy", None),
        ("create (one trial)", "import torch, optuna", 2.5),
    ]:
        wall, cpu = med[name][0] / med[base][0], med[name][1] / med[base][1]
        goal = f" (target <= {target}x)" if target else ""
        print(f"{name} / {base}: {wall:.2f}x wall, {cpu:.2f}x CPU{goal}")


if __name__ == "__main__":
    main()
