"""A csv task's ``features`` / ``drop`` keys: validated, and part of the comparability
fingerprint (they change what trials learn from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpstudy import ConfigError
from hpstudy.config import parse_config
from tests.conftest import tiny_study_text


def _text(tmp_path: Path, extra: str) -> str:
    (tmp_path / "d.csv").write_text("a,b,name,y\n" + "1,2,x,3\n" * 30)
    task = f'csv = "d.csv"\ntarget = "y"\n{extra}'
    return tiny_study_text().replace('dataset = "iris"', task)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("features = []", r"tasks\[0\].features: must be a list of column names, got \[\]"),
        ('drop = "name"', r"tasks\[0\].drop: must be a list of column names, got 'name'"),
        ('drop = ["name", 3]', r"tasks\[0\].drop: must be a list of column names"),
        ('drop = ["a", "a"]', r"tasks\[0\].drop: names a column twice"),
        ('features = ["a", "y"]', r"tasks\[0\].features: must not name the target column 'y'"),
        (
            'features = ["a"]\ndrop = ["name"]',
            r"tasks\[0\]: give features \(the columns to use\) or drop .*, not both",
        ),
    ],
)
def test_bad_columns_keys(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(_text(tmp_path, extra), base_dir=tmp_path)


def test_columns_keys_are_only_for_csv_tasks() -> None:
    text = tiny_study_text().replace('dataset = "iris"', 'dataset = "iris"\ndrop = ["x0"]')
    with pytest.raises(ConfigError, match=r"tasks\[0\].drop: is only for csv tasks"):
        parse_config(text)


def test_chosen_columns_change_the_fingerprint_and_unset_ones_do_not(tmp_path: Path) -> None:
    plain = parse_config(_text(tmp_path, ""), base_dir=tmp_path)
    dropped = parse_config(_text(tmp_path, 'drop = ["name"]'), base_dir=tmp_path)
    chosen = parse_config(_text(tmp_path, 'features = ["a", "b"]'), base_dir=tmp_path)
    assert dropped.tasks[0].drop == ("name",) and chosen.tasks[0].features == ("a", "b")
    prints = {c.fingerprint(c.tasks[0]) for c in (plain, dropped, chosen)}
    assert len(prints) == 3
    # an experiment created before these keys existed keeps its fingerprint: the unset keys
    # are not part of the hashed identity
    from hpstudy.config._schema import _task_identity

    assert "features" not in _task_identity(plain.tasks[0])
    assert "drop" not in _task_identity(plain.tasks[0])
