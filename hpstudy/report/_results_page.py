"""The results page (Markdown) recomputed from raw results files: every comparison across the
files, then per experiment its headline, per task the verdict and its tables, the ranks across
tasks and the advice section. The numbers come from ``_results.regenerate``; this module only
lays them out (the HTML report with figures is ``_html.render_html``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpstudy.report._advice import Advice
from hpstudy.report._aggregate import aggregate
from hpstudy.report._results import Results, load_results, regenerate
from hpstudy.report._sentences import headline
from hpstudy.report._summary import TaskSummary


def _f(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _ci(est: float, low: float, high: float, level: float = 0.95) -> str:
    if math.isnan(est):
        return "-"
    # + 0.0 turns -0.0 into 0.0, so an exact zero never prints as "-0"
    text = f"{est + 0.0:+.3g} [{low + 0.0:+.3g}, {high + 0.0:+.3g}]"
    return text if math.isnan(level) or level >= 0.95 - 1e-9 else f"{text} ({level:.1%} CI)"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in esc),
        "",
    ]


def experiment_markdown(
    results: Results, summaries: list[TaskSummary], advice: Advice | None
) -> list[str]:
    """One experiment's section: headline, per task the verdict and its tables, the advice."""
    lines = [f"## {results.data.experiment}", "", f"From `{results.path.name}`.", ""]
    lines += [f"**{headline(summaries)}**", ""]
    if results.config.benchmark_family is not None:
        from hpstudy.data._benchmarks import BENCHMARK_NOTE

        lines += [f"*{BENCHMARK_NOTE}*", ""]
    for s in summaries:
        lines += [f"### {s.task} ({s.metric}, {s.direction})", "", s.verdict, ""]
        if s.verdicts:
            lines += _table(
                ["strategy", "baseline", "seeds", f"difference in test {s.metric} [95% CI]",
                 "p non-inferiority (Holm)", "verdict", "seeds needed"],
                [[s.label(v.strategy), s.label(v.baseline), str(v.seeds),
                  _ci(v.difference, v.ci_low, v.ci_high, v.ci_level), _f(v.p_adjusted), v.verdict,
                  "-" if v.seeds_needed is None else str(v.seeds_needed)] for v in s.verdicts],
            )  # fmt: skip
            lines += [f"Margin: {s.margin_spec}.", ""]
        compute = [c for c in s.compute or [] if c.strategy != s.baseline]
        if compute:
            lines += _table(
                ["strategy", "unit", f"compute to target / {s.label(s.baseline)}'s expected [95% CI]",
                 "seeds", "never reached"],
                [[s.label(c.strategy), c.unit, f"{_f(c.estimate, '.3g')} [{_f(c.ci_low, '.3g')}, {_f(c.ci_high, '.3g')}]",
                  str(c.seeds), str(c.censored)] for c in compute],
            )  # fmt: skip
            lines += [f"Target: {s.target}.", ""]
        if s.smallest_fraction:
            lines += [
                "Smallest fraction of "
                + f"{s.label(s.baseline)}'s epochs at which each strategy is non-inferior to the full "
                + "baseline (fixed-sequence from 1 down): "
                + "; ".join(
                    f"{s.label(k)}: {_fraction(f)}" for k, f in s.smallest_fraction.items()
                )
                + ".",
                "",
            ]
        if s.equal:
            lines += _table(
                ["strategy", "fraction of baseline's epochs", f"test {s.metric} (median)",
                 "difference vs full baseline [95% CI]", "p non-inferiority", "seeds"],
                [[s.label(e.strategy), "1" if e.fraction >= 1 else f"1/{round(1 / e.fraction)}",
                  _f(e.test.median), _ci(e.difference, e.ci_low, e.ci_high), _f(e.p_noninferiority),
                  str(e.seeds)] for e in s.equal],
            )  # fmt: skip
        lines += _table(
            ["strategy", "seeds", f"best validation {s.metric}", f"test {s.metric}",
             "trials", "epochs", "seconds", "pruned", "failed"],
            [[r.label, str(r.seeds), _spread(r.best_valid), _spread(r.test), _spread(r.trials, ".0f"),
              _spread(r.epochs, ".0f"), _spread(r.seconds, ".3g"), str(r.pruned), str(r.failed)]
             for r in s.rows],
        )  # fmt: skip
    agg = aggregate([(s.direction, s.best_scores or {}) for s in summaries])
    if agg is not None:
        lines += ["### Across tasks", ""]
        lines += _table(
            ["strategy", "mean rank of test score (1 = best)", "blocks (task, seed)"],
            [[k, f"{r:.2f}", str(agg.blocks)] for k, r in agg.mean_ranks.items()],
        )
        if not math.isnan(agg.p_friedman):
            lines += [
                f"Friedman test p = {_f(agg.p_friedman)}; Nemenyi critical difference at 0.05 = "
                f"{_f(agg.critical_difference)}.",
                "",
            ]
    if advice is not None:
        lines += ["### What the trials say about the brief's advice", ""]
        lines += [f"Estimated from {advice.strategy} search's trials: {advice.method}.", ""]
        for scope in dict.fromkeys(f.scope for f in advice.findings):
            own = [f for f in advice.findings if f.scope == scope]
            lines += [f"**{scope}** ({own[0].unit})", ""]
            lines += _table(
                ["advice", "comparison (positive = first is better)", "effect [95% CI]", "studies"],
                [[f.advice, f.comparison,
                  f.reason or _ci(f.estimate, f.ci_low, f.ci_high, f.ci_level), str(f.studies)]
                 for f in own],
            )  # fmt: skip
    return lines


def _fraction(f: float | None) -> str:
    return "never" if f is None else "1" if f >= 1 else f"1/{round(1 / f)}"


def overview_rows(done: Sequence[tuple[Results, list[TaskSummary]]]) -> list[list[str]]:
    """One row per (experiment, task, strategy) compared: the answer across every file, so the
    effect of the space's size and of pruning shows side by side."""
    rows = []
    for results, summaries in done:
        searched = len(results.config.searched_params())
        pruner = results.config.pruner.type
        for s in summaries:
            for v in s.verdicts:
                cost = {c.unit: c for c in s.compute or [] if c.strategy == v.strategy}
                rows.append(
                    [results.data.experiment, str(searched), pruner, s.task, s.label(v.strategy),
                     s.label(v.baseline), _ci(v.difference, v.ci_low, v.ci_high, v.ci_level),
                     v.verdict, *(_ratio(cost.get(u)) for u in ("trials", "epochs", "seconds")),
                     _fraction((s.smallest_fraction or {}).get(v.strategy))]
                )  # fmt: skip
    return rows


def _ratio(c: Any) -> str:
    """A compute ratio with its CI; ">=" when some seed never reached the target (a lower bound)."""
    if c is None or math.isnan(c.estimate):
        return "-"
    bound = ">=" if c.censored else ""
    return f"{bound}{_f(c.estimate, '.2g')} [{_f(c.ci_low, '.2g')}, {_f(c.ci_high, '.2g')}]"


def tpe_vs_random(done: Sequence[tuple[Results, list[TaskSummary]]]) -> list[list[str]]:
    """TPE against random search, per (experiment, task) that ran both: paired by seed on test
    scores, against the task's margin, Holm over these comparisons (a family of its own, apart
    from the headline's comparisons against the baseline)."""
    from hpstudy.report._verdict import compare_pair, judge, paired_differences

    keys, raw = [], []
    for results, summaries in done:
        for s in summaries:
            scores = s.best_scores or {}
            if "tpe" in scores and "random" in scores and not math.isnan(s.margin):
                d = paired_differences(scores["tpe"], scores["random"], s.direction)
                if d:
                    keys.append((results.data.experiment, s))
                    raw.append(compare_pair(s.task, "tpe", "random", d, s.margin))
    judged = judge(raw, "TPE against random search, every task of every file")
    return [[experiment, s.task, _ci(v.difference, v.ci_low, v.ci_high, v.ci_level),
             f"{s.margin:.4g}", str(v.seeds), _f(v.p_adjusted), v.verdict]
            for (experiment, s), v in zip(keys, judged, strict=True)]  # fmt: skip


def _spread(s: Any, fmt: str = ".4g") -> str:
    if not s.n:
        return "-"
    if s.low == s.high:
        return _f(s.median, fmt)
    return f"{_f(s.median, fmt)} [{_f(s.low, fmt)}, {_f(s.high, fmt)}]"


KEEP_BEGIN = "<!-- written by hand: 'hpstudy results' keeps this block -->"
KEEP_END = "<!-- end of the block written by hand -->"


def kept_block(output: Path) -> list[str]:
    """The block of ``output`` written by hand (the interpretation of the numbers), markers
    included, when ``output`` exists and has one; regenerating the page keeps it."""
    try:
        text = output.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return []
    begin, end = text.find(KEEP_BEGIN), text.find(KEEP_END)
    if begin < 0 or end < begin:
        return []
    return [text[begin : end + len(KEEP_END)], ""]


def write_results(
    paths: Sequence[Path], output: Path, html_dir: Path | None = None
) -> list[tuple[Results, list[TaskSummary]]]:
    """Regenerate the results page (and, with ``html_dir``, each experiment's full HTML report
    with its figures) from exported files, retraining nothing. A block of the existing page
    between ``KEEP_BEGIN`` and ``KEEP_END`` (the prose interpreting the numbers) is kept, right
    after the title."""
    from hpstudy.report._html import draw_figures, overview_figures, render_html, write_atomic

    lines = [
        "# Results",
        "",
        *kept_block(output),
        "Every number below is recomputed from the per-trial files with "
        f"`hpstudy results {' '.join(p.as_posix() for p in paths)} -o {output.as_posix()}`; "
        "nothing is retrained.",
        "",
    ]
    done = []
    sections: list[str] = []
    for path in paths:
        results = load_results(path)
        summaries, advice = regenerate(results)
        sections += experiment_markdown(results, summaries, advice)
        if html_dir is not None:
            page = render_html(
                results.data, summaries, draw_figures(results.data),
                overview_figures(summaries), advice,
            )  # fmt: skip
            write_atomic(html_dir / f"{results.data.experiment}.html", page)
        done.append((results, summaries))
    lines += [
        "## Every comparison",
        "",
        "Against each file's baseline, paired by seed on held-out test scores (positive = the "
        "strategy better); compute to reach the target (the baseline's best validation score "
        "minus the margin, at the same seed) over the baseline's exact expected compute, the "
        'geometric centre over seeds with its 95% CI; ">=" where some seeds never reached it (a lower bound).',
        "",
    ]
    lines += _table(
        ["experiment", "dimensions", "pruner", "task", "strategy", "baseline",
         "difference in test score [95% CI]", "verdict",
         "compute to target / baseline's expected: trials", "epochs", "seconds",
         "smallest non-inferior fraction of the baseline's epochs"],
        overview_rows(done),
    )  # fmt: skip
    versus = tpe_vs_random(done)
    if versus:
        lines += [
            "## TPE against random search",
            "",
            "Paired by seed on held-out test scores, positive = TPE better, against each task's "
            "margin; Holm over these comparisons, a family of their own.",
            "",
        ]
        lines += _table(
            ["experiment", "task", "difference in test score [95% CI]", "margin", "seeds",
             "p non-inferiority (Holm)", "verdict"],
            versus,
        )  # fmt: skip
    write_atomic(output, "\n".join(lines + sections))
    return done
