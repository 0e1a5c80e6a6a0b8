"""The hand-written MLP gradients equal autograd's for every activation, loss and dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hpstudy._backprop import FlatMLP
from hpstudy.model import build_mlp

ACTS = ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"]


def _reference_grads(
    model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, loss: str, masks: list[torch.Tensor]
) -> list[torch.Tensor]:
    linears = [m for m in model if isinstance(m, nn.Linear)]
    acts = [m for m in model if not isinstance(m, nn.Linear | nn.Dropout)]
    params = [p for layer in linears for p in (layer.weight, layer.bias)]
    for p in params:
        p.grad = None
    a = x
    for i, layer in enumerate(linears[:-1]):
        a = acts[i](layer(a))
        if masks:
            a = a * masks[i]
    out = linears[-1](a)
    if loss == "cross_entropy":
        value = nn.functional.cross_entropy(out, y)
    elif loss == "bce":
        value = nn.functional.binary_cross_entropy_with_logits(out.squeeze(1), y.float())
    else:
        value = nn.functional.mse_loss(out.squeeze(1), y)
    value.backward()
    return [p.grad.detach().clone() for p in params]  # type: ignore[union-attr]


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loss, n_out", [("cross_entropy", 4), ("bce", 1), ("mse", 1)])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gradients_match_autograd(activation: str, loss: str, n_out: int, dropout: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(17, 5, dtype=torch.float64)
    y = {
        "cross_entropy": torch.randint(0, 4, (17,)),
        "bce": torch.randint(0, 2, (17,)),
        "mse": torch.randn(17, dtype=torch.float64),
    }[loss]
    model = build_mlp(
        5, n_out, n_layers=2, n_units=7, dropout=dropout, activation=activation, init="auto"
    ).double()
    gen = torch.Generator().manual_seed(1)
    engine = FlatMLP(model, activation, dropout, loss, gen)
    replay = torch.Generator().manual_seed(1)
    masks = (
        [
            torch.empty(17, 7, dtype=torch.float64)
            .bernoulli_(1 - dropout, generator=replay)
            .div_(1 - dropout)
            for _ in range(2)
        ]
        if dropout
        else []
    )
    engine.step_gradients(x, engine.targets(y, n_out))
    expected = _reference_grads(model, x, y, loss, masks)
    got = [g for pair in zip(engine.gW, engine.gb, strict=True) for g in pair]
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)


def test_module_shares_the_flat_parameters() -> None:
    model = build_mlp(3, 2, n_layers=1, n_units=4, dropout=0.0, activation="relu", init="auto")
    before = [p.detach().clone() for p in model.parameters()]
    engine = FlatMLP(model, "relu", 0.0, "cross_entropy", torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    opt = torch.optim.SGD([engine.flat], lr=0.5)
    engine.step_gradients(torch.randn(8, 3), engine.targets(torch.randint(0, 2, (8,)), 2))
    opt.step()
    assert not any(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("loss", "n_out", "weighted"),
    [("poisson", 1, False), ("cross_entropy", 4, True), ("bce", 1, True)],
)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_poisson_and_class_weighted_gradients_match_autograd(
    activation: str, loss: str, n_out: int, weighted: bool
) -> None:
    """Poisson NLL with a log link, and class-weighted losses: the mean over rows of the row's
    class weight times its loss (weights as given, not renormalised)."""
    torch.manual_seed(0)
    x = torch.randn(19, 5, dtype=torch.float64)
    y = {
        "poisson": torch.poisson(torch.full((19,), 3.0, dtype=torch.float64)),
        "cross_entropy": torch.randint(0, 4, (19,)),
        "bce": torch.randint(0, 2, (19,)),
    }[loss]
    weights = torch.tensor([0.5, 3.0, 1.0, 2.0][: max(n_out, 2)], dtype=torch.float64)
    model = build_mlp(5, n_out, n_layers=2, n_units=6, dropout=0.0, activation=activation,
                      init="auto").double()  # fmt: skip
    engine = FlatMLP(
        model, activation, 0.0, loss, torch.Generator().manual_seed(1),
        class_weights=weights if weighted else None,
    )  # fmt: skip
    engine.step_gradients(
        x, engine.targets(y, max(n_out, 2) if loss == "cross_entropy" else n_out)
    )
    params = [p for m in model if isinstance(m, nn.Linear) for p in (m.weight, m.bias)]
    for p in params:
        p.grad = None
    out = model(x)
    if loss == "poisson":
        value = nn.functional.poisson_nll_loss(out.squeeze(1), y, log_input=True)
    elif loss == "cross_entropy":
        value = (nn.functional.cross_entropy(out, y, reduction="none") * weights[y]).mean()
    else:
        rows = nn.functional.binary_cross_entropy_with_logits(
            out.squeeze(1), y.double(), reduction="none"
        )
        value = (rows * weights[y]).mean()
    value.backward()
    got = [g for pair in zip(engine.gW, engine.gb, strict=True) for g in pair]
    for p, g in zip(params, got, strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-9, atol=1e-12)
