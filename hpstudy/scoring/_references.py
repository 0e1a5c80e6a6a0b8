"""Reference models on a seed's final split: what "a good model" is measured against.

For a (task, seed), three scikit-learn models are fit on train+validation with the same
preprocessing the retrained networks get (:func:`hpstudy.data.prepare_final`) and scored on
the same test split with the same function (:func:`hpstudy.metrics.score`, so regression
errors are in the target's units exactly as the networks' test scores are):

- ``mean_or_majority``: ``DummyRegressor`` (the training mean) or ``DummyClassifier`` with
  ``strategy="prior"`` (predicts the majority class; its probabilities are the class shares,
  so log loss and ROC AUC are those of knowing nothing but the shares);
- ``linear``: ``Ridge`` or ``LogisticRegression`` (scikit-learn's defaults);
- ``hist_gradient_boosting``: ``HistGradientBoostingRegressor`` / ``...Classifier``
  (defaults, ``random_state`` from the seed).

For regression, ``r2`` holds each reference's test R^2 and ``test_variance`` the test
targets' variance in the metric's units (so the analysis can turn a network's test RMSE into
its R^2: ``1 - rmse**2 / test_variance``). Cached once per (task, seed) as the study user
attr :data:`ATTR` on every study of that seed; benchmark (table) tasks have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpstudy.config import TaskConfig
    from hpstudy.data import TaskData

ATTR = "reference_scores"
REFERENCES = ("mean_or_majority", "linear", "hist_gradient_boosting")


def reference_seed(seed: int) -> int:
    """``random_state`` of the reference models of study seed ``seed`` (a 32-bit int)."""
    from hpstudy.strategies import derive_seed

    return derive_seed(seed, 0, "reference") % (2**31 - 1)


def _models(kind: str, seed: int) -> dict[str, Any]:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    rs = reference_seed(seed)
    if kind == "classification":
        return {
            "mean_or_majority": DummyClassifier(strategy="prior"),
            "linear": LogisticRegression(max_iter=1000),
            "hist_gradient_boosting": HistGradientBoostingClassifier(random_state=rs),
        }
    return {
        "mean_or_majority": DummyRegressor(strategy="mean"),
        "linear": Ridge(),
        "hist_gradient_boosting": HistGradientBoostingRegressor(random_state=rs),
    }


def _outputs(model: Any, data: TaskData, X: Any) -> Any:
    """What :func:`hpstudy.metrics.score` reads: log-probabilities over every class (their
    softmax is the model's probabilities) or predictions in the fold's (standardised) units."""
    import numpy as np
    import torch

    if data.kind == "classification":
        proba = np.zeros((X.shape[0], max(data.n_classes, 2)))
        proba[:, model.classes_] = model.predict_proba(X)
        # a class absent from training gets probability 0: clipped, so log loss stays finite
        return torch.from_numpy(np.log(np.clip(proba, 1e-15, 1.0)))
    return torch.from_numpy(np.asarray(model.predict(X), dtype=np.float64))


def reference_scores(task: TaskConfig, seed: int, data: TaskData | None = None) -> dict[str, Any]:
    """Fit the reference models on train+validation of ``task`` at ``seed`` and score them
    on its test split: ``{name: metric}`` for :data:`REFERENCES`, and for regression
    ``"r2": {name: R^2}`` and ``"test_variance"``. Deterministic."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from hpstudy.data import prepare_final
    from hpstudy.metrics import score

    data = data if data is not None else prepare_final(task, seed)
    fold = data.folds[0]
    y_test = torch.from_numpy(np.asarray(fold.y_valid))
    out: dict[str, Any] = {}
    r2: dict[str, float] = {}
    for name, model in _models(data.kind, seed).items():
        # one thread, as retraining: workers run side by side, and a forked worker must not
        # start an OpenMP pool its parent may hold
        with threadpool_limits(limits=1):
            model.fit(fold.X_train, fold.y_train)
            pred = _outputs(model, data, fold.X_valid)
        out[name] = float(score(data.metric, pred, y_test, fold.y_std))
        if data.kind == "regression":
            r2[name] = float(score("r2", pred, y_test))
    if data.kind == "regression":
        out["r2"] = r2
        y = np.asarray(fold.y_valid, dtype=np.float64) * fold.y_std
        out["test_variance"] = float(np.var(y))
    return out


def cached_references(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference scores cached in a study's user attrs (``None``: none, or malformed)."""
    value = attrs.get(ATTR)
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), (int, float)) for k in REFERENCES
    ):
        return None
    return dict(value)


def merged_references(stored: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The attr after a write: what is stored wins (a concurrent writer computed the same
    numbers: the fit is deterministic)."""
    return {ATTR: cached_references(stored) or dict(new)}
