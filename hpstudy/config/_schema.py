"""Validated, frozen configuration objects and the vocabulary of allowed values.

Every name here is the name used everywhere else: the TOML key, the Python attribute, the Optuna
parameter name, the report axis and the CSV column.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeGuard

STRATEGIES = ("manual", "grid", "random", "tpe", "gp", "cmaes", "qmc")
CORE_STRATEGIES = ("manual", "grid", "random", "tpe")

BUILTIN_DATASETS = {
    "digits": "classification",
    "breast_cancer": "classification",
    "wine": "classification",
    "iris": "classification",
    "hypercube": "classification",
    "hastie": "classification",
    "diabetes": "regression",
    "friedman1": "regression",
    "friedman2": "regression",
    "friedman3": "regression",
}
KINDS = ("classification", "regression")

# metric -> (kind, direction)
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("classification", "maximize"),
    "f1_macro": ("classification", "maximize"),
    "roc_auc": ("classification", "maximize"),
    "log_loss": ("classification", "minimize"),
    "rmse": ("regression", "minimize"),
    "mae": ("regression", "minimize"),
    "r2": ("regression", "maximize"),
    # benchmark tasks only: what their tables hold (validation MSE, balanced accuracy)
    "mse": ("regression", "minimize"),
    "balanced_accuracy": ("classification", "maximize"),
}
BENCHMARK_METRICS = ("mse", "balanced_accuracy")
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}

# metric -> default non-inferiority margin: a number is in the metric's units, "1%" is relative
# to the baseline's median test score (for error metrics, whose scale depends on the data).
DEFAULT_MARGINS: dict[str, float | str] = {
    "accuracy": 0.005,
    "f1_macro": 0.005,
    "roc_auc": 0.005,
    "log_loss": "2%",
    "rmse": "1%",
    "mae": "1%",
    "r2": 0.01,
    "mse": "1%",
    "balanced_accuracy": 0.005,
}

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid")
INITS = ("auto", "xavier", "kaiming", "orthogonal", "normal", "default")
INIT_ALIASES = {"glorot": "xavier", "he": "kaiming"}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
DEVICES = ("auto", "cpu", "cuda")
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband")

# name -> (type, default, allowed choices for categoricals)
HYPERPARAMETERS: dict[str, tuple[str, Any]] = {
    "n_layers": ("int", 2),
    "n_units": ("int", 64),
    "dropout": ("float", 0.2),
    "activation": ("categorical", "relu"),
    "init": ("categorical", "auto"),
    "lr": ("float", 1e-3),
    "optimizer": ("categorical", "adam"),
    "batch_size": ("int", 64),
    "weight_decay": ("float", 0.0),
    "epochs": ("int", None),  # None: training.max_epochs
}
CATEGORICAL_CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "init": INITS,
    "optimizer": OPTIMIZERS,
}


@dataclass(frozen=True)
class ParamConfig:
    """One hyperparameter: searched (a range or choices) or fixed (``value``).

    Attributes:
        name: Hyperparameter name (a key of ``HYPERPARAMETERS``).
        kind: ``"int"``, ``"float"``, ``"categorical"`` or ``"fixed"``.
        low, high, log, step: Range of a numeric parameter.
        choices: Values of a categorical parameter.
        grid: Values the grid strategy visits (``None`` when not declared).
        value: The value of a fixed parameter.
    """

    name: str
    kind: Literal["int", "float", "categorical", "fixed"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    grid: tuple[Any, ...] | None = None
    value: Any = None

    @property
    def searched(self) -> bool:
        return self.kind != "fixed"


@dataclass(frozen=True)
class TaskConfig:
    """A dataset, its kind, the metric to optimise and how to split it."""

    name: str
    dataset: str | None
    csv: str | None  # absolute path once loaded
    target: str | None
    kind: str | None  # None: inferred from the target when the data are loaded
    metric: str | None  # None: the kind's default
    test_size: float = 0.2
    val_size: float = 0.2
    cv_folds: int = 0
    features: tuple[str, ...] | None = None  # csv only: the input columns (None: all but target)
    drop: tuple[str, ...] = ()  # csv only: columns not to use as inputs
    # Report-only: the non-inferiority margin (metric units, or "N%" of the baseline's score).
    # Not part of what makes trials comparable, so it is left out of the fingerprint.
    margin: float | str | None = None
    # A published tabular benchmark ("fcnet/protein_structure"): a trial is a table lookup
    # (hpstudy/data/_benchmarks.py); dataset, csv and the split keys are then unused.
    benchmark: str | None = None

    def resolved_metric(self, kind: str) -> str:
        return self.metric or DEFAULT_METRIC[kind]

    def resolved_margin(self, metric: str) -> float | str:
        """The margin the report uses: the task's own, else the metric's default."""
        return self.margin if self.margin is not None else DEFAULT_MARGINS[metric]


@dataclass(frozen=True)
class BudgetConfig:
    n_trials: int
    timeout: float | None = None
    # grid with n_trials below its size visits a seed-shuffled subset of its points; only when
    # the file says so (the report then labels it "grid (k of N points)").
    grid_subset: bool = False


@dataclass(frozen=True)
class ReportConfig:
    """Report-only settings (never part of the fingerprint).

    Attributes:
        baseline: The strategy every other is compared with; ``None``: grid when listed, else
            the first non-manual strategy listed.
    """

    baseline: str | None = None


@dataclass(frozen=True)
class TrainingConfig:
    max_epochs: int = 50
    patience: int = 10
    device: str = "auto"
    torch_threads: int = 1


@dataclass(frozen=True)
class PrunerConfig:
    type: str = "median"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole study file, validated.

    Attributes:
        name: Experiment name, the first part of every study name.
        source: Path of the study file (for messages).
        text: The study file's text, stored with every study so it can be resumed from storage.
        tasks, space, strategies, seeds, budget, training, pruner: See the user guide.
        manual: Hand-picked configurations (searched parameters only), in order.
    """

    name: str
    source: str
    text: str
    tasks: tuple[TaskConfig, ...]
    space: dict[str, ParamConfig]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    budget: BudgetConfig
    training: TrainingConfig
    pruner: PrunerConfig
    manual: tuple[dict[str, Any], ...] = ()
    report: ReportConfig = field(default_factory=ReportConfig)

    def task(self, name: str) -> TaskConfig:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def baseline(self) -> str:
        """The strategy the report compares every other with."""
        if self.report.baseline is not None:
            return self.report.baseline
        if "grid" in self.strategies:
            return "grid"
        return next((s for s in self.strategies if s != "manual"), self.strategies[0])

    def grid_size(self) -> int:
        """Points of the full grid (the product of every searched parameter's grid)."""
        size = 1
        for p in self.searched_params().values():
            size *= len(p.grid or ())
        return size

    def searched_params(self) -> dict[str, ParamConfig]:
        return {n: p for n, p in self.space.items() if p.searched}

    @property
    def benchmark_family(self) -> str | None:
        """The tabular benchmark every task of this file looks up (``fcnet``,
        ``hpobench_nn``), or ``None`` for trained tasks (a file never mixes the two)."""
        if self.tasks and self.tasks[0].benchmark is not None:
            return self.tasks[0].benchmark.split("/", 1)[0]
        return None

    def fixed_params(self) -> dict[str, Any]:
        """Values of every hyperparameter that is not searched (defaults included)."""
        if self.benchmark_family is not None:  # a table's hyperparameters have no defaults
            return {n: p.value for n, p in self.space.items() if not p.searched}
        fixed: dict[str, Any] = {}
        for name, (_, default) in HYPERPARAMETERS.items():
            param = self.space.get(name)
            if param is None:
                fixed[name] = self.training.max_epochs if name == "epochs" else default
            elif not param.searched:
                fixed[name] = param.value
        return fixed

    def fingerprint(self, task: TaskConfig) -> str:
        """Hash of everything that makes two trials of ``task`` comparable."""
        payload = {
            "task": _task_identity(task),
            "space": {n: asdict(p) for n, p in sorted(self.space.items())},
            "training": asdict(self.training),
            "pruner": {"type": self.pruner.type, "settings": self.pruner.settings},
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _task_identity(task: TaskConfig) -> dict[str, Any]:
    identity = asdict(task)
    # The chosen columns change what trials learn from; unset, they are left out so that
    # experiments created before these keys existed keep their fingerprint.
    for key in ("features", "drop", "benchmark"):
        if not identity[key]:
            del identity[key]
    del identity["margin"]  # report-only: existing experiments keep their fingerprint
    if task.csv is not None:
        # The data themselves, not where they lie, make trials comparable.
        with open(task.csv, "rb") as f:
            identity["csv"] = hashlib.sha256(f.read()).hexdigest()
    return identity


def study_name(experiment: str, task: str, strategy: str, seed: int) -> str:
    """The readable, stable name of one study, e.g. ``digits-mlp.digits.tpe.s0``."""
    return f"{experiment}.{task}.{strategy}.s{seed}"


# Experiment and task names: they become parts of study names and of file names, so they are
# checked whole (``fullmatch``: ``$`` in ``re.match`` would let a trailing newline through).
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def is_valid_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a name of letters, digits, ``-`` and ``_`` (not starting with a
    separator): safe in a study name and as a file name, wherever it was read from."""
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None
