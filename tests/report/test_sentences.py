"""The sentences and first-screen figures read the numbers they are given (synthetic summaries)."""

from __future__ import annotations

import pytest

from hpstudy.report._figures import equal_compute_figure, forest_figure
from hpstudy.report._sentences import headline, verdict_sentence
from hpstudy.report._summary import EqualCompute, Spread, SummaryRow, TaskSummary
from hpstudy.report._verdict import compare_pair, judge


def _row(strategy: str, label: str) -> SummaryRow:
    s = Spread.of([1.0])
    return SummaryRow(strategy, label, 1, s, s, s, s, s, 0, 0)


def _summary() -> TaskSummary:
    d = [0.05, 0.04, 0.06, 0.045, 0.055, 0.035, 0.05, 0.065]
    (v,) = judge([compare_pair("digits", "random", "grid", d, 0.005)], "f")
    return TaskSummary(
        task="digits", metric="accuracy", direction="maximize",
        rows=[_row("grid", "grid (12 of 48 points)"), _row("random", "random")],
        verdicts=[v], verdict="", missing=[], baseline="grid", margin=0.005, margin_spec="0.005",
        target="grid's best validation accuracy - the margin (0.005) at the same seed",
        compute=[], smallest_fraction={"random": 0.25},
        equal=[EqualCompute("random", f, Spread.of([0.9]), -0.001 * i, -0.002 * i, 0.001, 0.01, 8)
               for i, f in enumerate((1.0, 0.5, 0.25))],
    )  # fmt: skip


def test_sentences_name_the_verdict_the_baseline_label_and_the_fraction() -> None:
    s = _summary()
    sentence = verdict_sentence(s)
    assert (
        # the two 0.05 tie: the exact interval with ties (the classic one ignoring them: [0.04, 0.06])
        "random search is superior to grid (12 of 48 points) (+0.05 [+0.0425, +0.0575], 8 seeds)"
        in sentence
    )
    assert "margin 0.005" in sentence
    line = headline([s])
    assert line.startswith("Against grid (12 of 48 points) on held-out test scores")
    assert (
        "random search is superior (and non-inferior to the full grid (12 of 48 points) with 1/4 of its epochs) on digits"
        in line
    )
    assert line.endswith("on digits (one comparison).")


def test_forest_and_equal_compute_figures_are_in_units_of_the_margin() -> None:
    s = _summary()
    forest = forest_figure([s])
    assert forest is not None
    (trace,) = forest.data
    assert trace.x[0] == pytest.approx(0.05 / 0.005)
    assert trace.error_x.array[0] == pytest.approx((0.0575 - 0.05) / 0.005)
    assert trace.y[0] == "digits: random vs grid (12 of 48 points)"
    curves = equal_compute_figure([s])
    assert curves is not None
    (line,) = curves.data
    assert list(line.x) == [0.25, 0.5, 1.0]
    assert list(line.y) == pytest.approx([-0.4, -0.2, 0.0])


@pytest.mark.parametrize(
    ("diffs", "expected", "absent"),
    [
        ([0.01], "+0.01, no CI, 1 seed", "[+0.01, +0.01]"),
        ([0.01, 0.02, 0.015], "CI, the most 3 seeds allow", "no CI"),
        ([0.01 + 0.001 * i for i in range(8)], "8 seeds", "allow"),
    ],
)
def test_a_sentence_never_shows_an_interval_the_seeds_cannot_give(
    diffs: list[float], expected: str, absent: str
) -> None:
    (v,) = judge([compare_pair("digits", "random", "grid", diffs, 0.005)], "f")
    s = _summary()
    sentence = verdict_sentence(
        TaskSummary(**{**s.__dict__, "verdicts": [v], "smallest_fraction": {}})
    )
    assert expected in sentence and absent not in sentence, sentence
