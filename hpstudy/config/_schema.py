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


@dataclass(frozen=True)
class StrategyNames:
    """How a strategy is named and drawn, and whether its trials are exchangeable.

    ``exchangeable``: its trials do not depend on each other (grid points in a seeded shuffle,
    independent random draws), so every ordering of them is an equally likely run; a
    sequential strategy (TPE, GP, CMA-ES, QMC's low-discrepancy sequence) has only the order
    it ran in. The analysis reads this to compare compute like with like.
    """

    label: str
    color: str
    exchangeable: bool


# The one copy of each strategy's name in prose and colour (the registry, the analysis and the
# figures read it here: this module imports nothing heavy).
STRATEGY_NAMES = {
    "manual": StrategyNames("manual picks", "#7f7f7f", False),
    "grid": StrategyNames("grid search", "#1f77b4", True),
    "random": StrategyNames("random search", "#ff7f0e", True),
    "tpe": StrategyNames("TPE", "#2ca02c", False),
    "gp": StrategyNames("GP", "#d62728", False),
    "cmaes": StrategyNames("CMA-ES", "#9467bd", False),
    "qmc": StrategyNames("QMC", "#8c564b", False),
}
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
# Task keys added after experiments were stored: left out of the fingerprint when unset
# (None, empty, false), so experiments created before them keep their fingerprint.
TASK_OPTIONAL_KEYS = (
    "sep",
    "quotechar",
    "categorical",
    "drop_missing_target",
    "loss",
    "class_weight",
)
# Training losses a task may choose (regression only; classification uses cross-entropy).
REGRESSION_LOSSES = ("mse", "poisson")
CLASS_WEIGHTS = ("balanced",)

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
# What a trial's value (the selection objective) can be: any metric, or the validation
# cross-entropy of a classifier. Accuracy saturates on small data (many configurations tie
# for best), so classification selects on cross-entropy unless a task says otherwise
# (``select``); the task's metric is still what the report compares on test data.
OBJECTIVES: dict[str, tuple[str, str]] = {
    **METRICS,
    "cross_entropy": ("classification", "minimize"),
}
DEFAULT_SELECT = {"classification": "cross_entropy"}  # regression: the task's metric

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
    # What trials are selected on (their value): ``None`` is the kind's default (cross-entropy
    # for classification, the metric for regression); see ``resolved_select``.
    select: str | None = None
    # Report-only: the non-inferiority margin (metric units, or "N%" of the baseline's score).
    # Not part of what makes trials comparable, so it is left out of the fingerprint.
    margin: float | str | None = None
    # csv only: how the file is read and what its columns are (see docs/study-file.md)
    sep: str | None = None  # None: sniffed from the file (comma, tab, semicolon, pipe)
    quotechar: str | None = None  # None: sniffed (double quote when nothing says otherwise)
    categorical: tuple[str, ...] = ()  # columns one-hot encoded even when they hold numbers
    drop_missing_target: bool = False  # leave out rows without a target (one warning line)
    # training options of the task
    loss: str | None = None  # None: the kind's default; "poisson" for counts (regression)
    class_weight: str | None = None  # "balanced": classes weighted by n / (k * n_class)
    # A published tabular benchmark ("fcnet/protein_structure"): a trial is a table lookup
    # (hpstudy/data/_benchmarks.py); dataset, csv and the split keys are then unused.
    benchmark: str | None = None

    def resolved_metric(self, kind: str) -> str:
        return self.metric or DEFAULT_METRIC[kind]

    def resolved_select(self, kind: str) -> str:
        """The selection objective: the task's own ``select``, else the kind's default (a
        benchmark task selects on what its table holds, its metric)."""
        if self.benchmark is not None:
            return self.select or self.resolved_metric(kind)
        return self.select or DEFAULT_SELECT.get(kind) or self.resolved_metric(kind)

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

    def fingerprint(self, task: TaskConfig, kind: str | None = None) -> str:
        """Hash of everything that makes two trials of ``task`` comparable.

        ``kind`` is the task's kind when the file leaves it to the data (a CSV task without
        ``kind`` or ``metric``): the selection objective depends on it.
        """
        payload = {
            "task": _task_identity(task, kind),
            "space": {n: asdict(p) for n, p in sorted(self.space.items())},
            "training": asdict(self.training),
            "pruner": {"type": self.pruner.type, "settings": self.pruner.settings},
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _task_identity(task: TaskConfig, kind: str | None = None) -> dict[str, Any]:
    identity = asdict(task)
    kind = task.kind or (METRICS[task.metric][0] if task.metric else None) or kind
    # Trials selected on another objective than the metric are not comparable with trials
    # selected on the metric; selecting on the metric itself (every study made before
    # ``select`` existed) leaves the key out, so those keep their fingerprint. (Callers that
    # cannot know a CSV task's kind get "default": runner and resume always pass it.)
    del identity["select"]
    select = task.resolved_select(kind) if kind else task.select or "default"
    if kind is None or select != task.resolved_metric(kind):
        identity["select"] = select
    # The chosen columns change what trials learn from; unset, they are left out so that
    # experiments created before these keys existed keep their fingerprint.
    for key in ("features", "drop", "benchmark", *TASK_OPTIONAL_KEYS):
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
# At most MAX_NAME_LENGTH characters: a study name holds two names and a model folder
# (models/EXPERIMENT-TASK) both, within the 255 bytes a file name may have.
MAX_NAME_LENGTH = 100
_NAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_NAME_LENGTH - 1}}}")


def is_valid_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a name of at most 100 letters, digits, ``-`` and ``_`` (not starting with a
    separator): safe in a study name and as a file name, wherever it was read from."""
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None
