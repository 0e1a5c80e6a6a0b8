"""``hpstudy report``: one self-contained HTML file that opens offline.

plotly.js is embedded once for all figures (no CDN); every string that comes from the user
(experiment, task and study names, metric names) is HTML-escaped. The file is written to a
temporary name and moved into place, so a failed report never leaves a half-written file.
"""

from __future__ import annotations

import html
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hpstudy._paths import default_output
from hpstudy.config import ExperimentConfig
from hpstudy.report._advice import Advice, advice_from_experiment
from hpstudy.report._aggregate import Aggregate, aggregate
from hpstudy.report._collect import ExperimentData, collect_experiment
from hpstudy.report._sentences import HEADLINE_FAMILY, headline, summarize
from hpstudy.report._summary import Scores, Spread, SummaryRow, TaskSummary, picks_needed
from hpstudy.report._test_scores import test_scores
from hpstudy.report._verdict import RULE

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{font-size:1.6rem} h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem} th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.headline{background:#eef6ee;border-left:6px solid #2ca02c;padding:.8rem 1rem;font-size:1.1rem}
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
    return fmt(s.median) if s.low == s.high else f"{fmt(s.median)} [{fmt(s.low)}, {fmt(s.high)}]"


def _reach(s: Spread, seeds: int) -> str:
    if not s.n:
        return f"never (0/{seeds})"
    return f"{s.median:.0f} ({s.n}/{seeds} seeds)"


def _table(css_class: str, head: list[str], rows: list[list[str]]) -> str:
    """An HTML table; ``head`` is escaped here, cells must already be safe HTML."""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><tr>{header}</tr>{body}</table>'


def summary_table(summary: TaskSummary) -> str:
    head = [
        "strategy", "seeds", f"best validation {summary.metric}", f"test {summary.metric}",
        "trials", "epochs", "seconds", "pruned", "failed", "interrupted",
    ]  # fmt: skip
    rows = [
        [
            _e(r.label), str(r.seeds), _spread(r.best_valid), _spread(r.test), _spread(r.trials, True),
            _spread(r.epochs, True), _spread(r.seconds), str(r.pruned), str(r.failed),
            _interrupted(r),
        ]
        for r in summary.rows
    ]  # fmt: skip
    return (
        _table("summary", head, rows)
        + '<p class="note">Median over seeds [min, max]. Test: the best configuration of each seed, retrained on '
        "train+validation with several training seeds and scored on the test split the search never saw. "
        "Compute counts every trial (pruned and failed too) except interrupted attempts (Ctrl-C, a "
        "dead worker, given up after repeated crashes), which are not the configuration's doing: "
        "their compute is shown apart (summed over seeds) and never charged to the strategy.</p>"
    )


def _interrupted(r: SummaryRow) -> str:
    if not r.interrupted:
        return "0"
    return f"{r.interrupted} ({r.interrupted_epochs:.0f} epochs, {r.interrupted_seconds:.3g} s)"


def _ci(est: float, low: float, high: float, signed: bool = True) -> str:
    if math.isnan(est):
        return "-"
    f = (lambda x: f"{x:+.3g}") if signed else (lambda x: f"{x:.3g}")
    return f"{f(est + 0.0)} [{f(low + 0.0)}, {f(high + 0.0)}]"  # + 0.0: never "-0"


def comparison_table(summary: TaskSummary) -> str:
    if not summary.verdicts:
        return '<p class="note">No comparison: only one strategy ran.</p>'
    head = [
        "strategy", "baseline", "seeds", f"difference in test {summary.metric} [95% CI]",
        "p non-inferiority", "p equivalence (TOST)", "p superiority", "p (Holm, non-inferiority)",
        "verdict", "seeds needed",
    ]  # fmt: skip
    rows = [
        [
            _e(summary.label(v.strategy)), _e(summary.label(v.baseline)), str(v.seeds),
            _ci(v.difference, v.ci_low, v.ci_high) + ("" if v.ci_level == 0.95 or math.isnan(v.ci_level) else f" ({100 * v.ci_level:.1f}% CI)"),
            _num(v.p_noninferiority), _num(v.p_equivalence), _num(v.p_superiority), _num(v.p_adjusted),
            f"<b>{_e(v.verdict)}</b>", "-" if v.seeds_needed is None else str(v.seeds_needed),
        ]
        for v in summary.verdicts
    ]  # fmt: skip
    return (
        _table("stats", head, rows)
        + f'<p class="note">Margin: {_e(summary.margin_spec)} (test {_e(summary.metric)}). '
        "Paired by seed; difference = strategy - baseline, signed so that positive is better; "
        "Hodges-Lehmann estimate with the exact Wilcoxon signed-rank 95% CI (with 5 seeds or fewer no finite 95% "
        "interval exists: the range shown has the coverage given). "
        f"Holm family: {_e(HEADLINE_FAMILY)} (manual picks: a family of their own). Rule: {_e(RULE)}</p>"
    )


def compute_table(summary: TaskSummary) -> str:
    if not summary.compute:
        return ""
    head = [
        "strategy",
        "unit",
        f"compute to target / {summary.label(summary.baseline)}'s expected [95% CI]",
        "seeds",
        "never reached",
    ]
    rows = [
        [_e(summary.label(c.strategy)), _e(c.unit), _ci(c.estimate, c.ci_low, c.ci_high, signed=False), str(c.seeds), str(c.censored)]
        for c in summary.compute
        if c.strategy != summary.baseline
    ]  # fmt: skip
    return (
        _table("compute", head, rows)
        + f'<p class="note">Target: {_e(summary.target)}. Per seed, the strategy\'s compute (in its run order) '
        f"to first reach the target over {_e(summary.baseline)}'s expected compute to reach it over every random "
        "ordering of its trials (exact: each trial keeps its recorded cost and outcome). A seed that never "
        "reached the target counts at its total compute (a lower bound). Geometric centre (Hodges-Lehmann of log "
        "ratios) with its exact 95% CI; below 1 = less compute than the baseline.</p>"
    )


def equal_compute_table(summary: TaskSummary) -> str:
    if not summary.equal:
        return ""
    head = [
        "strategy",
        "fraction of baseline's epochs",
        f"test {summary.metric}",
        "difference vs full baseline [95% CI]",
        "p non-inferiority",
        "seeds",
    ]
    rows = [
        [_e(summary.label(e.strategy)), f"1/{round(1 / e.fraction)}" if e.fraction < 1 else "1", _spread(e.test),
         _ci(e.difference, e.ci_low, e.ci_high), _num(e.p_noninferiority), str(e.seeds)]
        for e in summary.equal
    ]  # fmt: skip
    smallest = "; ".join(
        f"{summary.label(k)}: {'never' if f is None else ('1' if f == 1 else f'1/{round(1 / f)}')}"
        for k, f in (summary.smallest_fraction or {}).items()
    )
    return (
        _table("equal", head, rows)
        + f'<p class="note">Each strategy stopped after a fraction of {_e(summary.label(summary.baseline))}\'s total '
        "epochs at the same seed; its best configuration by then, retrained and scored on test (cached). Smallest "
        f"fraction at which it is non-inferior to the full baseline (fixed-sequence from 1 down, alpha 0.025): {_e(smallest)}.</p>"
    )


def winners_table(summary: TaskSummary) -> str:
    if not summary.winners:
        return ""
    params = sorted({k for w in summary.winners for k in w.params})
    head = [
        "strategy",
        "seed",
        "trial",
        f"validation {summary.metric}",
        f"test {summary.metric}",
        *params,
    ]
    rows = [
        [_e(summary.label(w.strategy)), str(w.seed), str(w.trial), _num(w.validation), _num(w.test),
         *(_e(_num(w.params[p]) if isinstance(w.params.get(p), float) else w.params.get(p, "-")) for p in params)]
        for w in summary.winners
    ]  # fmt: skip
    return "<h3>Winning configurations</h3>" + _table("winners", head, rows)


def aggregate_html(agg: Aggregate | None) -> str:
    if agg is None:
        return ""
    head = ["strategy", "mean rank (1 = best)", "blocks"]
    rows = [[_e(k), f"{r:.2f}", str(agg.blocks)] for k, r in agg.mean_ranks.items()]
    test = (
        f"Friedman test p = {_num(agg.p_friedman)}; Nemenyi critical difference at 0.05 = {_num(agg.critical_difference)} "
        "(two mean ranks further apart than this differ)."
        if not math.isnan(agg.p_friedman)
        else "Too few strategies or blocks for the Friedman test."
    )
    return (
        "<h2>Across tasks</h2>"
        + _table("aggregate", head, rows)
        + f'<p class="note">Ranks of test scores within each (task, seed) block where every strategy has one. {test}</p>'
    )


def advice_html(advice: Advice | None) -> str:
    """The section "What the trials say about the brief's advice" (a table per scope)."""
    if advice is None:
        return ""
    parts = ["<h2>What the trials say about the brief's advice</h2>"]
    if advice.note:
        parts.append(f"<p class='note'>{_e(advice.note)}</p>")
    head = [
        "advice",
        "comparison (positive = first is better)",
        "effect [95% CI]",
        "studies",
        "trials",
    ]
    for scope in dict.fromkeys(f.scope for f in advice.findings):
        own = [f for f in advice.findings if f.scope == scope]
        rows = [
            [
                _e(f.advice), _e(f.comparison),
                _e(f.reason) if f.reason else _ci(f.estimate, f.ci_low, f.ci_high)
                + ("" if f.ci_level == 0.95 else f" ({100 * f.ci_level:.1f}% CI)"),
                str(f.studies), str(f.trials),
            ]
            for f in own
        ]  # fmt: skip
        parts.append(f"<h3>{_e(scope)} <span class='note'>({_e(own[0].unit)})</span></h3>")
        parts.append(_table("advice", head, rows))
    parts.append(
        f"<p class='note'>Estimated from {_e(advice.strategy)} search's trials only (an unbiased sample "
        f"of the space): {_e(advice.method)}. Pooled over tasks the scores of each study are percentile "
        "ranks (0 = its worst trial, 1 = its best), so metrics can be pooled; per task the effect is "
        "the difference of the groups' median validation scores in the metric's units, signed so that "
        "positive is better. Pruned trials have no final score and are left out (an experiment without "
        "pruning has no such gap).</p>"
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


def render_html(
    data: ExperimentData,
    summaries: list[TaskSummary],
    figures: dict[str, list[Any]],
    overview: list[Any] | None = None,
    advice: Advice | None = None,
) -> str:
    """The whole page: one inline plotly.js, then per task the verdict, tables and figures."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>hpstudy report: {_e(data.experiment)}</title><style>{_CSS}</style>",
        f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>Experiment {_e(data.experiment)}</h1>",
        f"<p>{len(data.studies)} studies: tasks {', '.join(_e(t) for t in data.tasks())}; "
        f"strategies {', '.join(_e(s) for s in dict.fromkeys(s.info.strategy for s in data.studies))}; "
        f"seeds {', '.join(str(s) for s in sorted({s.info.seed for s in data.studies}))}.</p>",
        f"<p class='headline'>{_e(headline(summaries))}</p>",
    ]
    if any(s.attrs.get("task_kind") == "benchmark" for s in data.studies):
        from hpstudy.data._benchmarks import BENCHMARK_NOTE

        parts.append(f"<p class='note'>{_e(BENCHMARK_NOTE)}</p>")
    for fig in overview or []:
        parts.append(
            pio.to_html(
                fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False}
            )
        )
    parts.append(
        aggregate_html(aggregate([(s.direction, s.best_scores or {}) for s in summaries]))
    )
    parts.append(advice_html(advice))
    for summary in summaries:
        parts.append(
            f"<h2>Task {_e(summary.task)} <span class='note'>({_e(summary.metric)}, {_e(summary.direction)})</span></h2>"
        )
        parts.append(f"<p class='verdict'>{_e(summary.verdict)}</p>")
        if summary.missing:
            items = "".join(f"<li>{_e(m)}</li>" for m in summary.missing)
            parts.append(
                f"<div class='warning'>This task is not complete; the figures show what has finished:<ul>{items}</ul></div>"
            )
        parts.append(comparison_table(summary))
        parts.append(compute_table(summary))
        parts.append(equal_compute_table(summary))
        parts.append(winners_table(summary))
        parts.append(summary_table(summary))
        for fig in figures.get(summary.task, []):
            parts.append(
                pio.to_html(
                    fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False}
                )
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def analyze(
    storage_url: str,
    experiment: str,
    *,
    retrain: bool = True,
    progress: Callable[[str], None] = lambda name: None,
    n_jobs: int = 1,
) -> tuple[ExperimentData, list[TaskSummary]]:
    """Collect the experiment, score each study's best configuration on its test split
    (cached in the storage), and summarize each task."""
    from hpstudy.store import stored_config as _stored_config

    data = collect_experiment(storage_url, experiment)
    config = _stored_config(data.studies[0].info, storage_url)
    tests: Scores = {}
    if retrain:
        tests = test_scores(
            config,
            data.studies,
            score_cache(storage_url),
            progress,
            picks=picks_needed(data, config),
            n_jobs=n_jobs,
        )
    return data, summarize(data, tests, config)


def score_cache(storage_url: str) -> Callable[[int, Mapping[str, Any]], None]:
    """Where retrained test scores are kept: the storage's study attrs, or, when the storage
    is a read-only SQLite file, nowhere (said once: they are computed again next time)."""
    from hpstudy.store import TrialWriter, open_storage, read_only_reason

    read_only = read_only_reason(storage_url)
    if read_only is None:
        return TrialWriter(open_storage(storage_url, create=False)).set_study_user_attrs
    logging.getLogger("hpstudy").warning(
        "%s: test scores are computed but not cached in the storage (next time they are "
        "computed again)",
        read_only,
    )
    return _no_cache


def _no_cache(study_id: int, attrs: Mapping[str, Any]) -> None:
    """The cache of a read-only storage: keeps nothing."""


def stored_config(data: ExperimentData, storage_url: str) -> ExperimentConfig:
    """The experiment's study file as stored with its studies."""
    from hpstudy.store import stored_config as _stored_config

    return _stored_config(data.studies[0].info, storage_url)


def overview_figures(summaries: list[TaskSummary]) -> list[Any]:
    """The first screen's figures: the forest plot and the equal-compute curves."""
    from hpstudy.report import _figures

    drawn = [_figures.forest_figure(summaries), _figures.equal_compute_figure(summaries)]
    return [f for f in drawn if f is not None]


def draw_figures(data: ExperimentData) -> dict[str, list[Any]]:
    """Every figure of every task."""
    from hpstudy.report import _figures

    figures: dict[str, list[Any]] = {}
    for task in data.tasks():
        drawn = [
            _figures.anytime_figure(data, task),
            _figures.importance_figure(data, task),
            _figures.parallel_figure(data, task),
            _figures.slice_figure(data, task),
            _figures.learning_figure(data, task),
        ]
        figures[task] = [f for f in drawn if f is not None]
    return figures


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    storage_url: str,
    experiment: str,
    output: str | Path | None = None,
    *,
    retrain: bool = True,
    progress: Callable[[str], None] = lambda name: None,
    n_jobs: int = 1,
) -> tuple[Path, list[TaskSummary]]:
    """Write the HTML report of ``experiment`` (default ``reports/EXPERIMENT.html``).

    Returns:
        The report's path and each task's summary.
    """
    data, summaries = analyze(
        storage_url, experiment, retrain=retrain, progress=progress, n_jobs=n_jobs
    )
    path = Path(output) if output else default_output("reports", (experiment,), ".html")
    advice = advice_from_experiment(data, stored_config(data, storage_url))
    html_text = render_html(
        data, summaries, draw_figures(data), overview_figures(summaries), advice
    )
    write_atomic(path, html_text)
    return path, summaries
