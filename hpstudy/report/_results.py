"""The raw results as files, and everything the results page shows recomputed from them.

``write_trials_csv_gz`` writes one row per trial of an experiment (seed, task, strategy, every
hyperparameter, state, value, epochs, seconds, the held-out test scores of the trials the report
scores) to ``NAME.csv.gz``, and the study file the runs used, exactly as stored, beside it
(``NAME.toml``). ``load_results`` turns those two files back into the report's inputs (the
studies, their trials and the test scores), so ``regenerate`` recomputes every verdict and the
advice section with the same code as the live report and retrains nothing; the page that
shows them is ``_results_page.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpstudy._errors import ConfigError
from hpstudy.config import ExperimentConfig, parse_config
from hpstudy.config._schema import HYPERPARAMETERS
from hpstudy.report._advice import Advice, advice_from_experiment
from hpstudy.report._collect import ExperimentData, StudyData, to_record
from hpstudy.report._sentences import summarize
from hpstudy.report._summary import Scores, TaskSummary, picks_needed
from hpstudy.report._test_scores import TestScore

STUDY_COLUMNS = [
    "experiment", "task", "strategy", "seed", "study", "metric", "direction", "kind",
    "budget", "fingerprint",
]  # fmt: skip
TRIAL_COLUMNS = [
    "number", "state", "value", "epochs_trained", "seconds", "best_epoch", "n_params",
    "fail_reason", "test_scores",
]  # fmt: skip
# "epochs_trained" is what a trial trained (pruned and early-stopped runs stop early, every fold
# counted); "epochs", among the hyperparameters, is what it was allowed
PARAM_COLUMNS = list(HYPERPARAMETERS)
COLUMNS = STUDY_COLUMNS + TRIAL_COLUMNS + PARAM_COLUMNS
# Benchmark experiments (a trial is a table lookup): labelled per row, never pooled with real
# training; the repetition a study observed; the benchmark's own hyperparameter names.
BENCHMARK_COLUMNS = ["task_kind", "benchmark", "repetition"]


def columns_of(config: ExperimentConfig) -> list[str]:
    """The file's columns for ``config``'s experiment."""
    if config.benchmark_family is None:
        return COLUMNS
    return STUDY_COLUMNS + BENCHMARK_COLUMNS + TRIAL_COLUMNS + list(config.space)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sidecar(path: Path) -> Path:
    """The study file written beside ``NAME.csv.gz``: ``NAME.toml``."""
    name = path.name
    for suffix in (".csv.gz", ".gz", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.toml")


def _cell(v: Any) -> Any:
    # repr round-trips every float exactly; nan/inf become empty (no such values are stored)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return "" if v is None else v


def trial_table(data: ExperimentData, config: ExperimentConfig, tests: Scores) -> list[list[Any]]:
    """One row per trial of every study (any state), in the studies' stored order."""
    fixed = config.fixed_params()
    rows = []
    for s in data.studies:
        i = s.info
        study = [i.experiment, i.task, i.strategy, i.seed, i.name, i.metric, i.direction, i.kind,
                 i.budget, i.fingerprint]  # fmt: skip
        if config.benchmark_family is not None:
            study += [s.attrs.get(k) for k in BENCHMARK_COLUMNS]
        param_columns = list(config.space) if config.benchmark_family else PARAM_COLUMNS
        scored = tests.get(i.name, {})
        for t in s.trials:
            a = t.user_attrs
            ts = scored.get(t.number)
            trial = [t.number, t.state.name, t.value, a.get("epochs"), a.get("seconds"),
                     a.get("best_epoch"), a.get("n_params"), a.get("fail_reason"),
                     json.dumps(ts.scores) if ts is not None else None]  # fmt: skip
            params = {**fixed, **t.params}
            rows.append([_cell(v) for v in study + trial + [params.get(p) for p in param_columns]])
    return rows


def write_trials_csv_gz(
    storage_url: str,
    experiment: str,
    output: Path,
    *,
    retrain: bool = True,
    progress: Callable[[str], None] = lambda name: None,
    n_jobs: int = 1,
) -> list[Path]:
    """Write ``output`` (gzip CSV, one row per trial) and the stored study file beside it.

    With ``retrain`` the test scores the report needs (each study's best trial and the
    equal-compute picks) are computed first when not cached, as ``hpstudy report`` does.
    """
    from hpstudy.report._collect import collect_experiment
    from hpstudy.report._html import score_cache, stored_config, write_atomic
    from hpstudy.report._test_scores import _cached_by_trial, test_scores

    data = collect_experiment(storage_url, experiment)
    config = stored_config(data, storage_url)
    if retrain:
        tests = test_scores(
            config, data.studies, score_cache(storage_url), progress,
            picks=picks_needed(data, config), n_jobs=n_jobs,
        )  # fmt: skip
    else:
        tests = {s.info.name: _cached_by_trial(s) for s in data.studies}
    out = io.StringIO()
    writer_csv = csv.writer(out, lineterminator="\n")
    writer_csv.writerow(columns_of(config))
    writer_csv.writerows(trial_table(data, config, tests))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    # no name, mtime 0: the same results give the same bytes, so a shipped file changes only with them
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(out.getvalue().encode())
    tmp.replace(output)
    toml = sidecar(output)
    write_atomic(toml, config.text)
    return [output, toml]


@dataclass(frozen=True)
class Results:
    """One experiment read back from its files: what the report computes its numbers from."""

    path: Path
    config: ExperimentConfig
    data: ExperimentData
    tests: Scores


def _number(text: str, kind: type = float) -> Any:
    return None if text == "" else kind(float(text)) if kind is int else kind(text)


def load_results(path: Path) -> Results:
    """Read ``NAME.csv.gz`` and ``NAME.toml`` back into studies, trials and test scores."""
    from optuna.trial import FrozenTrial, TrialState

    from hpstudy.store import StudyCounts, StudyInfo
    from hpstudy.strategies import distribution

    toml = sidecar(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; write it with 'hpstudy export NAME -f csv.gz'")
    if not toml.is_file():
        raise ConfigError(f"{path}: the study file {toml} that belongs beside it is missing")
    config = parse_config(toml.read_text(), source=str(toml), base_dir=toml.parent)
    try:
        with gzip.open(path, "rt", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: not a gzip CSV written by 'hpstudy export -f csv.gz': {e}"
        ) from e
    if rows and not set(columns_of(config)) <= set(rows[0]):
        missing = sorted(set(columns_of(config)) - set(rows[0]))
        raise ConfigError(f"{path}: column(s) {', '.join(missing)} missing; re-export it")
    searched = config.searched_params()
    dists = {n: distribution(p) for n, p in searched.items()}
    by_study: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_study.setdefault(row["study"], []).append(row)
    studies = []
    tests: Scores = {}
    for study_id, (name, own) in enumerate(by_study.items()):
        r0 = own[0]
        info = StudyInfo(
            study_id=study_id, name=name, experiment=r0["experiment"], task=r0["task"],
            strategy=r0["strategy"], seed=int(r0["seed"]), metric=r0["metric"],
            direction=r0["direction"], kind=r0["kind"], budget=int(r0["budget"]), timeout=None,
            fingerprint=r0["fingerprint"], study_file=config.text,
        )  # fmt: skip
        trials = []
        for row in own:
            params = {n: _param(row[n], p.kind, dists[n]) for n, p in searched.items()}
            attrs = {
                k: v
                for k, v in (
                    ("epochs", _number(row["epochs_trained"], int)),
                    ("seconds", _number(row["seconds"])),
                    ("best_epoch", _number(row["best_epoch"], int)),
                    ("n_params", _number(row["n_params"], int)),
                    ("fail_reason", row["fail_reason"] or None),
                )
                if v is not None
            }
            state = TrialState[row["state"]]
            number = int(row["number"])
            trials.append(
                FrozenTrial(
                    number=number, state=state, value=_number(row["value"]),
                    datetime_start=_EPOCH, datetime_complete=_EPOCH if state.is_finished() else None,
                    params=params, distributions={n: dists[n] for n in params}, user_attrs=attrs,
                    system_attrs={}, intermediate_values={}, trial_id=number,
                )
            )  # fmt: skip
            if row["test_scores"]:
                scores = [float(x) for x in json.loads(row["test_scores"])]
                tests.setdefault(name, {})[number] = TestScore(number, scores)
        records = [r for r in map(to_record, trials) if r is not None]
        attrs_of_study: dict[str, Any] = {}
        if config.benchmark_family is not None:
            attrs_of_study = {k: r0[k] for k in BENCHMARK_COLUMNS}
            attrs_of_study["repetition"] = int(r0["repetition"])
        studies.append(
            StudyData(
                info, records, trials, StudyCounts.of(trials, info.direction), attrs_of_study
            )
        )
    if not studies:
        raise ConfigError(f"{path}: no trials")
    return Results(path, config, ExperimentData(studies[0].info.experiment, studies), tests)


def _param(text: str, kind: str, dist: Any) -> Any:
    if kind == "categorical":
        # the CSV holds text: give back the choice itself (numbers stay numbers)
        return next((c for c in dist.choices if str(c) == text), text)
    return int(float(text)) if kind == "int" else float(text)


def regenerate(results: Results) -> tuple[list[TaskSummary], Advice | None]:
    """Every task's summary and the advice section, from the files' numbers only."""
    summaries = summarize(results.data, results.tests, results.config)
    return summaries, advice_from_experiment(results.data, results.config)
