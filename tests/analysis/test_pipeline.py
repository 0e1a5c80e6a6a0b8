"""The analysis end to end on synthetic trial tables whose answer is known: a negative control
worse by construction is called inferior, an identical arm is not, and the analysis imports no
storage, Optuna or torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from hpstudy.analysis import Study, Trial, TrialTable, analyze
from hpstudy.analysis._summary import CONTROL, picks_needed
from hpstudy.config import parse_config
from tests.conftest import tiny_study_text

ROOT = Path(__file__).resolve().parents[2]


def _study(strategy: str, seed: int, trials: list[Trial]) -> Study:
    return Study(
        name=f"x.diabetes.{strategy}.s{seed}", experiment="x", task="diabetes", strategy=strategy, seed=seed,
        metric="rmse", direction="minimize", kind="regression", budget=len(trials),
        trials=tuple(trials),
    )  # fmt: skip


def _table(seeds: int = 20, random_early_poor: bool = True) -> TrialTable:
    """Grid and random search on one regression task. Each trial's test score equals its
    validation score plus noise; random search's first eighth of compute finds only poor
    configurations when ``random_early_poor`` (so stopping it there loses)."""
    config = parse_config(
        tiny_study_text(strategies=("grid", "random"), n_trials=16).replace(
            'dataset = "diabetes"', 'dataset = "diabetes"\nmargin = 0.05'
        )
    )
    rng = np.random.default_rng(0)
    fixed = config.fixed_params()
    studies = []
    for seed in range(seeds):
        for strategy in ("grid", "random"):
            trials = []
            for n in range(16):
                value = float(rng.uniform(1.0, 1.5))
                if strategy == "random" and random_early_poor and n < 2:
                    value += 2.0  # the first 2 of 16 trials (1/8 of the compute) are poor
                test = value + float(rng.normal(0, 0.01))
                trials.append(
                    Trial(n, "COMPLETE", value, epochs=10, seconds=0.1, params={**fixed, "lr": 0.01 * (n + 1), "n_layers": 1 + n % 2, "n_units": 8 + n},
                          test_scores=(test, test))
                )  # fmt: skip
            studies.append(_study(strategy, seed, trials))
    return TrialTable("x", config, tuple(studies))


def test_a_negative_control_worse_by_construction_is_called_inferior() -> None:
    analysis = analyze(_table())
    (summary,) = [s for s in analysis.summaries if s.task == "diabetes"]
    assert summary.control is not None and summary.control.strategy == CONTROL
    assert summary.control.verdict == "inferior"
    assert summary.control.seeds == 20
    assert "can find a loss" in summary.verdict
    assert "called inferior on 1 of 1 tasks" in analysis.headline
    # the control is judged in the headline's family (Holm over both comparisons)
    assert summary.control.family == summary.verdicts[0].family


def test_the_same_search_is_not_called_inferior() -> None:
    analysis = analyze(_table(random_early_poor=False))
    (summary,) = analysis.summaries
    (v,) = summary.verdicts
    assert v.verdict != "inferior"


def test_every_pick_the_analysis_reads_is_named_for_scoring() -> None:
    table = _table(seeds=3)
    needed = picks_needed(table)
    for s in table.studies:
        best = s.best()
        assert best is not None and best.number in needed[s.name]
    # the control's pick (random at 1/8 of grid's epochs: its 2nd trial) is among them
    assert 1 in needed["x.diabetes.random.s0"] or 0 in needed["x.diabetes.random.s0"]


def test_the_analysis_imports_no_storage_optuna_or_torch() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hpstudy.analysis import analyze, read_results\n"
        f"analyze(read_results(Path({str(next(ROOT.glob('results/**/e17-4d-small.csv.gz')))!r})))\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'optuna', 'torch', 'sqlalchemy', 'sklearn', 'plotly'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
