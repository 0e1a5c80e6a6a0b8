"""Add each study's benchmark optimum (the ``optimum`` column, for regret) to raw results of a
benchmark experiment exported before the column existed, without re-running anything.

The optimum is what ``hpstudy create`` stores on the study (``runner._lookup.benchmark_attrs``:
the table's best over the study file's space, in the repetition the study's seed observes),
recomputed from the installed tables. The file is written by the one writer of raw results
(``hpstudy export -f csv.gz``'s), and every cell it had is checked to be unchanged before it is
replaced.

    python scripts/add_benchmark_optima.py results/bench/*.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from hpstudy.analysis import read_results
from hpstudy.analysis._table import OPTIMUM_COLUMN, OPTIONAL_COLUMNS, Optimum
from hpstudy.report._results import write_trials_csv_gz
from hpstudy.runner._lookup import benchmark_attrs


def _rows(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.reader(f))


def _check_same(path: Path, before: list[list[str]], after: list[list[str]]) -> None:
    """Every cell of ``before`` is unchanged in ``after``; the only new columns are the
    optimum and the selection objective the writer adds (files exported before it lack it:
    a benchmark study selects on its metric, which is what an empty cell reads as)."""
    old, new = before[0], after[0]
    added = set(new) - set(old)
    if not added <= {OPTIMUM_COLUMN, *OPTIONAL_COLUMNS} or OPTIMUM_COLUMN not in new:
        raise SystemExit(f"{path}: unexpected columns {sorted(added)}")
    if len(before) != len(after):
        raise SystemExit(f"{path}: {len(before)} rows became {len(after)}")
    at = {name: new.index(name) for name in new}
    for x, y in zip(before[1:], after[1:], strict=True):
        if any(y[at[name]] != v for name, v in zip(old, x, strict=True) if name != OPTIMUM_COLUMN):
            raise SystemExit(
                f"{path}: rewriting would change a cell of study {x[old.index('study')]}"
            )
        if "objective" in added and (y[at["objective"]], y[at["objective_direction"]]) != (
            y[at["metric"]],
            y[at["direction"]],
        ):
            raise SystemExit(f"{path}: a study selected on something other than its metric")


def add_optima(path: Path) -> None:
    table = read_results(path)
    if not table.from_tables:
        raise SystemExit(f"{path}: not a benchmark experiment (no table, no optimum)")
    attrs = {task.name: benchmark_attrs(table.config, task) for task in table.config.tasks}
    studies = []
    for s in table.studies:
        own = attrs[s.task](s.seed)
        if own["repetition"] != s.repetition:
            raise SystemExit(f"{path}: {s.name} observed {s.repetition}, not {own['repetition']}")
        studies.append(replace(s, optimum=Optimum.parse(json.loads(json.dumps(own["optimum"])))))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        write_trials_csv_gz(replace(table, studies=tuple(studies)), out)
        before, after = _rows(path), _rows(out)
        _check_same(path, before, after)
        if Path(tmp, out.name.replace(".csv.gz", ".toml")).read_text() != (
            path.with_name(path.name.replace(".csv.gz", ".toml")).read_text()
        ):
            raise SystemExit(f"{path}: the study file beside it would change")
        out.replace(path)
    print(f"{path}: optimum of {len(studies)} studies added")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        add_optima(Path(arg))
