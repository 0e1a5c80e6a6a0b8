"""Report: collect an experiment's trials, compare strategies, and (next) draw the HTML report.

The data half lives here first: collecting an experiment from storage (``_collect.py``),
anytime curves and compute-to-target (``_anytime.py``) and statistics across seeds
(``_stats.py``), pure functions tested with exact numbers. Figures, held-out test scores, the
HTML page and export are the rest of issue #4.
"""

from __future__ import annotations

from hpstudy.report._anytime import (
    AnytimeCurve,
    Band,
    ComputeToTarget,
    TrialRecord,
    anytime_curve,
    compute_to_target,
    relaxed_target,
    seed_band,
)
from hpstudy.report._collect import ExperimentData, StudyData, collect_experiment, to_record
from hpstudy.report._stats import Comparison, compare_strategies, holm

__all__ = [
    "AnytimeCurve",
    "Band",
    "Comparison",
    "ComputeToTarget",
    "ExperimentData",
    "StudyData",
    "TrialRecord",
    "anytime_curve",
    "collect_experiment",
    "compare_strategies",
    "compute_to_target",
    "holm",
    "relaxed_target",
    "seed_band",
    "to_record",
]
