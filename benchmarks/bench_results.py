"""Time and size of the shipped experiments' first reports, from their raw results.

For each ``results/NAME.csv.gz`` (written by ``hpstudy export NAME -f csv.gz``), in one run:

* the baseline: reading the file back into the trial table (gzip + CSV parse);
* the analysis: every verdict, compute ratio, equal-compute row, negative control and the
  advice section (``hpstudy.analysis.analyze``, in this process);
* the whole first report as a user runs it: ``hpstudy results NAME.csv.gz --html-dir DIR`` as
  a new process (imports, reading, analysis, the HTML with its figures), its wall time and peak
  memory (``ru_maxrss`` of the child), and the HTML's size.

Nothing is retrained anywhere: test scores are computed when a study finishes and are in the
file; ``hpstudy report NAME`` runs the same analysis on the table read from storage.

Run:  .venv/bin/python benchmarks/bench_results.py results/*.csv.gz
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpstudy.analysis import analyze, read_results

HPSTUDY = Path(sys.executable).with_name("hpstudy")
_MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    print(
        "| file | trials | read the file (baseline) | analysis | ratio | first report, whole "
        "process | its peak memory | HTML size |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.files:
            t0 = time.perf_counter()
            table = read_results(path)
            t_read = time.perf_counter() - t0
            t0 = time.perf_counter()
            analyze(table)
            t_analysis = time.perf_counter() - t0
            t0 = time.perf_counter()
            # a fresh parent per file, so the child's peak memory is this report's alone
            done = subprocess.run(
                [sys.executable, "-c", _MEASURE, str(HPSTUDY), "-q", "results", str(path),
                 "-o", os.path.join(tmp, "r.md"), "--html-dir", tmp],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            t_report = time.perf_counter() - t0
            peak = int(done.stdout.split()[-1])
            html = Path(tmp) / f"{table.experiment}.html"
            n = sum(len(s.trials) for s in table.studies)
            print(
                f"| {path.name} | {n:,} | {t_read:.1f} s | {t_analysis:.1f} s "
                f"| {t_analysis / t_read:.1f}x | {t_report:.1f} s "
                f"| {peak / 1024:.0f} MB | {html.stat().st_size / 1e6:.1f} MB |"
            )


if __name__ == "__main__":
    main()
