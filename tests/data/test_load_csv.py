"""A CSV is checked when it is loaded: bad numbers and stray strings are refused with the
column, the values and the lines; empty, constant and identifier-like columns are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpstudy import ConfigError
from hpstudy.config import TaskConfig
from hpstudy.data import load_data, prepare_task


def _write(tmp_path: Path, rows: dict[str, list[str]]) -> Path:
    path = tmp_path / "d.csv"
    names = list(rows)
    lines = [",".join(names)] + [
        ",".join(rows[c][i] for c in names) for i in range(len(rows[names[0]]))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _base(n: int = 60) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    return {
        "a": [f"{v:.3f}" for v in rng.normal(size=n)],
        "colour": [["red", "green", "blue"][i % 3] for i in range(n)],
        "y": [f"{v:.3f}" for v in rng.normal(10, 2, size=n)],
    }


def _task(path: Path, **kw: object) -> TaskConfig:
    base: dict[str, object] = dict(
        name="t", dataset=None, csv=str(path), target="y", kind=None, metric=None
    )
    base.update(kw)
    return TaskConfig(**base)  # type: ignore[arg-type]


def _set(rows: dict[str, list[str]], column: str, at: dict[int, str]) -> dict[str, list[str]]:
    for i, v in at.items():
        rows[column][i] = v
    return rows


@pytest.mark.parametrize(
    ("rows", "kind", "match"),
    [
        (
            _set(_base(), "a", {3: "inf", 7: "-inf"}),
            None,
            r"column 'a' of .*d\.csv has 2 infinite value\(s\) at line\(s\) 5, 9; replace them",
        ),
        (
            _set(_base(), "a", {0: "1e300"}),
            None,
            r"column 'a' .* 1 value\(s\) beyond 1e150 \(largest 1e\+300\) at line\(s\) 2; .*rescale",
        ),
        (
            _set(_base(), "y", {4: "inf"}),
            "regression",
            r"target 'y' of .* 1 infinite value\(s\) at line\(s\) 6",
        ),
        (
            _set(_base(), "y", {10: "1e300"}),
            None,
            r"target 'y' .* beyond 1e150 .* at line\(s\) 12",
        ),
        (
            _set(_base(), "y", {2: "??", 30: "twelve"}),
            None,
            r"target 'y' of .* is numeric except 2 value\(s\) '\?\?', 'twelve' at line\(s\) 4, 32; "
            r"fix or drop those rows, or set kind = 'classification'",
        ),
        (
            _set(_base(), "y", {2: "??"}),
            "regression",
            r"numeric except 1 value\(s\) '\?\?' at line\(s\) 4",
        ),
        (
            _set(_base(), "y", {i: "x" for i in range(0, 60, 2)} | {1: "?"}),
            "regression",
            r"numeric except 31 value\(s\) 'x', '\?' at line\(s\) 2, 3, 4, 6, 8 and 26 more",
        ),
    ],
    ids=[
        "inf-feature",
        "huge-feature",
        "inf-target",
        "huge-target",
        "stray-strings",
        "stray-regression",
        "mostly-strings-regression",
    ],  # fmt: skip
)
def test_bad_numbers_are_refused_at_load(
    tmp_path: Path, rows: dict[str, list[str]], kind: str | None, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load_data(_task(_write(tmp_path, rows), kind=kind))


def test_mostly_text_target_is_still_classification(tmp_path: Path) -> None:
    rows = _base()
    rows["y"] = [["cat", "dog", "3"][i % 3] for i in range(60)]
    assert load_data(_task(_write(tmp_path, rows))).kind == "classification"


def test_stray_strings_are_labels_when_kind_says_classification(tmp_path: Path) -> None:
    rows = _set(_base(), "y", {2: "??"})
    rows["y"] = [["1", "2"][i % 2] if i != 2 else "??" for i in range(60)]
    raw = load_data(_task(_write(tmp_path, rows), kind="classification"))
    assert raw.kind == "classification" and set(raw.y) == {"1", "2", "??"}


def test_an_empty_column_is_dropped_with_one_warning(tmp_path: Path) -> None:
    rows = _base()
    rows["empty"] = [""] * 60
    raw = load_data(_task(_write(tmp_path, rows)))
    assert list(raw.X.columns) == ["a", "colour"] and raw.ignored == ("empty",)
    assert len(raw.warnings) == 1 and "column(s) 'empty'" in raw.warnings[0]
    data = prepare_task(_task(_write(tmp_path, rows)), seed=0)
    assert data.n_features == 4  # a + three colours


def test_a_constant_regression_target_warns(tmp_path: Path) -> None:
    rows = _base()
    rows["y"] = ["3.5"] * 60
    raw = load_data(_task(_write(tmp_path, rows), kind="regression"))
    assert raw.warnings == ("task 't': target 'y' is constant (3.5 in every row); every model "
                            "predicts it exactly and there is nothing to compare",)  # fmt: skip


def test_an_identifier_column_warns_and_can_be_dropped(tmp_path: Path) -> None:
    rows = _base()
    rows["name"] = [f"car {i}" for i in range(60)]
    path = _write(tmp_path, rows)
    raw = load_data(_task(path))
    assert len(raw.warnings) == 1
    assert (
        "text column 'name'" in raw.warnings[0]
        and "60 distinct values in 60 rows" in raw.warnings[0]
    )
    assert "drop = ['name']" in raw.warnings[0]
    assert "colour" not in raw.warnings[0]  # three values in 60 rows is a category

    dropped = load_data(_task(path, drop=("name",)))
    assert list(dropped.X.columns) == ["a", "colour"] and dropped.ignored == ("name",)
    assert dropped.warnings == ()
    chosen = load_data(_task(path, features=("a", "name")))
    assert list(chosen.X.columns) == ["a", "name"] and chosen.ignored == ("colour",)
    assert chosen.warnings == ()  # the user named the inputs


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (
            {"drop": ("nope",)},
            r"drop names column\(s\) not in .*: 'nope'; its columns are: a, colour",
        ),
        ({"features": ("a", "zz")}, r"features names column\(s\) not in .*: 'zz'"),
    ],
)
def test_unknown_columns_in_features_or_drop(
    tmp_path: Path, kw: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load_data(_task(_write(tmp_path, _base()), **kw))
