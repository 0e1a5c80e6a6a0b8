"""The brief's advice estimated from random search's trials: synthetic trials whose true effect is
known, so every interval can be checked against the truth."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hpstudy.analysis._advice import POOLED, POOLED_UNIT, Advice, Finding, Sample, estimate_advice
from hpstudy.config._schema import ParamConfig

SPACE = {
    "n_layers": ParamConfig("n_layers", "int", low=1, high=3),
    "n_units": ParamConfig("n_units", "int", low=16, high=512, log=True),
    "dropout": ParamConfig("dropout", "float", low=0.0, high=0.5),
    "activation": ParamConfig(
        "activation", "categorical", choices=("relu", "tanh", "elu", "sigmoid")
    ),
    "init": ParamConfig("init", "categorical", choices=("auto", "kaiming", "xavier")),
    "lr": ParamConfig("lr", "float", low=1e-4, high=1e-1, log=True),
}
FIXED = {"optimizer": "adam", "batch_size": 64, "weight_decay": 0.0}


def _draw(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "n_layers": int(rng.integers(1, 4)),
        "n_units": int(round(math.exp(rng.uniform(math.log(16), math.log(512))))),
        "dropout": float(rng.uniform(0.0, 0.5)),
        "activation": str(rng.choice(["relu", "tanh", "elu", "sigmoid"])),
        "init": str(rng.choice(["auto", "kaiming", "xavier"])),
        "lr": float(math.exp(rng.uniform(math.log(1e-4), math.log(1e-1)))),
        **FIXED,
    }


def _samples(
    effect: Callable[[dict[str, Any]], float],
    *,
    tasks: tuple[str, ...] = ("a",),
    seeds: int = 20,
    trials: int = 80,
    noise: float = 0.01,
    direction: str = "maximize",
    seed: int = 0,
) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for task in tasks:
        for s in range(seeds):
            level = rng.normal(0.8, 0.05)  # each split has its own level
            for _ in range(trials):
                q = _draw(rng)
                value = level + effect(q) + rng.normal(0, noise)
                out.append(
                    Sample(task, s, direction, value if direction == "maximize" else -value, q)
                )
    return out


def _get(advice: Advice, key: str, scope: str) -> Finding:
    return next(f for f in advice.findings if f.key == key and f.scope == scope)


def _covers(f: Finding, x: float) -> bool:
    return f.ci_low <= x <= f.ci_high


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_planted_dropout_effect_is_found_and_called(direction: str) -> None:
    samples = _samples(lambda q: 0.05 * (q["dropout"] >= 0.2), direction=direction)
    f = _get(estimate_advice(samples, SPACE, FIXED, {"a": "accuracy"}), "dropout", "a")
    assert f.reason is None and f.studies == 20 and f.ci_level == 0.95
    # percentile ranks: the planted side ranks far higher, and zero is outside the interval
    assert f.estimate > 0.3 and f.ci_low > 0
    assert f.called == "helps" and f.p_adjusted < 0.05
    assert (
        _get(estimate_advice(samples, SPACE, FIXED, {"a": "x"}), "relu", "a").called == "not shown"
    )


def test_no_effect_gives_intervals_that_cover_zero_about_95_percent_of_the_time() -> None:
    misses: Counter[str] = Counter()
    called = 0
    for seed in range(40):
        advice = estimate_advice(
            _samples(lambda q: 0.0, seeds=40, trials=40, seed=seed), SPACE, FIXED, {"a": "x"}
        )
        estimated = [f for f in advice.findings if f.reason is None and f.scope == "a"]
        assert {f.key for f in estimated} == {
            "dropout", "dropout_x_units", "init", "relu", "units", "dropout_start",
        }  # fmt: skip
        misses.update(f.key for f in estimated if not _covers(f, 0.0))
        called += any(f.called != "not shown" for f in advice.findings)
    # 40 replications: 2 misses expected per finding. Choosing the best dropout bin on the
    # trials that measure it (or leave-one-study-out) missed 10 of 40 here.
    assert max(misses.values()) <= 6 and sum(misses.values()) <= 20, misses
    # Holm across the findings: a finding is called in at most ~5% of null replications
    assert called <= 4, called


def test_pooled_and_per_task_scopes_cluster_by_seed() -> None:
    advice = estimate_advice(_samples(lambda q: 0.0, tasks=("a", "b"), seeds=6), SPACE, FIXED)
    assert {f.scope for f in advice.findings} == {POOLED, "a", "b"}
    assert {f.unit for f in advice.findings} == {POOLED_UNIT}
    # two tasks x six seeds: the pooled effect is one per seed (a seed draws the same
    # configurations in every task), not one per study
    assert _get(advice, "dropout", POOLED).studies == 6
    assert _get(advice, "dropout", "a").studies == 6


def test_dropout_effect_that_grows_with_units_is_an_interaction() -> None:
    # dropout helps by 0.04 in the wider half of the n_units range only (log scale: >= ~90)
    wide = math.exp((math.log(16) + math.log(512)) / 2)
    samples = _samples(lambda q: 0.04 * (q["dropout"] >= 0.2) * (q["n_units"] >= wide), trials=120)
    advice = estimate_advice(samples, SPACE, FIXED, {"a": "accuracy"})
    inter = _get(advice, "dropout_x_units", "a")
    assert inter.estimate > 0 and not _covers(inter, 0.0)
    # no interaction when the effect is the same at every width
    flat = estimate_advice(
        _samples(lambda q: 0.04 * (q["dropout"] >= 0.2), trials=120), SPACE, FIXED, {"a": "x"}
    )
    assert _covers(_get(flat, "dropout_x_units", "a"), 0.0)


def test_matched_initialisation_effect_is_estimated_with_auto_counted_as_matched() -> None:
    def matched(q: dict[str, Any]) -> float:
        relu_like = q["activation"] in ("relu", "elu")
        he = q["init"] == "kaiming" or (q["init"] == "auto" and relu_like)
        return 0.03 * (he == relu_like)

    f = _get(estimate_advice(_samples(matched), SPACE, FIXED, {"a": "x"}), "init", "a")
    assert f.estimate > 0 and not _covers(f, 0.0)


def test_auto_initialisation_is_resolved_as_the_model_builds_it() -> None:
    from hpstudy.analysis._advice import resolve_init as analysis_init
    from hpstudy.model import resolve_init as model_init

    for activation in ("relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"):
        for init in ("auto", "kaiming", "xavier"):
            assert analysis_init(init, activation) == model_init(init, activation)


def test_relu_and_units_effects_are_estimated_jointly() -> None:
    samples = _samples(
        lambda q: 0.02 * (q["activation"] == "relu") + 0.03 * (q["n_units"] >= 16 * 32 ** (2 / 3))
    )
    advice = estimate_advice(samples, SPACE, FIXED, {"a": "x"})
    relu, units = _get(advice, "relu", "a"), _get(advice, "units", "a")
    assert relu.estimate > 0 and not _covers(relu, 0.0)
    assert units.estimate > 0 and not _covers(units, 0.0)
    assert _covers(_get(advice, "dropout", "a"), 0.0)  # not another factor's shadow


def test_dropout_start_against_the_best_dropout_found() -> None:
    # the best dropout is 0.4 (bin 0.35-0.45), which scores 0.05 above the 0.2 bin
    peak = _samples(lambda q: 0.05 * (0.35 <= q["dropout"] < 0.45), trials=120)
    f = _get(estimate_advice(peak, SPACE, FIXED, {"a": "x"}), "dropout_start", "a")
    assert f.estimate < 0 and not _covers(f, 0.0)
    # when 0.2 is the best, the start loses nothing
    best_start = _samples(lambda q: 0.05 * (0.15 <= q["dropout"] < 0.25), trials=120)
    g = _get(estimate_advice(best_start, SPACE, FIXED, {"a": "x"}), "dropout_start", "a")
    assert g.estimate == 0.0 and _covers(g, 0.0)


def _ladder(seeds: int, pruned: tuple[int, ...] = ()) -> list[Sample]:
    """Per seed 18 trials whose score rises with dropout: six under 0.1, six at 0.1-0.2, six
    at 0.2-0.5; trials in ``pruned`` (indices) were pruned (no value)."""
    dropouts = [0.0, 0.02, 0.04, 0.06, 0.08, 0.09, 0.11, 0.12, 0.14, 0.16, 0.18, 0.19,
                0.2, 0.25, 0.3, 0.35, 0.4, 0.45]  # fmt: skip
    return [
        Sample("a", s, "maximize", None if i in pruned else float(i),
               {**FIXED, "dropout": d, "n_units": 64, "activation": "relu", "init": "auto"})
        for s in range(seeds)
        for i, d in enumerate(dropouts)
    ]  # fmt: skip


def test_pooled_scale_is_the_difference_of_within_study_percentile_ranks() -> None:
    # ranks 0..17 / 17: the six under 0.1 average 2.5/17, the six at 0.2-0.5 average 14.5/17
    f = _get(estimate_advice(_ladder(3), SPACE, FIXED), "dropout", POOLED)
    assert f.estimate == pytest.approx(12 / 17) and f.studies == 3 and f.trials == 36
    # two seeds: no number, and the reason says why
    g = _get(estimate_advice(_ladder(2), SPACE, FIXED), "dropout", POOLED)
    assert math.isnan(g.estimate) and g.reason and "too few trials: 2 seeds" in g.reason


def test_pruned_trials_rank_last_instead_of_being_dropped() -> None:
    """Survivorship: high dropout under-learns early, so half its trials were pruned. Dropping
    them keeps the survivors, and "dropout helped" appears; ranking them last (where their
    scores were) keeps the truth: it hurt."""

    def study(seed: int, drop: bool) -> list[Sample]:
        rows = []
        # (dropout, score, pruned)
        trials = [(0.05, 10.0 + i, False) for i in range(6)]  # low dropout: middling
        trials += [(0.15, 5.0 + i, False) for i in range(6)]
        trials += [(0.3, float(i), True) for i in range(4)]  # high dropout: pruned, the worst
        trials += [(0.4, 20.0 + i, False) for i in range(2)]  # two high-dropout survivors
        for d, score, pruned in trials:
            if drop and pruned:
                continue
            q = {**FIXED, "dropout": d, "n_units": 64, "activation": "relu", "init": "auto"}
            rows.append(Sample("a", seed, "maximize", None if pruned else score, q))
        return rows

    kept = _get(
        estimate_advice([x for s in range(3) for x in study(s, False)], SPACE, FIXED),
        "dropout", POOLED,
    )  # fmt: skip
    dropped = _get(
        estimate_advice([x for s in range(3) for x in study(s, True)], SPACE, FIXED),
        "dropout", POOLED,
    )  # fmt: skip
    assert kept.estimate < 0 < dropped.estimate
    assert kept.trials == 3 * 12 and dropped.trials == 3 * 8


def test_findings_about_a_fixed_hyperparameter_say_so() -> None:
    space = {k: v for k, v in SPACE.items() if k not in ("init", "activation")}
    fixed = {**FIXED, "init": "auto", "activation": "relu"}
    advice = estimate_advice(_samples(lambda q: 0.0, seeds=4), space, fixed)
    init = _get(advice, "init", POOLED)
    assert init.reason == "not searched: init = 'auto' is fixed, so every trial has the same value"
    assert "activation = 'relu'" in (_get(advice, "relu", POOLED).reason or "")
    assert _get(advice, "dropout", POOLED).reason is None


def test_advice_figure_draws_each_pooled_finding_with_a_number() -> None:
    from hpstudy.report._figures import advice_figure

    advice = estimate_advice(_samples(lambda q: 0.0, tasks=("a", "b"), seeds=6), SPACE, FIXED)
    fig = advice_figure(advice)
    pooled = [f for f in advice.findings if f.scope == POOLED and f.reason is None]
    assert fig is not None and len(fig.data) == len(pooled) == 6
    assert [t.x[0] for t in fig.data] == [f.estimate for f in pooled]
    assert [t.error_x.array[0] + t.x[0] for t in fig.data] == pytest.approx(
        [f.ci_high for f in pooled]
    )
    nothing = estimate_advice(_samples(lambda q: 0.0, seeds=2), SPACE, FIXED)
    assert advice_figure(nothing) is None  # two seeds: no finding has a number
