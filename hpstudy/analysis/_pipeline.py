"""The analysis, in order: per task its stages (``_summary.py``), the verdicts judged over one
multiplicity family (across every table given), the sentences, the ranks across tasks and what
random search's trials say about the brief's advice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hpstudy._errors import ConfigError
from hpstudy.analysis._advice import Advice, advice_from_table
from hpstudy.analysis._aggregate import Aggregate, aggregate
from hpstudy.analysis._prose import (
    HEADLINE_FAMILY,
    MANUAL_FAMILY,
    headline,
    verdict_sentence,
)
from hpstudy.analysis._summary import CONTROL, TaskSummary, summarize_task
from hpstudy.analysis._table import TrialTable
from hpstudy.analysis._verdict import Verdict, judge


@dataclass(frozen=True)
class Analysis:
    """Everything a report shows of one experiment (renderers only lay it out)."""

    table: TrialTable
    summaries: list[TaskSummary]
    headline: str
    advice: Advice | None
    aggregate: Aggregate | None
    family: str


def _judge_family(
    all_summaries: Sequence[list[TaskSummary]], scope: str
) -> list[list[TaskSummary]]:
    """Holm over one family: every searching comparison and negative control of every table
    (manual picks a family of their own), then each task's sentence."""
    searching: list[Verdict] = []
    manual: list[Verdict] = []
    for summaries in all_summaries:
        for s in summaries:
            searching += [v for v in s.verdicts if v.strategy != "manual"]
            manual += [v for v in s.verdicts if v.strategy == "manual"]
            if s.control is not None:
                searching.append(s.control)
    keys = [id(v) for v in searching + manual]
    judged = judge(searching, f"{HEADLINE_FAMILY}{scope}") + judge(
        manual, f"{MANUAL_FAMILY}{scope}"
    )
    by_id = dict(zip(keys, judged, strict=True))
    out = []
    for summaries in all_summaries:
        done = []
        for s in summaries:
            s = replace(
                s,
                verdicts=[by_id[id(v)] for v in s.verdicts],
                control=by_id[id(s.control)] if s.control is not None else None,
            )
            done.append(replace(s, verdict=verdict_sentence(s)))
        out.append(done)
    return out


def analyze_many(tables: Sequence[TrialTable]) -> list[Analysis]:
    """Analyse several experiments with one multiplicity family across all of them (what a
    page that draws one answer from several files needs).

    Raises:
        ConfigError: ``tables`` mixes results looked up in published tabular benchmarks with
            real training: they are never pooled (analyse each kind apart).
    """
    if len({t.from_tables for t in tables}) > 1:
        looked_up = ", ".join(t.source or t.experiment for t in tables if t.from_tables)
        raise ConfigError(
            "results looked up in published tabular benchmarks are never pooled with real "
            f"training: analyse them apart ({looked_up})"
        )
    raw = [[summarize_task(t, task) for task in t.tasks()] for t in tables]
    scope = "" if len(tables) == 1 else f", across {len(tables)} files"
    judged = _judge_family(raw, scope)
    out = []
    for table, summaries in zip(tables, judged, strict=True):
        searching = [
            (s.direction, {k: v for k, v in (s.best_scores or {}).items() if k not in ("manual", CONTROL)})
            for s in summaries
        ]  # fmt: skip
        out.append(
            Analysis(
                table=table, summaries=summaries, headline=headline(summaries),
                advice=advice_from_table(table), aggregate=aggregate(searching),
                family=f"{HEADLINE_FAMILY}{scope}",
            )
        )  # fmt: skip
    return out


def analyze(table: TrialTable) -> Analysis:
    """Analyse one experiment."""
    return analyze_many([table])[0]
