"""The real optuna-dashboard process, started by 'hpstudy dashboard' on a storage made by
'hpstudy create', answers its API with hpstudy's studies and attrs; stopped by its pid."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpstudy.cli import app
from tests.conftest import tiny_study_text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_dashboard_serves_hpstudy_studies(tmp_path: Path, storage_url: str) -> None:
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",), n_trials=2))
    assert (
        CliRunner().invoke(app, ["-q", "create", str(study), "--storage", storage_url]).exit_code
        == 0
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpstudy",
            "dashboard",
            "--storage",
            storage_url,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/api/meta")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        studies = _get(f"{base}/api/studies")["study_summaries"]  # type: ignore[index]
        names = {s["study_name"]: s for s in studies}
        assert set(names) == {"tiny.iris.random.s0", "tiny.diabetes.random.s0"}
        detail = _get(f"{base}/api/studies/{names['tiny.iris.random.s0']['study_id']}")
        text = json.dumps(detail)
        for key in ("experiment", "strategy", "seed", "epochs", "seconds"):
            assert f'"{key}"' in text, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_refuses_a_storage_without_hpstudy_studies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    import optuna

    optuna.create_study(storage=url, study_name="someone-else")
    result = CliRunner().invoke(app, ["dashboard", "--storage", url])
    assert result.exit_code == 2
    assert "no hpstudy studies in" in result.stderr and "(1 other studies)" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.org"])
def test_dashboard_beyond_loopback_needs_allow_remote(tmp_path: Path, host: str) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    import optuna

    optuna.create_study(storage=url, study_name="someone-else")
    refused = CliRunner().invoke(app, ["dashboard", "--storage", url, "--host", host])
    assert refused.exit_code == 2
    assert f"--host {host} is reachable from other machines" in refused.stderr
    assert "--allow-remote" in refused.stderr and "Traceback" not in refused.output
    # with the flag it gets as far as the storage check (this storage has no hpstudy study)
    allowed = CliRunner().invoke(
        app, ["dashboard", "--storage", url, "--host", host, "--allow-remote"]
    )
    assert allowed.exit_code == 2 and "no hpstudy studies in" in allowed.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_dashboard_on_loopback_needs_no_flag(tmp_path: Path, host: str) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    import optuna

    optuna.create_study(storage=url, study_name="someone-else")
    result = CliRunner().invoke(app, ["dashboard", "--storage", url, "--host", host])
    assert result.exit_code == 2 and "no hpstudy studies in" in result.stderr


def test_run_dashboard_refuses_a_remote_host_without_allow_remote(tmp_path: Path) -> None:
    from hpstudy._dashboard import run_dashboard
    from hpstudy._errors import UsageError

    with pytest.raises(UsageError, match=r"--host 0.0.0.0 is reachable .* pass --allow-remote"):
        run_dashboard(f"sqlite:///{tmp_path / 'none.db'}", "0.0.0.0", 8080)
    assert not (tmp_path / "none.db").exists()  # refused before the storage was touched
