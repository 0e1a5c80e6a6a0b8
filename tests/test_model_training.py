from __future__ import annotations

import numpy as np
import pytest
import torch

from hpstudy.config import TaskConfig
from hpstudy.data import Fold, TaskData, prepare_task
from hpstudy.model import build_mlp, output_size, resolve_init
from hpstudy.training import NonFiniteLossError, train

PARAMS = dict(
    n_layers=2, n_units=32, dropout=0.1, activation="relu", init="auto", lr=1e-2,
    optimizer="adam", batch_size=32, weight_decay=0.0, epochs=30,
)  # fmt: skip


def _task(dataset: str) -> TaskData:
    return prepare_task(TaskConfig("t", dataset, None, None, None, None), seed=0)


@pytest.mark.parametrize("dataset, width", [("iris", 3), ("breast_cancer", 1), ("diabetes", 1)])
def test_output_shape_follows_the_task(dataset: str, width: int) -> None:
    data = _task(dataset)
    model = build_mlp(
        data.n_features,
        output_size(data.kind, data.n_classes),
        **{k: PARAMS[k] for k in ("n_layers", "n_units", "dropout", "activation", "init")},
    )  # type: ignore[arg-type]
    out = model(torch.from_numpy(data.folds[0].X_valid))
    assert out.shape == (len(data.folds[0].X_valid), width)


def test_init_matches_the_activation() -> None:
    assert resolve_init("auto", "relu") == "kaiming"
    assert resolve_init("auto", "tanh") == "xavier"
    assert resolve_init("orthogonal", "relu") == "orthogonal"


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_training_improves_the_validation_score(optimizer: str) -> None:
    data = _task("iris")
    result = train({**PARAMS, "optimizer": optimizer, "lr": 3e-3}, data, seed=0, max_epochs=30)
    assert result.epochs_trained == 30
    # classification selects on validation cross-entropy (chance is ln 3 = 1.1): it falls
    assert data.select == "cross_entropy" and result.score < min(0.5, result.history[0])
    assert result.score == min(result.history)
    # and the task's metric (accuracy) is reported at that epoch: a fitted model
    assert result.metric_at_best is not None and result.metric_at_best >= 0.9


@pytest.mark.parametrize("dataset", ["iris", "breast_cancer"])
def test_objective_is_the_validation_cross_entropy_recomputed_independently(
    dataset: str,
) -> None:
    from sklearn.metrics import accuracy_score, log_loss

    data = _task(dataset)
    params = {**PARAMS, "lr": 3e-3, "dropout": 0.3}
    result = train(params, data, seed=1, max_epochs=12)
    # the network as it was at the best epoch: the same run stopped there (training is
    # deterministic and nothing after an epoch changes the epochs before it)
    at_best = train(params, data, seed=1, max_epochs=result.best_epoch)
    fold = data.folds[0]
    with torch.inference_mode():
        out = at_best.models[0].eval()(torch.from_numpy(fold.X_valid)).double()
    if out.shape[1] == 1:  # one binary logit
        p1 = torch.sigmoid(out[:, 0]).numpy()
        proba = np.stack([1 - p1, p1], axis=1)
    else:
        proba = torch.softmax(out, dim=1).numpy()
    assert result.score == pytest.approx(log_loss(fold.y_valid, proba), rel=1e-9, abs=1e-12)
    assert result.metric_at_best == pytest.approx(accuracy_score(fold.y_valid, proba.argmax(1)))
    # accuracy is a step function of the logits, cross-entropy is not: many epochs tie in
    # one and none in the other
    assert len(set(result.history)) == len(result.history)


def test_select_accuracy_selects_on_accuracy_as_before() -> None:
    data = prepare_task(TaskConfig("t", "iris", None, None, None, None, select="accuracy"), seed=0)
    assert data.select == "accuracy" and data.metric == "accuracy"
    result = train({**PARAMS, "lr": 3e-3}, data, seed=0, max_epochs=10)
    assert result.score == max(result.history) and result.metric_at_best is None


def test_regression_rmse_is_in_target_units_and_decreases() -> None:
    data = _task("diabetes")
    result = train(PARAMS, data, seed=0, max_epochs=30)
    assert result.history[-1] < result.history[0]
    assert 40 < result.score < 90  # diabetes target spans ~25-346; a mean predictor gives ~77


def test_same_seed_same_result() -> None:
    data = _task("iris")
    a = train(PARAMS, data, seed=3, max_epochs=5)
    b = train(PARAMS, data, seed=3, max_epochs=5)
    assert a.history == b.history


def test_early_stopping_and_pruning_callback_stop_training() -> None:
    data = _task("iris")
    pruned = train(PARAMS, data, seed=0, max_epochs=30, on_epoch=lambda epoch, value: epoch == 4)
    assert pruned.pruned and pruned.epochs_trained == 4
    flat = TaskData("classification", "accuracy", 4, 3, data.folds, data.test_index)
    stopped = train({**PARAMS, "lr": 1e-9}, flat, seed=0, max_epochs=30, patience=2)
    assert not stopped.pruned and stopped.epochs_trained == 3  # no gain after epoch 1
    # early stopping follows the selection objective: a learning rate too small to move
    # accuracy still lowers the cross-entropy a little every epoch, so it never stops early
    on_ce = TaskData(
        "classification", "accuracy", 4, 3, data.folds, data.test_index, "cross_entropy"
    )
    slow = train({**PARAMS, "lr": 1e-5, "dropout": 0.0}, on_ce, seed=0, max_epochs=8, patience=2)
    assert slow.epochs_trained == 8 and slow.history == sorted(slow.history, reverse=True)


def test_nan_loss_raises_non_finite_error() -> None:
    data = _task("diabetes")
    with pytest.raises(NonFiniteLossError, match=r"training loss is (nan|inf) at epoch"):
        train({**PARAMS, "optimizer": "sgd", "lr": 10.0}, data, seed=0, max_epochs=3)


def test_infinite_input_is_caught_too() -> None:
    fold = Fold(
        np.full((20, 2), np.inf, dtype=np.float32), np.zeros(20, dtype=np.float32),
        np.zeros((5, 2), dtype=np.float32), np.zeros(5, dtype=np.float32),
    )  # fmt: skip
    data = TaskData("regression", "rmse", 2, 0, (fold,), np.arange(0))
    with pytest.raises(NonFiniteLossError):
        train(PARAMS, data, seed=0, max_epochs=2)
