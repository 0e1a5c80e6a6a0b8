"""The test-score cache in a study's user attrs: read (both formats) and merged."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ATTR = "test_scores"
ATTR_BY_TRIAL = "test_scores_by_trial"


@dataclass(frozen=True)
class TestScore:
    """Test scores of one trial's configuration, one per training seed: the task's metric
    (``scores``) and, for classification, the cross-entropy (``()`` when not recorded)."""

    __test__ = False  # not a pytest class

    trial: int
    scores: tuple[float, ...]
    cross_entropy: tuple[float, ...] = ()

    @property
    def mean(self) -> float:
        return float(sum(self.scores) / len(self.scores)) if self.scores else math.nan

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scores": list(self.scores)}
        if self.cross_entropy:
            out["cross_entropy"] = list(self.cross_entropy)
        return out


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in value) if isinstance(value, list) else ()


def cached_scores(attrs: Mapping[str, Any]) -> dict[int, TestScore]:
    """The test scores cached in a study's user attrs, by trial number (both formats)."""
    cache: dict[int, TestScore] = {}
    by_trial = attrs.get(ATTR_BY_TRIAL)
    if isinstance(by_trial, dict):
        for key, entry in by_trial.items():
            if not str(key).isdigit():
                continue
            ce: tuple[float, ...] = ()
            if isinstance(entry, list):  # written before cross-entropy was recorded
                scores = _floats(entry)
            elif isinstance(entry, dict):
                scores, ce = _floats(entry.get("scores")), _floats(entry.get("cross_entropy"))
            else:
                continue
            if scores:
                cache[int(key)] = TestScore(int(key), scores, ce)
    best = attrs.get(ATTR)
    if isinstance(best, dict) and isinstance(best.get("trial"), int) and best.get("scores"):
        cache.setdefault(
            best["trial"],
            TestScore(best["trial"], _floats(best["scores"]), _floats(best.get("cross_entropy"))),
        )
    return cache


def merged_attrs(
    stored: Mapping[str, Any], new: Mapping[int, TestScore], best: int | None
) -> dict[str, Any]:
    """The two cache attrs after adding ``new`` to what is ``stored`` (nothing is dropped;
    ``test_scores`` names the study's best trial when it is scored)."""
    cache = {**cached_scores(stored), **new}
    out: dict[str, Any] = {
        ATTR_BY_TRIAL: {str(n): ts.as_json() for n, ts in sorted(cache.items())},
    }
    if best is not None and best in cache:
        out[ATTR] = {"trial": best, **cache[best].as_json()}
    elif isinstance(stored.get(ATTR), dict):
        out[ATTR] = stored[ATTR]
    return out
