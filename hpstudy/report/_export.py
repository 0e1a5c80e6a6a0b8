"""``hpstudy export``: one row per trial, plus the summary table, as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hpstudy._errors import ConfigError
from hpstudy._paths import default_output
from hpstudy.analysis import TaskSummary, TrialTable, analyze
from hpstudy.analysis._verdict import RULE

TRIAL_COLUMNS = [
    "experiment",
    "task",
    "strategy",
    "seed",
    "study",
    "number",
    "state",
    "value",
    "epochs_trained",  # "epochs", when searched, is the hyperparameter
    "seconds",
    "fail_reason",
    "counted",
]


def trial_rows(table: TrialTable) -> list[dict[str, Any]]:
    """Every trial of the experiment (any state) with its searched parameters as columns."""
    searched = set(table.config.searched_params())
    rows = []
    for s in table.studies:
        for t in s.trials:
            row: dict[str, Any] = {
                "experiment": s.experiment, "task": s.task, "strategy": s.strategy,
                "seed": s.seed, "study": s.name, "number": t.number, "state": t.state,
                "value": t.value, "epochs_trained": t.epochs, "seconds": t.seconds,
                "fail_reason": t.fail_reason,
                # False for interrupted, stale and given-up attempts: not the budget's, not compute
                "counted": t.counted if t.finished else None,
            }  # fmt: skip
            row.update({k: v for k, v in t.params.items() if k in searched})
            rows.append(row)
    return rows


def summary_rows(summaries: list[TaskSummary]) -> list[dict[str, Any]]:
    """The summary tables, one row per (task, strategy), spreads flattened, with the verdict
    against the baseline where there is one."""
    rows = []
    for summary in summaries:
        for r in summary.rows:
            row: dict[str, Any] = {
                "task": summary.task,
                "metric": summary.metric,
                "direction": summary.direction,
            }
            for key, value in asdict(r).items():
                if key == "test_regret" and value is None:
                    continue  # a trained task: no known optimum, no regret columns
                if isinstance(value, dict):
                    for part in ("median", "low", "high", "n"):
                        row[f"{key}_{part}"] = value[part]
                else:
                    row[key] = value
            v = next((v for v in summary.verdicts if v.strategy == r.strategy), None)
            row["baseline"] = summary.baseline
            row["verdict"] = v.verdict if v is not None else None
            rows.append(row)
    return rows


def _without_none_regret(row: dict[str, Any]) -> dict[str, Any]:
    """A trained task's row as before regret existed (only benchmark tasks have one)."""
    return {k: v for k, v in row.items() if not (k == "test_regret" and v is None)}


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def comparison_rows(summaries: list[TaskSummary]) -> list[dict[str, Any]]:
    """Per task and comparison: the effect, its CI, the tests, the verdict, and compute."""
    rows = []
    for s in summaries:
        for v in s.verdicts:
            row: dict[str, Any] = {"metric": s.metric, "direction": s.direction}
            row.update(asdict(v))
            row["margin_spec"] = s.margin_spec
            row["compute_ratios"] = [
                {
                    "unit": c.unit, "level": c.level, "method": c.method,
                    "ratio": c.estimate, "ci_low": c.ci_low, "ci_high": c.ci_high, "ci_level": c.ci_level,
                    "seeds": c.seeds, "censored": c.censored, "undecided": c.summary.undecided,
                    "per_seed": [
                        {"seed": r.seed, "strategy_cost": r.strategy_cost, "baseline_cost": r.baseline_cost,
                         "strategy_reached": r.strategy_reached, "baseline_reached": r.baseline_reached}
                        for r in c.per_seed
                    ],
                }
                for c in s.compute or [] if c.strategy == v.strategy
            ]  # fmt: skip
            row["equal_compute"] = [
                {k: getattr(e, k) for k in ("fraction", "difference", "ci_low", "ci_high", "p_noninferiority", "seeds")}
                | {"test_median": e.test.median}
                | ({"test_regret_median": e.test_regret.median} if e.test_regret is not None else {})
                for e in s.equal or [] if e.strategy == v.strategy
            ]  # fmt: skip
            row["smallest_noninferior_fraction"] = (s.smallest_fraction or {}).get(v.strategy)
            rows.append(row)
    return rows


def export_experiment(
    storage_url: str,
    experiment: str,
    fmt: str = "csv",
    output: str | Path | None = None,
) -> list[Path]:
    """Export ``experiment``: ``json`` writes one file (trials, summary, verdicts, advice);
    ``csv`` writes the trials to OUTPUT and the summary table beside it (``*.summary.csv``);
    ``csv.gz`` writes the raw results ``hpstudy results`` recomputes everything from (one row per
    trial with its test scores, and the study file beside it as ``NAME.toml``).

    Reads only: test scores are those the workers cached when each study finished.

    Returns:
        The files written.
    """
    from hpstudy.report._html import write_atomic
    from hpstudy.report._source import table_from_storage

    if fmt not in ("csv", "json", "csv.gz"):
        raise ConfigError(f"--format must be csv, csv.gz or json, got {fmt!r}")
    if fmt == "csv.gz":
        from hpstudy.report._results import write_trials_csv_gz

        target = Path(output) if output else default_output("reports", (experiment,), ".csv.gz")
        return write_trials_csv_gz(table_from_storage(storage_url, experiment), target)
    analysis = analyze(table_from_storage(storage_url, experiment))
    summaries, advice = analysis.summaries, analysis.advice
    path = Path(output) if output else default_output("reports", (experiment,), f".{fmt}")
    trials, summary = trial_rows(analysis.table), summary_rows(summaries)
    if fmt == "json":
        payload = {
            "experiment": analysis.table.experiment,
            "trials": [{k: _clean(v) for k, v in r.items()} for r in trials],
            "summary": [{k: _clean(v) for k, v in r.items()} for r in summary],
            "headline": analysis.headline,
            "family": analysis.family,
            "verdicts": {s.task: s.verdict for s in summaries},
            "rule": RULE,
            "ci_method": "Hodges-Lehmann estimate, exact signed-rank confidence interval (ties exact)",
            "comparisons": [_clean(r) for r in comparison_rows(summaries)],
            "negative_controls": [
                _clean({"metric": s.metric, **asdict(s.control)})
                for s in summaries
                if s.control is not None
            ],
            "advice": _clean(asdict(advice)) if advice is not None else None,
            "winners": [
                _clean({"task": s.task, **_without_none_regret(asdict(w))})
                for s in summaries
                for w in s.winners or []
            ],
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
