"""The words: each comparison's verdict, Holm-adjusted over the family the headline rests on,
one sentence per task and one across every task."""

from __future__ import annotations

import math
from dataclasses import replace

from hpstudy.config import ExperimentConfig
from hpstudy.report._collect import ExperimentData
from hpstudy.report._summary import Scores, TaskSummary, summarize_task
from hpstudy.report._verdict import Verdict, judge

STRATEGY_NAMES = {
    "manual": "manual picks",
    "grid": "grid search",
    "random": "random search",
    "tpe": "TPE",
    "gp": "GP",
    "cmaes": "CMA-ES",
    "qmc": "QMC",
}


def seeds_text(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


HEADLINE_FAMILY = "every searching strategy against the baseline, on every task"
MANUAL_FAMILY = "manual picks against the baseline, on every task"


def summarize(
    data: ExperimentData, tests: Scores, config: ExperimentConfig | None = None
) -> list[TaskSummary]:
    """Every task's summary, with verdicts Holm-adjusted over the family the headline rests on
    (every searching strategy against the baseline on every task; manual picks apart)."""
    raw = [summarize_task(data, task, tests, config) for task in data.tasks()]
    searching = [v for s in raw for v in s.verdicts if v.strategy != "manual"]
    manual = [v for s in raw for v in s.verdicts if v.strategy == "manual"]
    judged = {
        (v.task, v.strategy): v
        for v in judge(searching, HEADLINE_FAMILY) + judge(manual, MANUAL_FAMILY)
    }
    out = []
    for s in raw:
        s = replace(s, verdicts=[judged[(v.task, v.strategy)] for v in s.verdicts])
        out.append(replace(s, verdict=verdict_sentence(s)))
    return out


def effect_text(v: Verdict) -> str:
    """The effect with its interval, saying so when the seeds cannot give a 95% one."""
    if v.seeds == 1:
        return f"{v.difference:+.3g}, no CI"
    text = f"{v.difference:+.3g} [{v.ci_low:+.3g}, {v.ci_high:+.3g}]"
    if v.ci_level < 0.95 - 1e-9:
        text += f" ({v.ci_level:.1%} CI, the most {v.seeds} seeds allow)"
    return text


def ratio_text(estimate: float, low: float, high: float, seeds: int) -> str:
    """A compute ratio with its interval over seeds (none from one seed)."""
    if seeds == 1:
        return f"{estimate:.2g}x (1 seed, no CI)"
    return f"{estimate:.2g}x [{low:.2g}, {high:.2g}]"


def verdict_phrase(v: Verdict, label: str) -> str:
    name = STRATEGY_NAMES.get(v.strategy, v.strategy)
    ci = effect_text(v)
    if v.seeds == 0:
        return f"{name} vs {label}: no paired test scores yet"
    if v.verdict == "inconclusive":
        need = (
            f"about {v.seeds_needed} seeds would settle it"
            if v.seeds_needed
            else "no number of seeds would settle it"
        )
        return f"{name} is inconclusive against {label} ({ci}, {seeds_text(v.seeds)}; {need})"
    return f"{name} is {v.verdict} to {label} ({ci}, {seeds_text(v.seeds)})"


def verdict_sentence(summary: TaskSummary) -> str:
    """One plain sentence per task: each searching strategy's verdict against the baseline on
    test scores, and its compute to reach the target relative to the baseline's."""
    label = summary.label(summary.baseline)
    parts = []
    for v in summary.verdicts:
        if v.strategy == "manual":
            continue
        part = verdict_phrase(v, label)
        epochs = next(
            (c for c in summary.compute or [] if c.strategy == v.strategy and c.unit == "epochs"),
            None,
        )
        if epochs is not None and not math.isnan(epochs.estimate):
            bound = (
                f" ({epochs.censored} of {seeds_text(epochs.seeds)} never reached it: a lower bound)"
                if epochs.censored
                else ""
            )
            part += (
                f", and needs {ratio_text(epochs.estimate, epochs.ci_low, epochs.ci_high, epochs.seeds)} "
                f"{label}'s expected epochs to reach the compute target{bound}"
            )
        parts.append(part)
    if not parts:
        return f"Nothing to compare yet: {label} is the only searching strategy with results."
    sentence = (
        f"Test {summary.metric}, difference vs {label} (positive = better) with 95% CI, margin {summary.margin_spec}: "
        + "; ".join(parts)
        + f" (compute target: {summary.target})"
    )
    return sentence + "."


def headline(summaries: list[TaskSummary]) -> str:
    """One sentence across every task: each searching strategy's verdict per task, and the
    smallest fraction of the baseline's compute at which it was already non-inferior."""
    by_strategy: dict[str, list[str]] = {}
    baselines = sorted({s.label(s.baseline) for s in summaries})
    for s in summaries:
        for v in s.verdicts:
            if v.strategy == "manual" or v.seeds == 0:
                continue
            word = v.verdict + (
                f" (about {v.seeds_needed} seeds would settle it)"
                if v.verdict == "inconclusive" and v.seeds_needed
                else ""
            )
            f = (s.smallest_fraction or {}).get(v.strategy)
            if f is not None:
                share = "all" if f == 1 else f"1/{round(1 / f)}"
                word += f" (and non-inferior to the full {s.label(s.baseline)} with {share} of its epochs)"
            by_strategy.setdefault(v.strategy, []).append(f"{word} on {s.task}")
    if not by_strategy:
        return "Not enough finished studies with test scores to compare strategies yet."
    parts = [f"{STRATEGY_NAMES.get(k, k)} is {', '.join(v)}" for k, v in by_strategy.items()]
    n = sum(len(v) for v in by_strategy.values())
    return (
        f"Against {' / '.join(baselines)} on held-out test scores, within each task's margin: "
        + "; ".join(parts)
        + (f" (Holm over these {n} comparisons)." if n > 1 else " (one comparison).")
    )
