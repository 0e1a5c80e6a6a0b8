"""Validation metrics computed from raw network outputs (logits or standardised predictions)."""

from __future__ import annotations

import numpy as np
import torch

from hpstudy.config._schema import OBJECTIVES


def direction(metric: str) -> str:
    """``"maximize"`` or ``"minimize"`` (of a metric or a selection objective)."""
    return OBJECTIVES[metric][1]


def is_better(a: float, b: float, metric: str) -> bool:
    """Whether score ``a`` beats ``b`` under ``metric``'s direction."""
    return a > b if direction(metric) == "maximize" else a < b


def probabilities(output: torch.Tensor) -> np.ndarray:
    """Class probabilities from logits: (n,) binary logits or (n, k) multi-class logits."""
    if output.ndim == 1:
        p1 = torch.sigmoid(output).double().cpu().numpy()
        return np.stack([1.0 - p1, p1], axis=1)
    return torch.softmax(output.double(), dim=1).cpu().numpy()


def score(metric: str, output: torch.Tensor, y: torch.Tensor, y_std: float = 1.0) -> float:
    """Score network ``output`` against targets ``y``.

    Args:
        metric: A key of :data:`hpstudy.config.METRICS`.
        output: Logits ((n,) for binary, (n, k) for multi-class) or standardised predictions.
        y: Class indices or standardised targets.
        y_std: Standard deviation of the target, to report rmse/mae in the target's units.
    """
    if metric == "cross_entropy":
        return cross_entropy(output, y)
    if metric == "accuracy":
        pred = (output > 0).long() if output.ndim == 1 else output.argmax(dim=1)
        return float((pred == y).double().mean())
    if metric in ("rmse", "mae", "r2"):
        diff = (output - y).double()
        if metric == "rmse":
            return float(diff.pow(2).mean().sqrt()) * y_std
        if metric == "mae":
            return float(diff.abs().mean()) * y_std
        yd = y.double()
        ss_tot = float((yd - yd.mean()).pow(2).sum())
        return 1.0 - float(diff.pow(2).sum()) / ss_tot if ss_tot > 0 else 0.0
    from sklearn import metrics as skm

    proba = probabilities(output)
    labels = np.arange(proba.shape[1])
    y_np = y.cpu().numpy()
    if metric == "f1_macro":
        return float(skm.f1_score(y_np, proba.argmax(axis=1), average="macro", labels=labels))
    if metric == "log_loss":
        return float(skm.log_loss(y_np, proba, labels=labels))
    if metric == "roc_auc":
        if len(np.unique(y_np)) < 2:
            return float("nan")
        if proba.shape[1] == 2:
            return float(skm.roc_auc_score(y_np, proba[:, 1]))
        return float(skm.roc_auc_score(y_np, proba, multi_class="ovr", labels=labels))
    raise ValueError(f"unknown metric {metric!r}")


def cross_entropy(output: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy (log loss, natural log) of logits against class indices, in float64
    from the log-softmax (or log-sigmoid for one binary logit): exact, no clipping of
    probabilities, and tie-free where accuracy saturates."""
    out = output.double()
    if out.ndim == 1:
        yd = y.double()
        # -[y log s(x) + (1 - y) log(1 - s(x))] = softplus(x) - y x, stable for any x
        return float((torch.nn.functional.softplus(out) - yd * out).mean())
    return float(torch.nn.functional.cross_entropy(out, y.long()))
