"""Two answers to the brief's claim side by side (real training, published tabular benchmarks):
an outcome differs exactly where it occurs in one and on none of the other's comparisons
(both having some where it could occur), and the
sentence names exactly those, with the table's counts."""

from __future__ import annotations

import random

from hpstudy.analysis import analyze
from hpstudy.analysis._claim import (
    VERDICT_ORDER,
    ClaimCounts,
    claim_counts,
    contrast_rows,
    contrast_sentence,
    outcomes,
)
from tests.analysis.test_pipeline import _table


def _counts(rng: random.Random, strategy: str) -> ClaimCounts:
    n = rng.randint(0, 6)
    names = [f"t{i}" for i in range(n)]
    verdicts: dict[str, list[str]] = {}
    for name in names:
        verdicts.setdefault(rng.choice(VERDICT_ORDER), []).append(name)
    controlled = rng.randint(0, n)
    return ClaimCounts(
        strategy=strategy, baselines=("grid search",), comparisons=n,
        verdicts={k: verdicts[k] for k in VERDICT_ORDER if k in verdicts},
        controlled=controlled,
        sensitive=[(name, "inferior") for name in rng.sample(names, rng.randint(0, controlled))],
        ratios=n, fewer=rng.sample(names, rng.randint(0, n // 2)),
        more=rng.sample(names, rng.randint(0, n - n // 2)),
    )  # fmt: skip


def test_an_outcome_differs_exactly_where_one_answer_has_it_and_the_other_never() -> None:
    rng = random.Random(0)
    for _ in range(500):
        first = [_counts(rng, "random"), _counts(rng, "tpe")]
        second = [_counts(rng, "random"), _counts(rng, "tpe")]
        rows = contrast_rows(first, second)
        compared = [
            a for a, b in zip(first, second, strict=True) if a.comparisons and b.comparisons
        ]
        assert len(rows) == len(compared) * len(outcomes(first[0]))
        sentence = contrast_sentence(rows, "A", "B")
        for r in rows:
            (k1, n1), (k2, n2) = r.first, r.second
            # an outcome that could not occur (no comparison of that kind) is no difference
            assert r.differs == (n1 > 0 and n2 > 0 and (k1 == 0) != (k2 == 0))
            said = f"{r.outcome} on {k1} of {n1} comparisons on A and {k2} of {n2} on B"
            assert (said in sentence) == r.differs
        if rows and not any(r.differs for r in rows):
            assert "do not differ" in sentence


def test_the_counts_are_the_verdicts_of_the_analysis() -> None:
    summaries = analyze(_table()).summaries
    c = claim_counts(summaries, "random", ["diabetes (x)"])
    (v,) = summaries[0].verdicts
    assert c.comparisons == 1 and c.verdicts == {v.verdict: ["diabetes (x)"]}
    assert c.sensitive == [("diabetes (x)", v.verdict)]  # the planted control is inferior
    (competitive, *_), *_ = [outcomes(c)]
    assert competitive[1] == (v.verdict in ("superior", "equivalent", "non-inferior"))
