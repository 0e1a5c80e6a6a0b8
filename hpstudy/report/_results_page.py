"""The results page (Markdown) recomputed from raw results files: the answer (generated
from the tables), every comparison across the files with one multiplicity family, the negative
controls, then per experiment its headline, per task the verdict and its tables, the ranks
across tasks and the advice section. The numbers come from ``hpstudy.analysis.analyze_many``;
this module only lays them out (the HTML report with figures is ``_html.render_html``).

Results looked up in published tabular benchmarks are never pooled with real training: given
both kinds of files, the page analyses each kind apart (its own multiplicity family) and gives
the benchmarks' answer in a section of its own, beside the answer from real training, with the
outcomes where the two differ (``hpstudy.analysis._claim``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpstudy._errors import ConfigError
from hpstudy.analysis import Analysis, analyze_many, read_results
from hpstudy.analysis._claim import ClaimCounts, claim_counts, contrast_rows, contrast_sentence
from hpstudy.analysis._compute import PRIMARY_LEVEL
from hpstudy.analysis._prose import TEST_REGRET_NOTE, answer, ratio_text
from hpstudy.analysis._summary import label_of
from hpstudy.report._markdown import experiment_markdown, md_ci, md_fraction, md_num, md_table

__all__ = ["experiment_markdown", "write_results"]

Done = Sequence[tuple[Path, Analysis]]


def _with_regret(done: Done) -> bool:
    return any(r.test_regret is not None for _, a in done for s in a.summaries for r in s.rows)


def _regret_of(s: Any, strategy: str) -> str:
    row = next((r for r in s.rows if r.strategy == strategy), None)
    return "-" if row is None or row.test_regret is None else md_num(row.test_regret.median)


def overview_rows(done: Done) -> list[list[str]]:
    """One row per (experiment, task, strategy) compared: the answer across every file, so the
    effect of the space's size and of pruning shows side by side; on benchmark tasks, each
    side's median test regret beside the difference."""
    rows = []
    regret = _with_regret(done)
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
                     s.label(v.baseline), md_ci(v.difference, v.ci_low, v.ci_high, v.ci_level),
                     *([f"{_regret_of(s, v.strategy)}; {_regret_of(s, v.baseline)}"] if regret else []),
                     v.verdict, *(_ratio(cost.get(u)) for u in ("epochs", "trials", "seconds")),
                     md_fraction((s.smallest_fraction or {}).get(v.strategy)),
                     md_fraction((s.smallest_fraction or {}).get(s.baseline))]
                )  # fmt: skip
    return rows


def control_rows(done: Done) -> list[list[str]]:
    """The negative control of every task: whether the method could find a loss there."""
    return [
        [a.table.experiment, s.task, md_ci(v.difference, v.ci_low, v.ci_high, v.ci_level),
         md_num(v.p_adjusted_inferiority), v.verdict,
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


def tpe_vs_random(done: Done) -> list[list[str]]:
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
    return [[experiment, s.task, md_ci(v.difference, v.ci_low, v.ci_high, v.ci_level),
             f"{s.margin:.4g}", str(v.seeds), md_num(v.p_adjusted), v.verdict]
            for (experiment, s), v in zip(keys, judged, strict=True)]  # fmt: skip


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
BENCHMARKS_HEADING = "Published tabular benchmarks (looked up, not trained here)"
BENCHMARKS_NAME = "the published tabular benchmarks"
TRAINED_NAME = "real training"


def _names(done: Done) -> tuple[list[Any], list[str]]:
    summaries = [s for _, a in done for s in a.summaries]
    return summaries, [f"{s.task} ({a.table.experiment})" for _, a in done for s in a.summaries]


def _strategies(done: Done) -> list[str]:
    """The strategies the answer speaks of: random search, and TPE where it ran."""
    summaries, _ = _names(done)
    return ["random"] + (
        ["tpe"] if any(v.strategy == "tpe" for s in summaries for v in s.verdicts) else []
    )


def answer_paragraph(done: Done) -> str:
    """The answer to the brief's claim from ``done``, generated from the tables."""
    summaries, names = _names(done)
    return " ".join(answer(summaries, k, names) for k in _strategies(done))


def claims(done: Done) -> list[ClaimCounts]:
    summaries, names = _names(done)
    return [claim_counts(summaries, k, names) for k in _strategies(done)]


def answer_block(done: Done, beside: Done = ()) -> str:
    """The answer, generated from the tables (README carries the same block); with ``beside``
    (benchmark results, analysed apart), their answer after it and where the two differ."""
    parts = [answer_paragraph(done)]
    if beside:
        parts += [
            "",
            f"On {BENCHMARKS_NAME} (every configuration trained in advance, a trial is a table "
            f"lookup; analysed apart, never pooled with {TRAINED_NAME}): {answer_paragraph(beside)}",
            "",
            contrast_sentence(
                contrast_rows(claims(done), claims(beside)), TRAINED_NAME, BENCHMARKS_NAME
            ),
        ]
    return "\n".join([ANSWER_BEGIN, *parts, ANSWER_END])


def what_ran(done: Done) -> list[str]:
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
    return md_table(
        ["file", "searched dimensions", "grid points", "pruner", "tasks", "strategies", "seeds",
         "trials"],
        rows,
    )  # fmt: skip


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


EVERY_COMPARISON = (
    "Against each file's baseline, paired by seed on held-out test scores (positive = the "
    "strategy better), with the exact signed-rank 95% CI; compute to the best validation "
    "score both arms reached at the same seed, over the baseline's, like with like (random "
    "and grid search: each side's expected cost over orderings of its own trials; TPE: both "
    "in the order they ran), the geometric centre over seeds with its 95% CI; epochs trained "
    "are the primary unit, seconds are confounded by the machine's load. The last two "
    "columns: the smallest fraction of the baseline's epochs at which the strategy, and the "
    "baseline itself stopped early in its shuffled order, is non-inferior to the full baseline."
)


def comparisons(done: Done, level: str) -> list[str]:
    """Every comparison, the negative controls and TPE against random search of ``done`` (one
    multiplicity family), under headings of ``level`` (``"##"``, or ``"###"`` in a section)."""
    regret = _with_regret(done)
    lines = [f"{level} Every comparison", "", EVERY_COMPARISON, ""]
    if regret:
        lines += [f"{TEST_REGRET_NOTE} The regret column gives the median over seeds of the "
                  "strategy's and of the baseline's.", ""]  # fmt: skip
    lines += md_table(
        ["experiment", "dimensions", "pruner", "task", "strategy", "baseline",
         "difference in test score", *(["test regret (strategy; baseline)"] if regret else []),
         "verdict", "epochs to level / baseline's", "trials", "seconds (secondary)",
         "smallest non-inferior fraction", "the baseline's own"],
        overview_rows(done),
    )  # fmt: skip
    controls = control_rows(done)
    if controls:
        lines += [
            f"{level} Can the method find a loss? The negative control",
            "",
            "Random search stopped at 1/8 of the baseline's epochs, worse by construction, "
            "judged in the same family as the comparisons above. Where it is not called "
            "inferior, the task cannot tell a worse search from the baseline.",
            "",
        ]
        lines += md_table(
            ["experiment", "task", "difference in test score", "p inferiority (Holm)",
             "verdict", "a loss can be found"],
            controls,
        )  # fmt: skip
    versus = tpe_vs_random(done)
    if versus:
        lines += [
            f"{level} TPE against random search",
            "",
            "Paired by seed on held-out test scores, positive = TPE better, against each task's "
            "margin; Holm over these comparisons, a family of their own.",
            "",
        ]
        lines += md_table(
            ["experiment", "task", "difference in test score", "margin", "seeds",
             "p non-inferiority (Holm)", "verdict"],
            versus,
        )  # fmt: skip
    return lines


def benchmark_section(done: Done, beside: Done) -> list[str]:
    """The benchmarks' answer as a section of the page on real training: what ran, every
    comparison in a family of their own, and the two answers side by side."""
    from hpstudy.data._benchmarks import BENCHMARK_NOTE

    rows = contrast_rows(claims(done), claims(beside))
    lines = [
        f"## {BENCHMARKS_HEADING}",
        "",
        f"*{BENCHMARK_NOTE}*",
        "",
        *what_ran(beside),
        "Analysed apart from real training: verdicts are Holm-adjusted over a family of their "
        f"own: {beside[0][1].family}.",
        "",
        *comparisons(beside, "###"),
        f"### The answers from {TRAINED_NAME} and from {BENCHMARKS_NAME} side by side",
        "",
        "Each outcome of the answer above, on how many comparisons with the baseline it occurs "
        "in each; an outcome differs where it occurs in one answer and on no comparison of the "
        "other.",
        "",
    ]
    lines += md_table(
        ["strategy", "outcome", TRAINED_NAME, BENCHMARKS_NAME, "differs"],
        [[label_of(r.strategy), r.outcome, f"{r.first[0]} of {r.first[1]}",
          f"{r.second[0]} of {r.second[1]}", "yes" if r.differs else "no"] for r in rows],
    )  # fmt: skip
    return lines + [contrast_sentence(rows, TRAINED_NAME, BENCHMARKS_NAME), ""]


def write_results(
    paths: Sequence[Path],
    output: Path,
    html_dir: Path | None = None,
    readme: Path | None = None,
) -> list[tuple[Path, Analysis]]:
    """Regenerate the results page (and, with ``html_dir``, each experiment's full HTML report
    with its figures) from exported files, retraining nothing; one multiplicity family across
    every file of a kind. Files of real training and files looked up in published tabular
    benchmarks are never pooled: given both, each kind is analysed apart and the benchmarks'
    answer is a section of the page, beside the answer from real training (given only
    benchmark files, the page is theirs). A block of the existing page between ``KEEP_BEGIN``
    and ``KEEP_END`` (words only, no numbers: a test checks) is kept, after the generated
    answer; with ``readme``, the same generated answer replaces the block between the answer
    markers there.

    Returns:
        Every file and its analysis (real training first, then the benchmarks).
    """
    from hpstudy.report._html import write_analysis, write_atomic

    tables = list(zip(paths, (read_results(p) for p in paths), strict=True))
    trained = [(p, t) for p, t in tables if not t.from_tables]
    looked_up = [(p, t) for p, t in tables if t.from_tables]
    main, beside = (trained, looked_up) if trained else (looked_up, [])
    done = list(zip([p for p, _ in main], analyze_many([t for _, t in main]), strict=True))
    done_beside = (
        list(zip([p for p, _ in beside], analyze_many([t for _, t in beside]), strict=True))
        if beside
        else []
    )
    command = f"hpstudy results {' '.join(p.as_posix() for p in paths)} -o {output.as_posix()}"
    block = answer_block(done, done_beside)
    title = (
        "# Results from published tabular benchmarks (looked up, not trained here)"
        if done[0][1].table.from_tables
        else "# Results"
    )
    apart = (
        f" The files from {BENCHMARKS_NAME} are analysed apart, in a family of their own: see "
        f"*{BENCHMARKS_HEADING}* below."
        if done_beside
        else ""
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
        f"{done[0][1].family}.{apart}",
        "",
        *comparisons(done, "##"),
    ]
    if done_beside:
        lines += benchmark_section(done, done_beside)
    for path, a in [*done, *done_beside]:
        lines += experiment_markdown(path, a)
        if html_dir is not None:
            write_analysis(a, html_dir / f"{a.table.experiment}.html")
    write_atomic(output, "\n".join(lines))
    if readme is not None:
        _replace_block(readme, block)
    return [*done, *done_beside]
