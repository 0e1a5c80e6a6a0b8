"""Bad input everywhere gets a one-line error, never a traceback: a damaged SQLite file, a
malformed study attr, a deeply nested model.json, a huge grid, a long name, a command-line
budget below the grid; and output files are written under unique temporary names."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import time
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpstudy import ConfigError
from hpstudy.cli import app
from hpstudy.config import parse_config
from hpstudy.runner import apply_overrides, create_experiment
from tests.conftest import tiny_study_text

runner = CliRunner()


def _one_line_error(result: object, code: int) -> str:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    assert result.exception is None or isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    return lines[0]


@pytest.fixture(scope="module")
def finished_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("done") / "hpstudy.db"
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=2)), f"sqlite:///{path}"
    )
    with sqlite3.connect(path) as conn:  # everything in the main file, no write-ahead log left
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_every_damaged_page_of_a_sqlite_file_gives_a_one_line_error(
    finished_db: Path, tmp_path: Path
) -> None:
    page = 4096
    n_pages = finished_db.stat().st_size // page
    damaged_somewhere = 0
    for number in range(n_pages):  # each page in turn, the header page included
        copy = tmp_path / f"p{number}.db"
        data = bytearray(finished_db.read_bytes())
        # seeded noise: the same damage on every run (a page type byte SQLite accepts by
        # chance would let some garbage through)
        data[number * page : (number + 1) * page] = random.Random(number).randbytes(page)
        copy.write_bytes(bytes(data))
        result = runner.invoke(app, ["-q", "status", "tiny", "--storage", str(copy)])
        if result.exit_code == 0:
            continue  # a page this command does not read
        line = _one_line_error(result, 1)
        assert "is damaged (" in line and f"sqlite3 {copy}" in line
        assert "exceeding max length" not in line
        damaged_somewhere += 1
    assert damaged_somewhere >= 2  # the header and the tables' root pages at least
    copy = tmp_path / "p2.db"
    for command in (["best", "tiny"], ["report", "tiny"], ["list"]):
        result = runner.invoke(app, [*command, "--storage", str(copy), "-o", str(tmp_path / "r")]
                               if command[0] == "report" else [*command, "--storage", str(copy)])  # fmt: skip
        if result.exit_code:
            assert "is damaged" in _one_line_error(result, 1)


def _set_attr(url: str, study: str, key: str, value: object) -> None:
    optuna.load_study(study_name=study, storage=url).set_user_attr(key, value)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("seed", "zero", "'seed' is 'zero'"),
        ("budget", 5, "'budget' is 5"),
        ("direction", "up", "'direction' is 'up'"),
        ("metric", ["rmse"], "'metric' is ['rmse']"),
    ],
)
def test_one_malformed_study_attr_skips_that_study_only(
    tmp_path: Path, key: str, value: object, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(tiny_study_text(strategies=("random",), n_trials=1)), url)
    other = tiny_study_text(strategies=("random",), n_trials=1).replace('"tiny"', '"other"')
    create_experiment(parse_config(other), url)
    _set_attr(url, "tiny.iris.random.s0", key, value)
    for command in (["list"], ["status", "tiny"], ["status", "other"], ["best", "tiny"]):
        caplog.clear()
        result = runner.invoke(app, [*command, "--storage", url])
        assert result.exit_code == 0, (command, result.output)
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(
            "study 'tiny.iris.random.s0' is ignored: its user attr" in w and named in w
            for w in warned
        ), warned
    listed = runner.invoke(app, ["list", "--storage", url]).stdout
    assert "tiny.diabetes.random.s0" in listed and "other.iris.random.s0" in listed
    assert "tiny.iris.random.s0 " not in listed.replace("│", " ")
    report = runner.invoke(
        app, ["report", "tiny", "--storage", url, "-o", str(tmp_path / "r.html")]
    )
    assert report.exit_code == 0, report.output
    # resume repairs the study from the stored study file (its attrs are the plan's again)
    resumed = runner.invoke(app, ["-q", "resume", "tiny", "--storage", url])
    assert resumed.exit_code == 0, resumed.output
    assert (
        optuna.load_study(study_name="tiny.iris.random.s0", storage=url).user_attrs[key] != value
    )
    caplog.clear()
    after = runner.invoke(app, ["list", "--storage", url])
    assert not [r for r in caplog.records if "is ignored" in r.getMessage()]
    assert "tiny.iris.random.s0" in after.stdout


def test_an_attr_that_is_not_json_skips_that_study_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "db.sqlite"
    url = f"sqlite:///{db}"
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=1)), url, run=False
    )
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE study_user_attributes SET value_json = '{not json' WHERE key = 'seed' AND "
            "study_id = (SELECT study_id FROM studies WHERE study_name = 'tiny.iris.random.s0')"
        )
    result = runner.invoke(app, ["list", "--storage", url])
    assert result.exit_code == 0, result.output
    assert any(
        "'tiny.iris.random.s0' is ignored: one of its user attrs is not valid JSON"
        in r.getMessage()
        for r in caplog.records
    )
    assert "tiny.diabetes.random.s0" in result.stdout


def test_a_deeply_nested_model_json_is_refused_in_one_line(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    for text in ("[" * 200_000 + "]" * 200_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        (model / "model.json").write_text(text)
        data = tmp_path / "d.csv"
        data.write_text("a\n1\n")
        result = runner.invoke(app, ["predict", str(model), str(data)])
        line = _one_line_error(result, 1)
        assert "model.json" in line and ("nested too deeply" in line or "not readable" in line)


def test_a_huge_grid_is_refused_by_size_at_once(tmp_path: Path) -> None:
    grid = ", ".join(str(v) for v in range(8, 108))  # 100 values
    text = (
        tiny_study_text(strategies=("grid",), n_trials=5)
        .replace(
            "n_units = { low = 8, high = 32, log = true, grid = [8, 32] }",
            f"n_units = {{ low = 8, high = 200, grid = [{grid}] }}\n"
            f"batch_size = {{ low = 8, high = 200, grid = [{grid}] }}\n"
            "weight_decay = { low = 0.0, high = 0.1, grid = [0.0, 1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1] }",
        )
        .replace("batch_size = 32\n", "")
    )
    started = time.perf_counter()
    # 2 x 100 x 100 x 8 points, with grid_subset = true and n_trials = 5
    with pytest.raises(
        ConfigError,
        match=r"space: the grid has 160,000 points .* over the 100,000 hpstudy can enumerate",
    ):
        parse_config(text)
    assert time.perf_counter() - started < 60  # refused by arithmetic, not by enumerating
    study = tmp_path / "s.toml"
    study.write_text(text)
    result = runner.invoke(
        app, ["create", str(study), "--storage", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert result.exit_code == 2 and "160,000 points" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_names_longer_than_a_file_name_allows_are_refused(tmp_path: Path) -> None:
    long = "e" * 300
    text = tiny_study_text(strategies=("random",), n_trials=1).replace('"tiny"', f'"{long}"')
    with pytest.raises(
        ConfigError, match=r"name: must be a name of at most 100 letters.* \(300 characters\)"
    ):
        parse_config(text)
    ok = text.replace(long, "e" * 100)
    assert parse_config(ok).name == "e" * 100
    task = tiny_study_text(strategies=("random",), n_trials=1).replace(
        'name = "iris"', f'name = "{"t" * 101}"'
    )
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.name: must be a name of at most 100"):
        parse_config(task)
    # an output path that is too long is one line too
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(parse_config(ok), url, run=False)
    result = runner.invoke(
        app,
        ["export", "e" * 100, "--storage", url, "-o", str(tmp_path / ("x" * 300))],
    )
    assert "file name too long" in _one_line_error(result, 2)


def test_command_line_budget_below_the_grid_is_refused_like_the_files(tmp_path: Path) -> None:
    text = tiny_study_text(strategies=("grid", "random"), n_trials=4).replace(
        "grid_subset = true", "grid_subset = false"
    )
    config = parse_config(text)  # the grid has 2 x 2 x 1 = 4 points: the file's budget is fine
    with pytest.raises(ConfigError, match=r"--n-trials 3 is below the grid's 4 points"):
        apply_overrides(config, strategies=["grid"], n_trials=3)
    assert apply_overrides(config, strategies=["random"], n_trials=3).budget.n_trials == 3
    study = tmp_path / "s.toml"
    study.write_text(text)
    result = runner.invoke(
        app,
        ["create", str(study), "--n-trials", "3", "--strategy", "grid", "--no-run",
         "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
    )  # fmt: skip
    assert "below the grid's 4 points" in _one_line_error(result, 2)
    subset = parse_config(text.replace("grid_subset = false", "grid_subset = true"))
    assert apply_overrides(subset, strategies=["grid"], n_trials=3).budget.n_trials == 3


def test_global_options_work_after_the_command(
    tmp_path: Path, finished_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{finished_db}"
    for args in (
        ["status", "tiny", "-q", "--storage", url],
        ["status", "tiny", "--storage", url, "--debug"],
        ["list", "-v", "--storage", url],
        ["-q", "status", "tiny", "--storage", url],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "tiny.iris.random.s0" in result.stdout
        assert args[0] == "list" or "2 of 2 studies have met their budget" in result.stdout
    # the value of a command's own option is never taken for a global option
    result = runner.invoke(app, ["export", "tiny", "--storage", url, "-o", "-q"])
    assert result.exit_code == 0, result.output
    assert Path("-q").exists()
    Path("-q").unlink()
    Path("-q.summary.csv").unlink(missing_ok=True)


def test_output_files_never_follow_a_planted_symlink(
    tmp_path: Path, finished_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train-best and export -f csv.gz write through unique O_EXCL temporary names beside the
    target: links planted at the old fixed names (or at any name) are never written through."""
    from hpstudy._atomic import atomic_file

    url = f"sqlite:///{finished_db}"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    model = tmp_path / "model"
    model.mkdir()
    for name in (".weights.pt.tmp", ".model.json.tmp"):
        (model / name).symlink_to(victim)
    result = runner.invoke(
        app, ["train-best", "tiny", "-t", "iris", "--storage", url, "-o", str(model)]
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    out.mkdir()
    (out / ".r.csv.gz.tmp").symlink_to(victim)
    result = runner.invoke(
        app,
        [
            "export",
            "tiny",
            "-f",
            "csv.gz",
            "--storage",
            url,
            "-o",
            str(out / "r.csv.gz"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious"
    # nothing but the outputs and the planted links is left behind
    assert sorted(p.name for p in model.iterdir()) == [
        ".model.json.tmp", ".weights.pt.tmp", "model.json", "weights.pt",
    ]  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [".r.csv.gz.tmp", "r.csv.gz", "r.toml"]
    # ordinary files: the umask's mode, not the temporary file's private 0600
    umask = os.umask(0)
    os.umask(umask)
    for written in (model / "model.json", model / "weights.pt", out / "r.csv.gz", out / "r.toml"):
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written
    # a target that is itself a symlink is replaced, not written through
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    with atomic_file(link) as f:
        f.write(b"new")
    assert victim.read_text() == "precious" and not link.is_symlink()
    assert link.read_bytes() == b"new"
    # an error inside the block leaves the old file and no temporary file
    with pytest.raises(RuntimeError), atomic_file(link) as f:
        f.write(b"half")
        raise RuntimeError("disk full")
    assert link.read_bytes() == b"new"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".link.csv")]
