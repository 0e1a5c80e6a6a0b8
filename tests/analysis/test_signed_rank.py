"""The exact signed-rank test with ties and zeros, and the interval that inverts it, against
brute-force enumeration of sign flips (computed here independently of the module)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from hpstudy.analysis._signed_rank import (
    ENUMERATION_MAX,
    _enumerated,
    _recursion,
    hodges_lehmann,
    signed_rank_null,
    signed_rank_p,
    walsh_averages,
)


def _brute_p(d: np.ndarray, alternative: str) -> float:
    """Every sign flip of the nonzero differences, mid-ranks of |d| from scipy, Pratt's zeros."""
    d = np.asarray(d, dtype=float)
    ranks2 = np.rint(2 * stats.rankdata(np.abs(d))).astype(np.int64)  # mid-ranks are k / 2
    observed = ranks2[d > 0].sum()
    flipped = ranks2[d != 0]
    m = len(flipped)
    if m == 0:
        return 1.0
    bits = (np.arange(2**m)[:, None] >> np.arange(m)) & 1  # one row per sign pattern
    sums = bits @ flipped
    extreme = sums >= observed if alternative == "greater" else sums <= observed
    return float(np.count_nonzero(extreme)) / 2**m


def _tie_heavy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Small integers (many ties and zeros), sometimes scaled by a factor that is not a power
    of two (ties must survive as exact float equalities, not as integers)."""
    k = int(rng.integers(1, 5))
    d = rng.integers(-k, k + 2, size=n).astype(float)
    return d / 3 if rng.random() < 0.3 else d


def _stretches(d: np.ndarray) -> list[tuple[float, float, float]]:
    """The line cut at the Walsh averages, in order: (a shift to test, the ends of the stretch
    it stands for), each Walsh average alone and the midpoint of each gap (the outer gaps run
    to -inf and +inf)."""
    w = np.unique(walsh_averages(d))
    gaps = [(float(w[0]) - 1, -math.inf, float(w[0]))]
    gaps += [
        (float(lo + hi) / 2, float(lo), float(hi)) for lo, hi in zip(w[:-1], w[1:], strict=True)
    ]
    gaps.append((float(w[-1]) + 1, float(w[-1]), math.inf))
    points = [(float(v), float(v), float(v)) for v in w]
    return [x for pair in zip(gaps[:-1], points, strict=True) for x in pair] + [gaps[-1]]


def test_p_is_the_brute_force_count_of_sign_flips_on_tie_heavy_samples() -> None:
    rng = np.random.default_rng(0)
    checked_ties = checked_zeros = 0
    for _ in range(300):
        d = _tie_heavy(rng, int(rng.integers(1, 15)))
        checked_ties += len(np.unique(np.abs(d))) < len(d)
        checked_zeros += bool(np.any(d == 0))
        for alternative in ("greater", "less"):
            assert signed_rank_p(d, alternative) == pytest.approx(
                _brute_p(d, alternative), rel=1e-12
            ), (d.tolist(), alternative)
    assert checked_ties > 200 and checked_zeros > 100  # the samples are what they claim


def test_without_ties_p_is_scipys_exact_method() -> None:
    rng = np.random.default_rng(1)
    for n in [*range(1, 26), 40, 60]:  # the enumeration, the recursion, and past both
        d = rng.normal(0.3, 1.0, size=n)
        for alternative in ("greater", "less"):
            expected = stats.wilcoxon(d, alternative=alternative, method="exact").pvalue
            assert signed_rank_p(d, alternative) == pytest.approx(expected, rel=1e-10), n


def test_scipys_normal_approximation_under_ties_is_replaced_by_the_exact_value() -> None:
    # issue 16: 20 seeds, every difference positive and tied: scipy prints 3.87e-06
    d = np.full(20, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that it cannot be exact with ties
        approx = stats.wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue
    assert approx == pytest.approx(3.87e-06, rel=1e-3)
    assert signed_rank_p(d, "greater") == _brute_p(d, "greater") == 2**-20  # 9.5e-07
    # a tie-heavy sample with some negative differences: the brute-force value, far from scipy's
    d = np.array([3, 3, 2, 2, 2, -1, 3, 3, 2, 1, 1, 1, 1, 3, 3, -1, 2, 3, -1, 1], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        approx = stats.wilcoxon(d, alternative="greater", zero_method="zsplit").pvalue
    exact = _brute_p(d, "greater")
    assert signed_rank_p(d, "greater") == pytest.approx(exact, rel=1e-12)
    assert exact == pytest.approx(9.346e-05, rel=1e-3) and approx > 2.5 * exact


def test_enumeration_and_recursion_agree_at_the_switch_size() -> None:
    rng = np.random.default_rng(2)
    for m in (ENUMERATION_MAX, ENUMERATION_MAX + 1):
        for _ in range(20):
            r = rng.integers(1, 2 * m, size=m)  # doubled mid-ranks: repeated values are ties
            k = int(r.sum()) // 2
            assert np.array_equal(_enumerated(r, k), _recursion(r, k))
        # and through the public function, on either side of the switch
        d = _tie_heavy(rng, m)
        d[d == 0] = 1.0
        assert signed_rank_p(d, "less") == pytest.approx(_brute_p(d, "less"), rel=1e-12)


def test_all_zero_differences_give_p_one_and_nan_is_an_error() -> None:
    assert signed_rank_p([0.0, 0.0, 0.0], "greater") == signed_rank_p([0.0], "less") == 1.0
    assert math.isnan(signed_rank_p([], "greater"))
    with pytest.raises(ValueError, match=r"nan at positions \[1\].*censored bound"):
        signed_rank_p([0.1, math.nan, 0.2])
    with pytest.raises(ValueError, match="nan at positions"):
        hodges_lehmann([0.1, math.nan])
    with pytest.raises(ValueError, match="alternative must be 'greater' or 'less'"):
        signed_rank_p([0.1], "two-sided")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one-dimensional"):
        signed_rank_p([[0.1, 0.2]])
    for confidence in (0.0, 1.0, 1.5):
        with pytest.raises(
            ValueError, match=f"confidence must be between 0 and 1, got {confidence}"
        ):
            hodges_lehmann([0.1, 0.2], confidence)


def test_zeros_follow_pratt_they_rank_but_are_not_flipped() -> None:
    # Pratt: the zeros take ranks 1 and 2, the two 1s share 3.5, the -3 has 5: T = 7 over the
    # flips of {3.5, 3.5, 5} (sums 0, 3.5, 3.5, 5, 7, 8.5, 8.5, 12): P(T >= 7) = 4/8.
    assert signed_rank_p([0.0, 0.0, 1.0, 1.0, -3.0], "greater") == 0.5
    # dropping the zeros first (Wilcoxon's way) would rank 1.5, 1.5, 3: P(T >= 3) = 5/8
    assert signed_rank_p([1.0, 1.0, -3.0], "greater") == 0.625


def test_infinite_differences_rank_above_every_finite_one() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        d = _tie_heavy(rng, int(rng.integers(2, 12)))
        idx = rng.choice(len(d), size=int(rng.integers(1, len(d) + 1)), replace=False)
        big = d.copy()
        big[idx] = np.where(rng.random(len(idx)) < 0.7, 1e6, -1e6)
        censored = np.where(np.abs(big) == 1e6, np.copysign(np.inf, big), big)
        for alternative in ("greater", "less"):
            assert signed_rank_p(censored, alternative) == signed_rank_p(big, alternative)
    # +inf and -inf tie with each other in size: ranks 1.5 and 1.5, flips {0, 1.5, 1.5, 3}
    assert signed_rank_p([math.inf, -math.inf], "greater") == 0.75


def test_p_is_monotone_in_the_shift_on_tie_heavy_samples() -> None:
    rng = np.random.default_rng(4)
    for _ in range(60):
        d = _tie_heavy(rng, int(rng.integers(2, 14)))
        shifts = [shift for shift, _, _ in _stretches(d)]
        assert shifts == sorted(shifts)
        greater = [signed_rank_p(d - s, "greater") for s in shifts]
        less = [signed_rank_p(d - s, "less") for s in shifts]
        assert np.all(np.diff(greater) >= 0) and np.all(np.diff(less) <= 0), d.tolist()


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.8])
def test_interval_is_the_hull_of_the_shifts_brute_force_accepts(confidence: float) -> None:
    rng = np.random.default_rng(5)
    alpha = (1 - confidence) / 2
    for _ in range(40):
        # integers and halves: every Walsh average and d - shift are exact in floating point
        d = rng.integers(-4, 6, size=int(rng.integers(2, 13))).astype(float)
        ci = hodges_lehmann(d, confidence)
        if 0.5 ** len(d) > alpha:  # too few seeds: the widest interval, at the level it has
            assert (ci.low, ci.high) == (d.min(), d.max())
            assert ci.level == 1 - 2 * 0.5 ** len(d)
            continue
        accepted = [
            (lo, hi)
            for s, lo, hi in _stretches(d)
            if _brute_p(d - s, "greater") > alpha and _brute_p(d - s, "less") > alpha
        ]
        hull = (min(lo for lo, _ in accepted), max(hi for _, hi in accepted))
        assert (ci.low, ci.high) == hull, d.tolist()
        assert ci.level == confidence
        assert ci.estimate == float(np.median(walsh_averages(d)))


def _classic_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """[W_(c), W_(M+1-c)] of the sorted Walsh averages, c from the no-ties null distribution."""
    w = walsh_averages(d)
    cdf = np.cumsum(signed_rank_null(len(d)))
    c = int(np.sum(cdf <= (1 - confidence) / 2 + 1e-12))
    return float(w[c - 1]), float(w[len(w) - c])


def test_without_ties_the_interval_is_the_classic_walsh_order_statistics() -> None:
    rng = np.random.default_rng(6)
    for n in [*range(6, 31), 45]:
        d = rng.normal(0.2, 1.0, size=n)
        for confidence in (0.95, 0.9):
            ci = hodges_lehmann(d, confidence)
            assert (ci.low, ci.high) == _classic_interval(d, confidence), n
            assert ci.estimate == pytest.approx(float(np.median(walsh_averages(d))))


def test_too_few_seeds_give_the_widest_interval_with_the_level_it_achieves() -> None:
    ci = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (ci.estimate, ci.low, ci.high, ci.level) == (3.0, 1.0, 5.0, 1 - 2 / 32)
    # at exactly that level a p of alpha = 2**-5 rejects (p <= alpha): the same interval
    ci = hodges_lehmann([1.0, 2.0, 3.0, 4.0, 5.0], 1 - 2 / 32)
    assert (ci.low, ci.high, ci.level) == (1.0, 5.0, 1 - 2 / 32)
    ci = hodges_lehmann([2.0, 2.0, 2.0, 0.0])  # ties change nothing about the smallest p
    assert (ci.low, ci.high, ci.level) == (0.0, 2.0, 1 - 2 / 16)
    assert hodges_lehmann([0.4]) == hodges_lehmann([0.4], 0.5)  # one seed: level 0
    assert hodges_lehmann([0.4]).level == 0.0
    assert math.isnan(hodges_lehmann([]).estimate)


def test_coverage_under_a_null_with_ties_is_at_least_nominal() -> None:
    rng = np.random.default_rng(7)
    replicates, covered, widths = 2000, 0, []
    for _ in range(replicates):
        # a discrete distribution symmetric about 1.5: ties and exact zeros of d - 1.5 abound
        d = 1.5 + rng.integers(-2, 3, size=10) / 2
        ci = hodges_lehmann(d)
        covered += ci.low <= 1.5 <= ci.high
        widths.append(ci.high - ci.low)
    coverage = covered / replicates
    # at least nominal; not everything (a fixed wide interval would cover always)
    assert 0.95 <= coverage < 0.995, coverage
    assert np.median(widths) < 2.0


def test_censored_values_leave_the_interval_unbounded_on_their_side() -> None:
    rng = np.random.default_rng(8)
    unbounded = 0
    for _ in range(60):
        d = rng.normal(1.0, 1.0, size=int(rng.integers(6, 14)))
        k = int(rng.integers(1, 5))
        big, censored = d.copy(), d.copy()
        big[:k], censored[:k] = 1e9, math.inf
        a, b = hodges_lehmann(big), hodges_lehmann(censored)
        # a bound set by a finite difference is the same; one set by the stand-in is +inf
        assert b.low == a.low if a.low < 1e8 else b.low == math.inf
        assert b.high == a.high if a.high < 1e8 else b.high == math.inf
        assert b.estimate == a.estimate if a.estimate < 1e8 else b.estimate == math.inf
        unbounded += b.high == math.inf
    assert unbounded > 0
    # every finite shift is rejected (the "less" test rejects at p = 2**-8): only -inf remains
    ci = hodges_lehmann([-math.inf] * 8 + [0.1])
    assert (ci.estimate, ci.low, ci.high) == (-math.inf, -math.inf, -math.inf)
    ci = hodges_lehmann([math.inf, -math.inf])
    assert (ci.low, ci.high) == (-math.inf, math.inf)


def test_rounding_noise_reads_as_zero_even_beside_a_censored_value() -> None:
    x = 0.0029239766081871
    d = [x, -x * (1 + 2e-16), x, -x * (1 - 2e-16)] * 5
    ci = hodges_lehmann(d)
    assert ci.estimate == 0.0 and ci.low < 0 < ci.high
    # a censored seed moves the interval up: its low end is noise, its high end is x (were the
    # noise scale max |d| = inf, every bound would read 0)
    ci = hodges_lehmann([*d, math.inf])
    assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, pytest.approx(x))


def test_large_samples_with_ties_stay_exact() -> None:
    rng = np.random.default_rng(9)
    d = rng.integers(-6, 2, size=500).astype(float)  # mostly negative: a small p of "less"
    p = signed_rank_p(d, "less")
    # the same distribution by an independent route: convolving the doubled mid-ranks one by
    # one in exact integers (Python's), up to the observed rank sum
    ranks2 = np.rint(2 * stats.rankdata(np.abs(d))).astype(int)[d != 0]
    observed = int(ranks2[d[d != 0] > 0].sum())
    counts = np.zeros(observed + 1, dtype=object)
    counts[:] = 0
    counts[0] = 1
    for r in ranks2.tolist():
        if r <= observed:
            counts[r:] = counts[r:] + counts[:-r]
    exact = int(counts.sum()) / 2 ** len(ranks2)
    assert 0 < exact < 1e-3
    assert p == pytest.approx(exact, rel=1e-12)
