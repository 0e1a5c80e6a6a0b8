"""The analysis: one typed trial table in, typed results out; imports no storage, Optuna or
torch.

The table (``_table.py``) has two sources, the storage and the exported raw results, so
``hpstudy report`` and ``hpstudy results`` run this same code. In order (``_pipeline.py``):
per task the baseline, summary rows, paired test scores and their comparisons against a
margin with exact signed-rank tests (``_verdict.py``, ``_signed_rank.py``), compute to a
quality level like with like (``_compute.py``), quality at equal compute, the negative control
and the winners (``_summary.py``); the verdicts judged over one multiplicity family; the
sentences, generated from the tables (``_prose.py``); ranks across tasks (``_aggregate.py``);
what random search's trials say about the brief's advice (``_advice.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpstudy.analysis._advice import Advice, Finding, Sample, estimate_advice
    from hpstudy.analysis._pipeline import Analysis, analyze, analyze_many
    from hpstudy.analysis._summary import TaskSummary, picks_needed
    from hpstudy.analysis._table import Study, Trial, TrialTable, read_results
    from hpstudy.analysis._verdict import Verdict

# Imported on first use: the storage layer reads the table's rules (``_table.py``) on every
# command, and ``status`` should not pay for the whole pipeline (about 45 ms) to count trials.
_LAZY = {
    "Advice": "_advice",
    "Finding": "_advice",
    "Sample": "_advice",
    "estimate_advice": "_advice",
    "Analysis": "_pipeline",
    "analyze": "_pipeline",
    "analyze_many": "_pipeline",
    "TaskSummary": "_summary",
    "picks_needed": "_summary",
    "Study": "_table",
    "Trial": "_table",
    "TrialTable": "_table",
    "read_results": "_table",
    "Verdict": "_verdict",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"hpstudy.analysis.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'hpstudy.analysis' has no attribute {name!r}")


__all__ = [
    "Advice",
    "Analysis",
    "Finding",
    "Sample",
    "Study",
    "TaskSummary",
    "Trial",
    "TrialTable",
    "Verdict",
    "analyze",
    "analyze_many",
    "estimate_advice",
    "picks_needed",
    "read_results",
]
