"""When every trial of a study failed: say so, with the most common reason and what to change.

A study whose trials all failed has met its budget ("budget met") without a single result;
``status``, ``best`` and the report say so instead of suggesting ``resume``, which would only
continue the same search.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from optuna.trial import FrozenTrial, TrialState

# The first words of a fail_reason -> what to change in the study file.
_ADVICE = {
    "diverged": "lower space.lr (its high), or check the data for extreme values",
    "out of memory": "lower space.n_units, space.n_layers or batch_size",
    "gave up after": "see the fail_reason in optuna-dashboard or 'hpstudy export'",
    "error": "see the fail_reason in optuna-dashboard or 'hpstudy export', and fix the study file",
}


def _kind(reason: str) -> str:
    return next((k for k in _ADVICE if reason.startswith(k)), "error")


def failure_note(trials: Iterable[FrozenTrial]) -> str | None:
    """A sentence when trials finished and every one failed (``None`` otherwise): how many, the
    most common kind of reason with an example, and what to change."""
    from hpstudy.store._studies import counts_toward_budget  # store imports this module

    finished = [t for t in trials if t.state.is_finished() and counts_toward_budget(t)]
    if not finished or any(t.state != TrialState.FAIL for t in finished):
        return None
    reasons = [str(t.user_attrs.get("fail_reason", "error: no reason recorded")) for t in finished]
    kind, n = Counter(map(_kind, reasons)).most_common(1)[0]
    example = next(r for r in reasons if _kind(r) == kind)
    return (
        f"all {len(finished)} finished trials failed; most often ({n} of {len(finished)}): "
        f"{example}; {_ADVICE[kind]}"
    )
