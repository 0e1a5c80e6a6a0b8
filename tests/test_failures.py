"""A study whose every trial failed says so in status, best and report, with the most common
reason and what to change, instead of suggesting 'resume'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hpstudy.cli import app
from tests.conftest import tiny_study_text

runner = CliRunner()


@pytest.fixture(scope="module")
def all_failed(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An experiment whose every trial diverges: SGD at a learning rate of 10."""
    root = tmp_path_factory.mktemp("failed")
    rng = np.random.default_rng(0)
    rows = ["a,b,y"] + [
        f"{rng.normal():.3f},{rng.normal():.3f},{rng.normal() * 1e120:.4g}" for _ in range(60)
    ]
    (root / "d.csv").write_text("\n".join(rows) + "\n")
    text = tiny_study_text(strategies=("random",), n_trials=2)
    text = text.replace(
        'name = "iris"\ndataset = "iris"', 'name = "d"\ncsv = "d.csv"\ntarget = "y"'
    )
    text = text.replace('[[tasks]]\nname = "diabetes"\ndataset = "diabetes"\n', "")
    text = text.replace(
        "lr = { low = 1e-3, high = 1e-1, log = true, grid = [1e-2] }",
        'lr = 10.0\noptimizer = "sgd"',
    )
    (root / "s.toml").write_text(text)
    url = f"sqlite:///{root / 'hp.db'}"
    created = runner.invoke(app, ["-q", "create", str(root / "s.toml"), "--storage", url])
    assert created.exit_code == 0, created.output
    assert "2 trial(s) failed" in created.stderr
    return url


def test_status_says_every_trial_failed(all_failed: str) -> None:
    result = runner.invoke(app, ["status", "tiny", "--storage", all_failed])
    assert result.exit_code == 0, result.output
    assert (
        "warning: tiny.d.random.s0: all 2 finished trials failed; most often (2 of 2): diverged: "
        in result.stderr
    )
    assert "lower space.lr (its high)" in result.stderr


def test_best_and_train_best_do_not_suggest_resume(all_failed: str, tmp_path: Path) -> None:
    for command in (["best", "tiny"], ["train-best", "tiny", "-o", str(tmp_path / "m")]):
        result = runner.invoke(app, [*command, "--storage", all_failed])
        assert result.exit_code == 2
        assert (
            "every trial of its 1 studies failed (tiny.d.random.s0: all 2 finished"
            in result.stderr
        )
        assert "'resume' would not help: change the study file" in result.stderr
        assert "run 'hpstudy resume" not in result.stderr


def test_report_says_every_trial_failed(all_failed: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "tiny", "--storage", all_failed, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: tiny.d.random.s0: all 2 finished trials failed" in result.stderr
    assert "all 2 finished trials failed; most often (2 of 2): diverged" in out.read_text()
