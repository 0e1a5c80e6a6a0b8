"""Every example in README.md and docs/user-guide.md works as written.

TOML examples start with a comment naming where they are saved (``# studies/x.toml``); each is
written there in a fresh folder, a generated CSV is put in ``data/`` (where the docs' commands
read the user's data), and the example must load and find it.
Every ``hpstudy ...`` line of a shell example must parse with the real command line (options,
arguments). The "own CSV" workflows of both documents run for real, command by command, on
their own study file; the only change to that file is a smaller budget (seeds, epochs) so the
suite stays fast.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from hpstudy.cli import app
from hpstudy.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = {"README.md": ROOT / "README.md", "user-guide.md": ROOT / "docs" / "user-guide.md"}
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(doc: str, lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(DOCS[doc].read_text()) if kind == lang]


def _toml_examples() -> list[tuple[str, str, str]]:
    out = []
    for doc in DOCS:
        for body in _blocks(doc, "toml"):
            first = body.splitlines()[0]
            match = re.fullmatch(r"#\s*(\S+\.toml)\s*", first)
            assert match, (
                f"{doc}: a TOML example must start with '# path/to/file.toml', got {first!r}"
            )
            out.append((doc, match.group(1), body))
    return out


def _commands(body: str) -> list[str]:
    lines = []
    for line in body.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("hpstudy "):
            lines.append(line)
    return lines


def _houses(path: Path, n: int, seed: int, with_target: bool = True) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "rooms": rng.integers(1, 8, n),
            "area": rng.normal(90, 25, n).round(1),
            "district": rng.choice(["north", "south", "east"], n),
        }
    )
    if with_target:
        frame["price"] = (30 * frame["rooms"] + 2 * frame["area"] + rng.normal(0, 10, n)).round(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def _write_example(root: Path, rel: str, body: str) -> Path:
    study = root / rel
    study.parent.mkdir(parents=True, exist_ok=True)
    study.write_text(body)
    # The user's data sit in data/ at the project's root, where the docs' commands
    # (`hpstudy predict models/houses data/new_houses.csv`) read them: the example's csv path
    # must lead there from where the example is saved.
    for csv in re.findall(r'^csv\s*=\s*"([^"]+)"', body, re.MULTILINE):
        _houses(root / "data" / Path(csv).name, 120, 0)
    return study


@pytest.mark.parametrize(("doc", "rel", "body"), _toml_examples())
def test_every_toml_example_loads_where_it_says_it_is_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: str, rel: str, body: str
) -> None:
    from hpstudy.data import prepare_task

    monkeypatch.chdir(tmp_path)
    study = _write_example(tmp_path, rel, body)
    config = load_config(study)
    for task in config.tasks:
        assert prepare_task(task, 0).n_features > 0


def _all_commands() -> list[tuple[str, str]]:
    return [(doc, line) for doc in DOCS for body in _blocks(doc, "sh") for line in _commands(body)]


@pytest.mark.parametrize(("doc", "line"), _all_commands())
def test_every_command_line_of_the_docs_parses(doc: str, line: str) -> None:
    group = typer.main.get_command(app)
    args = shlex.split(line)[1:]
    while args and args[0] in ("-q", "--quiet", "-v", "--verbose", "--debug"):
        args.pop(0)
    commands = getattr(group, "commands", {})
    assert args and args[0] in commands, f"{doc}: {line!r} names no hpstudy command"
    commands[args[0]].make_context(args[0], args[1:])  # raises a UsageError if it does not parse


def _csv_workflow(doc: str) -> tuple[str, str, list[str]]:
    """The study file and the commands of the document's own-CSV workflow."""
    (rel, body) = next((r, b) for d, r, b in _toml_examples() if d == doc and "csv =" in b)
    stem = Path(rel).stem
    for block in _blocks(doc, "sh"):
        lines = _commands(block)
        if any(line == f"hpstudy create {rel}" for line in lines):
            return rel, body, lines
    raise AssertionError(f"{doc}: no shell example runs 'hpstudy create {rel}' ({stem})")


@pytest.mark.slow
@pytest.mark.parametrize("doc", list(DOCS))
def test_the_own_csv_workflow_runs_command_by_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: str
) -> None:
    rel, body, lines = _csv_workflow(doc)
    small = re.sub(r"^seeds = \d+", "seeds = 2", body, flags=re.MULTILINE)
    if "[training]" in small:
        small = re.sub(r"^max_epochs = \d+", "max_epochs = 2", small, flags=re.MULTILINE)
    else:
        small += "\n[training]\nmax_epochs = 2\n"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSTUDY_STORAGE", raising=False)
    _write_example(tmp_path, rel, small)
    for line in lines:  # files the commands read that the example does not write
        for arg in shlex.split(line):
            if arg.startswith("data/new_") and arg.endswith(".csv"):
                _houses(tmp_path / arg, 15, 1, with_target=False)
    runner = CliRunner()
    for line in lines:
        result = runner.invoke(app, ["-q", *shlex.split(line)[1:]])
        assert result.exit_code == 0, (line, result.output)
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == 15


@pytest.mark.parametrize("doc", list(DOCS))
def test_every_picture_and_local_link_of_the_docs_exists(doc: str) -> None:
    path = DOCS[doc]
    targets = re.findall(r"\]\(([^)#\s]+)\)", path.read_text())
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    missing = [t for t in local if not (path.parent / t).exists()]
    assert local and missing == [], missing
