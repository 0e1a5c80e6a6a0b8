"""Raw results shipped as files, and every verdict recomputed from them without retraining: a
tiny real experiment, exported and regenerated, must give the live report's numbers."""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hpstudy.analysis import analyze, read_results
from hpstudy.analysis._table import OPTIONAL_COLUMNS, REFERENCES_COLUMN
from hpstudy.analysis._verdict import hodges_lehmann, paired_differences
from hpstudy.cli import app
from hpstudy.config import parse_config
from hpstudy.report import export_experiment, table_from_storage, write_report
from hpstudy.report._export import comparison_rows, summary_rows
from hpstudy.report._results import COLUMNS
from hpstudy.report._results_page import KEEP_BEGIN, KEEP_END, write_results
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text

runner = CliRunner()


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return None if isinstance(v, float) and math.isnan(v) else v


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("results")
    text = tiny_study_text(strategies=("manual", "grid", "random", "tpe"), n_trials=4)
    text = text.replace("seeds = 1", "seeds = 3").replace(
        "dropout = 0.1", "dropout = { low = 0.0, high = 0.5, grid = [0.0, 0.3] }"
    )
    text = text.replace("[[manual]]\nn_layers = 1", "[[manual]]\ndropout = 0.2\nn_layers = 1")
    text = text.replace("[[manual]]\nn_layers = 2", "[[manual]]\ndropout = 0.0\nn_layers = 2")
    url = f"sqlite:///{tmp / 'h.db'}"
    create_experiment(parse_config(text), url)
    return url, tmp


def test_exported_raw_results_regenerate_the_live_reports_verdicts(
    experiment: tuple[str, Path],
) -> None:
    """Storage and files are two sources of one trial table: the analysis of each is the same,
    number for number (only the learning curves are not in the file)."""
    url, tmp = experiment
    csv_path, toml = export_experiment(url, "tiny", "csv.gz", tmp / "out" / "tiny.csv.gz")
    assert toml == tmp / "out" / "tiny.toml"
    with gzip.open(csv_path, "rt") as f:
        header = f.readline().strip().split(",")
        rows = f.read().splitlines()
    # the reference models' column: written because these studies have them
    assert header == COLUMNS + OPTIONAL_COLUMNS + [REFERENCES_COLUMN]
    # 2 tasks x (2 manual + 3 x 4) trials x 3 seeds
    assert len(rows) == 2 * 3 * (2 + 3 * 4)

    stored = table_from_storage(url, "tiny")
    loaded = read_results(csv_path)
    for a, b in zip(stored.studies, loaded.studies, strict=True):
        assert a.name == b.name and a.select_name == b.select_name
        assert a.select_direction == b.select_direction
        assert a.references == b.references and a.references is not None
        strip = [(t.number, t.state, t.value, t.epochs, t.seconds, dict(t.params), t.test_scores,
                  t.test_cross_entropy, t.counted) for t in a.trials]  # fmt: skip
        assert strip == [
            (t.number, t.state, t.value, t.epochs, t.seconds, dict(t.params), t.test_scores,
             t.test_cross_entropy, t.counted) for t in b.trials
        ]  # fmt: skip
    live, regenerated = analyze(stored), analyze(loaded)
    assert [s.task for s in regenerated.summaries] == [s.task for s in live.summaries]
    assert [s.verdict for s in regenerated.summaries] == [s.verdict for s in live.summaries]
    assert regenerated.headline == live.headline
    assert [s.model for s in regenerated.summaries] == [s.model for s in live.summaries]
    assert _clean(comparison_rows(regenerated.summaries)) == _clean(
        comparison_rows(live.summaries)
    )
    assert _clean(summary_rows(regenerated.summaries)) == _clean(summary_rows(live.summaries))
    assert regenerated.advice == live.advice and live.advice is not None
    keys = {f.key for f in live.advice.findings}
    assert keys == {"dropout", "dropout_x_units", "init", "relu", "units", "dropout_start"}
    # the same bytes for the same results (no timestamp in the gzip header)
    again = export_experiment(url, "tiny", "csv.gz", tmp / "again.csv.gz")[0]
    assert again.read_bytes() == csv_path.read_bytes()


def test_every_trial_reads_back_as_stored(tmp_path: Path) -> None:
    """The file holds each trial's state, value, parameters and what it trained; a pruned or
    early-stopped trial's epochs are what it trained, not the epochs it was allowed."""
    text = tiny_study_text(strategies=("random",), n_trials=6)
    text = text.replace("max_epochs = 3\npatience = 0", "max_epochs = 12\npatience = 1")
    url = f"sqlite:///{tmp_path / 'h.db'}"
    create_experiment(parse_config(text), url)
    path = export_experiment(url, "tiny", "csv.gz", tmp_path / "t.csv.gz")[0]
    stored = {s.name: s for s in table_from_storage(url, "tiny").studies}
    loaded = read_results(path)
    assert sorted(s.name for s in loaded.studies) == sorted(stored)
    short = 0
    for study in loaded.studies:
        by_number = {t.number: t for t in stored[study.name].trials}
        assert len(study.trials) == len(by_number)
        for t in study.trials:
            s = by_number[t.number]
            assert (t.state, t.value, dict(t.params)) == (s.state, s.value, dict(s.params))
            assert (t.epochs, t.seconds, t.best_epoch, t.n_params) == (
                s.epochs, s.seconds, s.best_epoch, s.n_params,
            )  # fmt: skip
            short += s.epochs < loaded.config.fixed_params()["epochs"]
    assert short > 0  # some trials stopped early: the case the old "epochs" column got wrong
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
    assert len(header) == len(set(header))  # no column name twice


def test_results_command_writes_the_page_and_html_from_the_files(
    experiment: tuple[str, Path],
) -> None:
    url, tmp = experiment
    path = tmp / "cli" / "tiny.csv.gz"
    result = runner.invoke(
        app, ["export", "tiny", "--storage", url, "-f", "csv.gz", "-o", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert path.is_file() and (tmp / "cli" / "tiny.toml").is_file()
    live = analyze(table_from_storage(url, "tiny")).summaries
    page = tmp / "cli" / "results.md"
    result = runner.invoke(
        app, ["results", str(path), "-o", str(page), "--html-dir", str(tmp / "cli")]
    )
    assert result.exit_code == 0, result.output
    text = page.read_text()
    for s in live:
        assert f"### {s.task} ({s.metric}, {s.direction})" in text
        assert s.verdict in text
        assert f"tiny.{s.task}: {s.verdict[:40]}" in result.output
    assert f"wrote {page}" in result.output.replace("\n", "")
    assert "### Does the usual tuning advice hold in these trials?" in text
    # the overview: one row per comparison (manual, random and TPE against grid, per task)
    overview = text.split("## Every comparison")[1].split("\n## ")[0]
    rows = [line for line in overview.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 3 * len(live)
    assert "## Every comparison" in text and "## What ran" in text
    for s in live:
        for v in s.verdicts:
            assert any(f"| {s.task} | {s.label(v.strategy)} |" in r and f"| {v.verdict} |" in r
                       for r in rows), (s.task, v.strategy)  # fmt: skip
    assert "dropout 0.2-0.5 - dropout under 0.1" in text
    # TPE against random search: one row per task, the same numbers as the paired comparison
    versus = text.split("## TPE against random search")[1].split("\n## ")[0]
    rows = [line for line in versus.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == len(live)
    for s in live:
        scores = s.best_scores or {}
        d = paired_differences(scores["tpe"], scores["random"], s.direction)
        ci = hodges_lehmann(d)
        (row,) = [r for r in rows if r.startswith(f"| tiny | {s.task} |")]
        assert (
            f"{ci.estimate + 0.0:+.3g}, " in row
            and f"[{ci.low + 0.0:+.3g}, {ci.high + 0.0:+.3g}]" in row
        )
    html = (tmp / "cli" / "tiny.html").read_text()
    assert "<h2>Does the usual tuning advice hold in these trials?</h2>" in html


def test_results_of_missing_or_damaged_files_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["results", str(tmp_path / "none.csv.gz")])
    assert result.exit_code == 2 and "no such file" in result.output
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip")
    (tmp_path / "bad.toml").write_text(tiny_study_text())
    result = runner.invoke(app, ["results", str(bad), "-o", str(tmp_path / "r.md")])
    assert result.exit_code == 2 and "not a gzip CSV" in result.output
    (tmp_path / "bad.toml").unlink()
    result = runner.invoke(app, ["results", str(bad)])
    assert result.exit_code == 2 and "bad.toml" in result.output


def _page(url: str, tmp_path: Path) -> tuple[Path, Path]:
    """The tiny experiment exported to t.csv.gz and its page written to page.md."""
    path = export_experiment(url, "tiny", "csv.gz", tmp_path / "t.csv.gz")[0]
    out = tmp_path / "page.md"
    write_results([path], out)
    return path, out


def test_write_results_does_not_touch_other_files(
    experiment: tuple[str, Path], tmp_path: Path
) -> None:
    _page(experiment[0], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.md", "t.csv.gz", "t.toml"]


def test_results_keep_the_block_written_by_hand(
    experiment: tuple[str, Path], tmp_path: Path
) -> None:
    path, out = _page(experiment[0], tmp_path)
    fresh = out.read_text()
    assert KEEP_BEGIN not in fresh
    prose = f"{KEEP_BEGIN}\nRandom search is **competitive** here.\n{KEEP_END}"
    out.write_text(fresh.replace("## What ran", f"{prose}\n\n## What ran"))
    write_results([path], out)
    again = out.read_text()
    assert again.count(prose) == 1 and again.index(prose) < again.index("## Every comparison")
    assert (
        again.replace(prose + "\n\n", "") == fresh
    )  # the numbers are regenerated, the prose kept
    out.write_text(f"{KEEP_END}\nstray {KEEP_BEGIN}")  # markers out of order: nothing kept
    write_results([path], out)
    assert out.read_text() == fresh


def test_live_report_has_the_advice_section(experiment: tuple[str, Path]) -> None:
    url, tmp = experiment
    path, _ = write_report(url, "tiny", tmp / "live.html")
    page = path.read_text().split("</script>", 1)[1]  # what follows the embedded plotly.js
    assert "<h2>Does the usual tuning advice hold in these trials?</h2>" in page
    section = page.split("<h2>Does the usual tuning advice hold")[1].split("<h2>")[0]
    # init and activation are fixed in this space: the page says so instead of a number
    assert "not searched: init = &#x27;auto&#x27; is fixed" in section
    assert "dropout 0.2-0.5 - dropout under 0.1" in section and "iris" in section


def test_results_of_both_kinds_keeps_the_benchmarks_apart_in_a_section(tmp_path: Path) -> None:
    """Given trained and benchmark files in any order, one page: real training's answer, then
    the benchmarks' (their own family), where the two differ, and their section with regret;
    given only benchmark files, the page is theirs."""
    from hpstudy.report._results import write_trials_csv_gz
    from hpstudy.report._results_page import ANSWER_BEGIN, ANSWER_END, BENCHMARKS_HEADING
    from tests.analysis.test_pipeline import _table as trained_table
    from tests.analysis.test_regret import planted

    write_trials_csv_gz(trained_table(seeds=6), tmp_path / "trained.csv.gz")
    write_trials_csv_gz(planted(), tmp_path / "bench.csv.gz")
    page = tmp_path / "page.md"
    both = [str(tmp_path / "bench.csv.gz"), str(tmp_path / "trained.csv.gz")]
    result = runner.invoke(app, ["results", *both, "-o", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert text.startswith("# Results\n")
    section = text.index(f"## {BENCHMARKS_HEADING}")
    answer = text[text.index(ANSWER_BEGIN) : text.index(ANSWER_END)]
    assert answer.index("Random search against") < answer.index("On the published tabular")
    assert "differ" in answer.split("On the published tabular")[1]
    # the overview of real training, the benchmarks' section, then each file's details
    trained_part = text[text.index("\n## x\n") : text.index("\n## planted\n")]
    assert section < text.index("\n## x\n")
    assert "regret" not in text[:section] and "regret" not in trained_part
    assert "test regret" in text[section : text.index("\n## x\n")]
    assert "validation regret" in text[text.index("\n## planted\n") :]
    assert "side by side" in text[section:]
    # one family each: the benchmarks' is named apart from real training's
    assert text.count("Verdicts are Holm-adjusted over one family") == 1
    assert "verdicts are Holm-adjusted over a family of their own" in text[section:]

    alone = runner.invoke(app, ["results", both[0], "-o", str(tmp_path / "alone.md")])
    assert alone.exit_code == 0, alone.output
    text = (tmp_path / "alone.md").read_text()
    assert text.startswith("# Results from published tabular benchmarks")
    assert BENCHMARKS_HEADING not in text and "test regret" in text


def test_the_anytime_figure_of_a_benchmark_task_is_drawn_in_regret() -> None:
    """The drawing half (the numbers are tested in tests/analysis/test_regret.py): a benchmark
    task's anytime figure is in validation regret, its medians those of the regret curves; a
    trained task's is not."""
    import numpy as np

    from hpstudy.analysis._anytime import seed_band, study_curve
    from hpstudy.report._figures import anytime_figure
    from tests.analysis.test_pipeline import _table as trained_table
    from tests.analysis.test_regret import planted

    table = planted()
    fig = anytime_figure(table, "credit_g")
    assert "validation regret" in fig.layout.yaxis.title.text
    band = seed_band([study_curve(s, True) for s in table.of("credit_g", "grid")], "trials")
    drawn = [t for t in fig.data if t.name == "grid search" and t.xaxis == "x"]
    assert drawn and np.array_equal(np.asarray(drawn[0].y), band.median)
    assert (band.median >= 0).all()
    trained = anytime_figure(trained_table(seeds=3), "diabetes")
    assert "regret" not in trained.layout.yaxis.title.text + trained.layout.title.text
