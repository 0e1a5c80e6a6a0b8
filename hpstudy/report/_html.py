"""``hpstudy report``: one self-contained HTML file that opens offline; it renders the
analysis (``hpstudy.analysis``) of the storage's trial table and retrains nothing.

plotly.js is embedded once for all figures (no CDN); every string that comes from the user
(experiment, task and study names, metric names) is HTML-escaped. The file is written to a
temporary name and moved into place, so a failed report never leaves a half-written file.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from hpstudy._paths import default_output
from hpstudy.analysis import Advice, Analysis, TaskSummary, TrialTable, analyze
from hpstudy.analysis._aggregate import Aggregate
from hpstudy.analysis._compute import PRIMARY_LEVEL, UNIT_NOTES
from hpstudy.analysis._prose import TEST_REGRET_NOTE, VALIDATION_REGRET_NOTE, ratio_text
from hpstudy.analysis._summary import CONTROL, Spread, SummaryRow, label_of
from hpstudy.analysis._verdict import RULE

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{font-size:1.6rem} h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem} th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.headline{background:#eef6ee;border-left:6px solid #2ca02c;padding:.8rem 1rem;font-size:1.1rem}
.model{background:#eef2fb;border-left:6px solid #1f77b4;padding:.6rem 1rem}
.verdict{background:#eef6ee;border-left:4px solid #2ca02c;padding:.6rem 1rem}
.warning{background:#fff4e5;border-left:4px solid #ff7f0e;padding:.6rem 1rem}
.note{color:#666;font-size:.85rem}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.4g}"


def _spread(s: Spread, integer: bool = False) -> str:
    if not s.n:
        return "-"
    fmt = (lambda v: f"{v:.0f}") if integer else _num
    return (
        fmt(s.median) if s.low == s.high else f"{fmt(s.median)} (range {fmt(s.low)}-{fmt(s.high)})"
    )


def _reach(s: Spread, seeds: int) -> str:
    if not s.n:
        return f"never (0/{seeds})"
    return f"{s.median:.0f} ({s.n}/{seeds} seeds)"


def _table(css_class: str, head: list[str], rows: list[list[str]]) -> str:
    """An HTML table; ``head`` is escaped here, cells must already be safe HTML."""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><tr>{header}</tr>{body}</table>'


def _regret(s: Spread | None) -> str:
    return "-" if s is None else _spread(s)


def _regret_note(regret: bool) -> str:
    return f" {_e(TEST_REGRET_NOTE)}" if regret else ""


def summary_table(summary: TaskSummary) -> str:
    ce = any(r.test_ce.n for r in summary.rows)
    regret = any(r.test_regret is not None for r in summary.rows)
    head = [
        "strategy", "seeds", f"best validation {summary.objective}", f"test {summary.metric}",
        *(["test regret"] if regret else []), *(["test cross-entropy"] if ce else []),
        "trials", "epochs", "seconds", "pruned", "failed", "interrupted",
    ]  # fmt: skip
    rows = [
        [
            _e(r.label), str(r.seeds), _spread(r.best_valid), _spread(r.test),
            *([_regret(r.test_regret)] if regret else []),
            *([_spread(r.test_ce)] if ce else []), _spread(r.trials, True),
            _spread(r.epochs, True), _spread(r.seconds), str(r.pruned), str(r.failed),
            _interrupted(r),
        ]
        for r in summary.rows
    ]  # fmt: skip
    return (
        _table("summary", head, rows)
        + '<p class="note">Median over seeds (range: min-max, not a CI). Test: the best configuration of each seed, retrained on '
        "train+validation with several training seeds when its study finished, and scored on the test split the search never saw. "
        "Compute counts every trial (pruned and failed too) except interrupted attempts (Ctrl-C, a "
        "dead worker, given up after repeated crashes), which are not the configuration's doing: "
        "their compute is shown apart (summed over seeds) and never charged to the strategy."
        f"{_regret_note(regret)}</p>"
    )


def _interrupted(r: SummaryRow) -> str:
    if not r.interrupted:
        return "0"
    return f"{r.interrupted} ({r.interrupted_epochs:.0f} epochs, {r.interrupted_seconds:.3g} s)"


def _ci(est: float, low: float, high: float, signed: bool = True, level: float = 0.95) -> str:
    if math.isnan(est):
        return "-"
    f = (lambda x: f"{x:+.3g}") if signed else (lambda x: f"{x:.3g}")
    what = "95% CI" if math.isnan(level) or level >= 0.95 - 1e-9 else f"{100 * level:.1f}% CI"
    return f"{f(est + 0.0)}, {what} [{f(low + 0.0)}, {f(high + 0.0)}]"  # + 0.0: never "-0"


def comparison_table(summary: TaskSummary, family: str) -> str:
    if not summary.verdicts:
        return '<p class="note">No comparison: only one strategy ran.</p>'
    head = [
        "strategy", "baseline", "seeds", f"difference in test {summary.metric}",
        "p non-inferiority", "p equivalence (TOST)", "p superiority", "p (Holm, non-inferiority)",
        "verdict", "planning: seeds for 80% power",
    ]  # fmt: skip
    shown = list(summary.verdicts) + ([summary.control] if summary.control is not None else [])
    rows = [
        [
            _e(summary.label(v.strategy)) + (" (negative control)" if v.strategy == CONTROL else ""),
            _e(summary.label(v.baseline)), str(v.seeds),
            _ci(v.difference, v.ci_low, v.ci_high, level=v.ci_level),
            _num(v.p_noninferiority), _num(v.p_equivalence), _num(v.p_superiority), _num(v.p_adjusted),
            f"<b>{_e(v.verdict)}</b>", "-" if v.seeds_needed is None else str(v.seeds_needed),
        ]
        for v in shown
    ]  # fmt: skip
    return (
        _table("stats", head, rows)
        + f'<p class="note">Margin: {_e(summary.margin_spec)} (test {_e(summary.metric)}). '
        "Paired by seed; difference = strategy - baseline, signed so that positive is better; "
        "Hodges-Lehmann estimate with the exact signed-rank CI (exact with ties; with 5 seeds or fewer no finite 95% "
        "interval exists: the coverage shown is what the seeds allow). The negative control, random search "
        "stopped at 1/8 of the baseline's epochs, is worse by construction: where it is not called inferior the "
        "task cannot tell a worse search from the baseline. "
        f"Holm family: {_e(family)} (manual picks: a family of their own). Rule: {_e(RULE)}</p>"
    )


def compute_table(summary: TaskSummary) -> str:
    if not summary.compute:
        return ""
    base = summary.label(summary.baseline)
    head = ["strategy", "unit", "level", f"compute to the level / {base}'s", "how compared"]
    rows = [
        [_e(summary.label(c.strategy)), _e(UNIT_NOTES.get(c.unit, c.unit)), _e(c.level),
         _e(ratio_text(c)), _e(c.method)]
        for c in summary.compute
    ]  # fmt: skip
    return (
        _table("compute", head, rows)
        + f'<p class="note">Levels, per seed and symmetric in the two arms: "{_e(PRIMARY_LEVEL)}" is the worse of the two '
        "arms' best validation scores (the primary level); the 90% and 50% quantiles of both arms' COMPLETE scores pooled, "
        "capped at it. Random search and grid search are exchangeable (their trials do not depend on each other): each "
        "side is its exact expected cost over every ordering of its own trials. A sequential strategy has only the order "
        f"it ran in: it is compared with {_e(base)} in the order {_e(base)} ran (its seed-shuffled order). Geometric centre "
        "over seeds (Hodges-Lehmann of log ratios) with its exact 95% CI; below 1 = less compute. A seed where a side never "
        "reached the level is censored (its cost is a lower bound) and counted as infinitely costly for that side, so a "
        "censored seed never makes an interval look better than it is.</p>"
    )


def _fraction(f: float | None) -> str:
    return "never" if f is None else "1" if f >= 1 else f"1/{round(1 / f)}"


def equal_compute_table(summary: TaskSummary) -> str:
    if not summary.equal:
        return ""
    base = summary.label(summary.baseline)
    regret = any(e.test_regret is not None for e in summary.equal)
    head = [
        "strategy",
        f"fraction of {base}'s epochs",
        f"test {summary.metric} (median, range)",
        *(["test regret (median, range)"] if regret else []),
        f"difference vs the full {base}",
        "p non-inferiority",
        "seeds",
    ]
    rows = [
        [_e(summary.label(e.strategy)), _fraction(e.fraction), _spread(e.test),
         *([_regret(e.test_regret)] if regret else []),
         _ci(e.difference, e.ci_low, e.ci_high, level=e.ci_level), _num(e.p_noninferiority), str(e.seeds)]
        for e in summary.equal
    ]  # fmt: skip
    smallest = "; ".join(
        f"{summary.label(k)}: {_fraction(f)}" for k, f in (summary.smallest_fraction or {}).items()
    )
    return (
        _table("equal", head, rows)
        + f'<p class="note">Each strategy stopped after a fraction of {_e(base)}\'s total '
        f"epochs at the same seed, in the order it ran ({_e(base)} too: stopped early in its shuffled order); its best "
        "configuration by then, retrained and scored on test. Smallest "
        f"fraction at which it is non-inferior to the full {_e(base)} (fixed-sequence from 1 down, alpha 0.025): {_e(smallest)}."
        f"{_regret_note(regret)}</p>"
    )


def winners_table(summary: TaskSummary) -> str:
    if not summary.winners:
        return ""
    params = sorted({k for w in summary.winners for k in w.params})
    regret = any(w.test_regret is not None for w in summary.winners)
    head = [
        "strategy",
        "seeds it ran at",
        f"mean validation {summary.objective}",
        f"mean test {summary.metric}",
        *(["mean test regret"] if regret else []),
        *params,
    ]
    rows = [
        [_e(summary.label(w.strategy)), str(len(w.seeds)), _num(w.validation), _num(w.test),
         *([_num(w.test_regret if w.test_regret is not None else math.nan)] if regret else []),
         *(_e(_num(w.params[p]) if isinstance(w.params.get(p), float) else w.params.get(p, "-")) for p in params)]
        for w in summary.winners
    ]  # fmt: skip
    return (
        "<h3>Winning configurations</h3>"
        + _table("winners", head, rows)
        + '<p class="note">Per strategy, the configuration with the best mean validation score over the seeds it ran at '
        "(a grid point or manual pick runs at every seed, a sampled configuration at one); configurations that ran at "
        f"fewer than half the seeds of the most repeated one are not compared.{_regret_note(regret)}</p>"
    )


def aggregate_html(agg: Aggregate | None) -> str:
    if agg is None:
        return ""
    head = ["strategy", "mean rank (1 = best)", "blocks"]
    rows = [[_e(label_of(k)), f"{r:.2f}", str(agg.blocks)] for k, r in agg.mean_ranks.items()]
    test = (
        f"Friedman test p = {_num(agg.p_friedman)}; Nemenyi critical difference at 0.05 = {_num(agg.critical_difference)} "
        "(two mean ranks further apart than this differ)."
        if not math.isnan(agg.p_friedman)
        else "Too few strategies or blocks for the Friedman test."
    )
    return (
        "<h2>Across tasks</h2>"
        + _table("aggregate", head, rows)
        + '<p class="note">Ranks of test scores of the searching strategies (manual picks apart) within each (task, seed) '
        f"block where every one has a score. {test}</p>"
    )


def advice_html(advice: Advice | None) -> str:
    """The section on what random search's trials say about the usual advice (a table per scope)."""
    if advice is None:
        return ""
    parts = ["<h2>Does the usual tuning advice hold in these trials?</h2>"]
    if advice.note:
        parts.append(f"<p class='note'>{_e(advice.note)}</p>")
    head = [
        "advice",
        "comparison (positive = first is better)",
        "effect",
        "seeds",
        "trials",
        "p (Holm over every finding)",
        "called",
    ]
    for scope in dict.fromkeys(f.scope for f in advice.findings):
        own = [f for f in advice.findings if f.scope == scope]
        rows = [
            [
                _e(f.advice), _e(f.comparison),
                _e(f.reason) if f.reason else _ci(f.estimate, f.ci_low, f.ci_high, level=f.ci_level),
                str(f.studies), str(f.trials), _num(f.p_adjusted), _e(f.called),
            ]
            for f in own
        ]  # fmt: skip
        parts.append(f"<h3>{_e(scope)} <span class='note'>({_e(own[0].unit)})</span></h3>")
        parts.append(_table("advice", head, rows))
    parts.append(
        f"<p class='note'>Estimated from {_e(advice.strategy)} search's trials only (an unbiased sample "
        f"of the space): {_e(advice.method)}.</p>"
    )
    from hpstudy.report._figures import advice_figure

    fig = advice_figure(advice)
    if fig is not None:
        import plotly.io as pio

        parts.append(
            pio.to_html(
                fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False}
            )
        )
    return "\n".join(parts)


def _to_html(fig: Any) -> str:
    import plotly.io as pio

    return str(
        pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False})
    )


def model_lines_html(summaries: list[TaskSummary]) -> list[str]:
    """ "How good is my model", one line per task (tasks without reference scores: none)."""
    from hpstudy.analysis._prose import model_sentence

    return [
        f"<p class='model'><b>{_e(s.task)}</b>: {_e(model_sentence(s.model))}</p>"
        for s in summaries
        if s.model is not None
    ]


def render_html(
    analysis: Analysis, figures: dict[str, list[Any]], overview: list[Any] | None = None
) -> str:
    """The whole page: one inline plotly.js, then per task the verdict, tables and figures."""
    from plotly.offline import get_plotlyjs

    table = analysis.table
    source = ""
    if table.from_tables:
        from hpstudy.data._benchmarks import BENCHMARK_NOTE

        source = BENCHMARK_NOTE
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>hpstudy report: {_e(table.experiment)}</title><style>{_CSS}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>Experiment {_e(table.experiment)}</h1>",
        f"<p>{len(table.studies)} studies: tasks {', '.join(_e(t) for t in table.tasks())}; "
        f"strategies {', '.join(_e(label_of(s)) for s in table.strategies())}; "
        f"seeds {', '.join(str(s) for s in sorted({s.seed for s in table.studies}))}. {_e(source)}</p>",
        f"<p class='headline'>{_e(analysis.headline)}</p>",
    ]
    parts += model_lines_html(analysis.summaries)
    parts += [_to_html(fig) for fig in overview or []]
    parts.append(aggregate_html(analysis.aggregate))
    parts.append(advice_html(analysis.advice))
    for summary in analysis.summaries:
        parts.append(
            f"<h2>Task {_e(summary.task)} <span class='note'>({_e(summary.metric)}, {_e(summary.direction)})</span></h2>"
        )
        parts.append(f"<p class='verdict'>{_e(summary.verdict)}</p>")
        if summary.missing:
            items = "".join(f"<li>{_e(m)}</li>" for m in summary.missing)
            parts.append(
                f"<div class='warning'>This task is not complete; the figures show what has finished:<ul>{items}</ul></div>"
            )
        unscored = _unscored(analysis.table, summary.task)
        if unscored:
            parts.append(f"<div class='warning'>{_e(unscored)}</div>")
        parts.append(comparison_table(summary, analysis.family))
        parts.append(compute_table(summary))
        parts.append(equal_compute_table(summary))
        parts.append(winners_table(summary))
        parts.append(summary_table(summary))
        if summary.anytime_regret:
            parts.append(
                f"<p class='note'>The anytime figure is drawn in validation regret. {_e(VALIDATION_REGRET_NOTE)}</p>"
            )
        parts += [_to_html(fig) for fig in figures.get(summary.task, [])]
    parts.append("</body></html>")
    return "\n".join(parts)


def _unscored(table: TrialTable, task: str) -> str:
    """A sentence when studies of ``task`` lack the test score of their best trial."""
    lacking = [
        s.name for s in table.of(task) if (b := s.best()) is not None and b.test_scores is None
    ]
    if not lacking:
        return ""
    return (
        f"{len(lacking)} of {len(table.of(task))} studies have no test score for their best trial yet "
        f"(they are computed when a study finishes; 'hpstudy resume {table.experiment}' computes the "
        "missing ones): their comparisons leave those seeds out."
    )


def overview_figures(summaries: list[TaskSummary]) -> list[Any]:
    """The first screen's figures: the forest plot and the equal-compute curves."""
    from hpstudy.report import _figures

    drawn = [_figures.forest_figure(summaries), _figures.equal_compute_figure(summaries)]
    return [f for f in drawn if f is not None]


def draw_figures(table: TrialTable) -> dict[str, list[Any]]:
    """Every figure of every task."""
    from hpstudy.report import _figures

    figures: dict[str, list[Any]] = {}
    for task in table.tasks():
        drawn = [
            _figures.anytime_figure(table, task),
            _figures.importance_figure(table, task),
            _figures.parallel_figure(table, task),
            _figures.slice_figure(table, task),
            _figures.learning_figure(table, task),
        ]
        figures[task] = [f for f in drawn if f is not None]
    return figures


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then move it into place (see
    :func:`hpstudy._atomic.atomic_file`)."""
    from hpstudy._atomic import write_bytes_atomic

    write_bytes_atomic(path, text.encode("utf-8"))


def write_analysis(analysis: Analysis, path: Path) -> Path:
    """Render ``analysis`` as the HTML report at ``path``."""
    page = render_html(
        analysis, draw_figures(analysis.table), overview_figures(analysis.summaries)
    )
    write_atomic(path, page)
    return path


def write_report(
    storage_url: str, experiment: str, output: str | Path | None = None
) -> tuple[Path, Analysis]:
    """Write the HTML report of ``experiment`` (default ``reports/EXPERIMENT.html``) from the
    storage; reads only (test scores come from the cache the workers fill).

    Returns:
        The report's path and the analysis it renders.
    """
    from hpstudy.report._source import table_from_storage

    analysis = analyze(table_from_storage(storage_url, experiment))
    path = Path(output) if output else default_output("reports", (experiment,), ".html")
    return write_analysis(analysis, path), analysis
