"""The epoch loop: in-memory tensors, shuffled index batches, per-epoch validation score.

Small MLPs on tabular data are bound by per-step overhead, not FLOPs, so this loop keeps the
data as tensors, shuffles once per epoch with one gather and then takes contiguous slices
(no DataLoader), steps the flat parameter tensor with fused Adam/AdamW/SGD kernels
(:mod:`hpstudy._optim`, not ``torch.optim``), and touches Python objects as little
as possible per step. Each epoch's validation score goes to ``on_epoch``, which decides pruning
without any storage round trip (see ``hpstudy.runner``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hpstudy._backprop import FlatMLP
from hpstudy._optim import FlatOptimizer
from hpstudy.data import Fold, TaskData
from hpstudy.metrics import is_better, score
from hpstudy.model import build_mlp, output_size

# on_epoch(epoch, score) -> True to stop (prune) the run.
EpochCallback = Callable[[int, float], bool]


class NonFiniteLossError(RuntimeError):
    """Training diverged: the loss or the validation score became NaN or infinite."""


@dataclass
class TrainResult:
    """Outcome of training one configuration.

    Attributes:
        score: Best validation score over the epochs (the trial's value), on the selection
            objective (``data.select``: validation cross-entropy for classification by default).
        best_epoch: Epoch (1-based) of that score.
        epochs_trained: Epochs actually trained (per fold), pruned or early-stopped included.
        seconds: Wall-clock training time, evaluation included.
        pruned: Whether ``on_epoch`` stopped the run.
        history: Validation score (selection objective) after each epoch.
        n_params: Number of weights of one network.
        metric_at_best: The task's metric on validation at ``best_epoch``, when the
            selection objective is another (``None`` otherwise).
    """

    score: float
    best_epoch: int
    epochs_trained: int
    seconds: float
    pruned: bool
    history: list[float] = field(default_factory=list)
    n_params: int = 0
    metric_at_best: float | None = None
    models: list[nn.Module] = field(default_factory=list, repr=False)  # one per fold, trained


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def make_optimizer(
    flat: torch.Tensor, grad: torch.Tensor, name: str, lr: float, weight_decay: float
) -> FlatOptimizer:
    """The optimizer ``name`` over one flat tensor; torch's fused kernels where it has them
    (see :mod:`hpstudy._optim`: ``torch.optim`` would import torch's compiler stack)."""
    return FlatOptimizer(flat, grad, name, lr, weight_decay)


def loss_name(kind: str, n_classes: int, loss: str = "") -> str:
    """Cross-entropy (multi-class), BCE on one logit (binary), MSE (standardised regression)
    or the task's own regression loss (``poisson``: counts, log link)."""
    if kind == "regression":
        return loss or "mse"
    return "bce" if n_classes == 2 else "cross_entropy"


class _FoldRun:
    """One network being trained on one fold; stepped an epoch at a time."""

    def __init__(
        self, fold: Fold, data: TaskData, params: dict[str, Any], device: torch.device, seed: int
    ) -> None:
        gen = torch.Generator(device=device).manual_seed(seed)
        init_gen = torch.Generator().manual_seed(seed)
        self.model = build_mlp(
            data.n_features,
            output_size(data.kind, data.n_classes),
            n_layers=params["n_layers"],
            n_units=params["n_units"],
            dropout=params["dropout"],
            activation=params["activation"],
            init=params["init"],
            generator=init_gen,
        ).to(device)
        self.engine = FlatMLP(
            self.model,
            params["activation"],
            params["dropout"],
            loss_name(data.kind, data.n_classes, data.loss),
            gen,
            None
            if fold.class_weights is None
            else torch.from_numpy(fold.class_weights).to(device, torch.float32),
        )
        self.log_link = data.loss == "poisson"  # the output is log(count): score exp(output)
        if self.log_link and len(fold.y_train):
            # start at the mean count, as a GLM's intercept would, not at exp(0) = 1
            mean = max(float(fold.y_train.mean()), 1e-6)
            self.engine.b[-1].fill_(math.log(mean))
        self.opt = make_optimizer(
            self.engine.flat,
            self.engine.grad,
            params["optimizer"],
            params["lr"],
            params["weight_decay"],
        )
        self.squeeze = output_size(data.kind, data.n_classes) == 1
        self.X = torch.from_numpy(fold.X_train).to(device)
        self.y = self.engine.targets(
            torch.from_numpy(fold.y_train).to(device), output_size(data.kind, data.n_classes)
        )
        self.Xv = torch.from_numpy(fold.X_valid).to(device)
        self.yv = torch.from_numpy(fold.y_valid).to(device)
        self.y_std = fold.y_std
        self.batch = max(1, min(int(params["batch_size"]), len(self.X)))
        self.gen = gen

    def train_epoch(self) -> float:
        engine, opt, batch = self.engine, self.opt, self.batch
        n = self.X.shape[0]
        perm = torch.randperm(n, generator=self.gen, device=self.X.device)
        X, y = self.X[perm], self.y[perm]  # one gather per epoch; slices below are views
        out = yb = None
        for start in range(0, n, batch):
            yb = y[start : start + batch]
            out = engine.step_gradients(X[start : start + batch], yb)
            opt.step()
        assert out is not None and yb is not None
        # Divergence propagates into the weights, so the last batch's loss is enough to see it.
        return engine.loss_value(out, yb)

    def evaluate(self, metrics: tuple[str, ...]) -> list[float]:
        """Validation scores of the network as it is now, one per metric (one forward pass)."""
        self.model.eval()
        with torch.inference_mode():
            out = self.model(self.Xv)
            if self.squeeze:
                out = out.squeeze(1)
            if self.log_link:
                out = torch.exp(out)
            return [score(m, out, self.yv, self.y_std) for m in metrics]


_warmed: set[str] = set()


def warm_up(device: str = "cpu") -> None:
    """Pay this process's one-time start-up costs before any trial is timed.

    The first calls of each kernel, optimizer and metric cost more than later ones; left to
    the first trial, they made its ``seconds`` larger than any later trial's (1-2 s, against
    ~15 ms per digits epoch, when the optimizers were ``torch.optim``'s, whose first use
    imported ``torch._dynamo``; see :mod:`hpstudy._optim`). This trains a tiny network for one epoch with each optimizer, for a
    classification and a regression task, on ``device``. Once per process and device type;
    a forked worker inherits its parent's warm-up (warm the CPU only before forking: CUDA
    does not survive a fork).
    """
    dev = resolve_device(device)
    if dev.type in _warmed:
        return
    import numpy as np

    from hpstudy.config._schema import HYPERPARAMETERS, OPTIMIZERS

    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 3)).astype(np.float32)
    tasks: list[tuple[str, str, int, np.ndarray]] = [
        ("classification", "accuracy", 3, (np.arange(16) % 3).astype(np.int64)),
        ("regression", "rmse", 0, rng.standard_normal(16).astype(np.float32)),
    ]
    objectives = {"classification": "cross_entropy", "regression": "rmse"}
    defaults = {name: default for name, (_, default) in HYPERPARAMETERS.items()}
    for kind, metric, n_classes, y in tasks:
        fold = Fold(X_train=X, y_train=y, X_valid=X, y_valid=y)
        data = TaskData(kind, metric, 3, n_classes, (fold,), np.arange(0), objectives[kind])
        for optimizer in OPTIMIZERS:
            params = {**defaults, "n_units": 4, "batch_size": 8, "optimizer": optimizer}
            train(params, data, seed=0, max_epochs=1, device=device)
    _warmed.add(dev.type)


def train(
    params: dict[str, Any],
    data: TaskData,
    *,
    seed: int,
    max_epochs: int,
    patience: int = 0,
    device: str = "cpu",
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train one configuration on every fold of ``data`` in lockstep, an epoch at a time.

    Args:
        params: Every hyperparameter (see ``hpstudy.config.HYPERPARAMETERS``).
        data: Prepared data of one (task, seed).
        seed: Seeds weight initialisation, dropout and shuffling.
        max_epochs: Cap on epochs; ``params["epochs"]`` may ask for fewer.
        patience: Stop after this many epochs without improvement (0: never).
        device: ``auto``, ``cpu`` or ``cuda``.
        on_epoch: Called with (epoch, mean validation score over folds, on the selection
            objective ``data.select``); returning True prunes the run. Early stopping and the
            best epoch follow the same objective.

    Raises:
        NonFiniteLossError: The loss or the validation score is NaN or infinite.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)  # dropout draws from the global generator
    dev = resolve_device(device)
    runs = [_FoldRun(f, data, params, dev, seed + 7919 * i) for i, f in enumerate(data.folds)]
    epochs = min(int(params.get("epochs") or max_epochs), max_epochs)
    # The selection objective first; the task's metric too when it is another (reported as
    # the validation metric of the best epoch, e.g. accuracy beside cross-entropy).
    metrics = (data.select,) if data.select == data.metric else (data.select, data.metric)
    history: list[float] = []
    best, best_epoch, pruned = math.nan, 0, False
    metric_at_best: float | None = None
    for epoch in range(1, epochs + 1):
        scores = []
        for run in runs:
            loss = run.train_epoch()
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"training loss is {loss} at epoch {epoch}")
            scores.append(run.evaluate(metrics))
        value = sum(s[0] for s in scores) / len(scores)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"validation {data.select} is {value} at epoch {epoch}")
        history.append(value)
        if best_epoch == 0 or is_better(value, best, data.select):
            best, best_epoch = value, epoch
            if len(metrics) > 1:
                metric_at_best = sum(s[1] for s in scores) / len(scores)
        if on_epoch is not None and on_epoch(epoch, value):
            pruned = True
            break
        if patience and epoch - best_epoch >= patience:
            break
    n_params = runs[0].engine.flat.numel()
    return TrainResult(
        score=best,
        best_epoch=best_epoch,
        epochs_trained=len(history),
        seconds=time.perf_counter() - t0,
        pruned=pruned,
        history=history,
        n_params=n_params,
        metric_at_best=metric_at_best,
        models=[run.model for run in runs],
    )
