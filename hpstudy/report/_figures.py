"""The report's figures (Plotly), drawn from the data half. Smoke-tested; the numbers behind
them are tested in ``_anytime`` and ``_stats``. Every figure caps the points it draws, so a
report of 10,000 trials stays small and quick to open."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpstudy.analysis import Trial, TrialTable
from hpstudy.analysis._anytime import seed_band, study_curve
from hpstudy.analysis._summary import label_of
from hpstudy.config._schema import STRATEGY_NAMES

MAX_POINTS = 2000  # per scatter / parallel-coordinates figure
MAX_CURVES = 30  # learning curves per strategy
PER_SEED_BELOW = 5  # with fewer seeds, each seed's curve is drawn instead of a quartile band
COLORS = {name: n.color for name, n in STRATEGY_NAMES.items()}


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _sample(items: list[Any], n: int, seed: int = 0) -> list[Any]:
    return items if len(items) <= n else random.Random(seed).sample(items, n)


def anytime_figure(data: TrialTable, task: str, in_regret: bool | None = None) -> go.Figure:
    """Best-so-far validation score against trials, epochs and seconds: median over seeds
    with the interquartile band; manual picks as a reference line. ``in_regret`` draws it in
    validation regret (``analysis._anytime.study_curve``); by default it does where every
    study knows its benchmark optimum (a published tabular benchmark's task)."""
    studies = data.of(task)
    metric = studies[0].select_name
    if in_regret is None:
        in_regret = all(s.optimum is not None for s in studies)
    axes = [
        ("trials", "trials"),
        ("epochs", "compute (epochs trained)"),
        ("seconds", "training seconds"),
    ]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in axes], shared_yaxes=True)
    strategies = list(dict.fromkeys(s.strategy for s in studies))
    for strategy in strategies:
        color = COLORS.get(strategy, "#333333")
        curves = [study_curve(s, in_regret) for s in data.of(task, strategy)]
        if strategy == "manual":
            bests = [c.best[-1] for c in curves if len(c.best) and not math.isnan(c.best[-1])]
            if bests:
                for col in (1, 2, 3):
                    fig.add_hline(
                        y=float(np.median(bests)),
                        line_dash="dot",
                        line_color=color,
                        row=1,
                        col=col,
                    )
                fig.add_trace(
                    go.Scatter(
                        x=[None],
                        y=[None],
                        mode="lines",
                        line={"dash": "dot", "color": color},
                        name="manual picks (median best)",
                    )
                )
            continue
        few = len(curves) < PER_SEED_BELOW
        for col, (axis, _) in enumerate(axes, start=1):
            band = seed_band(curves, axis)
            if not len(band.x):
                continue
            show = col == 1
            if few:
                for c in curves:
                    fig.add_trace(
                        go.Scatter(x=getattr(c, axis), y=c.best, mode="lines", line={"color": color, "width": 1, "shape": "hv"}, opacity=0.35, legendgroup=strategy, showlegend=False, hoverinfo="skip"),
                        row=1, col=col,
                    )  # fmt: skip
                fig.add_trace(
                    go.Scatter(x=band.x, y=band.median, mode="lines", line={"color": color, "width": 2}, name=label_of(strategy), legendgroup=strategy, showlegend=show),
                    row=1, col=col,
                )  # fmt: skip
                continue
            fig.add_trace(
                go.Scatter(
                    x=band.x,
                    y=band.q75,
                    mode="lines",
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(x=band.x, y=band.q25, mode="lines", line={"width": 0}, fill="tonexty", fillcolor=_rgba(color, 0.2), showlegend=False, hoverinfo="skip"),
                row=1, col=col,
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(x=band.x, y=band.median, mode="lines", line={"color": color, "width": 2}, name=label_of(strategy), legendgroup=strategy, showlegend=show),
                row=1, col=col,
            )  # fmt: skip
    what = f"validation regret of {metric}" if in_regret else f"best validation {metric}"
    fig.update_yaxes(title_text=what, row=1, col=1)
    n_seeds = max((len(data.of(task, s)) for s in strategies), default=0)
    how = "thin lines: each seed" if n_seeds < PER_SEED_BELOW else "band = interquartile range"
    title = (
        f"{task}: validation regret of the best so far, 0 = the table's best over the space "
        f"(median where every seed has a score; {how})"
        if in_regret
        else f"{task}: best-so-far validation {metric} (median where every seed has a score; {how})"
    )
    fig.update_layout(title=title, height=420)
    return fig


def _complete_trials(data: TrialTable, task: str) -> list[Trial]:
    """COMPLETE trials of the searching strategies, with only their searched parameters."""
    searched = set(data.config.searched_params())
    trials = [
        Trial(
            t.number, t.state, t.value, params={k: v for k, v in t.params.items() if k in searched}
        )
        for s in data.of(task)
        if s.strategy != "manual"
        for t in s.runs
        if t.state == "COMPLETE" and t.value is not None
    ]
    return _sample(trials, MAX_POINTS)


def importance_figure(data: TrialTable, task: str) -> go.Figure | None:
    """Hyperparameter importance (Optuna's default evaluator) over the task's complete trials."""
    trials = _complete_trials(data, task)
    params = sorted({p for t in trials for p in t.params})
    if len(trials) < 4 or len(params) < 2:
        return None
    import optuna

    from hpstudy.strategies import distribution

    trials = [t for t in trials if set(t.params) == set(params)]
    maximize = data.of(task)[0].select_direction == "maximize"
    study = optuna.create_study(
        direction=optuna.study.StudyDirection.MAXIMIZE
        if maximize
        else optuna.study.StudyDirection.MINIMIZE
    )
    dists = {n: distribution(p) for n, p in data.config.searched_params().items()}
    try:
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params=dict(t.params), distributions={n: dists[n] for n in t.params},
                    value=t.value,
                )
                for t in trials
            ]
        )  # fmt: skip
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # too few distinct values to rank: no figure
        return None
    names = list(importances)[::-1]
    fig = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h"))
    fig.update_layout(
        title=f"{task}: hyperparameter importance ({len(trials)} complete trials)",
        height=120 + 30 * len(names),
        xaxis_title="importance",
    )
    return fig


def log_searched(data: TrialTable, param: str) -> bool:
    """Whether ``param`` was searched on a log scale (the study file says so), not guessed
    from the values' range: dropout searched linearly stays linear."""
    p = data.config.searched_params().get(param)
    return bool(p is not None and p.log)


def _tick(v: float) -> str:
    return f"{v:.3g}"


def parallel_dimensions(
    data: TrialTable, trials: list[Trial], params: list[str]
) -> list[dict[str, Any]]:
    """Plotly parcoords dimensions: a log-searched parameter is placed on a log10 axis whose
    ticks read in the hyperparameter's own units; categorical values are labelled."""
    dims: list[dict[str, Any]] = []
    for p in params:
        values = [t.params[p] for t in trials]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            if log_searched(data, p) and all(v > 0 for v in values):
                lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
                ticks = [
                    10.0**k * m
                    for k in range(lo, hi + 1)
                    for m in (1, 3)
                    if 10.0**k * m <= 10.0**hi
                ]
                dims.append(
                    {
                        "label": f"{p} (log scale)",
                        "values": [math.log10(v) for v in values],
                        "tickvals": [math.log10(t) for t in ticks],
                        "ticktext": [_tick(t) for t in ticks],
                    }
                )
            else:
                dims.append({"label": p, "values": values})
        else:
            labels = sorted({str(v) for v in values})
            dims.append(
                {
                    "label": p,
                    "values": [labels.index(str(v)) for v in values],
                    "tickvals": list(range(len(labels))),
                    "ticktext": labels,
                }
            )
    return dims


def parallel_figure(data: TrialTable, task: str) -> go.Figure | None:
    """Parallel coordinates of the searched hyperparameters and the validation score."""
    trials = _complete_trials(data, task)
    params = sorted({p for t in trials for p in t.params})
    trials = [t for t in trials if set(t.params) == set(params)]
    if not trials or not params:
        return None
    metric = data.of(task)[0].select_name
    dims = parallel_dimensions(data, trials, params)
    scores = [float(t.value) for t in trials]  # type: ignore[arg-type]
    dims.append({"label": metric, "values": scores})
    fig = go.Figure(
        go.Parcoords(
            line={"color": scores, "colorscale": "Viridis", "showscale": True}, dimensions=dims
        )
    )
    fig.update_layout(
        title=f"{task}: hyperparameters and validation {metric} ({len(trials)} complete trials)",
        height=420,
    )
    return fig


def slice_figure(data: TrialTable, task: str) -> go.Figure | None:
    """Validation score against each hyperparameter, one panel per hyperparameter."""
    trials = _complete_trials(data, task)
    params = sorted({p for t in trials for p in t.params})
    if not trials or not params:
        return None
    metric = data.of(task)[0].select_name
    fig = make_subplots(rows=1, cols=len(params), subplot_titles=params, shared_yaxes=True)
    for col, p in enumerate(params, start=1):
        pts = [(t.params[p], t.value) for t in trials if p in t.params]
        fig.add_trace(
            go.Scatter(
                x=[str(x) if isinstance(x, str) else x for x, _ in pts],
                y=[y for _, y in pts],
                mode="markers",
                marker={"size": 5, "opacity": 0.5},
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        values = [x for x, _ in pts]
        if (
            log_searched(data, p)
            and values
            and all(isinstance(v, int | float) and v > 0 for v in values)
        ):
            fig.update_xaxes(type="log", row=1, col=col)
    fig.update_yaxes(title_text=f"validation {metric}", row=1, col=1)
    fig.update_layout(title=f"{task}: validation {metric} by hyperparameter", height=380)
    return fig


def learning_figure(data: TrialTable, task: str) -> go.Figure | None:
    """Per-epoch validation curves of trials at the first seed; pruned trials marked."""
    studies = data.of(task)
    seed = min(s.seed for s in studies)
    fig = go.Figure()
    shown: set[str] = set()
    for s in studies:
        if s.seed != seed:
            continue
        color = COLORS.get(s.strategy, "#333333")
        for t in _sample([t for t in s.runs if t.curve], MAX_CURVES, seed=1):
            assert t.curve is not None
            curve = t.curve
            steps = sorted(curve)
            pruned = t.state == "PRUNED"
            key = f"{label_of(s.strategy)} ({'pruned' if pruned else t.state.lower()})"
            fig.add_trace(
                go.Scatter(
                    x=steps, y=[curve[k] for k in steps], mode="lines+markers" if pruned else "lines",
                    line={"color": color, "dash": "dot" if pruned else "solid", "width": 1},
                    marker={"symbol": "x", "size": 4}, opacity=0.6, name=key, legendgroup=key, showlegend=key not in shown,
                    hovertext=f"trial {t.number}",
                )
            )  # fmt: skip
            shown.add(key)
    if not fig.data:
        return None
    metric = studies[0].select_name
    fig.update_layout(
        title=f"{task}: learning curves at seed {seed} (dotted with x = pruned)",
        xaxis_title="epoch",
        yaxis_title=f"validation {metric}",
        height=420,
    )
    return fig


def _ci_bars(
    estimates: list[float], lows: list[float], highs: list[float], scale: float = 1.0
) -> dict[str, Any]:
    """Plotly error bars drawing each estimate's (asymmetric) CI, in units of ``scale``."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [(h - e) / scale for e, h in zip(estimates, highs, strict=True)],
        "arrayminus": [(e - lo) / scale for e, lo in zip(estimates, lows, strict=True)],
    }


def forest_figure(summaries: list[Any]) -> go.Figure | None:
    """Difference vs the baseline with its CI, per task and strategy; the margin band shaded.

    Each task is drawn in units of its own margin (difference / margin), so tasks with
    different metrics share one axis: -1 is the non-inferiority bound."""
    rows = [
        (s, v)
        for s in summaries
        for v in [*s.verdicts, *([s.control] if s.control is not None else [])]
        if v.seeds and s.margin > 0 and not math.isnan(v.difference)
    ]
    if not rows:
        return None
    labels = [
        f"{s.task}: {s.label(v.strategy)}{' (negative control)' if v.strategy == 'control' else ''}"
        f" vs {s.label(v.baseline)}"
        for s, v in rows
    ]
    levels = [v.ci_level for _, v in rows if not math.isnan(v.ci_level)]
    coverage = (
        "95% CI"
        if all(x >= 0.95 - 1e-9 for x in levels)
        else f"CI: 95%, or the most the seeds allow (as low as {min(levels):.1%})"
    )
    fig = go.Figure()
    fig.add_vrect(x0=-1, x1=1, fillcolor="rgba(44,160,44,0.12)", line_width=0)
    fig.add_vline(x=0, line_color="#555", line_width=1)
    fig.add_vline(x=-1, line_dash="dash", line_color="#d62728", line_width=1)
    for (s, v), label in zip(rows, labels, strict=True):
        m = s.margin
        fig.add_trace(
            go.Scatter(
                x=[v.difference / m], y=[label], mode="markers",
                error_x=_ci_bars([v.difference], [v.ci_low], [v.ci_high], m),
                marker={"color": COLORS.get(v.strategy, "#333333"), "size": 10, "symbol": "x" if v.strategy == "control" else "circle"}, showlegend=False,
                hovertext=f"{v.verdict}: {v.difference:+.4g} [{v.ci_low:+.4g}, {v.ci_high:+.4g}] {s.metric}, margin {m:.4g}",
            )
        )  # fmt: skip
    fig.update_layout(
        title="Test score difference vs the baseline (positive = better), in units of each task's margin;<br>"
        "shaded: within the margin; dashed: the non-inferiority bound",
        xaxis_title=f"difference / margin ({coverage})",
        height=160 + 40 * len(rows),
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def equal_compute_figure(summaries: list[Any]) -> go.Figure | None:
    """Test score difference vs the full baseline when each strategy stops at a fraction of
    the baseline's compute, per task (in units of the task's margin), with 95% CIs."""
    fig = go.Figure()
    dashes = ("solid", "dot", "dashdot", "longdash", "longdashdot")
    for i, s in enumerate(summaries):
        if not s.equal or not s.margin > 0:
            continue
        for strategy in dict.fromkeys(e.strategy for e in s.equal):
            pts = sorted(
                (e for e in s.equal if e.strategy == strategy and e.seeds),
                key=lambda e: e.fraction,
            )
            if not pts:
                continue
            m = s.margin
            fig.add_trace(
                go.Scatter(
                    x=[e.fraction for e in pts], y=[e.difference / m for e in pts], mode="lines+markers",
                    name=f"{s.task}: {s.label(strategy)}", line={"color": COLORS.get(strategy, "#333333"), "dash": dashes[i % len(dashes)]},
                    error_y=_ci_bars([e.difference for e in pts], [e.ci_low for e in pts], [e.ci_high for e in pts], m),
                )
            )  # fmt: skip
    if not fig.data:
        return None
    fig.add_hline(y=-1, line_dash="dash", line_color="#d62728")
    fig.update_xaxes(
        type="log",
        tickvals=[1 / 16, 1 / 8, 1 / 4, 1 / 2, 1],
        ticktext=["1/16", "1/8", "1/4", "1/2", "1"],
    )
    fig.update_layout(
        title="Quality at equal compute: test score of the pick at a fraction of the baseline's epochs,<br>"
        "minus the full baseline's (in margins; red dashes: the non-inferiority bound; line style: task)",
        xaxis_title="fraction of the baseline's total epochs (same seed)",
        yaxis_title="difference / margin",
        height=420,
    )
    return fig


def advice_figure(advice: Any) -> go.Figure | None:
    """The brief's advice pooled over tasks: each finding's effect on the percentile-rank scale
    with its CI (the data are ``_advice.Advice``); findings without a number are left out."""
    rows = [f for f in advice.findings if f.scope == "all tasks" and f.reason is None]
    if not rows:
        return None
    fig = go.Figure()
    fig.add_vline(x=0, line_color="#555", line_width=1)
    for f in rows:
        fig.add_trace(
            go.Scatter(
                x=[f.estimate], y=[f.comparison], mode="markers", showlegend=False,
                error_x=_ci_bars([f.estimate], [f.ci_low], [f.ci_high]),
                marker={"color": COLORS.get("random", "#333333"), "size": 10},
                hovertext=f"{f.advice}: {f.estimate:+.3g} [{f.ci_low:+.3g}, {f.ci_high:+.3g}], {f.studies} seeds",
            )
        )  # fmt: skip
    fig.update_layout(
        title="Does the usual tuning advice hold? Random search's trials, all tasks: difference in<br>"
        "percentile rank within each study (positive = the advice's side is better), 95% CI over seeds",
        xaxis_title="difference in percentile rank",
        height=160 + 40 * len(rows),
    )
    fig.update_yaxes(autorange="reversed")
    return fig
