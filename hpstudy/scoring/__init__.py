"""Held-out test scores, computed when a study finishes, beside training.

The search never sees the test split. Scoring retrains a trial's configuration on
train+validation of the study's seed (preprocessing refitted on that union) for the epoch
count at which it scored best on validation, with :data:`TEST_REPEATS` training seeds, and
scores each network once, after its last epoch, on the test split: the task's metric and, for
classification, the cross-entropy. :func:`retrain` is the one function that does it; ``hpstudy
train-best`` uses it too (its first training seed), so a saved model's test score is the
first cached one.

Which trials need scores is one rule, :func:`picks_needed`: each study's best trial, and what
each strategy would have picked at fractions of the baseline's total epochs at the same seed
(the baseline's own picks included: the baseline stopped early in its run order). A pick
needs both its study and the baseline at that seed finished, so the worker whose finish
brings a study to its budget scores every trial at that (task, seed) whose inputs are now
complete (:func:`score_studies`); ``create`` and ``resume`` score whatever is still missing
when they end (``resume NAME`` also fills the caches of storages made before this existed).
Reports only read the cache.

Beside them, reference models (predicting the mean or the majority class, Ridge or
LogisticRegression, HistGradientBoosting) are fit once per scored (task, seed) on the same
split and cached as ``reference_scores`` on every study of that seed
(:mod:`hpstudy.scoring._references`); benchmark tasks have none.

The cache is two study user attrs: ``test_scores`` (``{"trial", "scores", "cross_entropy"}``
of the best trial, which ``best`` reads) and ``test_scores_by_trial`` (trial number as a
string -> ``{"scores", "cross_entropy"}``; caches written before held a plain list of
scores, still read). Writers merge into what is stored, in one locked transaction, so two
workers that score at once never drop each other's entries; retraining is deterministic (one
torch thread, fixed seeds), so either's scores are the same.
"""

from __future__ import annotations

from hpstudy.scoring._cache import (
    ATTR,
    ATTR_BY_TRIAL,
    TestScore,
    cached_scores,
    merged_attrs,
)
from hpstudy.scoring._passes import (
    ScoringDone,
    missing_scores,
    score_after_run,
    score_finished_study,
    score_studies,
)
from hpstudy.scoring._picks import (
    FRACTIONS,
    StudyTrials,
    TrialRow,
    best_number,
    pick_at_budget,
    picks_needed,
    task_baseline,
)
from hpstudy.scoring._references import ATTR as REFERENCES_ATTR
from hpstudy.scoring._references import (
    REFERENCES,
    cached_references,
    reference_scores,
    reference_seed,
)
from hpstudy.scoring._retrain import TEST_REPEATS, Retrained, retrain, test_seed

__all__ = [
    "ATTR",
    "ATTR_BY_TRIAL",
    "FRACTIONS",
    "REFERENCES",
    "REFERENCES_ATTR",
    "TEST_REPEATS",
    "Retrained",
    "ScoringDone",
    "StudyTrials",
    "TestScore",
    "TrialRow",
    "best_number",
    "cached_references",
    "cached_scores",
    "merged_attrs",
    "missing_scores",
    "pick_at_budget",
    "picks_needed",
    "reference_scores",
    "reference_seed",
    "retrain",
    "score_after_run",
    "score_finished_study",
    "score_studies",
    "task_baseline",
    "test_seed",
]
