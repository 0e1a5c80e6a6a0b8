"""Build the MLP from hyperparameters: hidden layers, units, dropout, activation, init."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# Activation -> (nonlinearity name for torch.nn.init gains, whether He init suits it).
_Nonlinearity = Literal["relu", "leaky_relu", "tanh", "sigmoid"]
_GAIN_NAME: dict[str, tuple[_Nonlinearity, bool]] = {
    "relu": ("relu", True),
    "leaky_relu": ("leaky_relu", True),
    "elu": ("relu", True),
    "gelu": ("relu", True),
    "tanh": ("tanh", False),
    "sigmoid": ("sigmoid", False),
}


def output_size(kind: str, n_classes: int) -> int:
    """Width of the head: one logit for binary and regression, one per class otherwise."""
    return n_classes if kind == "classification" and n_classes > 2 else 1


def resolve_init(init: str, activation: str) -> str:
    """Map ``auto`` to the initialisation matched to ``activation`` (He for ReLU-like, Glorot else)."""
    if init != "auto":
        return init
    return "kaiming" if _GAIN_NAME[activation][1] else "xavier"


def build_mlp(
    n_features: int,
    n_outputs: int,
    *,
    n_layers: int,
    n_units: int,
    dropout: float,
    activation: str,
    init: str,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """An MLP of ``n_layers`` hidden layers of ``n_units``; the head is linear (logits)."""
    layers: list[nn.Module] = []
    width = n_features
    for _ in range(n_layers):
        layers.append(nn.Linear(width, n_units))
        layers.append(_ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = n_units
    layers.append(nn.Linear(width, n_outputs))
    model = nn.Sequential(*layers)
    init_weights(model, resolve_init(init, activation), activation, generator)
    return model


def init_weights(
    model: nn.Module, init: str, activation: str, generator: torch.Generator | None = None
) -> None:
    """Initialise every hidden Linear layer; ``default`` keeps torch's own initialisation."""
    if init == "default":
        return
    gain_name, _ = _GAIN_NAME[activation]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        is_head = i == len(linears) - 1
        w = layer.weight
        with torch.no_grad():
            if is_head:
                nn.init.xavier_uniform_(w, generator=generator)
            elif init == "xavier":
                nn.init.xavier_uniform_(
                    w, gain=nn.init.calculate_gain(gain_name), generator=generator
                )
            elif init == "kaiming":
                nonlinearity: _Nonlinearity = (
                    "leaky_relu" if activation == "leaky_relu" else "relu"
                )
                nn.init.kaiming_uniform_(w, nonlinearity=nonlinearity, generator=generator)
            elif init == "orthogonal":
                nn.init.orthogonal_(w, gain=nn.init.calculate_gain(gain_name), generator=generator)
            elif init == "normal":
                nn.init.normal_(w, mean=0.0, std=0.02, generator=generator)
            else:
                raise ValueError(f"unknown init {init!r}")
            if layer.bias is not None:
                layer.bias.zero_()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def architecture(params: dict[str, Any]) -> dict[str, Any]:
    """The subset of hyperparameters that defines the network (for saving and display)."""
    keys = ("n_layers", "n_units", "dropout", "activation", "init")
    return {k: params[k] for k in keys}
