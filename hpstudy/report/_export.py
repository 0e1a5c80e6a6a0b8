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
from hpstudy.report._collect import ExperimentData
from hpstudy.report._sentences import headline
from hpstudy.report._summary import TaskSummary
from hpstudy.report._verdict import RULE
from hpstudy.store import counts_toward_budget

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


def trial_rows(data: ExperimentData) -> list[dict[str, Any]]:
    """Every trial of the experiment (any state) with its parameters as columns."""
    rows = []
    for s in data.studies:
        for t in s.trials:
            row: dict[str, Any] = {
                "experiment": s.info.experiment, "task": s.info.task, "strategy": s.info.strategy,
                "seed": s.info.seed, "study": s.info.name, "number": t.number, "state": t.state.name,
                "value": t.value, "epochs_trained": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
                "fail_reason": t.user_attrs.get("fail_reason"),
                # False for interrupted, stale and given-up attempts: not the budget's, not compute
                "counted": counts_toward_budget(t) if t.state.is_finished() else None,
            }  # fmt: skip
            row.update(t.params)
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
            row["compute_target"] = s.target
            row["compute_ratios"] = {
                c.unit: {
                    "ratio": c.estimate, "ci_low": c.ci_low, "ci_high": c.ci_high, "ci_level": c.ci_level,
                    "seeds": c.seeds, "never_reached": c.censored,
                    "per_seed": [
                        {"seed": r.seed, "strategy_cost": r.strategy_cost, "baseline_expected_cost": r.baseline_cost, "reached": r.reached}
                        for r in c.per_seed
                    ],
                }
                for c in s.compute or [] if c.strategy == v.strategy
            }  # fmt: skip
            row["equal_compute"] = [
                {k: getattr(e, k) for k in ("fraction", "difference", "ci_low", "ci_high", "p_noninferiority", "seeds")}
                | {"test_median": e.test.median}
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
    *,
    test: bool = True,
) -> list[Path]:
    """Export ``experiment``: ``json`` writes one file (trials, summary, verdicts, advice);
    ``csv`` writes the trials to OUTPUT and the summary table beside it (``*.summary.csv``);
    ``csv.gz`` writes the raw results ``hpstudy results`` recomputes everything from (one row per
    trial with its test scores, and the study file beside it as ``NAME.toml``).

    Returns:
        The files written.
    """
    from hpstudy.report._advice import advice_from_experiment
    from hpstudy.report._html import analyze, stored_config, write_atomic

    if fmt not in ("csv", "json", "csv.gz"):
        raise ConfigError(f"--format must be csv, csv.gz or json, got {fmt!r}")
    if fmt == "csv.gz":
        from hpstudy.report._results import write_trials_csv_gz

        target = Path(output) if output else default_output("reports", (experiment,), ".csv.gz")
        return write_trials_csv_gz(storage_url, experiment, target, test=test)
    data, summaries = analyze(storage_url, experiment, test=test)
    path = Path(output) if output else default_output("reports", (experiment,), f".{fmt}")
    trials, summary = trial_rows(data), summary_rows(summaries)
    if fmt == "json":
        advice = advice_from_experiment(data, stored_config(data, storage_url))
        payload = {
            "experiment": data.experiment,
            "trials": [{k: _clean(v) for k, v in r.items()} for r in trials],
            "summary": [{k: _clean(v) for k, v in r.items()} for r in summary],
            "headline": headline(summaries),
            "verdicts": {s.task: s.verdict for s in summaries},
            "rule": RULE,
            "ci_method": "Hodges-Lehmann estimate, exact Wilcoxon signed-rank confidence interval",
            "comparisons": [_clean(r) for r in comparison_rows(summaries)],
            "advice": _clean(asdict(advice)) if advice is not None else None,
            "winners": [
                _clean({"task": s.task, **asdict(w)}) for s in summaries for w in s.winners or []
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
