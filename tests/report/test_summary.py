"""The report's judgement on real (tiny) experiments: baselines, labels, the numbers behind the
sentences, and the export that lets anyone check them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hpstudy.analysis import Analysis, analyze
from hpstudy.analysis._compute import arm_cost, levels
from hpstudy.config import parse_config
from hpstudy.report import export_experiment, table_from_storage, write_report
from hpstudy.report._figures import anytime_figure, parallel_dimensions, slice_figure
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text


def _make(tmp_path: Path, text: str) -> str:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    create_experiment(parse_config(text), url)
    return url


def _analysis(url: str) -> Analysis:
    return analyze(table_from_storage(url, "tiny"))


@pytest.fixture(scope="module")
def grid_experiment(tmp_path_factory: pytest.TempPathFactory) -> str:
    text = tiny_study_text(strategies=("manual", "grid", "random", "tpe"), n_trials=3)
    return _make(tmp_path_factory.mktemp("grid"), text.replace("seeds = 1", "seeds = 2"))


def test_experiment_without_grid_is_compared_with_the_first_non_manual_strategy(
    tmp_path: Path,
) -> None:
    url = _make(tmp_path, tiny_study_text(strategies=("manual", "tpe", "random"), n_trials=3))
    for s in _analysis(url).summaries:
        assert s.baseline == "tpe"
        assert {(v.strategy, v.baseline) for v in s.verdicts} == {
            ("manual", "tpe"),
            ("random", "tpe"),
        }
        assert "Nothing to compare" not in s.verdict and "random search" in s.verdict
        assert "1 seed" in s.verdict and "1 seeds" not in s.verdict  # one seed, singular
    path = export_experiment(url, "tiny", "json", tmp_path / "e.json")[0]
    rows = json.loads(path.read_text())["comparisons"]
    assert {(r["task"], r["strategy"], r["baseline"]) for r in rows} == {
        (t, s, "tpe") for t in ("iris", "diabetes") for s in ("manual", "random")
    }


def test_report_baseline_from_the_study_file_is_used(tmp_path: Path) -> None:
    text = (
        tiny_study_text(strategies=("grid", "random", "tpe")) + '\n[report]\nbaseline = "random"\n'
    )
    summaries = _analysis(_make(tmp_path, text)).summaries
    assert {s.baseline for s in summaries} == {"random"}
    assert {v.strategy for v in summaries[0].verdicts} == {"grid", "tpe"}


def test_grid_below_its_size_is_labelled_with_its_points(
    grid_experiment: str, tmp_path: Path
) -> None:
    path, analysis = write_report(grid_experiment, "tiny", tmp_path / "r.html")
    assert analysis.summaries[0].label("grid") == "grid search (3 of 4 points)"
    page = path.read_text()
    assert "grid search (3 of 4 points)" in page
    ours = page.split("</script>", 1)[1]  # what follows the embedded plotly.js
    assert " 1 seeds" not in ours and "99%" not in ours
    assert "Holm family: every searching strategy and the negative control" in page


def test_compute_ratios_cost_both_arms_alike_at_a_level_both_reached(
    grid_experiment: str,
) -> None:
    analysis = _analysis(grid_experiment)
    table = analysis.table
    for s in analysis.summaries:
        grid = {g.seed: g for g in table.of(s.task, "grid")}
        assert s.compute
        for c in s.compute:
            both = c.strategy == "random"  # random and grid are exchangeable; TPE is not
            assert c.method.startswith("both expected" if both else "both in the order")
            for r in c.per_seed:
                own = next(x for x in table.of(s.task, c.strategy) if x.seed == r.seed)
                base = grid[r.seed]
                value = levels(own.runs, base.runs, base.select_direction)[r.level]
                cost, reached = arm_cost(base.runs, value, base.select_direction, r.unit, both)
                assert r.baseline_cost == pytest.approx(cost) and reached
                assert r.baseline_reached and r.strategy_reached  # a level both reached


def test_equal_compute_at_the_full_budget_compares_grid_with_itself(grid_experiment: str) -> None:
    for s in _analysis(grid_experiment).summaries:
        full = [e for e in s.equal or [] if e.strategy == "grid" and e.fraction == 1.0]
        assert len(full) == 1 and full[0].difference == 0.0 and full[0].seeds == 2
        fractions = sorted({e.fraction for e in s.equal or []})
        assert fractions == [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0]
        assert "grid" in (s.smallest_fraction or {})  # grid stopped early is compared too


def test_verdicts_share_one_holm_family_across_tasks(grid_experiment: str) -> None:
    summaries = _analysis(grid_experiment).summaries
    searching = [v for s in summaries for v in s.verdicts if v.strategy != "manual"]
    assert len(searching) == 4  # random and TPE on two tasks
    # each task's negative control joins the family when random search had a pick at 1/8 of
    # grid's epochs (here its first 3-epoch trial costs more than 1/8 of grid's 9 epochs)
    searching += [s.control for s in summaries if s.control is not None]
    ranked = sorted(v.p_noninferiority for v in searching)
    n = len(searching)
    assert min(v.p_adjusted for v in searching) == pytest.approx(min(1.0, n * ranked[0]))
    for s in summaries:
        for v in s.verdicts:
            assert v.verdict == "inconclusive" and v.seeds_needed is not None  # 2 seeds only


def test_export_json_carries_every_number_of_the_verdict(
    grid_experiment: str, tmp_path: Path
) -> None:
    path = export_experiment(grid_experiment, "tiny", "json", tmp_path / "e.json")[0]
    payload = json.loads(path.read_text())
    keys = {
        "baseline", "strategy", "margin", "difference", "ci_low", "ci_high", "p_noninferiority",
        "p_equivalence", "p_adjusted", "verdict", "seeds", "seeds_needed", "compute_ratios",
    }  # fmt: skip
    assert payload["comparisons"] and all(keys <= set(r) for r in payload["comparisons"])
    row = next(r for r in payload["comparisons"] if r["strategy"] == "random")
    assert {(c["unit"], c["level"]) for c in row["compute_ratios"]} >= {
        ("epochs", "best both reached"),
        ("trials", "best both reached"),
        ("seconds", "best both reached"),
    }
    assert {"ratio", "ci_low", "ci_high", "per_seed"} <= set(row["compute_ratios"][0])
    assert all(c["strategy"] == "control" for c in payload["negative_controls"])
    assert payload["headline"].startswith("Against grid search (3 of 4 points)")
    assert "signed-rank" in payload["ci_method"] and "alpha = 0.025" in payload["rule"]


def test_parallel_coordinates_read_in_the_hyperparameters_units(grid_experiment: str) -> None:
    from hpstudy.analysis import Trial

    table = table_from_storage(grid_experiment, "tiny")
    trials = [
        Trial(0, "COMPLETE", 0.5, params={"lr": 1e-3, "n_layers": 1, "n_units": 8}),
        Trial(1, "COMPLETE", 0.7, params={"lr": 1e-2, "n_layers": 2, "n_units": 16}),
        Trial(2, "COMPLETE", 0.6, params={"lr": 1e-1, "n_layers": 2, "n_units": 32}),
    ]
    lr, n_layers, _ = parallel_dimensions(table, trials, ["lr", "n_layers", "n_units"])
    assert lr["label"] == "lr (log scale)"
    assert lr["values"] == pytest.approx([-3.0, -2.0, -1.0])
    assert lr["ticktext"][:3] == ["0.001", "0.003", "0.01"]
    # n_layers was searched linearly: its own values
    assert n_layers == {"label": "n_layers", "values": [1, 2, 2]}


def test_slices_use_a_log_axis_only_for_parameters_searched_on_one(grid_experiment: str) -> None:
    fig = slice_figure(table_from_storage(grid_experiment, "tiny"), "iris")
    assert fig is not None
    titles = [a.text for a in fig.layout.annotations]
    by_title = dict(
        zip(
            titles,
            [fig.layout[f"xaxis{i if i > 1 else ''}"].type for i in range(1, 4)],
            strict=True,
        )
    )
    assert by_title["lr"] == "log" and by_title["n_units"] == "log"
    assert by_title["n_layers"] != "log"  # searched linearly, whatever its range


def test_best_so_far_figure_draws_each_seed_under_five_seeds(grid_experiment: str) -> None:
    fig = anytime_figure(table_from_storage(grid_experiment, "tiny"), "iris")
    per_seed = [t for t in fig.data if t.line.shape == "hv"]
    assert len(per_seed) == 2 * 3 * 3  # 2 seeds x (grid, random, TPE) x 3 compute axes
    assert not [t for t in fig.data if t.fill == "tonexty"]  # no quartile band from 2 seeds
    assert "thin lines: each seed" in fig.layout.title.text
    assert not math.isnan(len(per_seed))
