"""Hand-written forward and backward passes for the MLP's training step.

Small MLPs on tabular data are bound by per-operation overhead, not FLOPs: at batch 64 on
digits, autograd's bookkeeping was ~40% of a training step and the optimizer's per-tensor loop
another ~15%. Like scikit-learn's MLP (which does this in NumPy), this module computes the
gradients of Linear / activation / dropout layers and of the loss directly, writing them
into one flat gradient buffer, and an optimizer (:mod:`hpstudy._optim`) steps one flat
parameter tensor. The ``nn.Sequential`` built by :func:`hpstudy.model.build_mlp` keeps views of
that flat tensor, so evaluation and saving use the ordinary module. ``tests/test_backprop.py`` checks every
activation, loss and dropout against autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

_LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default


def _activation_backward(
    name: str,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """(grad wrt h, z, h = act(z)) -> grad wrt z, with the single fused kernel autograd uses."""
    aten = torch.ops.aten
    if name == "relu":
        return lambda g, z, h: aten.threshold_backward(g, h, 0.0)
    if name == "leaky_relu":
        return lambda g, z, h: aten.leaky_relu_backward(g, h, _LEAKY_SLOPE, True)
    if name == "elu":
        return lambda g, z, h: aten.elu_backward(g, 1.0, 1.0, 1.0, True, h)
    if name == "tanh":
        return lambda g, z, h: aten.tanh_backward(g, h)
    if name == "sigmoid":
        return lambda g, z, h: aten.sigmoid_backward(g, h)
    if name == "gelu":  # exact (erf) GELU, as nn.GELU(); needs the pre-activation
        return lambda g, z, h: aten.gelu_backward(g, z)
    raise ValueError(f"unknown activation {name!r}")


class FlatMLP:
    """Trains an ``nn.Sequential`` MLP (Linear, activation, [Dropout])* Linear by hand.

    Args:
        model: Built by :func:`hpstudy.model.build_mlp`; its parameters become views of one
            flat tensor (the module stays usable for evaluation).
        activation: Name of the hidden activation.
        dropout: Dropout probability of the hidden layers.
        loss: ``"cross_entropy"``, ``"bce"`` (one logit), ``"mse"`` (one output) or
            ``"poisson"`` (one output: the log of the expected count).
        generator: Draws the dropout masks.
        class_weights: Per class index, the weight of its rows in the loss (cross-entropy and
            bce only); ``None``: every row weighs 1.
    """

    def __init__(
        self,
        model: nn.Sequential,
        activation: str,
        dropout: float,
        loss: str,
        generator: torch.Generator,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        self.linears = [m for m in model if isinstance(m, nn.Linear)]
        params = [p for layer in self.linears for p in (layer.weight, layer.bias)]
        total = sum(p.numel() for p in params)
        first = params[0]
        self.flat = nn.Parameter(torch.empty(total, dtype=first.dtype, device=first.device))
        self.grad = torch.zeros_like(self.flat)  # the flat gradient, filled by step_gradients
        self.flat.grad = self.grad
        self.W: list[torch.Tensor] = []
        self.b: list[torch.Tensor] = []
        self.gW: list[torch.Tensor] = []
        self.gb: list[torch.Tensor] = []
        offset = 0
        for layer in self.linears:
            for p, values, grads in (
                (layer.weight, self.W, self.gW),
                (layer.bias, self.b, self.gb),
            ):
                n = p.numel()
                view = self.flat.data[offset : offset + n].view_as(p)
                view.copy_(p.data)
                p.data = view  # the module now reads the flat tensor
                values.append(view)
                grads.append(self.grad[offset : offset + n].view_as(p))
                offset += n
        self.act = {
            "relu": torch.relu,
            "leaky_relu": nn.functional.leaky_relu,
            "elu": nn.functional.elu,
            "tanh": torch.tanh,
            "sigmoid": torch.sigmoid,
            "gelu": nn.functional.gelu,
        }[activation]
        self.act_backward = _activation_backward(activation)
        self.keep = 1.0 - dropout
        self.loss = loss
        self.gen = generator
        self.class_weights = class_weights

    def step_gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward and backward on one batch; fills the flat gradient. Returns the output."""
        n_hidden = len(self.linears) - 1
        inputs = [x]
        zs: list[torch.Tensor] = []
        hs: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        a = x
        for i in range(n_hidden):
            z = torch.addmm(self.b[i], a, self.W[i].t())
            h = self.act(z)
            zs.append(z)
            hs.append(h)
            if self.keep < 1.0:
                mask = (
                    torch.empty_like(h).bernoulli_(self.keep, generator=self.gen).div_(self.keep)
                )
                masks.append(mask)
                a = h * mask
            else:
                a = h
            inputs.append(a)
        out = torch.addmm(self.b[-1], a, self.W[-1].t())
        g = self._loss_grad(out, y)
        for i in range(n_hidden, -1, -1):
            torch.mm(g.t(), inputs[i], out=self.gW[i])
            torch.sum(g, 0, out=self.gb[i])
            if i > 0:
                g = g.mm(self.W[i])
                if masks:
                    g.mul_(masks[i - 1])
                g = self.act_backward(g, zs[i - 1], hs[i - 1])
        return out

    def _loss_grad(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d mean-loss / d out (class-weighted: the mean over rows of weight x row loss)."""
        n = out.shape[0]
        if self.loss == "cross_entropy":  # y is one-hot here (see targets())
            g = torch.softmax(out, dim=1).sub_(y).div_(n)
            if self.class_weights is not None:
                g.mul_(y.mv(self.class_weights).unsqueeze(1))
            return g
        if self.loss == "bce":
            g = (torch.sigmoid(out) - y.to(out.dtype).unsqueeze(1)).div_(n)
            if self.class_weights is not None:
                g.mul_(self.class_weights[y].unsqueeze(1))
            return g
        if self.loss == "poisson":  # loss exp(o) - y o (log link), as PoissonNLLLoss(log_input)
            return (torch.exp(out) - y.unsqueeze(1)).div_(n)
        return (out - y.unsqueeze(1)).mul_(2.0 / n)

    def targets(self, y: torch.Tensor, n_outputs: int) -> torch.Tensor:
        """Targets as ``step_gradients`` wants them: one-hot floats for cross-entropy."""
        if self.loss == "cross_entropy":
            return nn.functional.one_hot(y, n_outputs).to(self.flat.dtype)
        return y

    def loss_value(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """The mean loss of ``out`` against targets from :meth:`targets` (to notice divergence)."""
        if self.loss == "cross_entropy":
            return nn.functional.cross_entropy(out, y).item()
        if self.loss == "bce":
            return nn.functional.binary_cross_entropy_with_logits(
                out.squeeze(1), y.to(out.dtype)
            ).item()
        if self.loss == "poisson":
            return nn.functional.poisson_nll_loss(out.squeeze(1), y, log_input=True).item()
        return nn.functional.mse_loss(out.squeeze(1), y).item()
