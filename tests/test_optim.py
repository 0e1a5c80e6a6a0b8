"""The flat optimizers step exactly as torch.optim's, and training never imports torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from hpstudy._optim import SGD_MOMENTUM, FlatOptimizer
from hpstudy.config._schema import OPTIMIZERS


def _reference(
    name: str, param: torch.Tensor, lr: float, wd: float, fused: bool
) -> torch.optim.Optimizer:
    """torch.optim's optimizer with hpstudy's settings (fused, or its single-tensor code)."""
    kind = {"fused": True} if fused else {"foreach": False}
    if name == "adam":
        return torch.optim.Adam([param], lr=lr, weight_decay=wd, **kind)
    if name == "adamw":
        return torch.optim.AdamW([param], lr=lr, weight_decay=wd, **kind)
    if name == "sgd":
        return torch.optim.SGD([param], lr=lr, momentum=SGD_MOMENTUM, weight_decay=wd, **kind)
    assert not fused
    return torch.optim.RMSprop([param], lr=lr, weight_decay=wd, foreach=False)


CASES = [
    (name, fused)
    for name in OPTIMIZERS
    for fused in (True, False)
    if fused is False or name != "rmsprop"
]


@pytest.mark.parametrize("name, fused", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(3))
def test_each_step_matches_torch_optim(
    name: str, fused: bool, dtype: torch.dtype, seed: int
) -> None:
    """Random learning rates, weight decays (zero included), sizes and gradients (some large,
    some zero): after every one of 30 steps the parameters agree with torch.optim's to
    rounding (a few units in the last place of the dtype)."""
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 300, (1,), generator=gen))
    lr = float(10 ** torch.empty(1).uniform_(-4, -0.5, generator=gen))
    wd = 0.0 if seed == 0 else float(10 ** torch.empty(1).uniform_(-5, -1, generator=gen))
    start = torch.randn(n, dtype=dtype, generator=gen)
    ours, theirs = start.clone(), torch.nn.Parameter(start.clone())
    grad = torch.zeros(n, dtype=dtype)
    opt = FlatOptimizer(ours, grad, name, lr, wd, fused=fused)
    assert opt.fused == fused
    ref = _reference(name, theirs, lr, wd, fused)
    eps = torch.finfo(dtype).eps
    for step in range(30):
        g = torch.randn(n, dtype=dtype, generator=gen) * 10 ** float(
            torch.randint(-3, 3, (1,), generator=gen)
        )
        g[torch.rand(n, generator=gen) < 0.1] = 0.0
        grad.copy_(g)
        theirs.grad = g.clone()
        opt.step()
        ref.step()
        torch.testing.assert_close(
            ours,
            theirs.detach(),
            rtol=16 * eps,
            atol=16 * eps,
            msg=lambda m, step=step: f"step {step}: {m}",
        )
    assert not torch.equal(ours, start)  # it moved


def test_fused_is_the_default_on_cpu_except_rmsprop() -> None:
    p = torch.zeros(4)
    for name in OPTIMIZERS:
        assert FlatOptimizer(p, torch.zeros(4), name, 0.1).fused == (name != "rmsprop")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "adagrad"}, "unknown optimizer 'adagrad'"),
        ({"grad": torch.zeros(3)}, "same length"),
        ({"param": torch.zeros(2, 2), "grad": torch.zeros(2, 2)}, "flat tensors"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    args = {"param": torch.zeros(4), "grad": torch.zeros(4), "name": "adam", "lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        FlatOptimizer(**args)


def test_training_with_every_optimizer_never_imports_torch_dynamo() -> None:
    """A fresh process trains with each optimizer (and warms up, as a worker does): torch's
    compiler stack stays out of sys.modules."""
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from hpstudy.config._schema import HYPERPARAMETERS, OPTIMIZERS
        from hpstudy.data import Fold, TaskData
        from hpstudy.training import train, warm_up

        warm_up("cpu")
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 5)).astype(np.float32)
        y = (np.arange(40) % 2).astype(np.int64)
        data = TaskData("classification", "accuracy", 5, 2, (Fold(X, y, X, y),), np.arange(0))
        defaults = {k: d for k, (_, d) in HYPERPARAMETERS.items()}
        for name in OPTIMIZERS:
            train({**defaults, "optimizer": name, "weight_decay": 1e-3}, data, seed=0, max_epochs=2)
        print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
