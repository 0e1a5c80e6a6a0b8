"""The raw results as files: one row per trial of an experiment (seed, task, strategy, every
hyperparameter, state, value, epochs, seconds, the held-out test scores of the trials that were
scored) in ``NAME.csv.gz``, and the study file the runs used, exactly as stored, beside it
(``NAME.toml``). ``hpstudy.analysis.read_results`` reads them back into the same trial table the
storage gives, so ``hpstudy results`` runs the same analysis as ``hpstudy report``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from pathlib import Path
from typing import Any

from hpstudy.analysis import TrialTable
from hpstudy.analysis._table import (
    BENCHMARK_COLUMNS,
    COLUMNS,
    OPTIMUM_COLUMN,
    OPTIONAL_COLUMNS,
    REFERENCES_COLUMN,
    scores_json,
    sidecar,
)
from hpstudy.analysis._table import columns_of as _columns_of

__all__ = ["BENCHMARK_COLUMNS", "COLUMNS", "sidecar", "trial_table", "write_trials_csv_gz"]


def _cell(v: Any) -> Any:
    # repr round-trips every float exactly; nan/inf become empty (no such values are stored)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return "" if v is None else v


def trial_table(table: TrialTable) -> list[list[Any]]:
    """One row per trial of every study (any state), in the studies' stored order."""
    rows = []
    _, param_columns = _columns_of(table.config)
    with_refs = _with_references(table)
    with_optimum = _with_optimum(table)
    for s in table.studies:
        study = [s.experiment, s.task, s.strategy, s.seed, s.name, s.metric, s.direction, s.kind,
                 s.budget, s.fingerprint]  # fmt: skip
        if table.from_tables:
            study += ["benchmark", s.benchmark, s.repetition]
        for t in s.trials:
            trial = [t.number, t.state, t.value, t.epochs, t.seconds, t.best_epoch, t.n_params,
                     t.fail_reason,
                     json.dumps(scores_json(t)) if t.test_scores is not None else None]  # fmt: skip
            params = [t.params.get(p) for p in param_columns]
            selection: list[Any] = [s.select_name, s.select_direction]
            if with_refs:
                refs = s.references
                selection.append(json.dumps(refs.as_json()) if refs is not None else None)
            if with_optimum:
                best = s.optimum
                selection.append(json.dumps(best.as_json()) if best is not None else None)
            rows.append([_cell(v) for v in study + trial + params + selection])
    return rows


def _with_references(table: TrialTable) -> bool:
    """Whether the file gets the reference-models column: only when a study has them, so
    results exported before they existed (and benchmark results) keep their bytes."""
    return any(s.references is not None for s in table.studies)


def _with_optimum(table: TrialTable) -> bool:
    """Whether the file gets the benchmark optimum column (for regret): only when a study has
    one, so results of trained tasks keep their bytes."""
    return any(s.optimum is not None for s in table.studies)


def write_trials_csv_gz(table: TrialTable, output: Path) -> list[Path]:
    """Write ``output`` (gzip CSV, one row per trial) and the study file beside it; reads
    nothing but the table (test scores as cached)."""
    from hpstudy._atomic import atomic_file
    from hpstudy.report._html import write_atomic

    out = io.StringIO()
    writer_csv = csv.writer(out, lineterminator="\n")
    head, param_columns = _columns_of(table.config)
    extra = [REFERENCES_COLUMN] if _with_references(table) else []
    extra += [OPTIMUM_COLUMN] if _with_optimum(table) else []
    writer_csv.writerow(head + param_columns + OPTIONAL_COLUMNS + extra)
    writer_csv.writerows(trial_table(table))
    # no name, mtime 0: the same results give the same bytes, so a shipped file changes only
    # with them; an ordinary file (the umask's mode), not mkstemp's 0600
    with (
        atomic_file(output) as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
    ):
        gz.write(out.getvalue().encode())
    toml = sidecar(output)
    write_atomic(toml, table.config.text)
    return [output, toml]
