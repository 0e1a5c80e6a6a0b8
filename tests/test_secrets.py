"""A storage password never appears in any command's output, in files written, or in storage."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpstudy._redact import redact_text, redact_url
from hpstudy.cli import _storage_flag, app
from tests.conftest import fresh_postgres_database, tiny_study_text

runner = CliRunner()
SECRET = "s3cretPW"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test",
            "postgresql://postgres:***@127.0.0.1:5432/test",
        ),
        (
            f"postgresql+psycopg://u:{SECRET}@h/db?sslmode=require",
            "postgresql+psycopg://u:***@h/db?sslmode=require",
        ),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
        (f"not a url://u:{SECRET}@h", "not a url://u:***@h"),
        ("sqlite:///storage/hpstudy.db", "sqlite:///storage/hpstudy.db"),
        ("postgresql://postgres@127.0.0.1/test", "postgresql://postgres@127.0.0.1/test"),
        (
            f"postgresql://u@h/db?password={SECRET}",
            "postgresql://u@h/db?password=***",
        ),
        (
            f"postgresql://u@h/db?sslmode=require&password={SECRET}",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        (
            f"postgresql://u:{SECRET}@h/db?sslpassword={SECRET}x",
            "postgresql://u:***@h/db?sslpassword=***",
        ),
        (f"mysql+pymysql://u@h/db?passwd={SECRET}", "mysql+pymysql://u@h/db?passwd=***"),
        (f"not a url://u@h/db?password={SECRET}", "not a url://u@h/db?password=***"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_hides_raw_and_encoded_password() -> None:
    url = "postgresql://u:p%40ss@h/db"
    assert redact_text("driver said p@ss and p%40ss", url) == "driver said *** and ***"


def test_redact_text_hides_a_password_given_as_query_parameter() -> None:
    url = "postgresql://u@h/db?password=p%40ss&sslmode=require"
    said = "connection to h failed for password=p@ss (url ...?password=p%40ss)"
    assert (
        redact_text(said, url) == "connection to h failed for password=*** (url ...?password=***)"
    )


@pytest.fixture(scope="module")
def pg_url_with_password() -> Iterator[str]:
    from sqlalchemy.engine import make_url

    with fresh_postgres_database("hpstudy_secret") as url:
        # the test server trusts any password: this one must still never be shown
        yield make_url(url).set(password=SECRET).render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_command_shows_the_password_of_a_reachable_storage(
    tmp_path: Path, pg_url_with_password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_url_with_password
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",), n_trials=2))
    shown = "postgresql://postgres:***@"
    commands = [  # (arguments, exit code, what the output shows of the URL)
        (["create", str(study), "--storage", url, "--strategy", "random"], 0, f"results: {shown}"),
        (["list", "--storage", url], 0, "tiny.iris.random.s0"),
        (["status", "tiny", "--storage", url], 0, "tiny.iris.random.s0"),
        (["resume", "tiny", "--storage", url], 0, f"--storage '{shown}"),
        (["worker", "tiny", "--storage", url], 0, f"results: {shown}"),
        (["best", "tiny", "--storage", url], 0, "iris: validation"),
        (["best", "tiny", "--storage", url, "--json"], 0, '"task": "iris"'),
        (["report", "tiny", "--storage", url, "-o", "out/r.html"], 0, "report:"),
        (["export", "tiny", "--storage", url, "-o", "out/e.csv"], 0, "wrote"),
        (
            ["export", "tiny", "--storage", url, "-f", "json", "-o", "out/e.json"],
            0,
            "wrote",
        ),
        (
            ["train-best", "tiny", "--storage", url, "--task", "iris", "-o", "out/model"],
            0,
            "saved",
        ),
        (["status", "nope", "--storage", url], 2, f"not found in {shown}"),
        (["resume", "nope", "--storage", url], 2, f"not found in {shown}"),
        (["list", "--storage", url, "--experiment", "nope"], 0, f"in {shown}"),
    ]
    for args, code, expected in commands:
        result = runner.invoke(app, ["-q", *args])
        assert SECRET not in result.output, (args, result.output)
        assert result.exit_code == code, (args, result.output)
        assert expected in result.output, (args, result.output)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"r.html", "e.csv", "e.json", "model.json", "weights.pt"}
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    import optuna

    for summary in optuna.get_all_study_summaries(url):
        study_attrs = json.dumps(summary.user_attrs, default=str)
        assert SECRET not in study_attrs
        for trial in optuna.load_study(study_name=summary.study_name, storage=url).trials:
            assert SECRET not in json.dumps(trial.user_attrs, default=str)

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpstudy", "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        banner = ""
        assert proc.stdout is not None
        while "optuna-dashboard for" not in banner and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner += line
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    assert "optuna-dashboard for postgresql://postgres:***@" in banner, banner
    assert SECRET not in banner + rest


@pytest.mark.parametrize(
    "args",
    [
        ["create", "{study}"],
        ["list"],
        ["status", "tiny"],
        ["resume", "tiny"],
        ["worker", "tiny"],
        ["best", "tiny"],
        ["report", "tiny"],
        ["export", "tiny"],
        ["train-best", "tiny"],
        ["dashboard"],
    ],
)
def test_no_command_shows_the_password_of_an_unreachable_storage(
    tmp_path: Path, args: list[str]
) -> None:
    study = tmp_path / "s.toml"
    study.write_text(tiny_study_text(strategies=("random",)))
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/none"
    argv = [a.format(study=study) for a in args]
    for debug in ([], ["--debug"]):
        result = runner.invoke(app, [*debug, *argv, "--storage", url])
        assert result.exit_code == 1, result.output
        assert "cannot open storage postgresql://postgres:***@127.0.0.1:1/none" in result.stderr
        assert SECRET not in result.output


def test_resume_hint_never_repeats_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://postgres:{SECRET}@db.example/hp"
    monkeypatch.delenv("HPSTUDY_STORAGE", raising=False)
    hint = _storage_flag(url)
    assert SECRET not in hint and "'postgresql://postgres:***@db.example/hp'" in hint
    monkeypatch.setenv("HPSTUDY_STORAGE", url)
    assert _storage_flag(url) == ""  # the environment already holds it
    assert _storage_flag("sqlite:///x.db") == " --storage sqlite:///x.db"


def test_an_interrupt_prints_a_resume_hint_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from hpstudy._errors import Interrupted
    from hpstudy.cli import _call, _storage_url

    monkeypatch.delenv("HPSTUDY_STORAGE", raising=False)
    url = _storage_url(f"postgresql://postgres:{SECRET}@db.example/hp")

    def interrupted() -> None:
        raise Interrupted(f"interrupted while writing to {url}")  # even if a message quoted it

    with pytest.raises(typer.Exit) as exit_info:
        _call(interrupted, resume_hint=lambda: f"hpstudy resume tiny{_storage_flag(url)}")
    assert exit_info.value.exit_code == 130
    err = capsys.readouterr().err
    assert SECRET not in err
    assert (
        "resume with: hpstudy resume tiny --storage 'postgresql://postgres:***@db.example/hp'"
        in err
    )


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{SECRET}@127.0.0.1:1/none",
        f"postgresql://postgres:{SECRET}@127.0.0.1:notaport/none",  # SQLAlchemy cannot parse it
        f"nosuchdriver://postgres:{SECRET}@127.0.0.1/none",
    ],
)
def test_a_password_in_hpstudy_storage_is_not_shown_either(url: str) -> None:
    result = runner.invoke(app, ["list"], env={"HPSTUDY_STORAGE": url})
    unreachable = ":1/" in url  # the others are not URLs of a database: usage errors
    assert result.exit_code == (1 if unreachable else 2), result.output
    said = "cannot open storage" if unreachable else "expected a SQLite file (sqlite:///path.db"
    assert said in result.stderr and "postgres:***@127.0.0.1" in result.stderr
    assert SECRET not in result.output
