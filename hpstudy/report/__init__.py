"""Report: render the analysis (``hpstudy.analysis``) of an experiment; reads only.

The live source of the trial table is the storage (``_source.py``, over ``_collect.py``);
the raw results files (``_results.py``) are the other. Renderers only render: the offline
HTML page (``_html.py``) with its Plotly figures (``_figures.py``), the Markdown results page
(``_results_page.py``) and the CSV/JSON export (``_export.py``). ``hpstudy best`` is
``_best.py``; the cache of held-out test scores the workers fill is read by
``_test_scores.py``.
"""

from __future__ import annotations

from hpstudy.report._best import BestConfiguration, best_configurations
from hpstudy.report._export import export_experiment
from hpstudy.report._html import write_report
from hpstudy.report._results import write_trials_csv_gz
from hpstudy.report._results_page import write_results
from hpstudy.report._source import table_from_storage

__all__ = [
    "BestConfiguration",
    "best_configurations",
    "export_experiment",
    "table_from_storage",
    "write_report",
    "write_results",
    "write_trials_csv_gz",
]
