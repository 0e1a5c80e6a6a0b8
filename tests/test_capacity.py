"""Networks too large for the machine: refused at create with the keys and the estimate; a trial
that still runs out of memory is FAIL with a readable reason."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

from hpstudy.cli import app
from hpstudy.config import parse_config
from hpstudy.model import (
    build_mlp,
    count_parameters,
    out_of_memory_reason,
    parameter_count,
    training_bytes,
)
from tests.conftest import tiny_study_text

runner = CliRunner()


@pytest.mark.parametrize(
    ("n_features", "n_outputs", "n_layers", "n_units"),
    [(4, 3, 0, 1), (4, 1, 1, 8), (64, 10, 3, 100), (13, 1, 16, 7)],
)
def test_parameter_count_matches_the_built_network(
    n_features: int, n_outputs: int, n_layers: int, n_units: int
) -> None:
    network = build_mlp(
        n_features, n_outputs, n_layers=n_layers, n_units=n_units, dropout=0.1,
        activation="relu", init="default",
    )  # fmt: skip
    assert parameter_count(n_features, n_outputs, n_layers, n_units) == count_parameters(network)


def test_training_bytes_counts_state_and_activations() -> None:
    # 5 float32 copies of 1000 params + 3 x 32 x 10 x 2 + 2 x 50 x 10 activations, 2 folds
    assert training_bytes(1000, 2, 10, 32, 50, 2) == 2 * 4 * (5000 + 1920 + 1000)


def _huge_space(tmp_path: Path) -> Path:
    study = tmp_path / "s.toml"
    text = tiny_study_text(strategies=("random",)).replace(
        "n_units = { low = 8, high = 32, log = true, grid = [8, 32] }",
        "n_units = { low = 8, high = 16384, log = true }",
    )
    text = text.replace(
        "n_layers = { low = 1, high = 2, grid = [1, 2] }", "n_layers = { low = 1, high = 16 }"
    )
    text = text.replace('dataset = "iris"', 'dataset = "iris"\ncv_folds = 5')
    study.write_text(text)
    return study


def test_create_refuses_a_space_whose_largest_network_cannot_fit(
    tmp_path: Path, storage_url: str
) -> None:
    result = runner.invoke(app, ["create", str(_huge_space(tmp_path)), "--storage", storage_url])
    assert result.exit_code == 2, result.output
    assert (
        "task 'iris': the largest configuration of the space (n_layers = 16, n_units = 16384, "
        "batch_size = 32) has 4,026,908,675 parameters and needs about" in result.stderr
    )
    assert "lower space.n_units or space.n_layers" in result.stderr
    assert "Traceback" not in result.output
    assert not optuna.get_all_study_summaries(storage_url)  # nothing was written


def _limit_memory() -> None:
    limit = 900 * 2**20  # enough for Python, torch and small networks; not for 67M parameters
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _big_manual_study(tmp_path: Path) -> Path:
    study = tmp_path / "s.toml"
    study.write_text(
        tiny_study_text(strategies=("manual",), n_trials=2)
        .replace("n_units = { low = 8, high = 32, log = true, grid = [8, 32] }",
                 "n_units = { low = 8, high = 8192 }")
        .replace("n_layers = 2\nn_units = 8\n", "n_layers = 1\nn_units = 8\n")
        .replace("n_layers = 1\nn_units = 16\n", "n_layers = 2\nn_units = 8192\n")
        .replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    )  # fmt: skip
    return study


@pytest.mark.slow
def test_resume_in_a_process_whose_limits_cannot_fit_the_space_is_refused(
    tmp_path: Path, storage_url: str
) -> None:
    created = runner.invoke(
        app, ["create", str(_big_manual_study(tmp_path)), "--storage", storage_url, "--no-run"]
    )
    assert created.exit_code == 0, created.output  # 8192 units fit this machine's memory
    resumed = subprocess.run(
        [sys.executable, "-m", "hpstudy", "resume", "tiny", "--storage", storage_url],
        preexec_fn=_limit_memory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 2, resumed.stderr
    assert (
        "the largest configuration of the space (n_layers = 2, n_units = 8192, batch_size = 32) "
        "has 67,182,595 parameters and needs about 1.35 GB to train, more than the"
    ) in resumed.stderr
    assert "of memory this process's limits leave here" in resumed.stderr
    trials = optuna.load_study(study_name="tiny.iris.manual.s0", storage=storage_url).trials
    assert {t.state for t in trials} == {optuna.trial.TrialState.WAITING}  # nothing ran


_SHORTFALL = """
import json, sys
from hpstudy.config import parse_config
from hpstudy.data import prepare_task
from hpstudy.model import memory_shortfall
from tests.conftest import tiny_study_text
data = prepare_task(parse_config(tiny_study_text()).task("iris"), seed=0)
print(json.dumps([
    memory_shortfall({"n_layers": 2, "n_units": 8192, "batch_size": 32}, data, "cpu"),
    memory_shortfall({"n_layers": 1, "n_units": 8, "batch_size": 32}, data, "cpu"),
]))
"""


def test_each_trial_is_checked_against_the_memory_left_before_training() -> None:
    checked = subprocess.run(
        [sys.executable, "-c", _SHORTFALL],
        preexec_fn=_limit_memory,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert checked.returncode == 0, checked.stderr
    big, small = json.loads(checked.stdout)
    assert big.startswith(
        "out of memory: n_layers = 2, n_units = 8192, batch_size = 32 (67,182,595 parameters) "
        "needs about 1.35 GB to train, more than the"
    )
    assert big.endswith(
        "of memory this process's limits leave (estimated before training); "
        "lower n_units, n_layers or batch_size in the space"
    )
    assert small is None


@pytest.mark.parametrize(
    "allocate", [lambda: torch.empty(2**58), lambda: bytearray(2**62)], ids=["torch", "python"]
)
def test_an_allocator_error_becomes_a_readable_reason(allocate: Callable[[], object]) -> None:
    from hpstudy.data import prepare_task

    data = prepare_task(parse_config(tiny_study_text()).task("iris"), seed=0)
    params = {"n_layers": 3, "n_units": 512, "batch_size": 64}
    with pytest.raises((RuntimeError, MemoryError)) as raised:
        allocate()  # a real allocation the allocator refuses
    reason = out_of_memory_reason(raised.value, params, data)
    assert reason is not None and reason.startswith(
        "out of memory: n_layers = 3, n_units = 512, batch_size = 64 (529,411 parameters) needs about"
    )
    assert out_of_memory_reason(ValueError("bad value"), params, data) is None
