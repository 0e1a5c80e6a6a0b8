"""The optimizers of the study file, stepping one flat parameter tensor without ``torch.optim``.

``FlatMLP`` (:mod:`hpstudy._backprop`) keeps every weight of a network in one flat tensor and
its gradient in another, so an optimizer here is a handful of tensor operations on two
tensors. ``torch.optim``'s optimizers would do the same arithmetic, but their ``step`` (and
their ``__init__``'s hooks) import ``torch._dynamo``, torch's compiler stack: 1-3 s of every
training process's start-up, for a compiler hpstudy never uses. This module calls the same
fused kernels ``torch.optim`` calls with ``fused=True`` (``torch._fused_adam_``,
``torch._fused_adamw_``, ``torch._fused_sgd_``: one kernel per step) on CPU and CUDA, and
otherwise the formulas of ``torch.optim``'s single-tensor implementations, written out.
``tests/test_optim.py`` steps both against ``torch.optim`` and checks the parameters agree
to rounding after every step, and that no training process imports ``torch._dynamo``.

The hyperparameters are ``torch.optim``'s defaults, as hpstudy always used them: Adam and
AdamW with betas (0.9, 0.999) and eps 1e-8, SGD with momentum 0.9 (no dampening, not
Nesterov), RMSprop with alpha 0.99 and eps 1e-8 (no momentum, not centered).
"""

from __future__ import annotations

import torch

from hpstudy.config._schema import OPTIMIZERS

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
SGD_MOMENTUM = 0.9
RMSPROP_ALPHA = 0.99
_FUSED = {"adam", "adamw", "sgd"}  # torch has no fused RMSprop


def fused_available(device: torch.device) -> bool:
    """Whether torch's fused optimizer kernels run on ``device`` (CPU and CUDA)."""
    return device.type in ("cpu", "cuda")


class FlatOptimizer:
    """One of Adam, AdamW, SGD (momentum 0.9) or RMSprop over one flat tensor.

    Args:
        param: The flat parameter tensor, updated in place by :meth:`step`.
        grad: Its gradient, filled before each :meth:`step` (``FlatMLP.step_gradients``).
        name: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"rmsprop"``.
        lr: Learning rate.
        weight_decay: L2 penalty (Adam, SGD, RMSprop) or decoupled decay (AdamW).
        fused: Use torch's fused kernel (default: where the device has one); ``False`` runs
            the written-out formulas (the reference the tests compare both with).
    """

    def __init__(
        self,
        param: torch.Tensor,
        grad: torch.Tensor,
        name: str,
        lr: float,
        weight_decay: float = 0.0,
        *,
        fused: bool | None = None,
    ) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
        if param.shape != grad.shape or param.dim() != 1:
            raise ValueError("param and grad must be flat tensors of the same length")
        self.param, self.grad, self.name = param, grad, name
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        if fused is None:
            fused = fused_available(param.device)
        self.fused = fused and name in _FUSED
        self.steps = 0
        # The state, allocated as torch.optim allocates it on the first step.
        self.exp_avg: torch.Tensor | None = None
        self.exp_avg_sq: torch.Tensor | None = None
        self.buffer: torch.Tensor | None = None
        self._step_t: torch.Tensor | None = None  # the fused Adam kernels read the count here

    @torch.no_grad()
    def step(self) -> None:
        """One update of ``param`` from ``grad``."""
        self.steps += 1
        if self.name in ("adam", "adamw"):
            self._adam()
        elif self.name == "sgd":
            self._sgd()
        else:
            self._rmsprop()

    def _adam(self) -> None:
        p, g = self.param, self.grad
        decoupled = self.name == "adamw"
        if self.exp_avg is None:
            self.exp_avg = torch.zeros_like(p)
            self.exp_avg_sq = torch.zeros_like(p)
        assert self.exp_avg_sq is not None
        if self.fused:
            if self._step_t is None:
                self._step_t = torch.zeros((), dtype=torch.float32, device=p.device)
            self._step_t.add_(1)
            kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            kernel(
                [p], [g], [self.exp_avg], [self.exp_avg_sq], [], [self._step_t],
                lr=self.lr, beta1=BETA1, beta2=BETA2, weight_decay=self.weight_decay,
                eps=EPS, amsgrad=False, maximize=False,
            )  # fmt: skip
            return
        # torch.optim.adam._single_tensor_adam, without amsgrad, maximize or complex numbers.
        if self.weight_decay != 0:
            if decoupled:
                p.mul_(1 - self.lr * self.weight_decay)
            else:
                g = g.add(p, alpha=self.weight_decay)
        self.exp_avg.lerp_(g, 1 - BETA1)
        self.exp_avg_sq.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
        bias_correction1 = 1 - BETA1**self.steps
        bias_correction2 = 1 - BETA2**self.steps
        step_size = self.lr / bias_correction1
        denom = (self.exp_avg_sq.sqrt() / bias_correction2**0.5).add_(EPS)
        p.addcdiv_(self.exp_avg, denom, value=-step_size)

    def _sgd(self) -> None:
        p, g = self.param, self.grad
        if self.fused:
            first = self.buffer is None
            if self.buffer is None:
                self.buffer = torch.empty_like(p)
            torch._fused_sgd_(
                [p], [g], [self.buffer], weight_decay=self.weight_decay,
                momentum=SGD_MOMENTUM, lr=self.lr, dampening=0.0, nesterov=False,
                maximize=False, is_first_step=first,
            )  # fmt: skip
            return
        # torch.optim.sgd._single_tensor_sgd with momentum, no dampening, not Nesterov.
        if self.weight_decay != 0:
            g = g.add(p, alpha=self.weight_decay)
        if self.buffer is None:
            self.buffer = torch.clone(g).detach()
        else:
            self.buffer.mul_(SGD_MOMENTUM).add_(g)
        p.add_(self.buffer, alpha=-self.lr)

    def _rmsprop(self) -> None:
        # torch.optim.rmsprop._single_tensor_rmsprop, not centered, no momentum.
        p, g = self.param, self.grad
        if self.exp_avg_sq is None:
            self.exp_avg_sq = torch.zeros_like(p)
        if self.weight_decay != 0:
            g = g.add(p, alpha=self.weight_decay)
        self.exp_avg_sq.mul_(RMSPROP_ALPHA).addcmul_(g, g, value=1 - RMSPROP_ALPHA)
        avg = self.exp_avg_sq.sqrt().add_(EPS)
        p.addcdiv_(g, avg, value=-self.lr)
