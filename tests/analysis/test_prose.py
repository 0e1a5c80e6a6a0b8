"""The sentences and first-screen figures read the numbers they are given (synthetic summaries),
and every bracket says what it is."""

from __future__ import annotations

import pytest

from hpstudy.analysis._prose import answer, headline, verdict_sentence
from hpstudy.analysis._summary import EqualCompute, Spread, SummaryRow, TaskSummary
from hpstudy.analysis._verdict import compare_pair, judge
from hpstudy.report._figures import equal_compute_figure, forest_figure


def _row(strategy: str, label: str) -> SummaryRow:
    s = Spread.of([1.0])
    return SummaryRow(strategy, label, 1, s, s, s, s, s, 0, 0)


def _summary(d: list[float] | None = None, control: list[float] | None = None) -> TaskSummary:
    d = d or [0.05, 0.04, 0.06, 0.045, 0.055, 0.035, 0.05, 0.065]
    raw = [compare_pair("digits", "random", "grid", d, 0.005)]
    if control is not None:
        raw.append(compare_pair("digits", "control", "grid", control, 0.005))
    judged = judge(raw, "f")
    return TaskSummary(
        task="digits", metric="accuracy", direction="maximize",
        rows=[_row("grid", "grid search (12 of 48 points)"), _row("random", "random search")],
        verdicts=[judged[0]], verdict="", missing=[], baseline="grid", margin=0.005,
        margin_spec="0.005", compute=[], smallest_fraction={"random": 0.25},
        equal=[EqualCompute("random", f, Spread.of([0.9]), -0.001 * i, -0.002 * i, 0.001, 0.95, 0.01, 8)
               for i, f in enumerate((1.0, 0.5, 0.25))],
        control=judged[1] if control is not None else None,
    )  # fmt: skip


def test_sentences_name_the_verdict_the_baseline_label_and_say_what_the_bracket_is() -> None:
    s = _summary()
    sentence = verdict_sentence(s)
    assert (
        "random search is superior to grid search (12 of 48 points) "
        "(+0.05, 95% CI [+0.0425, +0.0575], 8 seeds)" in sentence
    )
    assert "margin 0.005" in sentence
    line = headline([s])
    assert line.startswith("Against grid search (12 of 48 points) on held-out test scores")
    assert "random search is superior on digits" in line
    assert line.endswith("on digits (one comparison).")


def test_an_unsettled_comparison_is_said_as_a_person_would_with_planning_power() -> None:
    s = _summary([0.002, -0.003, 0.001])
    sentence = verdict_sentence(s)
    assert "is not settled" in sentence and "cannot yet be told apart from the margin" in sentence
    assert "planning: about" in sentence and "80% power" in sentence
    assert "inconclusive" not in headline([s])


def test_the_negative_control_says_whether_a_loss_can_be_found() -> None:
    worse = [-0.05, -0.04, -0.06, -0.045, -0.055, -0.035, -0.05, -0.065]
    found = verdict_sentence(_summary(control=worse))
    assert "Negative control" in found and "is inferior" in found and "can find a loss" in found
    same = [0.001, -0.001, 0.0005, 0.0, -0.0005, 0.001, 0.0, -0.001]
    blind = verdict_sentence(_summary(control=same))
    assert "not inferior" in blind and "say little" in blind
    assert "called inferior on 1 of 1 tasks" in headline([_summary(control=worse)])


def test_the_answer_counts_what_the_tables_say() -> None:
    settled = _summary()
    unsettled = _summary([0.002, -0.003, 0.001])
    text = answer([settled, unsettled])
    assert "2 comparisons: 1 superior, 1 not settled" in text
    assert "on 0 of 0 comparisons" in text  # no compute ratios in these summaries


def test_forest_and_equal_compute_figures_are_in_units_of_the_margin() -> None:
    s = _summary()
    forest = forest_figure([s])
    assert forest is not None
    (trace,) = forest.data
    assert trace.x[0] == pytest.approx(0.05 / 0.005)
    assert trace.error_x.array[0] == pytest.approx((0.0575 - 0.05) / 0.005)
    assert trace.y[0] == "digits: random search vs grid search (12 of 48 points)"
    assert "95% CI" in forest.layout.xaxis.title.text
    curves = equal_compute_figure([s])
    assert curves is not None
    (line,) = curves.data
    assert list(line.x) == [0.25, 0.5, 1.0]
    assert list(line.y) == pytest.approx([-0.4, -0.2, 0.0])


def test_the_forest_axis_names_the_coverage_actually_drawn() -> None:
    s = _summary([0.01, 0.02])
    forest = forest_figure([s])
    assert forest is not None
    title = forest.layout.xaxis.title.text
    assert title != "95% CI" and "50.0%" in title


@pytest.mark.parametrize(
    ("diffs", "expected", "absent"),
    [
        ([0.01], "+0.01, 1 seed: no CI", "[+0.01, +0.01]"),
        ([0.01, 0.02, 0.015], "CI, the most 3 seeds allow", "no CI"),
        ([0.01 + 0.001 * i for i in range(8)], "95% CI", "allow"),
    ],
)
def test_a_sentence_never_shows_an_interval_the_seeds_cannot_give(
    diffs: list[float], expected: str, absent: str
) -> None:
    sentence = verdict_sentence(_summary(diffs))
    assert expected in sentence and absent not in sentence, sentence
