"""The user guide and the study-file reference match the code, so they cannot drift apart."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from hpstudy.cli import app
from hpstudy.config import _load, _schema

DOCS = Path(__file__).resolve().parent.parent / "docs"
REFERENCE = (DOCS / "study-file.md").read_text()
GUIDE = (DOCS / "user-guide.md").read_text()


def _row(name: str) -> str:
    match = re.search(rf"^\| `{re.escape(name)}` \|.*$", REFERENCE, re.MULTILINE)
    assert match, f"no row for `{name}` in docs/study-file.md"
    return match.group(0)


def test_every_study_file_key_is_documented() -> None:
    keys = _load._TOP_KEYS | _load._TASK_KEYS | _load._PARAM_KEYS | {"n_trials", "timeout"}
    keys |= {f.name for f in fields(_schema.TrainingConfig)} | {"type"}
    keys |= {k for settings in _load._PRUNER_SETTINGS.values() for k in settings}
    spellings = ("`{k}`", "{k} (", "[{k}]", "[[{k}]]", "{k} = ")
    missing = sorted(k for k in keys if not any(s.format(k=k) in REFERENCE for s in spellings))
    assert missing == []


def test_hyperparameter_types_defaults_and_choices_match_the_code() -> None:
    for name, (ptype, default) in _schema.HYPERPARAMETERS.items():
        row = _row(name)
        assert f"| {ptype} |" in row, row
        expected = (
            "`training.max_epochs`"
            if default is None
            else f"`{default!r}`".replace("'", "")
            if isinstance(default, str)
            else f"`{default}`"
        )
        assert expected in row, (row, expected)
        for choice in _schema.CATEGORICAL_CHOICES.get(name, ()):
            assert f"`{choice}`" in row, (name, choice)


def test_training_defaults_and_allowed_values_match_the_code() -> None:
    for f in fields(_schema.TrainingConfig):
        assert f"`{f.default}`" in _row(f.name), f.name
    for device in _schema.DEVICES:
        assert f"`{device}`" in _row("device")


def test_vocabularies_are_documented() -> None:
    for word in (
        *_schema.STRATEGIES,
        *_schema.PRUNERS,
        *_schema.METRICS,
        *_schema.BUILTIN_DATASETS,
    ):
        assert f"`{word}`" in REFERENCE, word
    for pruner, settings in _load._PRUNER_SETTINGS.items():
        if not settings:
            continue
        row = _row(pruner)  # the pruner's own row: each setting with its default
        for key, default in settings.items():
            shown = f'"{default}"' if isinstance(default, str) else str(default)
            assert f"`{key}` ({shown}" in row, (pruner, key, row)


def test_every_command_has_an_example_in_the_guide() -> None:
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}  # type: ignore[union-attr]
    assert {
        "create",
        "resume",
        "worker",
        "status",
        "list",
        "best",
        "report",
        "export",
        "dashboard",
        "train-best",
        "predict",
        "delete",
    } <= commands
    for command in commands:
        assert re.search(rf"`hpstudy {re.escape(command)}\b", GUIDE), command


def test_the_python_example_of_the_guide_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    block = re.search(r"## Python\n\n```python\n(.*?)```", GUIDE, re.DOTALL)
    assert block, "no Python example in docs/user-guide.md"
    (tmp_path / "studies").mkdir()
    text = (
        (DOCS.parent / "studies" / "quickstart.toml")
        .read_text()
        .replace("n_trials = 16", "n_trials = 3\ngrid_subset = true")
    )
    (tmp_path / "studies" / "quickstart.toml").write_text(
        text
    )  # the same file with a smaller budget
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "docs/user-guide.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "reports" / "demo.html").exists()
    assert (tmp_path / "models" / "demo" / "weights.pt").exists()
    shutil.rmtree(tmp_path / "storage")


def test_generated_data_sets_are_documented_with_their_generator_arguments() -> None:
    from hpstudy.data._datasets import GENERATED

    for name, (kind, generator, kwargs) in GENERATED.items():
        row = _row(name)
        assert f"| {kind} |" in row and f"| {kwargs['n_samples']} |" in row, row
        call = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        assert f"`{generator}({call})`" in row, (row, call)
        assert _schema.BUILTIN_DATASETS[name] == kind
