"""What the trials say about the brief's advice, estimated from random search's trials.

Random search samples the space independently of any score, so its trials are an unbiased
sample of it: comparing the trials that happened to fall in one region with those in another
estimates the region's effect on the validation score, other hyperparameters averaged over the
space. (TPE's or grid's trials are not such a sample.)

How a finding is estimated:

* **No survivorship.** Every random-search trial that counts is used, pruned and failed ones
  included: dropping them keeps only the trials that survived the pruner, which favours
  whatever the pruner spared. Within a study the trials are turned into percentile ranks (0 =
  worst, 1 = best), COMPLETE trials by validation score and pruned or failed trials tied at
  the bottom (each was stopped because it scored below the others at some epoch; an
  experiment without pruning needs no such assumption). Comparing within a study removes the
  split's and the task's level, and ranks let tasks with different metrics be pooled.
* **Jointly.** Within each study one least-squares regression of the ranks on every factor at
  once (dropout groups, their interaction with width, matched/mismatched initialisation, ReLU,
  few/many units), so a finding is not another factor's shadow; a finding's effect is the
  difference of its two groups' coefficients (+0.2: its trials rank 20 percentile points
  higher). The 20% dropout start keeps its own split-sample design (below).
* **Clustered by seed.** Random search draws the same configurations for a seed in every task
  and file, so the studies of one seed are not independent: pooled over tasks, the effects of
  a seed's studies are averaged into one per seed, and the interval is over seeds:
  Hodges-Lehmann estimate with the exact signed-rank 95% CI (ties exact). Per task, each seed
  is one study.
* **Corrected across findings.** Each finding also has a two-sided exact signed-rank p-value,
  Holm-adjusted over every finding shown; a finding is called (helps or hurts) only when its
  adjusted p is below 0.05.
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

from hpstudy.analysis._signed_rank import hodges_lehmann, midranks, signed_rank_p
from hpstudy.analysis._stats import holm
from hpstudy.analysis._table import TrialTable
from hpstudy.config._schema import ParamConfig

MIN_PER_GROUP = 2  # trials per group and study for the study to count
MIN_STUDIES = 3  # studies a finding needs before it shows a number
STRATEGY = "random"
POOLED = "all tasks"
POOLED_UNIT = "percentile rank within each study, positive = better"
CI_METHOD = (
    "every counted random-search trial (pruned and failed ones ranked last in their study), "
    "one joint rank regression per study (task, seed), effects averaged per seed over tasks; "
    "Hodges-Lehmann estimate over seeds with the exact signed-rank 95% CI; Holm across findings"
)
ALPHA_FINDINGS = 0.05

# dropout bins for "a 20% start against the best dropout": centres 0.0, 0.1, ..., half-width 0.05
_BIN_WIDTH = 0.1
_RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu")


@dataclass(frozen=True)
class Sample:
    """One counted trial: where it came from, its validation score (``None`` when it was
    pruned or failed: ranked last in its study) and every hyperparameter."""

    task: str
    seed: int
    direction: str
    value: float | None
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
    p_value: float = math.nan
    p_adjusted: float = math.nan

    @property
    def called(self) -> str:
        """``helps``, ``hurts`` or ``not shown`` (Holm-adjusted over every finding)."""
        if math.isnan(self.p_adjusted) or self.p_adjusted >= ALPHA_FINDINGS:
            return "not shown"
        return "helps" if self.estimate > 0 else "hurts"


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


def resolve_init(init: str, activation: str) -> str:
    """``auto`` is the initialisation matched to the activation (as ``hpstudy.model`` builds
    it: He for ReLU-like, Glorot else); a test checks the two agree."""
    return _matched_init(activation) if init == "auto" else init


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


Row = tuple[float, dict[str, Any]]  # (percentile rank in its study, params)


def _percentile_ranks(values: Sequence[float | None], direction: str) -> np.ndarray:
    """0 for the study's worst trial, 1 for its best; ties (and every trial without a value,
    pruned or failed, tied below all others) share their mean rank."""
    signed = np.array(
        [
            -math.inf
            if v is None or not math.isfinite(v)
            else (v if direction == "maximize" else -v)
            for v in values
        ]
    )
    if len(signed) == 1:
        return np.array([0.5])
    return (midranks(signed) - 1) / (len(signed) - 1)


def _by_study(samples: Sequence[Sample]) -> dict[tuple[str, int], list[Row]]:
    studies: dict[tuple[str, int], list[Sample]] = defaultdict(list)
    for s in samples:
        studies[(s.task, s.seed)].append(s)
    out = {}
    for key, trials in sorted(studies.items()):
        ranks = _percentile_ranks([t.value for t in trials], trials[0].direction)
        out[key] = [(float(r), t.params) for t, r in zip(trials, ranks, strict=True)]
    return out


def _studies_have(n: int) -> str:
    return "1 seed has" if n == 1 else f"{n} seeds have"


def _columns(specs: Sequence[_Spec]) -> list[Group]:
    """The regression's indicator columns: each group once (the interaction reuses the dropout
    groups), and for an interaction its split and each group times the split."""
    cols: list[Group] = []

    def add(g: Group) -> None:
        if not any(g is c for c in cols):
            cols.append(g)

    for spec in specs:
        if spec.reason is not None or spec.better is None or spec.worse is None:
            continue
        add(spec.better)
        add(spec.worse)
        if spec.split is not None:
            split, better, worse = spec.split, spec.better, spec.worse
            add(split)
            add(_product(better, split))
            add(_product(worse, split))
    return cols


_PRODUCTS: dict[tuple[int, int], Group] = {}


def _product(a: Group, b: Group) -> Group:
    key = (id(a), id(b))
    if key not in _PRODUCTS:
        _PRODUCTS[key] = lambda q: a(q) and b(q)
    return _PRODUCTS[key]


def _index(cols: Sequence[Group], g: Group) -> int:
    return next(i for i, c in enumerate(cols) if c is g)


def _joint_effects(
    rows: Sequence[Row], specs: Sequence[_Spec], cols: Sequence[Group]
) -> dict[str, tuple[float, int]]:
    """One study's joint regression: spec key -> (effect, trials in its groups); a spec whose
    groups have too few trials in this study is left out."""
    if not cols:
        return {}
    x = np.array([[1.0, *(float(bool(c(q))) for c in cols)] for _, q in rows])
    y = np.array([r for r, _ in rows])
    out: dict[str, tuple[float, int]] = {}
    usable = [
        spec
        for spec in specs
        if spec.reason is None and spec.better is not None and spec.worse is not None
    ]
    if len(rows) <= x.shape[1]:
        return out
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    for spec in usable:
        assert spec.better is not None and spec.worse is not None
        if spec.split is None:
            i, j = _index(cols, spec.better) + 1, _index(cols, spec.worse) + 1
        else:
            i = _index(cols, _product(spec.better, spec.split)) + 1
            j = _index(cols, _product(spec.worse, spec.split)) + 1
        n_i, n_j = int(x[:, i].sum()), int(x[:, j].sum())
        if spec.split is not None:
            # the interaction also needs both groups among the narrower half
            k, m = _index(cols, spec.better) + 1, _index(cols, spec.worse) + 1
            if min(n_i, n_j, x[:, k].sum() - n_i, x[:, m].sum() - n_j) < MIN_PER_GROUP:
                continue
        elif min(n_i, n_j) < MIN_PER_GROUP:
            continue
        out[spec.key] = (float(coef[i] - coef[j]), n_i + n_j)
    return out


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
            f"trials in each group{why_few}, {MIN_STUDIES} are needed",
        )
    ci = hodges_lehmann(effects)
    p = min(1.0, 2 * min(signed_rank_p(effects, "greater"), signed_rank_p(effects, "less")))
    return replace(
        base, estimate=ci.estimate, ci_low=ci.low, ci_high=ci.high, ci_level=ci.level,
        studies=len(effects), trials=trials, p_value=p,
    )  # fmt: skip


def _per_seed(per_study: dict[tuple[str, int], float]) -> list[float]:
    """One effect per seed: the mean over the tasks of that seed (the cluster)."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for (_, seed), e in per_study.items():
        by_seed[seed].append(e)
    return [float(np.mean(v)) for _, v in sorted(by_seed.items())]


def _estimate_all(
    specs: Sequence[_Spec], studies: dict[tuple[str, int], list[Row]], scope: str, unit: str
) -> list[Finding]:
    cols = _columns(specs)
    joint = {key: _joint_effects(rows, specs, cols) for key, rows in studies.items()}
    out = []
    for spec in specs:
        if spec.reason is not None:
            out.append(
                Finding(spec.key, spec.advice, spec.comparison, scope, unit, reason=spec.reason)
            )
            continue
        if spec.key == "dropout_start":
            out.append(_dropout_start(spec, studies, scope, unit))
            continue
        per_study = {k: e[spec.key][0] for k, e in joint.items() if spec.key in e}
        trials = sum(e[spec.key][1] for e in joint.values() if spec.key in e)
        why = " (in both halves of n_units)" if spec.split is not None else ""
        out.append(_finding(spec, scope, unit, _per_seed(per_study), trials, why))
    return out


def _dropout_bin(dropout: float) -> int:
    return int(math.floor(dropout / _BIN_WIDTH + 0.5))


def _dropout_start(
    spec: _Spec, studies: dict[tuple[str, int], list[Row]], scope: str, unit: str
) -> Finding:
    """A 20% start (bin 0.15-0.25) against the best dropout bin.

    Choosing the best bin on the trials that then measure it flatters it (the winner's curse),
    and choosing it on the other studies (leave-one-out) makes the studies' effects depend on
    each other. So the sample is split once: the best bin (highest mean percentile rank) is
    chosen on the even seeds' studies, and the effect is estimated on the odd seeds' studies
    only, which are independent of that choice.
    """
    start = _dropout_bin(0.2)
    per_study: dict[tuple[str, int], dict[int, list[float]]] = {}
    for key, rows in studies.items():
        bins: dict[int, list[float]] = defaultdict(list)
        for r, q in rows:
            bins[_dropout_bin(float(q["dropout"]))].append(r)
        per_study[key] = bins
    chosen: dict[int, list[float]] = defaultdict(list)
    for (_, seed), bins in per_study.items():
        if seed % 2 == 0:
            for b, xs in bins.items():
                if len(xs) >= MIN_PER_GROUP:
                    chosen[b].append(float(np.mean(xs)))
    effects: dict[tuple[str, int], float] = {}
    trials = 0
    if chosen:
        best = max(chosen, key=lambda b: (float(np.mean(chosen[b])), -abs(b - start)))
        for key, bins in per_study.items():
            a, c = bins.get(start, []), bins.get(best, [])
            if key[1] % 2 == 0 or len(a) < MIN_PER_GROUP or len(c) < MIN_PER_GROUP:
                continue
            effects[key] = 0.0 if best == start else float(np.mean(a) - np.mean(c))
            trials += len(a) + (len(c) if best != start else 0)
        spec = replace(
            spec,
            comparison=f"dropout about 0.2 (0.15-0.25) - the best dropout bin on the even seeds "
            f"({max(best * _BIN_WIDTH - _BIN_WIDTH / 2, 0):.2f}-{best * _BIN_WIDTH + _BIN_WIDTH / 2:.2f}), "
            "on the odd seeds",
        )
    return _finding(spec, scope, unit, _per_seed(effects), trials, " among the odd seeds")


def estimate_advice(
    samples: Sequence[Sample],
    space: dict[str, ParamConfig],
    fixed: dict[str, Any],
    metrics: dict[str, str] | None = None,
    strategy: str = STRATEGY,
) -> Advice:
    """Every finding pooled over tasks and per task, Holm-adjusted across all of them.

    Args:
        samples: Counted trials of one strategy (normally random search), every
            hyperparameter in ``params`` (fixed ones included); pruned and failed ones with
            ``value=None``.
        space: The searched space (ranges decide "few"/"many" units).
        fixed: Values of the hyperparameters that are not searched (for the reasons).
        metrics: Task -> metric name (kept for the per-task scope's label).
    """
    specs = _specs(space, fixed)
    if not samples:
        return Advice(strategy, note=f"no {strategy} trials: nothing to estimate")
    studies = _by_study(samples)
    findings = _estimate_all(specs, studies, POOLED, POOLED_UNIT)
    tasks = list(dict.fromkeys(task for task, _ in studies))
    if len(tasks) > 1 or metrics:
        for task in tasks:
            own = {k: v for k, v in studies.items() if k[0] == task}
            findings += _estimate_all(specs, own, task, POOLED_UNIT)
    adjusted = holm([f.p_value for f in findings])
    findings = [replace(f, p_adjusted=p) for f, p in zip(findings, adjusted, strict=True)]
    return Advice(strategy, findings)


def advice_from_table(table: TrialTable, strategy: str = STRATEGY) -> Advice | None:
    """The advice section of an experiment; ``None`` when it has no ``strategy`` studies."""
    studies = [s for s in table.studies if s.strategy == strategy]
    if not studies:
        return None
    fixed = table.config.fixed_params()
    searched = set(table.config.searched_params())
    samples = [
        Sample(s.task, s.seed, s.select_direction, t.value if t.state == "COMPLETE" else None,
               {**fixed, **t.params})
        for s in studies
        for t in s.runs
        # a trial without every searched value (failed before its parameters were stored)
        if all(t.params.get(k) is not None for k in searched)
    ]  # fmt: skip
    metrics = {s.task: s.metric for s in studies}
    return estimate_advice(samples, table.config.space, fixed, metrics, strategy)
