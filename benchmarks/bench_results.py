"""Time and size of the shipped experiments' reports, regenerated from their raw results.

For each ``results/NAME.csv.gz`` (written by ``hpstudy export NAME -f csv.gz``): reading the
file back, recomputing every verdict, table and the advice section, and writing the HTML report
with its figures, timed in this process, with the report's size; the baseline in the same run
is reading the file alone (gzip + CSV parse into trials). Nothing is retrained: the test scores
are in the file. The live ``hpstudy report NAME`` on a storage whose test scores are cached (as
the export leaves them) runs the same code after reading the storage instead of the file.

Run:  .venv/bin/python benchmarks/bench_results.py results/*.csv.gz
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import optuna

from hpstudy.report._html import draw_figures, overview_figures, render_html
from hpstudy.report._results import load_results, regenerate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("| file | trials | read the file (baseline) | regenerate + HTML | ratio | HTML size |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.files:
            t0 = time.perf_counter()
            results = load_results(path)
            t_read = time.perf_counter() - t0
            t0 = time.perf_counter()
            results = load_results(path)
            summaries, advice = regenerate(results)
            page = render_html(
                results.data, summaries, draw_figures(results.data),
                overview_figures(summaries), advice,
            )  # fmt: skip
            out = Path(tmp) / f"{results.data.experiment}.html"
            out.write_text(page)
            t_all = time.perf_counter() - t0
            n = sum(len(s.trials) for s in results.data.studies)
            print(
                f"| {path.name} | {n:,} | {t_read:.1f} s | {t_all:.1f} s | {t_all / t_read:.1f}x "
                f"| {out.stat().st_size / 1e6:.1f} MB |"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
