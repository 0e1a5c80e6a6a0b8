"""What the trials say about the brief's advice, estimated from random search's trials.

Random search samples the space independently of any score, so its trials are an unbiased
sample of it: comparing the trials that happened to fall in one region with those in another
estimates the region's effect on the validation score, other hyperparameters averaged over the
space. (TPE's or grid's trials are not such a sample.)

How a finding is estimated:

* **Within a study.** Each study (task, seed: one data split) gives one effect, comparing its
  own COMPLETE trials (pruned trials have no final score; an experiment without pruning has no
  such gap). Comparing within a study removes the split's and the task's level.
* **Two scales.** Per task, the effect is the difference of the two groups' median validation
  scores in the metric's units, signed so that positive favours the advice (medians: a
  diverged trial's huge RMSE cannot dominate). Pooled over tasks, the scores of each study are
  first turned into percentile ranks (0 = its worst trial, 1 = its best), so tasks with
  different metrics can be pooled, and the effect is the difference of mean ranks (+0.2: the
  advice's trials rank 20 percentile points higher in their study on average).
* **Over studies.** The studies are independent (a different split, or a different data set),
  so the effect over them is the Hodges-Lehmann estimate with the exact Wilcoxon signed-rank
  95% CI, the method the verdicts use (deterministic; no resampling).
* A finding that the trials cannot estimate (the hyperparameter is fixed, or too few trials
  fall in a group) says why instead of showing a number.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hpstudy.config._schema import ExperimentConfig, ParamConfig
from hpstudy.model import resolve_init
from hpstudy.report._collect import ExperimentData
from hpstudy.report._verdict import hodges_lehmann

MIN_PER_GROUP = 2  # COMPLETE trials per group and study for the study to count
MIN_STUDIES = 3  # studies a finding needs before it shows a number
STRATEGY = "random"
POOLED = "all tasks"
POOLED_UNIT = "percentile rank within each study, positive = better"
CI_METHOD = (
    "one effect per study (task, seed), comparing its own COMPLETE random-search trials; "
    "Hodges-Lehmann estimate over studies with the exact Wilcoxon signed-rank 95% CI"
)

# dropout bins for "a 20% start against the best dropout": centres 0.0, 0.1, ..., half-width 0.05
_BIN_WIDTH = 0.1
_RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu")


@dataclass(frozen=True)
class Sample:
    """One COMPLETE trial: where it came from, its validation score and every hyperparameter."""

    task: str
    seed: int
    direction: str
    value: float
    params: dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One piece of advice on one scope (a task, or every task pooled).

    Attributes:
        key: Stable identifier (``dropout``, ``dropout_x_units``, ``init``, ``relu``, ``units``,
            ``dropout_start``).
        advice: The brief's advice in words.
        comparison: What is compared with what (positive = the first is better).
        scope: A task name, or ``"all tasks"``.
        unit: The metric's name per task, :data:`POOLED_UNIT` pooled.
        estimate, ci_low, ci_high, ci_level: The effect and its CI (``nan`` when not estimable).
        studies: Studies that contributed an effect.
        trials: COMPLETE trials in the compared groups, over those studies.
        reason: Why there is no number (``None`` when there is one).
    """

    key: str
    advice: str
    comparison: str
    scope: str
    unit: str
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    ci_level: float = math.nan
    studies: int = 0
    trials: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Advice:
    """Every finding, pooled first and then per task, and how they were estimated."""

    strategy: str
    findings: list[Finding] = field(default_factory=list)
    method: str = CI_METHOD
    note: str = ""


# ------------------------------------------------------------------ groups of trials


def _matched_init(activation: str) -> str:
    return "kaiming" if activation in _RELU_LIKE else "xavier"


def _scaled(p: ParamConfig, value: float) -> float:
    """Position of ``value`` in ``p``'s range, 0 (low) to 1 (high), on the range's scale."""
    assert p.low is not None and p.high is not None
    lo, hi, v = float(p.low), float(p.high), float(value)
    if hi <= lo:
        return 0.5
    if p.log and lo > 0:
        return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (v - lo) / (hi - lo)


Group = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class _Spec:
    key: str
    advice: str
    comparison: str
    better: Group | None  # None: not estimable (reason)
    worse: Group | None
    reason: str | None = None
    split: Group | None = None  # interaction: effect among split-True minus among split-False


def _specs(space: dict[str, ParamConfig], fixed: dict[str, Any]) -> list[_Spec]:
    searched = {n: p for n, p in space.items() if p.searched}

    def fixed_reason(*names: str) -> str | None:
        missing = [n for n in names if n not in searched]
        if not missing:
            return None
        shown = ", ".join(f"{n} = {fixed.get(n, '(default)')!r}" for n in missing)
        return f"not searched: {shown} is fixed, so every trial has the same value"

    specs: list[_Spec] = []
    # dropout 0.2-0.5 against under 0.1
    reason = fixed_reason("dropout")
    high: Group = lambda q: 0.2 <= q["dropout"] <= 0.5  # noqa: E731
    low: Group = lambda q: q["dropout"] < 0.1  # noqa: E731
    specs.append(
        _Spec("dropout", "dropout of 20-50%; too low does little",
              "dropout 0.2-0.5 - dropout under 0.1", None if reason else high, low, reason)
    )  # fmt: skip
    # ... and whether that grows with the number of units
    reason = fixed_reason("dropout", "n_units")
    split: Group | None = None
    if reason is None and searched["n_units"].kind == "categorical":
        reason = "n_units is categorical; give it a range"
    if reason is None:
        units = searched["n_units"]
        split = lambda q: _scaled(units, q["n_units"]) >= 0.5  # noqa: E731
    specs.append(
        _Spec("dropout_x_units", "dropout helps more on larger networks",
              "(dropout effect among the wider half of n_units) - (among the narrower half)",
              None if reason else high, low, reason, split)
    )  # fmt: skip
    # initialisation matched to the activation against a mismatched one
    reason = fixed_reason("init")
    if reason is None:
        choices = {resolve_init(str(c), "relu") for c in searched["init"].choices or ()}
        choices |= {resolve_init(str(c), "tanh") for c in searched["init"].choices or ()}
        if not {"kaiming", "xavier"} <= choices:
            reason = "init does not search both He (kaiming) and Glorot (xavier), so no mismatch"

    def init_of(q: dict[str, Any]) -> str:
        return resolve_init(str(q["init"]), str(q["activation"]))

    matched: Group = lambda q: init_of(q) == _matched_init(str(q["activation"]))  # noqa: E731
    mismatched: Group = lambda q: (  # noqa: E731
        init_of(q) in ("kaiming", "xavier") and init_of(q) != _matched_init(str(q["activation"]))
    )
    specs.append(
        _Spec("init", "weight initialisation matched to the activation",
              "matched (He for ReLU-like, Glorot for tanh/sigmoid) - mismatched (the other one)",
              None if reason else matched, mismatched, reason)
    )  # fmt: skip
    # ReLU against the other activations
    reason = fixed_reason("activation")
    if reason is None and "relu" not in (searched["activation"].choices or ()):
        reason = "activation does not search relu"
    specs.append(
        _Spec("relu", "ReLU is the usual hidden activation", "relu - the other activations",
              None if reason else (lambda q: q["activation"] == "relu"),
              lambda q: q["activation"] != "relu", reason)
    )  # fmt: skip
    # few units (underfitting) against many
    reason = fixed_reason("n_units")
    few: Group | None = None
    many: Group | None = None
    if reason is None:
        units = searched["n_units"]
        if units.kind == "categorical":
            reason = "n_units is categorical; give it a range"
        else:
            many = lambda q: _scaled(units, q["n_units"]) >= 2 / 3  # noqa: E731
            few = lambda q: _scaled(units, q["n_units"]) < 1 / 3  # noqa: E731
    specs.append(
        _Spec("units", "many hidden units can raise accuracy; too few underfit",
              "many units (top third of the range) - few (bottom third)", many, few, reason)
    )  # fmt: skip
    # a 20% start against the best dropout found: handled by _dropout_start
    specs.append(
        _Spec("dropout_start", "20% dropout is a good start",
              "dropout about 0.2 (0.15-0.25) - the best dropout bin (chosen on the even seeds)",
              None, None, fixed_reason("dropout"))
    )  # fmt: skip
    return specs


# ------------------------------------------------------------------ within-study effects


def _percentile_ranks(values: np.ndarray, direction: str) -> np.ndarray:
    """0 for the study's worst trial, 1 for its best (ties share their mean rank)."""
    from scipy.stats import rankdata

    signed = values if direction == "maximize" else -values
    if len(signed) == 1:
        return np.array([0.5])
    return (rankdata(signed) - 1) / (len(signed) - 1)


def _study_effect(
    group: list[tuple[float, float, dict[str, Any]]],
    better: Group,
    worse: Group,
    pooled: bool,
) -> tuple[float, int] | None:
    """(effect, trials used) of one study, or ``None`` with too few trials in a group.

    ``group`` holds (signed score, percentile rank, params) per trial."""
    a = [(s, r) for s, r, q in group if better(q)]
    b = [(s, r) for s, r, q in group if worse(q)]
    if len(a) < MIN_PER_GROUP or len(b) < MIN_PER_GROUP:
        return None
    if pooled:
        effect = float(np.mean([r for _, r in a]) - np.mean([r for _, r in b]))
    else:
        effect = float(np.median([s for s, _ in a]) - np.median([s for s, _ in b]))
    return effect, len(a) + len(b)


def _by_study(
    samples: Sequence[Sample],
) -> dict[tuple[str, int], list[tuple[float, float, dict[str, Any]]]]:
    studies: dict[tuple[str, int], list[Sample]] = defaultdict(list)
    for s in samples:
        if s.value is not None and math.isfinite(s.value):
            studies[(s.task, s.seed)].append(s)
    out = {}
    for key, trials in sorted(studies.items()):
        values = np.array([t.value for t in trials], dtype=float)
        direction = trials[0].direction
        ranks = _percentile_ranks(values, direction)
        sign = 1.0 if direction == "maximize" else -1.0
        out[key] = [
            (sign * t.value, float(r), t.params) for t, r in zip(trials, ranks, strict=True)
        ]
    return out


def _studies_have(n: int) -> str:
    return "1 study has" if n == 1 else f"{n} studies have"


def _finding(
    spec: _Spec, scope: str, unit: str, effects: list[float], trials: int, why_few: str
) -> Finding:
    base = Finding(spec.key, spec.advice, spec.comparison, scope, unit)
    if len(effects) < MIN_STUDIES:
        return replace(
            base,
            studies=len(effects),
            trials=trials,
            reason=f"too few trials: {_studies_have(len(effects))} at least {MIN_PER_GROUP} "
            f"COMPLETE trials in each group{why_few}, {MIN_STUDIES} are needed",
        )
    ci = hodges_lehmann(effects)
    return replace(
        base, estimate=ci.estimate, ci_low=ci.low, ci_high=ci.high, ci_level=ci.level,
        studies=len(effects), trials=trials,
    )  # fmt: skip


def _estimate(
    spec: _Spec,
    studies: dict[tuple[str, int], list[tuple[float, float, dict[str, Any]]]],
    scope: str,
    unit: str,
    pooled: bool,
) -> Finding:
    if spec.reason is not None:
        return Finding(spec.key, spec.advice, spec.comparison, scope, unit, reason=spec.reason)
    if spec.key == "dropout_start":
        return _dropout_start(spec, studies, scope, unit, pooled)
    assert spec.better is not None and spec.worse is not None
    effects: list[float] = []
    trials = 0
    for group in studies.values():
        if spec.split is None:
            got = _study_effect(group, spec.better, spec.worse, pooled)
            if got is not None:
                effects.append(got[0])
                trials += got[1]
            continue
        split = spec.split
        wide = _study_effect([g for g in group if split(g[2])], spec.better, spec.worse, pooled)
        narrow = _study_effect(
            [g for g in group if not split(g[2])], spec.better, spec.worse, pooled
        )
        if wide is not None and narrow is not None:
            effects.append(wide[0] - narrow[0])
            trials += wide[1] + narrow[1]
    why = " (in both halves of n_units)" if spec.split is not None else ""
    return _finding(spec, scope, unit, effects, trials, why)


def _dropout_bin(dropout: float) -> int:
    return int(math.floor(dropout / _BIN_WIDTH + 0.5))


def _dropout_start(
    spec: _Spec,
    studies: dict[tuple[str, int], list[tuple[float, float, dict[str, Any]]]],
    scope: str,
    unit: str,
    pooled: bool,
) -> Finding:
    """A 20% start (bin 0.15-0.25) against the best dropout bin.

    Choosing the best bin on the trials that then measure it flatters it (the winner's curse),
    and choosing it on the other studies (leave-one-out) makes the studies' effects depend on
    each other. So the sample is split once: the best bin (highest mean percentile rank) is
    chosen on the even seeds' studies, and the effect is estimated on the odd seeds' studies
    only, which are independent of that choice.
    """
    start = _dropout_bin(0.2)
    per_study: dict[tuple[str, int], dict[int, list[tuple[float, float]]]] = {}
    for key, group in studies.items():
        bins: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for s, r, q in group:
            bins[_dropout_bin(float(q["dropout"]))].append((s, r))
        per_study[key] = bins
    chosen: dict[int, list[float]] = defaultdict(list)
    for (_, seed), bins in per_study.items():
        if seed % 2 == 0:
            for b, xs in bins.items():
                if len(xs) >= MIN_PER_GROUP:
                    chosen[b].append(float(np.mean([r for _, r in xs])))
    effects: list[float] = []
    trials = 0
    if chosen:
        best = max(chosen, key=lambda b: (float(np.mean(chosen[b])), -abs(b - start)))
        for (_, seed), bins in per_study.items():
            a, c = bins.get(start, []), bins.get(best, [])
            if seed % 2 == 0 or len(a) < MIN_PER_GROUP or len(c) < MIN_PER_GROUP:
                continue
            if best == start:
                effects.append(0.0)
            elif pooled:
                effects.append(float(np.mean([r for _, r in a]) - np.mean([r for _, r in c])))
            else:
                effects.append(float(np.median([s for s, _ in a]) - np.median([s for s, _ in c])))
            trials += len(a) + (len(c) if best != start else 0)
        spec = replace(
            spec,
            comparison=f"dropout about 0.2 (0.15-0.25) - the best dropout bin on the even seeds "
            f"({max(best * _BIN_WIDTH - _BIN_WIDTH / 2, 0):.2f}-{best * _BIN_WIDTH + _BIN_WIDTH / 2:.2f}), "
            "on the odd seeds",
        )
    return _finding(spec, scope, unit, effects, trials, " among the odd seeds")


def estimate_advice(
    samples: Sequence[Sample],
    space: dict[str, ParamConfig],
    fixed: dict[str, Any],
    metrics: dict[str, str] | None = None,
    strategy: str = STRATEGY,
) -> Advice:
    """Every finding pooled over tasks (percentile ranks) and per task (metric units).

    Args:
        samples: COMPLETE trials of one strategy (normally random search), every
            hyperparameter in ``params`` (fixed ones included).
        space: The searched space (ranges decide "few"/"many" units).
        fixed: Values of the hyperparameters that are not searched (for the reasons).
        metrics: Task -> metric name, for the per-task unit.
    """
    specs = _specs(space, fixed)
    if not samples:
        return Advice(strategy, note=f"no COMPLETE {strategy} trials: nothing to estimate")
    studies = _by_study(samples)
    findings = [_estimate(s, studies, POOLED, POOLED_UNIT, True) for s in specs]
    tasks = list(dict.fromkeys(task for task, _ in studies))
    if len(tasks) > 1 or metrics:
        for task in tasks:
            own = {k: v for k, v in studies.items() if k[0] == task}
            unit = f"{(metrics or {}).get(task, 'score')}, positive = better"
            findings += [_estimate(s, own, task, unit, False) for s in specs]
    return Advice(strategy, findings)


def advice_from_experiment(
    data: ExperimentData, config: ExperimentConfig | None, strategy: str = STRATEGY
) -> Advice | None:
    """The advice section of an experiment (``ExperimentData``, ``ExperimentConfig``);
    ``None`` when the experiment has no ``strategy`` studies."""
    studies = [s for s in data.studies if s.info.strategy == strategy]
    if not studies or config is None:
        return None
    fixed = config.fixed_params()
    samples = [
        Sample(
            s.info.task,
            s.info.seed,
            s.info.objective_direction,
            float(t.value),
            {**fixed, **t.params},
        )
        for s in studies
        for t in s.trials
        if t.state.name == "COMPLETE" and t.value is not None
    ]
    metrics = {s.info.task: s.info.objective for s in studies}
    return estimate_advice(samples, config.space, fixed, metrics, strategy)
