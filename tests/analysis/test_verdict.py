"""The verdict statistics against known answers and an independent brute-force computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hpstudy.analysis._verdict import (
    compare_pair,
    hodges_lehmann,
    judge,
    min_seeds,
    paired_differences,
    resolve_margin,
    seeds_needed,
)
from tests.analysis.test_signed_rank import _brute_p


def _brute_two_sided_p(x: np.ndarray) -> float:
    """Exact two-sided signed-rank p by enumerating every sign pattern (no scipy)."""
    ranks = np.argsort(np.argsort(np.abs(x))) + 1
    w = ranks[x > 0].sum()
    dist = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product((0, 1), repeat=len(x))
    ]
    le = sum(v <= w for v in dist) / len(dist)
    ge = sum(v >= w for v in dist) / len(dist)
    return min(1.0, 2 * min(le, ge))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hodges_lehmann_ci_is_the_set_of_shifts_the_exact_test_accepts(seed: int) -> None:
    d = np.random.default_rng(seed).normal(0.01, 0.02, size=8)
    ci = hodges_lehmann(d)
    walsh = np.sort([(d[i] + d[j]) / 2 for i in range(8) for j in range(i, 8)])
    assert ci.estimate == pytest.approx(float(np.median(walsh)))
    assert ci.level == 0.95
    shifts = np.concatenate([[walsh[0] - 1], (walsh[1:] + walsh[:-1]) / 2, [walsh[-1] + 1]])
    for delta in shifts:
        accepted = _brute_two_sided_p(d - delta) > 0.05
        assert accepted == (ci.low < delta < ci.high), delta


def test_too_few_seeds_for_a_95_percent_interval_report_the_level_achieved() -> None:
    ci = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (ci.estimate, ci.low, ci.high) == (3.0, 1.0, 5.0)
    assert ci.level == 1 - 2 / 32


KNOWN = [
    # (case, differences (positive = strategy better), margin, verdict)
    ("superior", [0.05, 0.04, 0.06, 0.045, 0.055, 0.035, 0.05, 0.065], 0.01, "superior"),
    (
        "equivalent",
        [0.001, -0.002, 0.0015, -0.001, 0.0005, 0.002, -0.0005, 0.001, 0.0025, -0.0015],
        0.01,
        "equivalent",
    ),
    (
        "non-inferior",
        [0.02, -0.008, 0.015, -0.009, -0.007, 0.025, 0.012, -0.006, 0.018, 0.003],
        0.01,
        "non-inferior",
    ),
    ("inferior", [-0.05, -0.04, -0.06, -0.045, -0.055, -0.035, -0.05, -0.065], 0.01, "inferior"),
    ("too few seeds", [0.05, 0.04, 0.06], 0.01, "inconclusive"),
]


@pytest.mark.parametrize("case, d, margin, expected", KNOWN, ids=[k[0] for k in KNOWN])
def test_synthetic_scores_with_a_known_truth_get_the_right_verdict(
    case: str, d: list[float], margin: float, expected: str
) -> None:
    (v,) = judge([compare_pair("t", "random", "grid", d, margin)], "test family")
    assert v.verdict == expected
    assert v.family == "test family" and v.seeds == len(d)
    assert (v.seeds_needed is None) == (expected != "inconclusive")


def test_inconclusive_says_how_many_seeds_would_settle_it() -> None:
    (v,) = judge([compare_pair("t", "random", "grid", [0.05, 0.04, 0.06], 0.01)], "f")
    # every difference is far above -margin: only the exact test's floor stands in the way
    assert v.seeds_needed == min_seeds(0.025) == 6
    noisy = compare_pair("t", "random", "grid", [0.02, -0.03, 0.01, -0.02, 0.015], 0.01)
    # normal approximation by hand: ((z_.975 + z_.8) * sd / (effect + margin))^2 / (3 / pi)
    z = 1.959963984540054 + 0.8416212335729143
    expected = math.ceil((z * noisy.sd / (noisy.difference + 0.01)) ** 2 / (3 / math.pi))
    assert seeds_needed(noisy, 1) == max(expected, 6)
    # two comparisons in the family: Holm's first step tests at 0.0125
    assert seeds_needed(compare_pair("t", "r", "g", [0.05, 0.04, 0.06], 0.01), 2) == 7


def test_holm_across_the_family_can_turn_a_verdict_inconclusive() -> None:
    d = [0.004, 0.003, 0.005, 0.006, 0.002, 0.0045]  # p_ni = 1/64 alone
    alone = judge([compare_pair("a", "random", "grid", d, 0.01)], "f")[0]
    assert alone.p_noninferiority == pytest.approx(1 / 64) and alone.verdict != "inconclusive"
    pair = judge(
        [
            compare_pair("a", "random", "grid", d, 0.01),
            compare_pair("b", "random", "grid", d, 0.01),
        ],
        "f",
    )
    assert [v.p_adjusted for v in pair] == pytest.approx([2 / 64, 2 / 64])
    assert [v.verdict for v in pair] == ["inconclusive", "inconclusive"]


def test_differences_are_paired_by_seed_and_signed_positive_better() -> None:
    random, grid = {0: 0.9, 1: 0.8, 2: 0.7}, {1: 0.85, 2: 0.6, 3: 0.5}
    assert paired_differences(random, grid, "maximize") == pytest.approx([-0.05, 0.1])
    assert paired_differences(random, grid, "minimize") == pytest.approx([0.05, -0.1])


def test_relative_margin_is_a_share_of_the_pooled_median_score() -> None:
    assert resolve_margin("1%", [50.0, 60.0, 70.0]) == pytest.approx(0.6)
    assert resolve_margin(0.005, [0.9]) == 0.005


def test_scores_equal_but_for_rounding_are_a_tie_and_print_as_zero() -> None:
    # the same three test scores averaged in two orders differ in the last bit
    a, b = (0.1 + 0.2 + 0.3) / 3, (0.3 + 0.2 + 0.1) / 3
    assert a != b
    assert paired_differences({0: a, 1: 0.5}, {0: b, 1: 0.25}, "maximize") == [0.0, 0.25]
    x = 0.0029239766081871
    ci = hodges_lehmann([x, -x * (1 + 2e-16), x, -x * (1 - 2e-16)] * 5)
    assert ci.estimate == 0.0 and ci.low < 0 < ci.high


def test_every_p_value_of_a_comparison_is_exact_with_ties_and_zeros() -> None:
    # integers: d +- margin stay exact; ties everywhere, zeros in d and in d + margin. Past 13
    # differences scipy's wilcoxon used the normal approximation here: superiority p 0.0206,
    # "significant" at 0.025, where the exact p is 0.0254
    d = np.array([3, -1, 2, 0, 1, 3, 0, 2, -1, 0, 3, 1, 1, 0, -1, 1], dtype=float)
    v = compare_pair("t", "random", "grid", d, 1.0)
    assert v.p_noninferiority == pytest.approx(_brute_p(d + 1, "greater"), rel=1e-12)
    assert v.p_superiority == pytest.approx(_brute_p(d, "greater"), rel=1e-12)
    assert v.p_superiority == pytest.approx(0.025390625)  # 52 of 2**11 sign flips
    assert v.p_inferiority == pytest.approx(_brute_p(d + 1, "less"), rel=1e-12)
    upper = _brute_p(d - 1, "less")
    assert v.p_equivalence == pytest.approx(max(v.p_noninferiority, upper), rel=1e-12)
