"""A data scientist's own files, written for real in tmp_path: any common delimiter and
quoting, quoted and duplicated header names, missing targets, stray strings, infinite and huge
numbers, declared categories; every problem of a file is reported at once, with its lines."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpstudy import ConfigError
from hpstudy.config import TaskConfig, parse_config
from hpstudy.data import load_data, prepare_task
from hpstudy.data._csv import read_table


def _rows(n: int = 60, seed: int = 0) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    return {
        "popul": [f"{v:.3f}" for v in rng.normal(size=n)],
        "TV news": [str(int(v)) for v in rng.integers(0, 7, size=n)],
        "party": [["dem", "rep, moderate", "ind"][i % 3] for i in range(n)],
        "vote": [f"{v:.3f}" for v in rng.normal(10, 2, size=n)],
    }


def _write(
    path: Path,
    rows: dict[str, list[str]],
    sep: str = ",",
    quotechar: str = '"',
    quoting: int = csv.QUOTE_MINIMAL,
    header: list[str] | None = None,
) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=sep, quotechar=quotechar, quoting=quoting)
        w.writerow(header or list(rows))
        n = len(next(iter(rows.values())))
        for i in range(n):
            w.writerow([rows[c][i] for c in rows])
    return path


def _task(path: Path, **kw: object) -> TaskConfig:
    base: dict[str, object] = dict(
        name="t", dataset=None, csv=str(path), target="vote", kind=None, metric=None
    )
    base.update(kw)
    return TaskConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("sep", [",", "\t", ";", "|"])
@pytest.mark.parametrize(
    ("quotechar", "quoting"),
    [('"', csv.QUOTE_MINIMAL), ('"', csv.QUOTE_ALL), ("'", csv.QUOTE_ALL)],
)
def test_any_common_delimiter_and_quoting_reads_the_same_table(
    tmp_path: Path, sep: str, quotechar: str, quoting: int
) -> None:
    rows = _rows()
    path = _write(tmp_path / "d.txt", rows, sep, quotechar, quoting)
    raw = load_data(_task(path))
    assert list(raw.X.columns) == ["popul", "TV news", "party"]
    assert raw.kind == "regression"
    assert np.allclose(raw.y, [float(v) for v in rows["vote"]])
    assert raw.X["party"].tolist() == rows["party"]  # a quoted delimiter stays inside its cell
    assert np.allclose(raw.X["popul"].astype(float), [float(v) for v in rows["popul"]])


def test_quoted_header_names_are_stripped(tmp_path: Path) -> None:
    # the survey file of the issue: tab-separated, every header name in single quotes
    rows = _rows()
    path = tmp_path / "survey.tsv"
    lines = ["\t".join(f"'{c}'" for c in rows)]
    lines += ["\t".join(rows[c][i] for c in rows) for i in range(60)]
    path.write_text("\n".join(lines) + "\n")
    raw = load_data(_task(path))
    assert list(raw.X.columns) == ["popul", "TV news", "party"]
    assert len(raw.y) == 60


def test_sep_and_quotechar_from_the_study_file_win_over_sniffing(tmp_path: Path) -> None:
    rows = _rows()
    path = _write(tmp_path / "d.csv", rows, ";", "'", csv.QUOTE_ALL)
    raw = load_data(_task(path, sep=";", quotechar="'"))
    assert list(raw.X.columns) == ["popul", "TV news", "party"]
    # a wrong sep is obeyed: the header is one column, and the error says what happened
    plain = dict(rows, party=[p.replace(",", "") for p in rows["party"]])
    for table, start in ((plain, "target column 'vote' not in"), (rows, "cannot read")):
        tabbed = _write(tmp_path / "t.tsv", table, "\t")
        with pytest.raises(ConfigError) as e:
            load_data(_task(tabbed, sep=","))
        message = str(e.value)
        assert start in message and "comma" in message
        assert "ONE column" in message and "tab" in message and 'sep = "\\t"' in message


def test_study_file_validates_the_csv_options(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _rows())
    text = f"""
name = "x"
strategies = ["random"]
[budget]
n_trials = 2
[[tasks]]
name = "a"
csv = "{path}"
target = "vote"
sep = "ab"
quotechar = 3
categorical = ["vote"]
drop_missing_target = "yes"
loss = "huber"
class_weight = "balanced"
[[tasks]]
name = "b"
dataset = "iris"
sep = ","
loss = "poisson"
[space]
lr = {{ low = 0.001, high = 0.1, log = true }}
"""
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    problems = "\n".join(e.value.problems)
    for expected in (
        "tasks[0].sep: must be one character",
        "tasks[0].quotechar: must be one character",
        "tasks[0].categorical: must not name the target column 'vote'",
        "tasks[0].drop_missing_target: must be true or false",
        "tasks[0].loss: must be one of mse, poisson",
        "tasks[1].sep: is only for csv tasks",
        "tasks[1].loss: is for regression tasks",
    ):
        assert expected in problems, problems
    good = parse_config(
        text.replace('sep = "ab"', 'sep = "\\t"').replace("quotechar = 3", "quotechar = \"'\"")
        .replace('categorical = ["vote"]', 'categorical = ["TV news"]')
        .replace('"yes"', "true").replace('loss = "huber"', 'loss = "poisson"')
        .replace('class_weight = "balanced"\n', "")
        .replace('sep = ","\nloss = "poisson"\n', 'class_weight = "balanced"\n')
    )  # fmt: skip
    a, b = good.tasks
    assert (a.sep, a.quotechar, a.categorical, a.drop_missing_target, a.loss) == (
        "\t", "'", ("TV news",), True, "poisson",
    )  # fmt: skip
    assert b.class_weight == "balanced"


def test_csv_options_left_unset_keep_old_fingerprints(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _rows())
    base = f"""
name = "x"
strategies = ["random"]
[budget]
n_trials = 2
[[tasks]]
name = "a"
csv = "{path}"
target = "vote"
{{extra}}
[space]
lr = {{{{ low = 0.001, high = 0.1, log = true }}}}
"""
    plain = parse_config(base.format(extra=""))
    unchanged = parse_config(base.format(extra="drop_missing_target = false"))
    changed = parse_config(base.format(extra='categorical = ["TV news"]'))
    fp = plain.fingerprint(plain.tasks[0])
    assert unchanged.fingerprint(unchanged.tasks[0]) == fp
    assert changed.fingerprint(changed.tasks[0]) != fp
    # the fingerprint of a task without the new keys is computed from the same fields as before
    from dataclasses import asdict

    from hpstudy.config._schema import TASK_OPTIONAL_KEYS, _task_identity

    identity = _task_identity(plain.tasks[0])
    assert not set(TASK_OPTIONAL_KEYS) & set(identity)
    assert set(identity) == set(asdict(plain.tasks[0])) - {
        "features", "drop", "margin", "benchmark", *TASK_OPTIONAL_KEYS,
    }  # fmt: skip


def test_missing_targets_are_named_by_line_and_can_be_dropped(tmp_path: Path) -> None:
    rows = _rows()
    for i in (4, 17, 40):
        rows["vote"][i] = ""
    rows["popul"][50] = "inf"  # after the dropped rows: its line must still be the file's
    path = _write(tmp_path / "d.csv", rows)
    with pytest.raises(ConfigError) as e:
        load_data(_task(path))
    problems = e.value.problems
    assert any(
        "target column 'vote' has 3 missing value(s) at line(s) 6, 19, 42" in p
        and "drop_missing_target = true" in p
        for p in problems
    ), problems
    assert any("column 'popul'" in p and "line(s) 52" in p for p in problems), problems

    rows["popul"][50] = "0.5"
    raw = load_data(_task(_write(tmp_path / "d.csv", rows), drop_missing_target=True))
    assert len(raw.y) == 57 and not np.isnan(raw.y).any()
    assert [w for w in raw.warnings if "3 row(s)" in w and "line(s) 6, 19, 42" in w]
    expected = [float(v) for v in rows["vote"] if v]
    assert np.allclose(raw.y, expected)  # the right rows were kept, in order

    rows["popul"][50] = "1e200"  # a problem after dropped rows is reported at its file line
    with pytest.raises(ConfigError, match=r"beyond 1e150 .* at line\(s\) 52"):
        load_data(_task(_write(tmp_path / "d.csv", rows), drop_missing_target=True))


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    rows = _rows()
    rows["popul"][3] = "-inf"
    rows["TV news"][8] = "abc"  # a stray string in a numeric column
    rows["name"] = [f"person {i}" for i in range(60)]  # an identifier
    rows["vote"][10] = ""
    path = _write(tmp_path / "d.csv", rows)
    with pytest.raises(ConfigError) as e:
        load_data(_task(path))
    problems = e.value.problems
    assert len(problems) == 4, problems
    assert any("column 'popul'" in p and "1 infinite value(s) at line(s) 5" in p for p in problems)
    assert any(
        "column 'TV news'" in p and "numeric except 1 value(s) 'abc' at line(s) 10" in p
        and "categorical = ['TV news']" in p
        for p in problems
    ), problems  # fmt: skip
    assert any("missing value(s) at line(s) 12" in p for p in problems)
    assert any(p.startswith("(note)") and "text column 'name'" in p for p in problems)
    # the message is one block the CLI prints at once
    assert str(e.value).startswith("4 problems:")


def test_a_stray_string_is_accepted_when_the_column_is_declared_categorical(
    tmp_path: Path,
) -> None:
    rows = _rows()
    rows["TV news"][8] = "abc"
    raw = load_data(_task(_write(tmp_path / "d.csv", rows), categorical=("TV news",)))
    expected = {v for v in rows["TV news"]}
    assert set(raw.X["TV news"]) == expected and "abc" in expected
    assert raw.categorical == ("TV news",)


def test_declared_integer_codes_become_one_hot_inputs(tmp_path: Path) -> None:
    rows = _rows()
    rows["TV news"][5] = ""  # an empty cell makes pandas read floats: 3.0 must still be '3'
    path = _write(tmp_path / "d.csv", rows)
    plain = prepare_task(_task(path), seed=0)
    declared_raw = load_data(_task(path, categorical=("TV news",)))
    codes = sorted({v for v in rows["TV news"] if v})
    assert sorted(declared_raw.X["TV news"].dropna().unique()) == codes  # no '3.0'
    declared = prepare_task(_task(path, categorical=("TV news",)), seed=0)
    # popul (1) + TV news (1 numeric, or one input per code) + party (3 labels)
    assert plain.n_features == 1 + 1 + 3
    assert declared.n_features == 1 + len(codes) + 3


def test_categorical_naming_an_unknown_column_is_a_problem(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", _rows())
    with pytest.raises(ConfigError, match=r"categorical names column\(s\) not in .*'nope'"):
        load_data(_task(path, categorical=("nope",)))


def test_one_line_says_how_many_values_are_imputed_and_how(tmp_path: Path) -> None:
    rows = _rows()
    for i in (1, 2, 3):
        rows["popul"][i] = ""
    rows["party"][7] = ""
    raw = load_data(_task(_write(tmp_path / "d.csv", rows)))
    notes = [w for w in raw.warnings if "imputed" in w]
    assert notes == [
        "task 't': 4 missing feature value(s) are imputed: 3 numeric with the training rows' "
        "median and 1 categorical with the training rows' most frequent value (popul 3, party 1)"
    ]
    clean = load_data(_task(_write(tmp_path / "d.csv", _rows())))
    assert not [w for w in clean.warnings if "imputed" in w]


def test_a_duplicated_column_name_is_refused(tmp_path: Path) -> None:
    rows = _rows()
    rows["vote2"] = list(rows["vote"])  # the target twice: it must never become an input
    path = _write(tmp_path / "d.csv", rows, header=["popul", "TV news", "party", "vote", "vote"])
    with pytest.raises(ConfigError) as e:
        load_data(_task(path))
    assert any(
        "column name 'vote' appears 2 times in the header" in p and "columns 4, 5" in p
        for p in e.value.problems
    ), e.value.problems
    table = read_table(path)
    assert table.duplicates == {"vote": [4, 5]}
    assert len(set(table.frame.columns)) == 5


@pytest.mark.parametrize("value", ["inf", "-inf", "1e200"])
def test_an_unusable_target_says_how_to_leave_the_row_out(tmp_path: Path, value: str) -> None:
    rows = _rows()
    rows["vote"][9] = value
    with pytest.raises(ConfigError) as e:
        load_data(_task(_write(tmp_path / "d.csv", rows)))
    message = str(e.value)
    assert "line(s) 11" in message
    assert "leave the cells empty" not in message  # an empty target is itself refused
    if "inf" in value:
        assert "drop_missing_target = true" in message


def test_poisson_loss_needs_counts(tmp_path: Path) -> None:
    rows = _rows()
    rows["vote"] = [str(i % 9) for i in range(59)] + ["-2"]
    with pytest.raises(ConfigError, match=r"poisson.*1 negative value\(s\) at line\(s\) 61"):
        load_data(_task(_write(tmp_path / "d.csv", rows), kind="regression", loss="poisson"))


def test_unreadable_file_names_the_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('a,b,vote\n1,2,3\n4,"5,6\n' + "7,8,9\n" * 30)
    with pytest.raises(ConfigError, match=r"cannot read .*bad\.csv as a table separated by comma"):
        load_data(_task(path))
    frame = pd.read_csv(_write(tmp_path / "ok.csv", _rows()))
    assert list(frame.columns)[-1] == "vote"


def test_balanced_class_weights_come_from_the_training_rows(tmp_path: Path) -> None:
    rows = _rows(120)
    rows["vote"] = [
        "rare" if i % 10 == 0 else ("mid" if i % 3 == 0 else "common") for i in range(120)
    ]
    path = _write(tmp_path / "d.csv", rows)
    plain = prepare_task(_task(path), seed=0)
    weighted = prepare_task(_task(path, class_weight="balanced", cv_folds=3), seed=0)
    assert plain.folds[0].class_weights is None
    for fold in weighted.folds:
        w = fold.class_weights
        assert w is not None and len(w) == weighted.n_classes == 3
        counts = np.bincount(fold.y_train, minlength=3)
        # balanced: every class carries the same total weight, and the weights average to 1 per row
        assert np.allclose(counts * w, len(fold.y_train) / 3)
        assert np.isclose((counts * w).sum(), len(fold.y_train))
    assert weighted.folds[0].class_weights.max() > 2.0  # the rare class (~1 in 10) weighs most


def test_the_study_metric_is_named_for_optuna_dashboard(tmp_path: Path) -> None:
    import optuna

    from hpstudy.runner import create_experiment
    from tests.conftest import tiny_study_text

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_experiment(
        parse_config(tiny_study_text(strategies=("random",), n_trials=1)), url, run=False
    )
    names = {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=url).metric_names
        for s in optuna.study.get_all_study_summaries(storage=url)
    }
    assert names == {"tiny.iris.random.s0": ["accuracy"], "tiny.diabetes.random.s0": ["rmse"]}
