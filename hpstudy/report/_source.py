"""The trial table from storage: the live source of the analysis (the other is the exported
raw results, ``hpstudy.analysis.read_results``). Reads only: test scores come from the cache
the workers fill when a study finishes; nothing is retrained here."""

from __future__ import annotations

import math
from typing import Any

from optuna.trial import FrozenTrial

from hpstudy._redact import redact_url
from hpstudy.analysis import Study, Trial, TrialTable, picks_needed
from hpstudy.analysis._table import Optimum, References
from hpstudy.config import ExperimentConfig
from hpstudy.report._collect import ExperimentData, StudyData, collect_experiment
from hpstudy.scoring import TestScore, cached_scores


def to_trial(t: FrozenTrial, fixed: dict[str, Any], scores: TestScore | None) -> Trial:
    a = t.user_attrs
    value = t.value if t.state.name == "COMPLETE" else None
    return Trial(
        number=t.number, state=t.state.name,
        value=None if value is None or math.isnan(value) else float(value),
        epochs=int(a.get("epochs", 0) or 0), seconds=float(a.get("seconds", 0.0) or 0.0),
        params={**fixed, **t.params}, best_epoch=a.get("best_epoch"), n_params=a.get("n_params"),
        fail_reason=a.get("fail_reason"),
        test_scores=tuple(scores.scores) if scores is not None else None,
        test_cross_entropy=tuple(scores.cross_entropy) if scores and scores.cross_entropy else None,
        curve=dict(t.intermediate_values) if t.intermediate_values else None,
    )  # fmt: skip


def to_study(s: StudyData, fixed: dict[str, Any]) -> Study:
    i = s.info
    scores = cached_scores(s.attrs)
    trials = tuple(to_trial(t, fixed, scores.get(t.number)) for t in s.trials)
    return Study(
        name=i.name, experiment=i.experiment, task=i.task, strategy=i.strategy, seed=i.seed,
        metric=i.metric, direction=i.direction, kind=i.kind, budget=i.budget,
        fingerprint=i.fingerprint, objective=i.objective, objective_direction=i.objective_direction,
        benchmark=str(s.attrs.get("benchmark") or ""), repetition=s.attrs.get("repetition"),
        references=References.parse(s.attrs.get("reference_scores")),
        optimum=Optimum.parse(s.attrs.get("optimum")), trials=tuple(sorted(trials, key=lambda t: t.number)),
    )  # fmt: skip


def to_table(data: ExperimentData, config: ExperimentConfig, source: str) -> TrialTable:
    fixed = config.fixed_params()
    studies = tuple(to_study(s, fixed) for s in data.studies)
    return TrialTable(
        data.experiment, config, studies, source=source,
        from_tables=config.benchmark_family is not None,
    )  # fmt: skip


def table_from_storage(storage_url: str, experiment: str, *, warn: bool = True) -> TrialTable:
    """Every study and trial of ``experiment`` in the storage, with cached test scores; with
    ``warn``, a warning names the studies that lack scores the analysis reads, with the
    command that computes them."""
    from hpstudy.store import stored_config

    data = collect_experiment(storage_url, experiment)
    config = stored_config(data.studies[0].info, storage_url)
    table = to_table(data, config, redact_url(storage_url))
    if warn:
        warn_unscored(table, storage_url)
    return table


def unscored(table: TrialTable) -> list[str]:
    """The studies whose cache lacks a test score the analysis reads (their best trial or a
    pick at equal compute: :func:`hpstudy.analysis.picks_needed`)."""
    by_name = {s.name: s for s in table.studies}
    return [
        name
        for name, numbers in picks_needed(table).items()
        if any(t.number in numbers and t.test_scores is None for t in by_name[name].trials)
    ]


def warn_unscored(table: TrialTable, storage_url: str) -> list[str]:
    """Warn once, naming the command that computes them, when studies lack test scores;
    nothing is retrained here. Returns those studies."""
    import logging
    import os

    from hpstudy.store import DEFAULT_STORAGE, ENV_STORAGE

    missing = unscored(table)
    if missing:
        implied = storage_url in (DEFAULT_STORAGE, os.environ.get(ENV_STORAGE))
        flag = "" if implied else f" --storage {redact_url(storage_url)}"
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        logging.getLogger("hpstudy").warning(
            "%d of %d studies lack test scores (%s): their seeds are left out of the test "
            "comparisons; compute them with: hpstudy resume %s%s",
            len(missing), len(table.studies), shown, table.experiment, flag,
        )  # fmt: skip
    return missing
