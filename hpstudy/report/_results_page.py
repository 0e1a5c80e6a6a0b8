"""The results page (Markdown) recomputed from raw results files: the answer (generated
from the tables), every comparison across the files with one multiplicity family, the negative
controls, then per experiment its headline, per task the verdict and its tables, the ranks
across tasks and the advice section. The numbers come from ``hpstudy.analysis.analyze_many``;
this module only lays them out (the HTML report with figures is ``_html.render_html``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpstudy._errors import ConfigError
from hpstudy.analysis import Analysis, analyze_many, read_results
from hpstudy.analysis._compute import PRIMARY_LEVEL
from hpstudy.analysis._prose import answer, model_sentence, ratio_text
from hpstudy.analysis._summary import CONTROL, label_of


def _f(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _ci(est: float, low: float, high: float, level: float = 0.95) -> str:
    """An estimate and its interval, the bracket labelled with its coverage."""
    if math.isnan(est):
        return "-"
    what = "95% CI" if math.isnan(level) or level >= 0.95 - 1e-9 else f"{level:.1%} CI"
    # + 0.0 turns -0.0 into 0.0, so an exact zero never prints as "-0"
    return f"{est + 0.0:+.3g}, {what} [{low + 0.0:+.3g}, {high + 0.0:+.3g}]"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
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
    for s in summaries:
        lines += [f"### {s.task} ({s.metric}, {s.direction})", ""]
        if s.model is not None:
            lines += [model_sentence(s.model), ""]
        lines += [s.verdict, ""]
        shown = list(s.verdicts) + ([s.control] if s.control is not None else [])
        if shown:
            lines += _table(
                ["strategy", "baseline", "seeds", f"difference in test {s.metric}",
                 "p non-inferiority (Holm)", "verdict", "planning: seeds for 80% power"],
                [[s.label(v.strategy) + (" (negative control)" if v.strategy == CONTROL else ""),
                  s.label(v.baseline), str(v.seeds),
                  _ci(v.difference, v.ci_low, v.ci_high, v.ci_level), _f(v.p_adjusted), v.verdict,
                  "-" if v.seeds_needed is None else str(v.seeds_needed)] for v in shown],
            )  # fmt: skip
            lines += [f"Margin: {s.margin_spec}.", ""]
        compute = [c for c in s.compute or [] if c.level == PRIMARY_LEVEL]
        if compute:
            lines += _table(
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
                    f"{s.label(k)}: {_fraction(f)}" for k, f in s.smallest_fraction.items()
                )
                + ".",
                "",
            ]
        if s.equal:
            lines += _table(
                ["strategy", "fraction of baseline's epochs", f"test {s.metric} (median)",
                 "difference vs full baseline", "p non-inferiority", "seeds"],
                [[s.label(e.strategy), _fraction(e.fraction),
                  _f(e.test.median), _ci(e.difference, e.ci_low, e.ci_high, e.ci_level), _f(e.p_noninferiority),
                  str(e.seeds)] for e in s.equal],
            )  # fmt: skip
        ce = any(r.test_ce.n for r in s.rows)
        lines += _table(
            ["strategy", "seeds", f"best validation {s.objective} (median, range)",
             f"test {s.metric} (median, range)", *(["test cross-entropy"] if ce else []),
             "trials", "epochs", "seconds", "pruned", "failed"],
            [[r.label, str(r.seeds), _spread(r.best_valid), _spread(r.test),
              *([_spread(r.test_ce)] if ce else []), _spread(r.trials, ".0f"),
              _spread(r.epochs, ".0f"), _spread(r.seconds, ".3g"), str(r.pruned), str(r.failed)]
             for r in s.rows],
        )  # fmt: skip
    agg = analysis.aggregate
    if agg is not None:
        lines += ["### Across tasks", ""]
        lines += _table(
            ["strategy", "mean rank of test score (1 = best)", "blocks (task, seed)"],
            [[label_of(k), f"{r:.2f}", str(agg.blocks)] for k, r in agg.mean_ranks.items()],
        )
        if not math.isnan(agg.p_friedman):
            lines += [
                f"Searching strategies only (manual picks apart): Friedman test p = "
                f"{_f(agg.p_friedman)}; Nemenyi critical difference at 0.05 = "
                f"{_f(agg.critical_difference)}.",
                "",
            ]
    if advice is not None:
        lines += ["### Does the usual tuning advice hold in these trials?", ""]
        lines += [f"Estimated from {advice.strategy} search's trials: {advice.method}.", ""]
        for scope in dict.fromkeys(f.scope for f in advice.findings):
            own = [f for f in advice.findings if f.scope == scope]
            lines += [f"**{scope}** ({own[0].unit})", ""]
            lines += _table(
                ["advice", "comparison (positive = first is better)", "effect", "seeds",
                 "p (Holm)", "called"],
                [[f.advice, f.comparison,
                  f.reason or _ci(f.estimate, f.ci_low, f.ci_high, f.ci_level), str(f.studies),
                  _f(f.p_adjusted), f.called]
                 for f in own],
            )  # fmt: skip
    return lines


def _fraction(f: float | None) -> str:
    return "never" if f is None else "1" if f >= 1 else f"1/{round(1 / f)}"


def overview_rows(done: Sequence[tuple[Path, Analysis]]) -> list[list[str]]:
    """One row per (experiment, task, strategy) compared: the answer across every file, so the
    effect of the space's size and of pruning shows side by side."""
    rows = []
    for _, a in done:
        searched = len(a.table.config.searched_params())
        pruner = a.table.config.pruner.type
        for s in a.summaries:
            for v in s.verdicts:
                cost = {
                    c.unit: c for c in s.compute or []
                    if c.strategy == v.strategy and c.level == PRIMARY_LEVEL
                }  # fmt: skip
                rows.append(
                    [a.table.experiment, str(searched), pruner, s.task, s.label(v.strategy),
                     s.label(v.baseline), _ci(v.difference, v.ci_low, v.ci_high, v.ci_level),
                     v.verdict, *(_ratio(cost.get(u)) for u in ("epochs", "trials", "seconds")),
                     _fraction((s.smallest_fraction or {}).get(v.strategy)),
                     _fraction((s.smallest_fraction or {}).get(s.baseline))]
                )  # fmt: skip
    return rows


def control_rows(done: Sequence[tuple[Path, Analysis]]) -> list[list[str]]:
    """The negative control of every task: whether the method could find a loss there."""
    return [
        [a.table.experiment, s.task, _ci(v.difference, v.ci_low, v.ci_high, v.ci_level),
         _f(v.p_adjusted_inferiority), v.verdict,
         "yes" if v.verdict == "inferior" else "no: an equivalence there says little"]
        for _, a in done
        for s in a.summaries
        if (v := s.control) is not None
    ]  # fmt: skip


def _ratio(c: Any) -> str:
    """A compute ratio with its CI; ">=" when some seed was censored (a lower bound)."""
    if c is None or math.isnan(c.estimate):
        return "-"
    return ratio_text(c)


def tpe_vs_random(done: Sequence[tuple[Path, Analysis]]) -> list[list[str]]:
    """TPE against random search, per (experiment, task) that ran both: paired by seed on test
    scores, against the task's margin, Holm over these comparisons (a family of its own, apart
    from the headline's comparisons against the baseline)."""
    from hpstudy.analysis._verdict import compare_pair, judge, paired_differences

    keys, raw = [], []
    for _, a in done:
        for s in a.summaries:
            scores = s.best_scores or {}
            if "tpe" in scores and "random" in scores and not math.isnan(s.margin):
                d = paired_differences(scores["tpe"], scores["random"], s.direction)
                if d:
                    keys.append((a.table.experiment, s))
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
    return f"{_f(s.median, fmt)} (range {_f(s.low, fmt)} to {_f(s.high, fmt)})"


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


ANSWER_BEGIN = "<!-- generated from the tables by 'hpstudy results': the answer -->"
ANSWER_END = "<!-- end of the generated answer -->"


def answer_block(done: Sequence[tuple[Path, Analysis]]) -> str:
    """The answer paragraph, generated from the tables (README carries the same block)."""
    summaries = [s for _, a in done for s in a.summaries]
    names = [f"{s.task} ({a.table.experiment})" for _, a in done for s in a.summaries]
    parts = [answer(summaries, "random", names)]
    if any(v.strategy == "tpe" for s in summaries for v in s.verdicts):
        parts.append(answer(summaries, "tpe", names))
    return "\n".join([ANSWER_BEGIN, " ".join(parts), ANSWER_END])


def what_ran(done: Sequence[tuple[Path, Analysis]]) -> list[str]:
    """A table of what each file ran, read from its study file and its trials."""
    rows = []
    for path, a in done:
        config, table = a.table.config, a.table
        grid = config.grid_size() if "grid" in config.strategies else None
        seeds = sorted({s.seed for s in table.studies})
        rows.append(
            [f"`{path.name}`", str(len(config.searched_params())), "-" if grid is None else str(grid),
             config.pruner.type, ", ".join(table.tasks()), ", ".join(label_of(k) for k in table.strategies()),
             str(len(seeds)), f"{sum(len(s.trials) for s in table.studies):,}"]
        )  # fmt: skip
    return _table(
        [
            "file",
            "searched dimensions",
            "grid points",
            "pruner",
            "tasks",
            "strategies",
            "seeds",
            "trials",
        ],
        rows,
    )


def _replace_block(path: Path, block: str) -> None:
    """Put ``block`` between the answer markers of ``path`` (README), keeping the rest."""
    from hpstudy.report._html import write_atomic

    text = path.read_text(encoding="utf-8")
    begin, end = text.find(ANSWER_BEGIN), text.find(ANSWER_END)
    if begin < 0 or end < begin:
        raise ConfigError(
            f"{path}: no generated answer block; put the two lines '{ANSWER_BEGIN}' and "
            f"'{ANSWER_END}' where it belongs"
        )
    write_atomic(path, text[:begin] + block + text[end + len(ANSWER_END) :])


def write_results(
    paths: Sequence[Path],
    output: Path,
    html_dir: Path | None = None,
    readme: Path | None = None,
) -> list[tuple[Path, Analysis]]:
    """Regenerate the results page (and, with ``html_dir``, each experiment's full HTML report
    with its figures) from exported files, retraining nothing; one multiplicity family across
    every file. A block of the existing page between ``KEEP_BEGIN`` and ``KEEP_END`` (words
    only, no numbers: a test checks) is kept, after the generated answer; with ``readme``, the
    same generated answer replaces the block between the answer markers there."""
    from hpstudy.report._html import write_analysis, write_atomic

    tables = [read_results(p) for p in paths]
    if len({t.from_tables for t in tables}) > 1:
        raise ConfigError(
            "results looked up in published tabular benchmarks are never pooled with real "
            "training: write one page for each ("
            + ", ".join(p.name for p, t in zip(paths, tables, strict=True) if t.from_tables)
            + " apart)"
        )
    done = list(zip(paths, analyze_many(tables), strict=True))
    command = f"hpstudy results {' '.join(p.as_posix() for p in paths)} -o {output.as_posix()}"
    block = answer_block(done)
    title = (
        "# Results from published tabular benchmarks (looked up, not trained here)"
        if tables[0].from_tables
        else "# Results"
    )
    lines = [
        title,
        "",
        block,
        "",
        *kept_block(output),
        "## What ran",
        "",
        *what_ran(done),
        f"Every number below is recomputed from the per-trial files with `{command}`; "
        "nothing is retrained. Verdicts are Holm-adjusted over one family: "
        f"{done[0][1].family}.",
        "",
    ]
    sections: list[str] = []
    for path, a in done:
        sections += experiment_markdown(path, a)
        if html_dir is not None:
            write_analysis(a, html_dir / f"{a.table.experiment}.html")
    lines += [
        "## Every comparison",
        "",
        "Against each file's baseline, paired by seed on held-out test scores (positive = the "
        "strategy better), with the exact signed-rank 95% CI; compute to the best validation "
        "score both arms reached at the same seed, over the baseline's, like with like (random "
        "and grid search: each side's expected cost over orderings of its own trials; TPE: both "
        "in the order they ran), the geometric centre over seeds with its 95% CI; epochs trained "
        "are the primary unit, seconds are confounded by the machine's load. The last two "
        "columns: the smallest fraction of the baseline's epochs at which the strategy, and the "
        "baseline itself stopped early in its shuffled order, is non-inferior to the full baseline.",
        "",
    ]
    lines += _table(
        ["experiment", "dimensions", "pruner", "task", "strategy", "baseline",
         "difference in test score", "verdict",
         "epochs to level / baseline's", "trials", "seconds (secondary)",
         "smallest non-inferior fraction", "the baseline's own"],
        overview_rows(done),
    )  # fmt: skip
    controls = control_rows(done)
    if controls:
        lines += [
            "## Can the method find a loss? The negative control",
            "",
            "Random search stopped at 1/8 of the baseline's epochs, worse by construction, "
            "judged in the same family as the comparisons above. Where it is not called "
            "inferior, the task cannot tell a worse search from the baseline.",
            "",
        ]
        lines += _table(
            ["experiment", "task", "difference in test score", "p inferiority (Holm)",
             "verdict", "a loss can be found"],
            controls,
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
            ["experiment", "task", "difference in test score", "margin", "seeds",
             "p non-inferiority (Holm)", "verdict"],
            versus,
        )  # fmt: skip
    write_atomic(output, "\n".join(lines + sections))
    if readme is not None:
        _replace_block(readme, block)
    return done
