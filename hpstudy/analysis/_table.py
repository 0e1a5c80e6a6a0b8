"""The trial table: the one input of the analysis.

One row per trial of an experiment, grouped by study (task x strategy x seed), each row
carrying what the analysis reads: state, validation value, the compute it spent, its
hyperparameters and, for the trials that were scored, the held-out test scores. Two sources
build it: the storage (``hpstudy.report._source.table_from_storage``) and the exported raw
results (:func:`read_results`, the ``csv.gz`` files in ``results/``), so ``hpstudy report`` and
``hpstudy results`` run the same analysis and cannot disagree.

The rules that used to be written two or three times live here, once each: which trials count
toward the budget (:attr:`Trial.counted`), the count of finished trials
(:attr:`Study.finished`), a study's best trial (:meth:`Study.best`), what is missing
(:attr:`Study.missing`).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from hpstudy._errors import ConfigError
from hpstudy.config import ExperimentConfig, parse_config
from hpstudy.config._schema import HYPERPARAMETERS

# Failures that are not the configuration's fault (an interrupt, a dead worker, given up after
# repeated crashes): never counted toward the budget nor the compute; their retry counts.
UNCOUNTED_REASONS = ("interrupted", "stale", "gave up")

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
# training, the repetition a study observed; their hyperparameters keep the benchmark's names.
BENCHMARK_COLUMNS = ["task_kind", "benchmark", "repetition"]


def columns_of(config: ExperimentConfig) -> tuple[list[str], list[str]]:
    """A raw results file's columns for ``config``'s experiment: (study and trial columns,
    hyperparameter columns)."""
    if config.benchmark_family is None:
        return STUDY_COLUMNS + TRIAL_COLUMNS, PARAM_COLUMNS
    return STUDY_COLUMNS + BENCHMARK_COLUMNS + TRIAL_COLUMNS, list(config.space)


# written after the others; files from before selection on cross-entropy lack them (their
# trials were selected on the metric)
OPTIONAL_COLUMNS = ["objective", "objective_direction"]
# written only when some study has reference scores (files without them keep their bytes)
REFERENCES_COLUMN = "reference_scores"
# written only when some study has a benchmark table's optimum (for regret; files without it
# read as before and show no regret)
OPTIMUM_COLUMN = "optimum"


def counts(state: str, fail_reason: str | None) -> bool:
    """The one rule for what counts toward a budget and the compute: finished trials, except
    failures that were not the configuration's fault (:data:`UNCOUNTED_REASONS`). The runner's
    budget and every report count with it."""
    if state in ("COMPLETE", "PRUNED"):
        return True
    return state == "FAIL" and not str(fail_reason or "").startswith(UNCOUNTED_REASONS)


@dataclass(frozen=True)
class Trial:
    """One trial.

    Attributes:
        number: Trial number (its place in the study's run order).
        state: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``.
        value: Validation score of a COMPLETE trial (``None`` otherwise).
        epochs: Epochs trained, every fold counted (the primary unit of compute).
        seconds: Training wall seconds (secondary: confounded by the machine's load).
        params: Every hyperparameter the trial ran with, fixed ones included.
        test_scores: Held-out test scores of its configuration (one per training seed), when
            it was scored (a study's best trial and the picks at equal compute).
        test_cross_entropy: For classification, the test cross-entropy of the same networks.
        curve: Validation score per epoch, when the source has it (storage: yes; files: no).
    """

    number: int
    state: str
    value: float | None
    epochs: int = 0
    seconds: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)
    best_epoch: int | None = None
    n_params: int | None = None
    fail_reason: str | None = None
    test_scores: tuple[float, ...] | None = None
    curve: Mapping[int, float] | None = None
    test_cross_entropy: tuple[float, ...] | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("COMPLETE", "PRUNED", "FAIL")

    @property
    def counted(self) -> bool:
        """Whether the trial counts toward the budget and the compute (:func:`counts`)."""
        return counts(self.state, self.fail_reason)

    @property
    def interrupted(self) -> bool:
        return self.state == "FAIL" and not self.counted

    @property
    def test(self) -> float:
        """Mean test score (``nan`` when the trial was not scored).

        Summed left to right, as ``hpstudy.data._benchmarks`` computes a table's optimum, so a
        benchmark pick that is the optimum has a regret of exactly 0 (``sum`` compensates its
        rounding from Python 3.12 on, which would not be the same arithmetic)."""
        if not self.test_scores:
            return math.nan
        total = 0.0
        for v in self.test_scores:
            total += v
        return float(total / len(self.test_scores))

    @property
    def test_ce(self) -> float:
        """Mean test cross-entropy (``nan`` when not recorded)."""
        if not self.test_cross_entropy:
            return math.nan
        return float(sum(self.test_cross_entropy) / len(self.test_cross_entropy))


REFERENCE_NAMES = ("mean_or_majority", "linear", "hist_gradient_boosting")


@dataclass(frozen=True)
class References:
    """Reference models fit on one seed's train+validation and scored on its test split
    (cached by the scoring step as the study attr ``reference_scores``).

    Attributes:
        scores: The task's metric on test, by reference (:data:`REFERENCE_NAMES`).
        r2: Regression: each reference's test R^2 (empty for classification).
        test_variance: Regression: variance of the test targets in the metric's units (a
            network's R^2 is ``1 - rmse**2 / test_variance``); ``None`` otherwise.
    """

    scores: Mapping[str, float]
    r2: Mapping[str, float] = field(default_factory=dict)
    test_variance: float | None = None

    @classmethod
    def parse(cls, raw: Any) -> References | None:
        """From the cached/exported JSON object; ``None`` when absent or malformed."""
        if not isinstance(raw, Mapping):
            return None
        try:
            scores = {k: float(raw[k]) for k in REFERENCE_NAMES}
            r2_raw = raw.get("r2") or {}
            r2 = {k: float(v) for k, v in r2_raw.items()} if isinstance(r2_raw, Mapping) else {}
            var = raw.get("test_variance")
            return cls(scores, r2, None if var is None else float(var))
        except (KeyError, TypeError, ValueError):
            return None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.scores)
        if self.r2:
            out["r2"] = dict(self.r2)
        if self.test_variance is not None:
            out["test_variance"] = self.test_variance
        return out


def regret(score: float, best: float, direction: str) -> float:
    """The one rule for regret: the distance of ``score`` to ``best`` (the best any
    configuration reaches), in the metric's units, signed so that 0 is best and larger is
    worse; ``nan`` when either is."""
    return best - score if direction == "maximize" else score - best


@dataclass(frozen=True)
class Optimum:
    """A published tabular benchmark's best over the study file's space, in the repetition a
    study observes (the study attr ``optimum``, written when the study was created).

    Attributes:
        validation: The best validation value of that repetition (what the trials' values
            are): the reference of the validation regret of anytime curves.
        test: The best test score (mean of the repetitions the study did not observe): the
            reference of a pick's test regret.
        test_params: A configuration that reaches ``test``.
    """

    validation: float
    test: float
    test_params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> Optimum | None:
        """From the stored/exported JSON object; ``None`` when absent or malformed."""
        if not isinstance(raw, Mapping):
            return None
        try:
            params = raw.get("test_params") or {}
            return cls(
                float(raw["validation"]),
                float(raw["test"]),
                dict(params) if isinstance(params, Mapping) else {},
            )
        except (KeyError, TypeError, ValueError):
            return None

    def as_json(self) -> dict[str, Any]:
        return {
            "validation": self.validation,
            "test": self.test,
            "test_params": dict(self.test_params),
        }


@dataclass(frozen=True)
class Study:
    """One study: task x strategy x seed, its budget and its trials in run order."""

    name: str
    experiment: str
    task: str
    strategy: str
    seed: int
    metric: str
    direction: str
    kind: str
    budget: int
    fingerprint: str = ""
    trials: tuple[Trial, ...] = ()
    objective: str = ""  # what trials were selected on ("" = the metric)
    objective_direction: str = ""  # its direction ("" = the metric's)
    benchmark: str = ""  # a published tabular benchmark's table ("" = trained here)
    repetition: int | None = None  # the table's repetition this study observed
    references: References | None = None  # reference models on this seed's split
    optimum: Optimum | None = None  # a benchmark table's best over the space (for regret)

    def test_regret(self, trial: Trial | None) -> float:
        """The distance of ``trial``'s test score to the table's best test score over the
        space (:func:`regret`); ``nan`` for a trained task, which has no known optimum, and
        for a trial that was not scored."""
        if self.optimum is None or trial is None:
            return math.nan
        return regret(trial.test, self.optimum.test, self.direction)

    @property
    def select_direction(self) -> str:
        """The direction of the trials' validation values (the selection objective's); test
        scores are in the metric's :attr:`direction`."""
        return self.objective_direction or self.direction

    @property
    def select_name(self) -> str:
        return self.objective or self.metric

    @cached_property
    def runs(self) -> list[Trial]:
        """The trials that count, in run order: what the strategy's run was."""
        return sorted((t for t in self.trials if t.counted), key=lambda t: t.number)

    @property
    def finished(self) -> int:
        """Finished trials that count toward the budget."""
        return sum(t.counted for t in self.trials)

    def count(self, state: str) -> int:
        return sum(t.state == state and (state != "FAIL" or t.counted) for t in self.trials)

    @property
    def interrupted(self) -> list[Trial]:
        return [t for t in self.trials if t.interrupted]

    def best(self) -> Trial | None:
        """The best COMPLETE trial by its validation objective (the first of equals in run
        order)."""
        return self._best

    @cached_property
    def _best(self) -> Trial | None:
        return best_of(self.runs, self.select_direction)

    @property
    def missing(self) -> str | None:
        """A plain sentence when the study has not met its budget or every trial failed."""
        failed = failure_note(self.trials)
        if failed is not None:
            return failed
        if self.finished >= self.budget:
            return None
        parts = [f"{self.finished} of {self.budget} trials finished"]
        running, waiting = self.count("RUNNING"), self.count("WAITING")
        if running:
            parts.append(f"{running} running")
        if waiting:
            parts.append(f"{waiting} waiting")
        return ", ".join(parts)


def better(a: float, b: float, direction: str) -> bool:
    """Whether ``a`` is strictly better than ``b`` (anything beats ``nan``)."""
    if math.isnan(b):
        return not math.isnan(a)
    return a > b if direction == "maximize" else a < b


def best_of(trials: Iterable[Trial], direction: str) -> Trial | None:
    """The best COMPLETE trial of ``trials`` (the first of equals in the given order)."""
    best: Trial | None = None
    for t in trials:
        if t.state != "COMPLETE" or t.value is None or math.isnan(t.value):
            continue
        if best is None or better(t.value, best.value, direction):  # type: ignore[arg-type]
            best = t
    return best


_ADVICE = {
    "diverged": "lower space.lr (its high), or check the data for extreme values",
    "out of memory": "lower space.n_units, space.n_layers or batch_size",
    "gave up after": "see the fail_reason in optuna-dashboard or 'hpstudy export'",
    "error": "see the fail_reason in optuna-dashboard or 'hpstudy export', and fix the study file",
}


def _kind(reason: str) -> str:
    return next((k for k in _ADVICE if reason.startswith(k)), "error")


def failure_note(trials: Iterable[Trial]) -> str | None:
    """A sentence when trials finished and every one failed (``None`` otherwise)."""
    finished = [t for t in trials if t.counted]
    if not finished or any(t.state != "FAIL" for t in finished):
        return None
    reasons = [t.fail_reason or "error: no reason recorded" for t in finished]
    kind, n = Counter(map(_kind, reasons)).most_common(1)[0]
    example = next(r for r in reasons if _kind(r) == kind)
    return (
        f"all {len(finished)} finished trials failed; most often ({n} of {len(finished)}): "
        f"{example}; {_ADVICE[kind]}"
    )


@dataclass(frozen=True)
class TrialTable:
    """Every study of one experiment, and the study file it ran from.

    Attributes:
        source: Where the table was read from (a storage URL without secrets, or a file).
        from_tables: Results looked up in a published tabular benchmark rather than trained
            (labelled as such, never pooled with real training).
    """

    experiment: str
    config: ExperimentConfig
    studies: tuple[Study, ...]
    source: str = ""
    from_tables: bool = False

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(s.task for s in self.studies))

    def strategies(self, task: str | None = None) -> list[str]:
        return list(dict.fromkeys(s.strategy for s in self.studies if task in (None, s.task)))

    def of(self, task: str, strategy: str | None = None) -> list[Study]:
        return [
            s
            for s in self.studies
            if s.task == task and (strategy is None or s.strategy == strategy)
        ]


def sidecar(path: Path) -> Path:
    """The study file written beside ``NAME.csv.gz``: ``NAME.toml``."""
    name = path.name
    for suffix in (".csv.gz", ".gz", ".csv"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.toml")


def _number(text: str, kind: type = float) -> Any:
    return None if text == "" else kind(float(text)) if kind is int else kind(text)


def _param(text: str, kind: str, choices: tuple[Any, ...] | None) -> Any:
    if text == "":
        return None
    if kind == "categorical":
        # the CSV holds text: give back the choice itself (numbers stay numbers)
        return next((c for c in choices or () if str(c) == text), text)
    if kind == "int":
        return int(float(text))
    if kind == "float":
        return float(text)
    return text


def _fixed_value(text: str, value: Any) -> Any:
    """A fixed hyperparameter read back with the type of its configured value."""
    if text == "":
        return value
    if isinstance(value, bool):
        return text == "True"
    if isinstance(value, int):
        return int(float(text))
    if isinstance(value, float):
        return float(text)
    return text


def read_results(path: Path) -> TrialTable:
    """Read ``NAME.csv.gz`` (``hpstudy export -f csv.gz``) and ``NAME.toml`` beside it."""
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
    head, param_columns = columns_of(config)
    required = set(head) | set(config.searched_params())
    if rows and not required <= set(rows[0]):
        missing = sorted(required - set(rows[0]))
        raise ConfigError(f"{path}: column(s) {', '.join(missing)} missing; re-export it")
    searched = config.searched_params()
    fixed = config.fixed_params()
    by_study: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_study.setdefault(row["study"], []).append(row)
    studies = []
    for line, (name, own) in enumerate(by_study.items()):
        r0 = own[0]
        trials = []
        try:
            for row in own:
                params = {n: _fixed_value(row.get(n, ""), v) for n, v in fixed.items()}
                params.update({n: _param(row[n], p.kind, p.choices) for n, p in searched.items()})
                raw = json.loads(row["test_scores"]) if row["test_scores"] else None
                scores, ce = parse_scores(raw)
                trials.append(
                    Trial(
                        number=int(row["number"]), state=row["state"],
                        value=_number(row["value"]), epochs=_number(row["epochs_trained"], int) or 0,
                        seconds=_number(row["seconds"]) or 0.0, params=params,
                        best_epoch=_number(row["best_epoch"], int),
                        n_params=_number(row["n_params"], int),
                        fail_reason=row["fail_reason"] or None,
                        test_scores=scores, test_cross_entropy=ce,
                    )
                )  # fmt: skip
            study = Study(
                name=name, experiment=r0["experiment"], task=r0["task"], strategy=r0["strategy"],
                seed=int(r0["seed"]), metric=r0["metric"], direction=r0["direction"],
                kind=r0["kind"], budget=int(r0["budget"]), fingerprint=r0["fingerprint"],
                trials=tuple(sorted(trials, key=lambda t: t.number)),
                objective=r0.get("objective") or "",
                objective_direction=r0.get("objective_direction") or "",
                benchmark=r0.get("benchmark") or "",
                repetition=_number(r0.get("repetition") or "", int),
                references=References.parse(
                    json.loads(r0[REFERENCES_COLUMN]) if r0.get(REFERENCES_COLUMN) else None
                ),
                optimum=Optimum.parse(
                    json.loads(r0[OPTIMUM_COLUMN]) if r0.get(OPTIMUM_COLUMN) else None
                ),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"{path}: study {name!r} (its {line + 1}th) is malformed: {e}"
            ) from e
        studies.append(study)
    if not studies:
        raise ConfigError(f"{path}: no trials")
    return TrialTable(
        studies[0].experiment, config, tuple(studies), source=path.as_posix(),
        from_tables=config.benchmark_family is not None,
    )  # fmt: skip


def parse_scores(raw: Any) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Test scores as cached or exported: a list of floats (one per training seed), or a
    mapping with that list under ``"scores"`` and, for classification, the test cross-entropy
    under ``"cross_entropy"``. Anything else reads as not scored."""
    ce: Any = None
    if isinstance(raw, Mapping):
        raw, ce = raw.get("scores"), raw.get("cross_entropy")

    def floats(x: Any) -> tuple[float, ...] | None:
        if not isinstance(x, list) or not x:
            return None
        try:
            return tuple(float(v) for v in x)
        except (TypeError, ValueError):
            return None

    return floats(raw), floats(ce)


def scores_json(t: Trial) -> Any:
    """A trial's test scores as exported (the reverse of :func:`parse_scores`)."""
    if t.test_scores is None:
        return None
    if t.test_cross_entropy:
        return {"scores": list(t.test_scores), "cross_entropy": list(t.test_cross_entropy)}
    return list(t.test_scores)
