"""``hpstudy export``: one row per trial, plus the summary table, as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hpstudy._errors import ConfigError
from hpstudy._paths import default_output
from hpstudy.report._collect import ExperimentData
from hpstudy.report._summary import TaskSummary

TRIAL_COLUMNS = [
    "experiment",
    "task",
    "strategy",
    "seed",
    "study",
    "number",
    "state",
    "value",
    "epochs",
    "seconds",
    "fail_reason",
]


def trial_rows(data: ExperimentData) -> list[dict[str, Any]]:
    """Every trial of the experiment (any state) with its parameters as columns."""
    rows = []
    for s in data.studies:
        for t in s.trials:
            row: dict[str, Any] = {
                "experiment": s.info.experiment, "task": s.info.task, "strategy": s.info.strategy,
                "seed": s.info.seed, "study": s.info.name, "number": t.number, "state": t.state.name,
                "value": t.value, "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
                "fail_reason": t.user_attrs.get("fail_reason"),
            }  # fmt: skip
            row.update(t.params)
            rows.append(row)
    return rows


def summary_rows(summaries: list[TaskSummary]) -> list[dict[str, Any]]:
    """The summary tables, one row per (task, strategy), spreads flattened."""
    rows = []
    for summary in summaries:
        for r in summary.rows:
            row: dict[str, Any] = {
                "task": summary.task,
                "metric": summary.metric,
                "direction": summary.direction,
            }
            for key, value in asdict(r).items():
                if isinstance(value, dict):
                    for part in ("median", "low", "high", "n"):
                        row[f"{key}_{part}"] = value[part]
                else:
                    row[key] = value
            rows.append(row)
    return rows


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def export_experiment(
    storage_url: str,
    experiment: str,
    fmt: str = "csv",
    output: str | Path | None = None,
    *,
    retrain: bool = True,
    progress: Callable[[str], None] = lambda name: None,
) -> list[Path]:
    """Export ``experiment``: ``json`` writes one file (trials, summary, verdicts); ``csv``
    writes the trials to OUTPUT and the summary table beside it (``*.summary.csv``).

    Returns:
        The files written.
    """
    from hpstudy.report._html import analyze, write_atomic

    if fmt not in ("csv", "json"):
        raise ConfigError(f"--format must be csv or json, got {fmt!r}")
    data, summaries = analyze(storage_url, experiment, retrain=retrain, progress=progress)
    path = Path(output) if output else default_output("reports", (experiment,), f".{fmt}")
    trials, summary = trial_rows(data), summary_rows(summaries)
    if fmt == "json":
        payload = {
            "experiment": data.experiment,
            "trials": [{k: _clean(v) for k, v in r.items()} for r in trials],
            "summary": [{k: _clean(v) for k, v in r.items()} for r in summary],
            "verdicts": {s.task: s.verdict for s in summaries},
        }
        write_atomic(path, json.dumps(payload, indent=1))
        return [path]
    params = sorted({k for r in trials for k in r} - set(TRIAL_COLUMNS))
    write_atomic(path, _csv(trials, TRIAL_COLUMNS + params))
    summary_path = path.with_name(f"{path.stem}.summary.csv")
    write_atomic(summary_path, _csv(summary, list(summary[0]) if summary else []))
    return [path, summary_path]


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
