"""kill -9 at each named step of the trial lifecycle and of create (a real SIGKILL the process
sends itself at that instruction: HPSTUDY_CRASH_AT), then `hpstudy resume NAME`: the result
is exactly what an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from hpstudy import UsageError
from hpstudy.config import parse_config
from hpstudy.runner import create_experiment, resume_experiment
from hpstudy.store import counts_toward_budget
from tests.conftest import tiny_study_text
from tests.runner.test_processes import _assert_exact_experiment

pytestmark = pytest.mark.slow

# iris only: manual (2), grid (3 of 4 points), random (3), tpe (3); 3-epoch trials.
CRASH = tiny_study_text(strategies=("manual", "grid", "random", "tpe"), n_trials=3).replace(
    '[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', ""
)
# In run order, claims 1-2 are manual trials, 3-5 grid points, 6-8 random trials (sampled).


def _hpstudy(args: list[str], crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HPSTUDY_CRASH_AT"}
    if crash:
        env["HPSTUDY_CRASH_AT"] = crash
    return subprocess.run(
        [sys.executable, "-m", "hpstudy", "-q", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize(
    "crash",
    [
        "claim:3",  # a grid point claimed (RUNNING with its parameters), not trained
        "claim:6",  # a new number claimed, nothing sampled: a parameterless RUNNING trial
        "sample:2",  # inside the sampler
        "params:1",  # sampled, parameters not stored
        "train:7",  # the first epoch of the third trial (a grid point)
        "finish:4",  # trained, the result not stored
        "create-study:2",  # one study created, the rest not
        "create-study:4",
        "queue:1",  # a study created with its attrs, none of its configurations queued
        "queue:4",  # manual queued, the grid half queued
    ],
)
def test_kill_at_each_step_then_resume_name_gives_exactly_the_experiment(
    tmp_path: Path, crash: str
) -> None:
    study = tmp_path / "crash.toml"
    study.write_text(CRASH)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    killed = _hpstudy(["create", str(study), "--storage", url], crash=f"{crash}:KILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if crash.startswith("create-study"):  # create refuses, naming the command that continues
        with pytest.raises(UsageError, match="'hpstudy resume tiny'"):
            create_experiment(parse_config(CRASH), url)
    resume_experiment("tiny", url)  # by name: the stored file says what is left to do
    _assert_exact_experiment(url, n_manual=2, grid_size=4, budget=3, n_studies=4)


def test_kill_during_recovery_then_resume_gives_exactly_the_experiment(tmp_path: Path) -> None:
    """A stale trial's recovery (fail + re-queue, one transaction) is itself killed."""
    study = tmp_path / "crash.toml"
    study.write_text(CRASH)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = _hpstudy(["create", str(study), "--storage", url], crash="train:8:KILL")
    assert first.returncode == -signal.SIGKILL
    second = _hpstudy(["resume", "tiny", "--storage", url], crash="recovery:1:KILL")
    assert second.returncode == -signal.SIGKILL
    resume_experiment("tiny", url)
    _assert_exact_experiment(url, n_manual=2, grid_size=4, budget=3, n_studies=4)


def test_repeated_kills_of_the_whole_run_never_spend_the_budget(tmp_path: Path) -> None:
    """Four kills in a row, each mid-trial (no configuration three times), then a clean
    resume: every kill is re-run, none is counted, nothing is given up."""
    study = tmp_path / "crash.toml"
    study.write_text(CRASH)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    run = _hpstudy(["create", str(study), "--storage", url], crash="train:2:KILL")
    assert run.returncode == -signal.SIGKILL
    for _ in range(3):
        run = _hpstudy(["resume", "tiny", "--storage", url], crash="train:2:KILL")
        assert run.returncode == -signal.SIGKILL
    resume_experiment("tiny", url)
    _assert_exact_experiment(url, n_manual=2, grid_size=4, budget=3, n_studies=4)
    reasons = [
        t.user_attrs.get("fail_reason", "")
        for s in optuna.get_all_study_summaries(url)
        for t in optuna.load_study(study_name=s.study_name, storage=url).trials
    ]
    assert not [r for r in reasons if r.startswith("gave up")]
    assert sum(r.startswith("stale") for r in reasons) == 4


def test_a_configuration_that_kills_its_process_is_given_up_uncounted_and_shown(
    tmp_path: Path,
) -> None:
    """The one manual configuration kills its worker three times: it is given up (not
    re-queued, not counted) and `status` says so."""
    study = tmp_path / "crash.toml"
    text = CRASH.replace('["manual", "grid", "random", "tpe"]', '["manual"]')
    study.write_text(text.replace("\n[[manual]]\nn_layers = 2\nn_units = 8\nlr = 0.003\n", ""))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    run = _hpstudy(["create", str(study), "--storage", url], crash="train:1:KILL")
    assert run.returncode == -signal.SIGKILL
    for _ in range(2):
        run = _hpstudy(["resume", "tiny", "--storage", url], crash="train:1:KILL")
        assert run.returncode == -signal.SIGKILL
    run = _hpstudy(["resume", "tiny", "--storage", url])
    assert run.returncode == 0, run.stderr
    trials = optuna.load_study(study_name="tiny.iris.manual.s0", storage=url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 3
    reasons = [t.user_attrs["fail_reason"] for t in trials]
    assert reasons[0].startswith("stale") and reasons[1].startswith("stale")
    assert reasons[2].startswith("gave up: its worker process died 3 times")
    assert all(t.user_attrs["manual_index"] == 0 for t in trials)
    status = _hpstudy(["status", "tiny", "--storage", url])
    assert status.returncode == 0
    assert "0/1" in status.stdout  # the given-up configuration is not counted
    assert "gave up: its worker process died 3 times" in status.stderr


# random, QMC and TPE on iris, 12 trials each (TPE's first 10 are random start-up draws, the
# last 2 come from its model), run in the order random, qmc, tpe.
SAMPLED = tiny_study_text(strategies=("random", "qmc", "tpe"), n_trials=12, pruner="none").replace(
    '[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', ""
)


def _configurations(url: str) -> dict[str, list[tuple[tuple[str, object], ...]]]:
    """Per study, the configurations of its counted trials, in the order they were drawn."""
    out = {}
    for s in optuna.get_all_study_summaries(url):
        trials = optuna.load_study(study_name=s.study_name, storage=url).trials
        counted = [t for t in trials if counts_toward_budget(t)]
        out[s.study_name] = sorted(
            (tuple(sorted(t.params.items())) for t in counted), key=lambda c: repr(c)
        )
    return out


@pytest.mark.parametrize(
    "crash",
    [
        "claim:2",  # random: a number claimed, nothing sampled
        "params:14",  # qmc: sampled, parameters not stored
        "train:40",  # a qmc trial, mid-training
        "finish:35",  # tpe's 11th trial (its first from the model), trained, not stored
    ],
)
def test_a_killed_run_resumed_draws_exactly_the_configurations_of_an_uninterrupted_run(
    tmp_path: Path, crash: str
) -> None:
    """The re-run draws what the crashed attempt drew: the crashed trial's number is used
    up, but its sample index (the sampler's seed) is not, and a crashed trial with stored
    parameters is re-run with them before anything new is sampled."""
    study = tmp_path / "sampled.toml"
    study.write_text(SAMPLED)
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    done = _hpstudy(["create", str(study), "--storage", clean])
    assert done.returncode == 0, done.stderr
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    killed = _hpstudy(["create", str(study), "--storage", url], crash=f"{crash}:KILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resume_experiment("tiny", url)
    expected = _configurations(clean)
    assert sorted(expected) == ["tiny.iris.qmc.s0", "tiny.iris.random.s0", "tiny.iris.tpe.s0"]
    assert all(len(v) == 12 for v in expected.values())
    assert _configurations(url) == expected
