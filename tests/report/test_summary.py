"""The report's judgement on real (tiny) experiments: baselines, labels, the numbers behind the
sentences, and the export that lets anyone check them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from hpstudy.analysis._compute import baseline_cost_to_target, best_so_far_target
from hpstudy.config import parse_config
from hpstudy.report import analyze, export_experiment, write_report
from hpstudy.report._collect import collect_experiment
from hpstudy.report._figures import anytime_figure, parallel_dimensions, slice_figure
from hpstudy.runner import create_experiment
from tests.conftest import tiny_study_text


def _make(tmp_path: Path, text: str) -> str:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    create_experiment(parse_config(text), url)
    return url


@pytest.fixture(scope="module")
def grid_experiment(tmp_path_factory: pytest.TempPathFactory) -> str:
    text = tiny_study_text(strategies=("manual", "grid", "random", "tpe"), n_trials=3)
    return _make(tmp_path_factory.mktemp("grid"), text.replace("seeds = 1", "seeds = 2"))


def test_experiment_without_grid_is_compared_with_the_first_non_manual_strategy(
    tmp_path: Path,
) -> None:
    url = _make(tmp_path, tiny_study_text(strategies=("manual", "tpe", "random"), n_trials=3))
    _, summaries = analyze(url, "tiny")
    for s in summaries:
        assert s.baseline == "tpe"
        assert {(v.strategy, v.baseline) for v in s.verdicts} == {
            ("manual", "tpe"),
            ("random", "tpe"),
        }
        assert "Nothing to compare" not in s.verdict and "random search is" in s.verdict
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
    _, summaries = analyze(_make(tmp_path, text), "tiny", test=False)
    assert {s.baseline for s in summaries} == {"random"}
    assert {v.strategy for v in summaries[0].verdicts} == {"grid", "tpe"}


def test_grid_below_its_size_is_labelled_with_its_points(
    grid_experiment: str, tmp_path: Path
) -> None:
    path, summaries = write_report(grid_experiment, "tiny", tmp_path / "r.html")
    assert summaries[0].label("grid") == "grid (3 of 4 points)"
    page = path.read_text()
    assert "grid (3 of 4 points)" in page
    ours = page.split("</script>", 1)[1]  # what follows the embedded plotly.js
    assert " 1 seeds" not in ours and "99%" not in ours
    assert "Holm family: every searching strategy against the baseline, on every task" in page


def test_compute_ratios_are_the_strategys_run_cost_over_grids_expected_cost(
    grid_experiment: str,
) -> None:
    data, summaries = analyze(grid_experiment, "tiny")
    for s in summaries:
        grid = {g.info.seed: g for g in data.of(s.task, "grid")}
        for c in s.compute or []:
            for r in c.per_seed:
                # on the trial values: the selection objective and its margin
                target = best_so_far_target(
                    grid[r.seed].records, s.objective_direction, s.target_margin
                )
                expected = baseline_cost_to_target(
                    grid[r.seed].records, target, s.objective_direction, c.unit
                )
                assert r.baseline_cost == pytest.approx(expected)
            if c.strategy == "grid":
                # grid against itself: its run order is one of the orderings averaged over
                assert all(r.reached for r in c.per_seed)


def test_equal_compute_at_the_full_budget_compares_grid_with_itself(grid_experiment: str) -> None:
    _, summaries = analyze(grid_experiment, "tiny")
    for s in summaries:
        full = [e for e in s.equal or [] if e.strategy == "grid" and e.fraction == 1.0]
        assert len(full) == 1 and full[0].difference == 0.0 and full[0].seeds == 2
        fractions = sorted({e.fraction for e in s.equal or []})
        assert fractions == [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0]


def test_verdicts_share_one_holm_family_across_tasks(grid_experiment: str) -> None:
    _, summaries = analyze(grid_experiment, "tiny")
    searching = [v for s in summaries for v in s.verdicts if v.strategy != "manual"]
    assert len(searching) == 4  # random and TPE on two tasks
    ranked = sorted(v.p_noninferiority for v in searching)
    assert min(v.p_adjusted for v in searching) == pytest.approx(min(1.0, 4 * ranked[0]))
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
    assert set(row["compute_ratios"]) == {"epochs", "seconds", "trials"}
    assert {"ratio", "ci_low", "ci_high"} <= set(row["compute_ratios"]["epochs"])
    assert payload["headline"].startswith("Against grid (3 of 4 points)")
    assert "Wilcoxon" in payload["ci_method"] and "alpha = 0.025" in payload["rule"]


def _trial(lr: float, dropout: float, value: float) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        params={"lr": lr, "dropout": dropout, "n_units": 32},
        distributions={
            "lr": FloatDistribution(1e-4, 1e-1, log=True),
            "dropout": FloatDistribution(0.001, 0.5),
            "n_units": IntDistribution(8, 64, log=True),
        },
        value=value,
    )


def test_parallel_coordinates_read_in_the_hyperparameters_units() -> None:
    trials = [_trial(1e-4, 0.001, 0.5), _trial(3e-3, 0.3, 0.7), _trial(0.1, 0.5, 0.6)]
    lr, dropout, _ = parallel_dimensions(trials, ["lr", "dropout", "n_units"])
    assert lr["label"] == "lr (log scale)"
    assert lr["values"] == pytest.approx([-4.0, math.log10(3e-3), -1.0])
    assert lr["ticktext"][:3] == ["0.0001", "0.0003", "0.001"]
    assert lr["tickvals"][0] == pytest.approx(-4.0)
    # dropout was searched linearly: its own values, although they span a ratio of 500
    assert dropout == {"label": "dropout", "values": [0.001, 0.3, 0.5]}


def test_slices_use_a_log_axis_only_for_parameters_searched_on_one(grid_experiment: str) -> None:
    data = collect_experiment(grid_experiment, "tiny")
    fig = slice_figure(data, "iris")
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
    fig = anytime_figure(collect_experiment(grid_experiment, "tiny"), "iris")
    per_seed = [t for t in fig.data if t.line.shape == "hv"]
    assert len(per_seed) == 2 * 3 * 3  # 2 seeds x (grid, random, TPE) x 3 compute axes
    assert not [t for t in fig.data if t.fill == "tonexty"]  # no quartile band from 2 seeds
    assert "thin lines: each seed" in fig.layout.title.text
