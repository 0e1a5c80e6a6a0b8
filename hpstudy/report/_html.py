"""``hpstudy report``: one self-contained HTML file that opens offline.

plotly.js is embedded once for all figures (no CDN); every string that comes from the user
(experiment, task and study names, metric names) is HTML-escaped. The file is written to a
temporary name and moved into place, so a failed report never leaves a half-written file.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpstudy.report._collect import ExperimentData, collect_experiment
from hpstudy.report._summary import Spread, TaskSummary, summarize_task
from hpstudy.report._test_scores import TestScore, test_scores

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{font-size:1.6rem} h2{margin-top:2.5rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem} th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
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
        "trials", "epochs", "seconds", "epochs to grid's best", "trials to grid's best",
        "epochs to 99% of grid's best", "pruned", "failed",
    ]  # fmt: skip
    rows = [
        [
            _e(r.strategy), str(r.seeds), _spread(r.best_valid), _spread(r.test), _spread(r.trials, True),
            _spread(r.epochs, True), _spread(r.seconds), _reach(r.to_grid_best_epochs, r.seeds),
            _reach(r.to_grid_best_trials, r.seeds), _reach(r.to_grid_99_epochs, r.seeds), str(r.pruned), str(r.failed),
        ]
        for r in summary.rows
    ]  # fmt: skip
    return (
        _table("summary", head, rows)
        + '<p class="note">Median over seeds [min, max]. Test: the best configuration of each seed, retrained on '
        "train+validation with several training seeds and scored on the test split the search never saw. "
        "Compute counts every trial (pruned and failed too).</p>"
    )


def comparison_table(summary: TaskSummary) -> str:
    if not summary.comparisons:
        return '<p class="note">No statistics: no grid or random baseline with test scores.</p>'
    head = [
        "strategy",
        "baseline",
        "test",
        "seeds",
        "median difference (test)",
        "effect size (rank-biserial)",
        "p",
        "p (Holm)",
        "verdict",
    ]
    rows = [
        [
            _e(c.strategy), _e(c.baseline), _e(c.test), str(c.n), _num(c.median_difference),
            _num(c.effect_size), _num(c.p_value), _num(c.p_holm), _e(c.verdict),
        ]
        for c in summary.comparisons
    ]  # fmt: skip
    return (
        _table("stats", head, rows)
        + '<p class="note">Differences are signed so that positive means the strategy is better. Paired by seed '
        "(Wilcoxon signed-rank) where seeds are shared, else Mann-Whitney U; Holm correction over each task's "
        "comparisons. 'inconclusive': too few seeds for any difference to reach p &lt; 0.05.</p>"
    )


def render_html(
    data: ExperimentData, summaries: list[TaskSummary], figures: dict[str, list[Any]]
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
    ]
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
        parts.append(summary_table(summary))
        parts.append(comparison_table(summary))
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
) -> tuple[ExperimentData, list[TaskSummary]]:
    """Collect the experiment, score each study's best configuration on its test split
    (cached in the storage), and summarize each task."""
    from hpstudy.store import TrialWriter, open_storage
    from hpstudy.store import stored_config as _stored_config

    data = collect_experiment(storage_url, experiment)
    tests: dict[str, TestScore] = {}
    if retrain:
        config = _stored_config(data.studies[0].info, storage_url)
        writer = TrialWriter(open_storage(storage_url, create=False))
        tests = test_scores(config, data.studies, writer.set_study_user_attrs, progress)
    return data, [summarize_task(data, task, tests) for task in data.tasks()]


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
) -> tuple[Path, list[TaskSummary]]:
    """Write the HTML report of ``experiment`` (default ``reports/EXPERIMENT.html``).

    Returns:
        The report's path and each task's summary.
    """
    data, summaries = analyze(storage_url, experiment, retrain=retrain, progress=progress)
    path = Path(output) if output else Path("reports") / f"{experiment}.html"
    write_atomic(path, render_html(data, summaries, draw_figures(data)))
    return path, summaries
