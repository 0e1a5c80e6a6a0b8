"""The answer to the brief's claim, counted: for one strategy over a set of tasks, how many
comparisons with the baseline fall in each verdict, on how many of them the negative control
shows a loss could be found, and how many have their epochs-to-level interval wholly below or
above 1 (:func:`claim_counts`; ``_prose.answer`` words it). Two answers drawn apart (real
training, and published tabular benchmarks, never pooled) are set side by side outcome by
outcome, and the outcomes that occur in one and not in the other are named
(:func:`contrast_rows`, :func:`contrast_sentence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hpstudy.analysis._compute import PRIMARY_LEVEL, PRIMARY_UNIT
from hpstudy.analysis._summary import ComputeRatio, TaskSummary, label_of

VERDICT_ORDER = ("superior", "equivalent", "non-inferior", "inconclusive", "inferior")
COMPETITIVE = ("superior", "equivalent", "non-inferior")


def verdict_word(verdict: str) -> str:
    """A verdict as the prose says it ("inconclusive" reads "not settled")."""
    return "not settled" if verdict == "inconclusive" else verdict


def primary_ratio(summary: TaskSummary, strategy: str) -> ComputeRatio | None:
    """The strategy's compute to the primary level in the primary unit, over the baseline's."""
    return next(
        (
            c
            for c in summary.compute or []
            if c.strategy == strategy and c.unit == PRIMARY_UNIT and c.level == PRIMARY_LEVEL
        ),
        None,
    )


@dataclass(frozen=True)
class ClaimCounts:
    """One strategy against the baseline over a set of tasks (each comparison named, e.g.
    ``task (experiment)``).

    Attributes:
        verdicts: Per verdict, the comparisons that got it (in the tasks' order).
        controlled: Comparisons on a task whose negative control has paired scores.
        sensitive: ``(comparison, verdict)`` where the negative control was called inferior
            (a loss could have been found there).
        ratios: Comparisons with an epochs-to-level ratio.
        fewer, more: Those whose ratio's 95% CI lies wholly below / above 1.
    """

    strategy: str
    baselines: tuple[str, ...]
    comparisons: int
    verdicts: dict[str, list[str]]
    controlled: int
    sensitive: list[tuple[str, str]]
    ratios: int
    fewer: list[str]
    more: list[str]

    @property
    def label(self) -> str:
        return label_of(self.strategy)


def claim_counts(
    summaries: Sequence[TaskSummary], strategy: str, names: Sequence[str] | None = None
) -> ClaimCounts:
    """Count ``strategy``'s comparisons with paired test scores in ``summaries`` (``names``:
    how to call each summary's task, in their order)."""
    names = list(names) if names is not None else [s.task for s in summaries]
    pairs = [
        (name, s, v)
        for name, s in zip(names, summaries, strict=True)
        for v in s.verdicts
        if v.strategy == strategy and v.seeds
    ]
    verdicts: dict[str, list[str]] = {}
    for name, _, v in pairs:
        verdicts.setdefault(v.verdict, []).append(name)
    ratios = [(name, c) for name, s, _ in pairs if (c := primary_ratio(s, strategy)) is not None]
    return ClaimCounts(
        strategy=strategy,
        baselines=tuple(sorted({s.label(s.baseline) for _, s, _ in pairs})),
        comparisons=len(pairs),
        verdicts={k: verdicts[k] for k in VERDICT_ORDER if k in verdicts},
        controlled=sum(1 for _, s, _ in pairs if s.control is not None and s.control.seeds),
        sensitive=[
            (name, v.verdict)
            for name, s, v in pairs
            if s.control is not None and s.control.verdict == "inferior"
        ],
        ratios=len(ratios),
        fewer=[name for name, c in ratios if c.summary.below_one],
        more=[name for name, c in ratios if c.summary.above_one],
    )


def outcomes(counts: ClaimCounts) -> list[tuple[str, int, int]]:
    """``(outcome, k, n)``: each outcome of the answer, on k of n comparisons."""
    n = counts.comparisons
    competitive = sum(len(counts.verdicts.get(k, [])) for k in COMPETITIVE)
    return [
        ("competitive (superior, equivalent or non-inferior)", competitive, n),
        *((verdict_word(k), len(counts.verdicts.get(k, [])), n) for k in VERDICT_ORDER),
        ("negative control called inferior (a loss could be found)", len(counts.sensitive),
         counts.controlled),
        ("fewer epochs to the level (95% CI wholly below 1)", len(counts.fewer), counts.ratios),
        ("more epochs to the level (95% CI wholly above 1)", len(counts.more), counts.ratios),
    ]  # fmt: skip


def _of(k: int, n: int) -> str:
    return f"{k} of {n}"


@dataclass(frozen=True)
class ContrastRow:
    """One outcome of one strategy in two answers; ``differs`` when it occurs in one and on
    no comparison of the other (both answers having comparisons)."""

    strategy: str
    outcome: str
    first: tuple[int, int]
    second: tuple[int, int]

    @property
    def differs(self) -> bool:
        (k1, n1), (k2, n2) = self.first, self.second
        return n1 > 0 and n2 > 0 and (k1 == 0) != (k2 == 0)


def contrast_rows(
    first: Sequence[ClaimCounts], second: Sequence[ClaimCounts]
) -> list[ContrastRow]:
    """Every outcome of every strategy that both answers compare, side by side."""
    theirs = {c.strategy: c for c in second}
    rows = []
    for a in first:
        b = theirs.get(a.strategy)
        if b is None or not a.comparisons or not b.comparisons:
            continue
        for (outcome, k1, n1), (_, k2, n2) in zip(outcomes(a), outcomes(b), strict=True):
            rows.append(ContrastRow(a.strategy, outcome, (k1, n1), (k2, n2)))
    return rows


def contrast_sentence(rows: Sequence[ContrastRow], first: str, second: str) -> str:
    """Where two answers differ, from :func:`contrast_rows`: the outcomes that occur in one
    and not the other, with both counts (every number is a cell of the rows' table)."""
    if not rows:
        return f"No strategy was compared with the baseline both on {first} and on {second}."
    by_strategy: dict[str, list[str]] = {}
    for r in rows:
        if r.differs:
            by_strategy.setdefault(r.strategy, []).append(
                f"{r.outcome} on {_of(*r.first)} comparisons on {first} and {_of(*r.second)} "
                f"on {second}"
            )
    if not by_strategy:
        return (
            f"The answers on {first} and on {second} do not differ in kind: every outcome "
            "occurs in both or in neither (the side-by-side table gives each count)."
        )
    parts = [f"{label_of(k)}: {'; '.join(v)}" for k, v in by_strategy.items()]
    return (
        f"Where the answers on {first} and on {second} differ (an outcome that occurs in one "
        f"and on no comparison of the other): {'. '.join(parts)}."
    )
