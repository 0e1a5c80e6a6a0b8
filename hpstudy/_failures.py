"""When every trial of a study failed: say so, with the most common reason and what to change.

A study whose trials all failed has met its budget ("budget met") without a single result;
``status``, ``best`` and the report say so instead of suggesting ``resume``, which would only
continue the same search. The rule and its words are the analysis's
(:func:`hpstudy.analysis._table.failure_note`); this adapts Optuna's trials to it.
"""

from __future__ import annotations

from collections.abc import Iterable

from optuna.trial import FrozenTrial

from hpstudy.analysis._table import Trial
from hpstudy.analysis._table import failure_note as _note


def failure_note(trials: Iterable[FrozenTrial]) -> str | None:
    """A sentence when trials finished and every one failed (``None`` otherwise)."""
    return _note(
        Trial(t.number, t.state.name, None, fail_reason=t.user_attrs.get("fail_reason"))
        for t in trials
    )
