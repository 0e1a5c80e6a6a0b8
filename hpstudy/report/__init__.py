"""Report: collect an experiment's trials, judge the strategies, and draw the HTML report.

The data half: collecting an experiment from storage (``_collect.py``), best-so-far curves
(``_anytime.py``), verdicts against a margin (``_verdict.py``), compute like with like
(``_compute.py``) and ranks across tasks (``_aggregate.py``), pure functions tested with exact
numbers; held-out test scores cached in the storage (``_test_scores.py``); per-task summaries
(``_summary.py``) and the verdict sentences (``_sentences.py``). The drawing half: Plotly
figures (``_figures.py``), the offline HTML page (``_html.py``) and the export (``_export.py``).
What random search's trials say about the brief's advice is ``_advice.py``; the raw results as
files, and every number recomputed from them without retraining, ``_results.py``.
"""

from __future__ import annotations

from hpstudy.report._advice import Advice, Finding, advice_from_experiment, estimate_advice
from hpstudy.report._anytime import (
    AnytimeCurve,
    Band,
    TrialRecord,
    anytime_curve,
    seed_band,
)
from hpstudy.report._best import BestConfiguration, best_configurations
from hpstudy.report._collect import ExperimentData, StudyData, collect_experiment, to_record
from hpstudy.report._export import export_experiment
from hpstudy.report._html import analyze, write_report
from hpstudy.report._results import load_results, write_trials_csv_gz
from hpstudy.report._results_page import write_results
from hpstudy.report._sentences import headline
from hpstudy.report._stats import holm
from hpstudy.report._summary import SummaryRow, TaskSummary
from hpstudy.report._verdict import Verdict, hodges_lehmann

__all__ = [
    "Advice",
    "Finding",
    "advice_from_experiment",
    "estimate_advice",
    "load_results",
    "write_results",
    "write_trials_csv_gz",
    "AnytimeCurve",
    "BestConfiguration",
    "Band",
    "ExperimentData",
    "StudyData",
    "SummaryRow",
    "TaskSummary",
    "TrialRecord",
    "Verdict",
    "analyze",
    "anytime_curve",
    "best_configurations",
    "collect_experiment",
    "export_experiment",
    "headline",
    "hodges_lehmann",
    "holm",
    "seed_band",
    "to_record",
    "write_report",
]
