"""`seconds` measures training only: the first trial of a run (or of each forked worker) does
not carry the process's one-time start-up (torch's first optimizer imports torch._dynamo,
seconds of it), so it is no outlier against later trials of the very same configuration."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

# One configuration (every hyperparameter fixed), run 8 times: trials differ only by timing.
SAME = """
name = "same"
seeds = 1
strategies = ["random"]

[budget]
n_trials = 8

[training]
max_epochs = 100
patience = 0

[pruner]
type = "none"

[[tasks]]
name = "iris"
dataset = "iris"

[space]
n_layers = 2
n_units = 32
lr = 0.01
dropout = 0.1
batch_size = 16
"""


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_the_first_trial_is_no_outlier_against_the_same_configuration(
    tmp_path: Path, n_jobs: int
) -> None:
    study = tmp_path / "same.toml"
    study.write_text(SAME)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    run = subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", "create", str(study), "--storage", url,
         "--n-jobs", str(n_jobs)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    trials = optuna.load_study(study_name="same.iris.random.s0", storage=url).get_trials(
        states=(TrialState.COMPLETE,)
    )
    assert len(trials) == 8 and len({str(t.params) for t in trials}) == 1
    firsts: dict[str, float] = {}  # each process's first trial
    for t in sorted(trials, key=lambda t: t.datetime_start):
        firsts.setdefault(t.user_attrs["worker"], t.user_attrs["seconds"])
    assert len(firsts) == n_jobs
    later = [
        t.user_attrs["seconds"] for t in trials if t.user_attrs["seconds"] not in firsts.values()
    ]
    typical = statistics.median(later)
    # A ratio, not a time: with the start-up in it the first trial was 10-100x the others.
    for worker, first in firsts.items():
        assert first < 4 * typical, (worker, first, sorted(later))
