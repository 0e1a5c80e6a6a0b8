"""Build the MLP from hyperparameters: hidden layers, units, dropout, activation, init.

Also the sizes and memory estimates of a space. torch is imported where a network is built,
not at module level: the report reads :func:`resolve_init` and must not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpstudy.config import ExperimentConfig
    from hpstudy.data import TaskData

# Activation -> the torch.nn module class that computes it.
_ACTIVATIONS: dict[str, str] = {
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "gelu": "GELU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
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
    from torch import nn

    layers: list[nn.Module] = []
    width = n_features
    for _ in range(n_layers):
        layers.append(nn.Linear(width, n_units))
        layers.append(getattr(nn, _ACTIVATIONS[activation])())
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
    import torch
    from torch import nn

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


def parameter_count(n_features: int, n_outputs: int, n_layers: int, n_units: int) -> int:
    """Weights and biases of :func:`build_mlp`'s network, without building it."""
    widths = [n_features, *([n_units] * n_layers), n_outputs]
    return sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))


def training_bytes(
    n_params: int, n_layers: int, n_units: int, batch_size: int, n_valid: int, n_networks: int
) -> int:
    """About how much memory training takes: per network, float32 weights, gradients, two
    optimizer moments and the best epoch's copy (5 x params), plus the activations of a
    training batch (kept for the backward pass, with dropout masks and gradients) and of the
    validation pass. ``n_networks`` is the number of cv folds trained in lockstep."""
    activations = 3 * batch_size * n_units * n_layers + 2 * max(n_valid, batch_size) * n_units
    return n_networks * 4 * (5 * n_params + activations)


def available_bytes(device: str) -> tuple[int, str]:
    """Memory a trial may use on ``device`` (``auto`` follows :func:`resolve_device`), and a
    name for it: the GPU's memory with CUDA, else the machine's available memory, or what
    this process's resource limits (``ulimit -d`` / ``-v``) leave if that is less."""
    import os

    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        _, total = torch.cuda.mem_get_info()
        return int(total), "GPU memory"
    have, what = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "memory"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    have, what = int(line.split()[1]) * 1024, "available memory"
    except OSError:
        pass
    left = _limit_left()
    if left is not None and left < have:
        return max(left, 0), "memory this process's limits leave"
    return have, what


def _limit_left() -> int | None:
    """Bytes the process's data and address-space limits still allow (``None``: no limit)."""
    import os
    import resource

    try:
        with open("/proc/self/statm") as f:
            size, _, _, _, _, data, _ = (int(v) for v in f.read().split())
    except (OSError, ValueError):
        return None
    page = os.sysconf("SC_PAGE_SIZE")
    left = []
    for which, used in ((resource.RLIMIT_DATA, data), (resource.RLIMIT_AS, size)):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY:
            left.append(soft - used * page)
    return min(left) if left else None


def largest_configuration(space: dict[str, Any], fixed: dict[str, Any]) -> dict[str, int]:
    """The largest ``n_layers``, ``n_units`` and ``batch_size`` a search space allows
    (``space``: name -> :class:`~hpstudy.config.ParamConfig`; ``fixed``: the other values)."""
    largest = {}
    for name in ("n_layers", "n_units", "batch_size"):
        param = space.get(name)
        if param is None or not param.searched:
            largest[name] = int(fixed[name])
            continue
        values = [*(param.choices or ()), *(param.grid or ())]
        if param.high is not None:
            values.append(param.high)
        largest[name] = int(max(values))
    return largest


def size_note(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.3g} MB"


def check_space_fits(config: ExperimentConfig, task: str, prepared: TaskData) -> None:
    """Refuse a search space whose largest network cannot be trained in this machine's memory
    (every trial of that size would fail), naming the keys and the estimate."""
    from hpstudy._errors import ConfigError

    big = largest_configuration(config.space, config.fixed_params())
    n_params = parameter_count(
        prepared.n_features,
        output_size(prepared.kind, prepared.n_classes),
        big["n_layers"],
        big["n_units"],
    )
    need = training_bytes(
        n_params,
        big["n_layers"],
        big["n_units"],
        big["batch_size"],
        len(prepared.folds[0].y_valid),
        len(prepared.folds),
    )
    have, what = available_bytes(config.training.device)
    if need > have:
        shown = ", ".join(f"{k} = {v}" for k, v in big.items())
        raise ConfigError(
            f"task {task!r}: the largest configuration of the space ({shown}) has "
            f"{n_params:,} parameters and needs about {size_note(need)} to train, more than "
            f"the {size_note(have)} of {what} here; lower space.n_units or "
            "space.n_layers (their high, grid or choices)",
            source=config.source,
        )


def _estimate(params: dict[str, Any], data: TaskData) -> tuple[int, int, str]:
    """(parameters, bytes to train, the sizes as ``key = value`` text) of one configuration."""
    n_layers, n_units, batch = (int(params[k]) for k in ("n_layers", "n_units", "batch_size"))
    n_params = parameter_count(
        data.n_features, output_size(data.kind, data.n_classes), n_layers, n_units
    )
    need = training_bytes(
        n_params, n_layers, n_units, batch, len(data.folds[0].y_valid), len(data.folds)
    )
    sizes = f"n_layers = {n_layers}, n_units = {n_units}, batch_size = {batch}"
    return n_params, need, sizes


def memory_shortfall(params: dict[str, Any], data: TaskData, device: str) -> str | None:
    """A ``fail_reason`` when the configuration's estimated training memory exceeds what is
    available now (checked before each trial, so a too-large one fails at once instead of
    swapping or dying in the allocator); ``None`` when it fits."""
    n_params, need, sizes = _estimate(params, data)
    have, what = available_bytes(device)
    if need <= have:
        return None
    return (
        f"out of memory: {sizes} ({n_params:,} parameters) needs about {size_note(need)} to "
        f"train, more than the {size_note(have)} of {what} (estimated before training); "
        "lower n_units, n_layers or batch_size in the space"
    )


def out_of_memory_reason(
    error: BaseException, params: dict[str, Any], data: TaskData
) -> str | None:
    """A readable ``fail_reason`` when ``error`` is an allocator's out-of-memory error (CPU
    ``MemoryError`` or "can't allocate memory", CUDA ``OutOfMemoryError``); ``None`` otherwise."""
    import torch

    text = str(error)
    if not (
        isinstance(error, MemoryError | torch.OutOfMemoryError)
        or "can't allocate memory" in text
        or "out of memory" in text.lower()
    ):
        return None
    n_params, need, sizes = _estimate(params, data)
    return (
        f"out of memory: {sizes} ({n_params:,} parameters) needs about {size_note(need)} to "
        "train; lower n_units, n_layers or batch_size in the space"
    )
