"""The words, generated from the tables: each comparison's verdict, one sentence per task, one
across every task, and the answer paragraph (README's and the results page's). No sentence
here carries a number that is not in a table, and every bracket says what it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hpstudy.analysis._claim import claim_counts, primary_ratio, verdict_word
from hpstudy.analysis._model_line import ModelLine
from hpstudy.analysis._summary import CONTROL, ComputeRatio, TaskSummary, label_of
from hpstudy.analysis._verdict import Verdict

HEADLINE_FAMILY = (
    "every searching strategy and the negative control against the baseline, on every task"
)
MANUAL_FAMILY = "manual picks against the baseline, on every task"
# What regret is, said wherever it is shown (benchmark tasks only: their optimum is known).
TEST_REGRET_NOTE = (
    "Test regret: the distance of a pick's test score (the mean of the repetitions its study "
    "did not observe) to the best test score of any configuration in the study file's space "
    "(the table's optimum), in the metric's units; 0 is the optimum, larger is worse."
)
VALIDATION_REGRET_NOTE = (
    "Validation regret: the distance of the best validation value so far to the best "
    "validation value of any configuration in the study file's space, in the repetition the "
    "study observes, in the metric's units; 0 is the optimum, larger is worse."
)


def seeds_text(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _g(x: float, digits: int = 3) -> str:
    return f"{x + 0.0:+.{digits}g}"


def effect_text(v: Verdict) -> str:
    """The effect with its interval, saying what the interval is."""
    if v.seeds == 1:
        return f"{_g(v.difference)}, 1 seed: no CI"
    level = (
        "95% CI"
        if v.ci_level >= 0.95 - 1e-9
        else f"{v.ci_level:.1%} CI, the most {v.seeds} seeds allow"
    )
    return f"{_g(v.difference)}, {level} [{_g(v.ci_low)}, {_g(v.ci_high)}]"


def ratio_text(c: ComputeRatio) -> str:
    """A compute ratio with its interval over seeds; ">=" when a censored seed makes the
    estimate a lower bound."""
    s = c.summary
    if s.seeds == 0 or math.isnan(s.estimate):
        return "no ratio (no seed reached the level on both sides)"
    bound = ">=" if s.censored else ""
    if s.seeds == 1:
        return f"{bound}{s.estimate:.2g}x (1 seed, no CI)"
    level = "95% CI" if s.ci_level >= 0.95 - 1e-9 else f"{s.ci_level:.1%} CI"
    text = f"{bound}{s.estimate:.2g}x ({level} [{s.ci_low:.2g}, {s.ci_high:.2g}])"
    if s.censored:
        text += f", {s.censored} of {seeds_text(s.seeds)} censored (a side never reached it)"
    return text


def verdict_phrase(v: Verdict, label: str) -> str:
    name = label_of(v.strategy)
    if v.seeds == 0:
        return f"{name} vs {label}: no paired test scores yet"
    ci = effect_text(v)
    if v.seeds > 1:  # one seed: the effect's own text says so
        ci += f", {seeds_text(v.seeds)}"
    if v.verdict == "inconclusive":
        plan = (
            f"planning: about {v.seeds_needed} seeds for 80% power"
            if v.seeds_needed
            else "no number of seeds would settle it"
        )
        return (
            f"{name} against {label} is not settled: the difference ({ci}) cannot yet be told "
            f"apart from the margin ({plan})"
        )
    return f"{name} is {v.verdict} to {label} ({ci})"


def verdict_sentence(summary: TaskSummary) -> str:
    """One sentence per task: each searching strategy's verdict on test scores and its epochs
    to the best level both reached, over the baseline's."""
    label = summary.label(summary.baseline)
    parts = []
    for v in summary.verdicts:
        if v.strategy == "manual":
            continue
        part = verdict_phrase(v, label)
        c = primary_ratio(summary, v.strategy)
        if c is not None and c.summary.seeds:
            part += f"; it needs {ratio_text(c)} {label}'s epochs to reach the best validation score both reached"
        parts.append(part)
    if not parts:
        return f"Nothing to compare yet: {label} is the only searching strategy with results."
    sentence = (
        f"Test {summary.metric}, difference from {label} (positive = better), margin "
        f"{summary.margin_spec}: " + "; ".join(parts)
    )
    return sentence + "." + control_sentence(summary)


def control_sentence(summary: TaskSummary) -> str:
    """Whether the method could find a loss on this task (the negative control's verdict)."""
    v = summary.control
    if v is None or v.seeds == 0:
        return ""
    name = label_of(CONTROL)
    if v.verdict == "inferior":
        return f" Negative control: {name} is inferior ({effect_text(v)}): the test can find a loss here."
    word = "not settled" if v.verdict == "inconclusive" else v.verdict
    return (
        f" Negative control: {name} is {word} ({effect_text(v)}), not inferior: on this "
        "task the method cannot tell a worse search from the baseline, so its equivalences "
        "say little."
    )


def headline(summaries: Sequence[TaskSummary]) -> str:
    """One sentence across every task: each searching strategy's verdict per task."""
    by_strategy: dict[str, list[str]] = {}
    baselines = sorted({s.label(s.baseline) for s in summaries})
    for s in summaries:
        for v in s.verdicts:
            if v.strategy == "manual" or v.seeds == 0:
                continue
            word = "not settled" if v.verdict == "inconclusive" else v.verdict
            by_strategy.setdefault(v.strategy, []).append(f"{word} on {s.task}")
    if not by_strategy:
        return "Not enough finished studies with test scores to compare strategies yet."
    parts = [f"{label_of(k)} is {', '.join(v)}" for k, v in by_strategy.items()]
    n = sum(len(v) for v in by_strategy.values())
    controls = [s.control for s in summaries if s.control is not None and s.control.seeds]
    found = sum(v.verdict == "inferior" for v in controls)
    tail = (
        f" The negative control was called inferior on {found} of {len(controls)} tasks."
        if controls
        else ""
    )
    return (
        f"Against {' / '.join(baselines)} on held-out test scores, within each task's margin: "
        + "; ".join(parts)
        + (f" (Holm over the family of {n} comparisons)." if n > 1 else " (one comparison).")
        + tail
    )


def answer(
    summaries: Sequence[TaskSummary], strategy: str = "random", names: Sequence[str] | None = None
) -> str:
    """The answer to the brief's claim for ``strategy``, worded from its counts
    (:func:`hpstudy.analysis._claim.claim_counts`): how many comparisons fall in each verdict,
    which of them are on tasks where the negative control shows a loss could be found, and how
    many have their epochs-to-level interval wholly below or above 1. ``names``: how to call
    each summary's task (e.g. ``file/task``), in the order of ``summaries``."""
    c = claim_counts(summaries, strategy, names)
    label = c.label
    if not c.comparisons:
        return f"No comparison of {label} with the baseline has test scores yet."
    said = ", ".join(f"{len(v)} {verdict_word(k)}" for k, v in c.verdicts.items())
    text = f"{label[0].upper()}{label[1:]} against {' / '.join(c.baselines)} on held-out test scores, {c.comparisons} comparisons: {said}."
    if c.controlled:
        if c.sensitive:
            where = "; ".join(f"{name}: {verdict_word(v)}" for name, v in c.sensitive)
            text += (
                f" The negative control was called inferior, so a loss could have been found, on "
                f"{len(c.sensitive)} of {c.controlled} of these tasks; there {label} is {where}."
            )
        else:
            text += (
                f" The negative control was called inferior on none of the {c.controlled} "
                "tasks: no verdict here could have found a loss."
            )
    text += (
        f" In epochs to the best validation score both reached, its 95% CI lies wholly below "
        f"the baseline's (fewer epochs) on {len(c.fewer)} of {c.ratios} comparisons"
        + (f" ({', '.join(c.fewer)})" if c.fewer else "")
        + f" and wholly above (more epochs) on {len(c.more)}"
        + (f" ({', '.join(c.more)})" if c.more else "")
        + "."
    )
    return text


_REFERENCE_WORDS = {
    "mean_or_majority": {"regression": "predicting the mean", "classification": "predicting the majority class"},
    "linear": {"regression": "linear (Ridge)", "classification": "linear (logistic regression)"},
    "hist_gradient_boosting": {"regression": "gradient boosting", "classification": "gradient boosting"},
}  # fmt: skip


def _n(x: float) -> str:
    """A score as a person reads it: 4 significant digits, ``-`` when missing."""
    return f"{x + 0.0:.4g}" if math.isfinite(x) else "-"


def _param(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def model_sentence(line: ModelLine) -> str:
    """ "How good is my model": the chosen configuration's test score over seeds beside the
    reference models fit on the same splits, R^2 for regression. Every number is a field of
    ``line``."""
    label = "the manual picks'" if line.strategy == "manual" else f"{label_of(line.strategy)}'s"
    params = ", ".join(f"{k}={_param(v)}" for k, v in line.params.items())
    who = f"{label} pick" + (f", {params}" if params else "")
    if line.seeds == 0:
        score = f"no test score yet ({label} best trials are not scored)"
    elif line.seeds == 1:
        score = f"test {line.metric} {_n(line.median)} ({label} best trial at 1 seed)"
    else:
        score = (
            f"test {line.metric} {_n(line.median)} (median of {label} best trial over "
            f"{line.seeds} seeds, range {_n(line.low)} to {_n(line.high)})"
        )
    refs = "; ".join(
        f"{_REFERENCE_WORDS[k][line.kind]}: {_n(v)}" for k, v in line.references.items()
    )
    text = (
        f"Your model ({who}): {score}; {refs} (reference models on the same splits, median "
        f"over {seeds_text(line.reference_seeds)})"
    )
    if line.kind == "regression" and line.r2_references:
        others = ", ".join(
            f"{_REFERENCE_WORDS[k][line.kind]} {_n(v)}"
            for k, v in line.r2_references.items()
            if k != "mean_or_majority"
        )
        mine = f"R^2 {_n(line.r2)}" if math.isfinite(line.r2) else "R^2 of references"
        text += f"; {mine} ({others})"
    better = line.direction == "maximize"
    best_ref = max(line.references.values()) if better else min(line.references.values())
    if line.seeds and math.isfinite(line.median) and math.isfinite(best_ref):
        beats = line.median > best_ref if better else line.median < best_ref
        text += (
            ". It beats every reference model (medians)"
            if beats
            else ". A reference model scores as well or better (medians)"
        )
    return text + "."
