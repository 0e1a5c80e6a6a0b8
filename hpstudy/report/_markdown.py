"""Markdown for the results page: the tables of one experiment's section (per task its
verdict, comparisons, compute, quality at equal compute, the anytime regret of benchmark tasks
and the summary; the ranks across tasks and the advice section) and the cell formats the page
shares. Layout only: every number comes from ``hpstudy.analysis``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hpstudy.analysis import Analysis
from hpstudy.analysis._anytime import RegretAt
from hpstudy.analysis._compute import PRIMARY_LEVEL
from hpstudy.analysis._prose import (
    TEST_REGRET_NOTE,
    VALIDATION_REGRET_NOTE,
    model_sentence,
    ratio_text,
)
from hpstudy.analysis._summary import CONTROL, label_of


def md_num(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def md_ci(est: float, low: float, high: float, level: float = 0.95) -> str:
    """An estimate and its interval, the bracket labelled with its coverage."""
    if math.isnan(est):
        return "-"
    what = "95% CI" if math.isnan(level) or level >= 0.95 - 1e-9 else f"{level:.1%} CI"
    # + 0.0 turns -0.0 into 0.0, so an exact zero never prints as "-0"
    return f"{est + 0.0:+.3g}, {what} [{low + 0.0:+.3g}, {high + 0.0:+.3g}]"


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in esc),
        "",
    ]


def experiment_markdown(path: Path, analysis: Analysis) -> list[str]:
    """One experiment's section: headline, per task the verdict and its tables, the advice."""
    table, summaries, advice = analysis.table, analysis.summaries, analysis.advice
    lines = [f"## {table.experiment}", "", f"From `{path.name}`.", ""]
    lines += [f"**{analysis.headline}**", ""]
    if table.from_tables:
        from hpstudy.data._benchmarks import BENCHMARK_NOTE

        lines += [f"*{BENCHMARK_NOTE}*", ""]
    if any(r.test_regret is not None for s in summaries for r in s.rows):
        lines += [f"*{TEST_REGRET_NOTE} {VALIDATION_REGRET_NOTE}*", ""]
    for s in summaries:
        lines += [f"### {s.task} ({s.metric}, {s.direction})", ""]
        if s.model is not None:
            lines += [model_sentence(s.model), ""]
        lines += [s.verdict, ""]
        shown = list(s.verdicts) + ([s.control] if s.control is not None else [])
        if shown:
            lines += md_table(
                ["strategy", "baseline", "seeds", f"difference in test {s.metric}",
                 "p non-inferiority (Holm)", "verdict", "planning: seeds for 80% power"],
                [[s.label(v.strategy) + (" (negative control)" if v.strategy == CONTROL else ""),
                  s.label(v.baseline), str(v.seeds),
                  md_ci(v.difference, v.ci_low, v.ci_high, v.ci_level), md_num(v.p_adjusted), v.verdict,
                  "-" if v.seeds_needed is None else str(v.seeds_needed)] for v in shown],
            )  # fmt: skip
            lines += [f"Margin: {s.margin_spec}.", ""]
        compute = [c for c in s.compute or [] if c.level == PRIMARY_LEVEL]
        if compute:
            lines += md_table(
                ["strategy", "unit", f"compute to the best validation score both reached / {s.label(s.baseline)}'s",
                 "how compared"],
                [[s.label(c.strategy), c.unit, ratio_text(c), c.method] for c in compute],
            )  # fmt: skip
        if s.smallest_fraction:
            lines += [
                "Smallest fraction of "
                + f"{s.label(s.baseline)}'s epochs at which each strategy is non-inferior to the full "
                + f"{s.label(s.baseline)} (fixed-sequence from 1 down; {s.label(s.baseline)} itself stopped "
                + "early in its shuffled order): "
                + "; ".join(
                    f"{s.label(k)}: {md_fraction(f)}" for k, f in s.smallest_fraction.items()
                )
                + ".",
                "",
            ]
        if s.equal:
            regret = any(e.test_regret is not None for e in s.equal)
            lines += md_table(
                ["strategy", "fraction of baseline's epochs", f"test {s.metric} (median)",
                 *(["test regret (median)"] if regret else []),
                 "difference vs full baseline", "p non-inferiority", "seeds"],
                [[s.label(e.strategy), md_fraction(e.fraction), md_num(e.test.median),
                  *([md_num(e.test_regret.median if e.test_regret is not None else None)] if regret else []),
                  md_ci(e.difference, e.ci_low, e.ci_high, e.ci_level), md_num(e.p_noninferiority),
                  str(e.seeds)] for e in s.equal],
            )  # fmt: skip
        if s.anytime_regret:
            lines += anytime_regret_table(s.anytime_regret, s.objective, s.label)
        ce = any(r.test_ce.n for r in s.rows)
        regret = any(r.test_regret is not None for r in s.rows)
        lines += md_table(
            ["strategy", "seeds", f"best validation {s.objective} (median, range)",
             f"test {s.metric} (median, range)", *(["test regret (median, range)"] if regret else []),
             *(["test cross-entropy"] if ce else []),
             "trials", "epochs", "seconds", "pruned", "failed"],
            [[r.label, str(r.seeds), md_spread(r.best_valid), md_spread(r.test),
              *([md_spread(r.test_regret) if r.test_regret is not None else "-"] if regret else []),
              *([md_spread(r.test_ce)] if ce else []), md_spread(r.trials, ".0f"),
              md_spread(r.epochs, ".0f"), md_spread(r.seconds, ".3g"), str(r.pruned), str(r.failed)]
             for r in s.rows],
        )  # fmt: skip
    agg = analysis.aggregate
    if agg is not None:
        lines += ["### Across tasks", ""]
        lines += md_table(
            ["strategy", "mean rank of test score (1 = best)", "blocks (task, seed)"],
            [[label_of(k), f"{r:.2f}", str(agg.blocks)] for k, r in agg.mean_ranks.items()],
        )
        if not math.isnan(agg.p_friedman):
            lines += [
                f"Searching strategies only (manual picks apart): Friedman test p = "
                f"{md_num(agg.p_friedman)}; Nemenyi critical difference at 0.05 = "
                f"{md_num(agg.critical_difference)}.",
                "",
            ]
    if advice is not None:
        lines += ["### Does the usual tuning advice hold in these trials?", ""]
        lines += [f"Estimated from {advice.strategy} search's trials: {advice.method}.", ""]
        for scope in dict.fromkeys(f.scope for f in advice.findings):
            own = [f for f in advice.findings if f.scope == scope]
            lines += [f"**{scope}** ({own[0].unit})", ""]
            lines += md_table(
                ["advice", "comparison (positive = first is better)", "effect", "seeds",
                 "p (Holm)", "called"],
                [[f.advice, f.comparison,
                  f.reason or md_ci(f.estimate, f.ci_low, f.ci_high, f.ci_level), str(f.studies),
                  md_num(f.p_adjusted), f.called]
                 for f in own],
            )  # fmt: skip
    return lines


def md_fraction(f: float | None) -> str:
    return "never" if f is None else "1" if f >= 1 else f"1/{round(1 / f)}"


def anytime_regret_table(
    rows: Sequence[RegretAt], objective: str, label: Callable[[str], str]
) -> list[str]:
    """The anytime curves in validation regret, read at a few trial counts: median over seeds
    and the interquartile range (the HTML report draws the whole curves)."""
    points = rows[0].trials
    return [
        f"Anytime, in validation regret of {objective} (median over seeds, interquartile "
        "range in brackets) after each number of trials:",
        "",
        *md_table(
            ["strategy", "seeds", *(f"after {n} trials" for n in points)],
            [[label(r.strategy), str(r.seeds),
              *(f"{md_num(m)} [{md_num(lo)}, {md_num(hi)}]" for m, lo, hi in zip(r.median, r.q25, r.q75, strict=True))]
             for r in rows],
        ),
    ]  # fmt: skip


def md_spread(s: Any, fmt: str = ".4g") -> str:
    if not s.n:
        return "-"
    if s.low == s.high:
        return md_num(s.median, fmt)
    return f"{md_num(s.median, fmt)} (range {md_num(s.low, fmt)} to {md_num(s.high, fmt)})"
