"""The model line: planted numbers in, the same numbers out (medians, range, R^2)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from hpstudy.analysis import Study, Trial, TrialTable
from hpstudy.analysis._model_line import model_line
from hpstudy.analysis._prose import model_sentence
from hpstudy.analysis._summary import summarize_task
from hpstudy.analysis._table import REFERENCE_NAMES, References
from hpstudy.config import parse_config
from tests.conftest import tiny_study_text

CONFIG = parse_config(tiny_study_text(("grid", "random"), n_trials=3))


def _table(seed: int, with_refs: bool = True, metric: str = "rmse") -> tuple[TrialTable, dict]:
    rng = random.Random(seed)
    studies, planted = [], {"tests": {}, "refs": {}}
    for s in range(5):
        refs = None
        if with_refs:
            refs = References(
                {k: rng.uniform(40, 80) for k in REFERENCE_NAMES},
                {k: rng.uniform(-0.1, 0.6) for k in REFERENCE_NAMES},
                rng.uniform(3000, 6000),
            )
            planted["refs"][s] = refs
        for strategy in ("grid", "random"):
            trials = []
            for n in range(3):
                params = {"n_layers": rng.choice([1, 2]), "n_units": 8, "lr": 0.01}
                test = (rng.uniform(45, 60),) if n == 0 else None
                best = 1.0 if metric == "rmse" else 9.0  # trial 0 is each study's best
                trials.append(
                    Trial(n, "COMPLETE", best if n == 0 else 2.0 + n, epochs=3, params=params,
                          test_scores=test)
                )  # fmt: skip
                if test:
                    planted["tests"][(strategy, s)] = test[0]
            studies.append(
                Study(f"t.diabetes.{strategy}.s{s}", "t", "diabetes", strategy, s, metric,
                      "minimize" if metric == "rmse" else "maximize", "regression", 3,
                      trials=tuple(trials), references=refs)
            )  # fmt: skip
    return TrialTable("t", CONFIG, tuple(studies)), planted


@pytest.mark.parametrize("seed", range(5))
def test_the_line_holds_the_planted_medians_range_and_r2(seed: int) -> None:
    table, planted = _table(seed)
    summary = summarize_task(table, "diabetes")
    line = summary.model
    assert line is not None
    own = [v for (k, _), v in sorted(planted["tests"].items()) if k == line.strategy]
    assert line.seeds == 5 and line.median == pytest.approx(float(np.median(own)))
    assert (line.low, line.high) == (min(own), max(own))
    for k in REFERENCE_NAMES:
        refs = planted["refs"].values()
        assert line.references[k] == pytest.approx(float(np.median([r.scores[k] for r in refs])))
        assert line.r2_references[k] == pytest.approx(float(np.median([r.r2[k] for r in refs])))
    r2 = [
        1 - v * v / planted["refs"][s].test_variance
        for (k, s), v in planted["tests"].items()
        if k == line.strategy
    ]
    assert line.r2 == pytest.approx(float(np.median(r2)))
    sentence = model_sentence(line)
    for x in (line.median, line.low, line.high, line.r2, *line.references.values()):
        assert f"{x:.4g}" in sentence


def test_without_references_there_is_no_line() -> None:
    table, _ = _table(0, with_refs=False)
    assert summarize_task(table, "diabetes").model is None
    assert model_line(table, "diabetes", {}) is None


def test_when_the_metric_is_r2_the_models_r2_is_its_score() -> None:
    table, planted = _table(1, metric="r2")
    line = summarize_task(table, "diabetes").model
    assert line is not None and math.isfinite(line.r2)
    assert line.r2 == line.median
