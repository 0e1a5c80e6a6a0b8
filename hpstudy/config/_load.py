"""Load a study file and validate all of it before anything runs.

Every problem is collected with its dotted key, the bad value and the fix, and reported at
once as one :class:`~hpstudy.ConfigError`.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from hpstudy._errors import ConfigError
from hpstudy.config._benchmarks import BENCHMARK_NAMES, FAMILIES, match_level
from hpstudy.config._schema import (
    BENCHMARK_METRICS,
    BUILTIN_DATASETS,
    CATEGORICAL_CHOICES,
    CLASS_WEIGHTS,
    DEVICES,
    HYPERPARAMETERS,
    INIT_ALIASES,
    KINDS,
    MAX_NAME_LENGTH,
    METRICS,
    OBJECTIVES,
    PRUNERS,
    REGRESSION_LOSSES,
    STRATEGIES,
    BudgetConfig,
    ExperimentConfig,
    ParamConfig,
    PrunerConfig,
    ReportConfig,
    TaskConfig,
    TrainingConfig,
    is_valid_name,
)

_TOP_KEYS = {
    "name",
    "description",
    "seeds",
    "strategies",
    "budget",
    "training",
    "pruner",
    "tasks",
    "space",
    "manual",
    "report",
}
_REPORT_KEYS = {"baseline"}
_TASK_KEYS = {
    "name",
    "dataset",
    "csv",
    "target",
    "kind",
    "metric",
    "select",
    "test_size",
    "val_size",
    "cv_folds",
    "features",
    "drop",
    "margin",
    # csv reading and columns, and training options (see TaskConfig)
    "sep",
    "quotechar",
    "categorical",
    "drop_missing_target",
    "loss",
    "class_weight",
    "benchmark",
}
_BENCHMARK_TASK_KEYS = {"name", "benchmark", "metric", "margin"}
# Strategies whose samplers do not search categorical spaces: on a benchmark's levels they
# would fall back to independent random sampling and be random search under another name.
_NOT_FOR_BENCHMARKS = {
    "cmaes": "CMA-ES samples continuous spaces only",
    "qmc": "QMC samples continuous spaces only",
}
# The most grid points a grid may have (with grid_subset, n_trials may be far below it).
MAX_GRID_POINTS = 100_000  # as many as n_trials may be
_PARAM_KEYS = {"low", "high", "log", "step", "choices", "grid"}
# pruner type -> {setting: (check, default)}
_PRUNER_SETTINGS: dict[str, dict[str, Any]] = {
    "none": {},
    "median": {"n_startup_trials": 5, "n_warmup_steps": 5, "interval_steps": 1},
    "percentile": {
        "percentile": 25.0,
        "n_startup_trials": 5,
        "n_warmup_steps": 5,
        "interval_steps": 1,
    },
    "successive_halving": {
        "min_resource": "auto",
        "reduction_factor": 4,
        "min_early_stopping_rate": 0,
    },
    "hyperband": {"min_resource": 1, "max_resource": "auto", "reduction_factor": 3},
}


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a study file.

    Args:
        path: The TOML study file.

    Returns:
        The validated experiment.

    Raises:
        ConfigError: The file is missing, is not TOML, or has any invalid entry; every
            problem is listed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"study file not found: {path}; give the path of a .toml file, e.g. studies/quickstart.toml"
        )
    text = path.read_text(encoding="utf-8")
    return parse_config(text, source=str(path), base_dir=path.parent)


def parse_config(
    text: str, source: str = "<study file>", base_dir: Path | None = None
) -> ExperimentConfig:
    """Validate the text of a study file (``base_dir`` resolves relative CSV paths)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", source) from e
    v = _Validator(base_dir or Path.cwd())
    config = v.experiment(raw, source, text)
    if v.problems or config is None:
        raise ConfigError(v.problems, source)
    return config


def _fmt(value: Any) -> str:
    """A value as the user wrote it in TOML."""
    if isinstance(value, bool):
        return str(value).lower()
    return "nothing" if value is None else repr(value)


def _cut(value: Any, limit: int = 60) -> Any:
    """A long string shortened for a message (the rest counted, not shown)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value)} characters)"
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        (isinstance(value, int | float)) and not isinstance(value, bool) and math.isfinite(value)
    )


class _Validator:
    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[str] = []
        self.invalid_params: set[str] = set()

    def bad(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def unknown_keys(self, table: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                where = f"{prefix}.{key}" if prefix else key
                self.bad(where, f"unknown key; allowed keys are {', '.join(sorted(allowed))}")

    def table(self, raw: dict[str, Any], key: str) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            self.bad(key, f"must be a table ([{key}]), got {_fmt(value)}")
            return {}
        return value

    def int_in(
        self,
        table: dict[str, Any],
        key: str,
        prefix: str,
        default: int,
        low: int,
        high: int | None = None,
    ) -> int:
        value = table.get(key, default)
        if not _is_int(value) or value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high is not None else f">= {low}"
            self.bad(f"{prefix}.{key}", f"must be an integer {limit}, got {_fmt(value)}")
            return default
        return int(value)

    def float_in(
        self,
        table: dict[str, Any],
        key: str,
        prefix: str,
        default: float,
        low: float,
        high: float,
        *,
        open_low: bool = True,
        open_high: bool = True,
    ) -> float:
        value = table.get(key, default)
        ok = (
            _is_number(value)
            and (value > low if open_low else value >= low)
            and (value < high if open_high else value <= high)
        )
        if not ok:
            lo = "(" if open_low else "["
            hi = ")" if open_high else "]"
            self.bad(
                f"{prefix}.{key}", f"must be a number in {lo}{low}, {high}{hi}, got {_fmt(value)}"
            )
            return default
        return float(value)

    # -- sections -----------------------------------------------------------------------------

    def experiment(self, raw: dict[str, Any], source: str, text: str) -> ExperimentConfig | None:
        self.unknown_keys(raw, _TOP_KEYS, "")
        name = raw.get("name")
        if not is_valid_name(name):
            self.bad(
                "name",
                f"must be a name of at most {MAX_NAME_LENGTH} letters, digits, '-' and '_' (it starts every study name), got {_fmt(_cut(name))}",
            )
            name = "invalid"
        if "description" in raw and not isinstance(raw["description"], str):
            self.bad("description", f"must be a string, got {_fmt(raw['description'])}")
        seeds = self.seeds(raw.get("seeds", 1))
        strategies = self.strategies(raw.get("strategies"))
        budget = self.budget(self.table(raw, "budget"))
        training = self.training(self.table(raw, "training"))
        pruner = self.pruner(self.table(raw, "pruner"), training)
        tasks = self.tasks(raw.get("tasks"))
        family = self.benchmark_family(tasks, raw, strategies)
        if family is not None:
            pruner = PrunerConfig(type="none")
            space = self.benchmark_space(self.table(raw, "space"), family)
        else:
            space = self.space(self.table(raw, "space"), training)
        if "grid" in strategies:
            self.grid_declared(space)
        manual = self.manual(raw.get("manual"), space, "manual" in strategies, family)
        report = self.report(self.table(raw, "report"), strategies)
        if "grid" in strategies and not self.problems:
            size = 1
            for p in space.values():
                if p.searched:
                    size *= len(p.grid or ())
            if size > MAX_GRID_POINTS:
                # Optuna's GridSampler lists every point in memory (and hpstudy its order),
                # so a grid this large cannot even be shuffled, whatever n_trials says
                self.bad(
                    "space",
                    f"the grid has {size:,} points (the product of every grid list's length), "
                    f"over the {MAX_GRID_POINTS:,} hpstudy can enumerate; shorten the grid lists, "
                    "or search a large space with random or tpe instead",
                )
            elif budget.n_trials < size and not budget.grid_subset:
                self.bad(
                    "budget.n_trials",
                    f"{budget.n_trials} is below the grid's {size} points, so grid would visit a random subset; "
                    f"set n_trials = {size}, shrink the grid, or add grid_subset = true to [budget]",
                )
        if self.problems:
            return None
        return ExperimentConfig(
            name=name,
            source=source,
            text=text,
            tasks=tasks,
            space=space,
            strategies=strategies,
            seeds=seeds,
            budget=budget,
            training=training,
            pruner=pruner,
            manual=manual,
            report=report,
        )

    def report(self, table: dict[str, Any], strategies: tuple[str, ...]) -> ReportConfig:
        self.unknown_keys(table, _REPORT_KEYS, "report")
        baseline = table.get("baseline")
        if baseline is not None and baseline not in strategies:
            self.bad(
                "report.baseline",
                f"must be one of this file's strategies ({', '.join(strategies)}), got {_fmt(baseline)}",
            )
            baseline = None
        return ReportConfig(baseline=baseline)

    def margin(self, raw: dict[str, Any], prefix: str) -> float | str | None:
        value = raw.get("margin")
        if value is None:
            return None
        if _is_number(value) and value > 0:
            return float(value)
        if (
            isinstance(value, str)
            and re.fullmatch(r"\d+(\.\d+)?%", value.strip())
            and 0 < float(value.strip()[:-1]) < 100
        ):
            return value.strip()
        self.bad(
            f"{prefix}.margin",
            f"must be a number > 0 in the metric's units (e.g. 0.005) or a percentage of the baseline's score (e.g. \"1%\"), got {_fmt(value)}",
        )
        return None

    def seeds(self, value: Any) -> tuple[int, ...]:
        if _is_int(value) and 1 <= value <= 1000:
            return tuple(range(value))
        if isinstance(value, list) and value and all(_is_int(s) and s >= 0 for s in value):
            if len(set(value)) != len(value):
                self.bad("seeds", f"must not repeat a seed, got {value}")
            return tuple(value)
        self.bad(
            "seeds",
            f"must be a count (e.g. 5 for seeds 0-4) or a list of integers >= 0, got {_fmt(value)}",
        )
        return (0,)

    def strategies(self, value: Any) -> tuple[str, ...]:
        if value is None:
            self.bad(
                "strategies",
                f"is required: list the strategies to compare, from {', '.join(STRATEGIES)}",
            )
            return ()
        if not isinstance(value, list) or not value:
            self.bad(
                "strategies",
                f"must be a non-empty list from {', '.join(STRATEGIES)}, got {_fmt(value)}",
            )
            return ()
        for i, s in enumerate(value):
            if s not in STRATEGIES:
                self.bad(
                    f"strategies[{i}]",
                    f"unknown strategy {_fmt(s)}; choose from {', '.join(STRATEGIES)}",
                )
        if len(set(map(str, value))) != len(value):
            self.bad("strategies", f"must not repeat a strategy, got {value}")
        return tuple(str(s) for s in value)

    def budget(self, table: dict[str, Any]) -> BudgetConfig:
        self.unknown_keys(table, {"n_trials", "timeout", "grid_subset"}, "budget")
        if "n_trials" not in table:
            self.bad(
                "budget.n_trials",
                "is required: the number of finished trials per study, e.g. n_trials = 50",
            )
        n_trials = self.int_in(table, "n_trials", "budget", 1, 1, 100_000)
        timeout = None
        if "timeout" in table:
            timeout = self.float_in(table, "timeout", "budget", 60.0, 0, math.inf)
        grid_subset = table.get("grid_subset", False)
        if not isinstance(grid_subset, bool):
            self.bad("budget.grid_subset", f"must be true or false, got {_fmt(grid_subset)}")
            grid_subset = False
        return BudgetConfig(n_trials=n_trials, timeout=timeout, grid_subset=grid_subset)

    def training(self, table: dict[str, Any]) -> TrainingConfig:
        self.unknown_keys(table, {"max_epochs", "patience", "device", "torch_threads"}, "training")
        max_epochs = self.int_in(table, "max_epochs", "training", 50, 1, 100_000)
        patience = self.int_in(table, "patience", "training", 10, 0)
        device = table.get("device", "auto")
        if device not in DEVICES:
            self.bad("training.device", f"must be one of {', '.join(DEVICES)}, got {_fmt(device)}")
            device = "auto"
        threads = self.int_in(table, "torch_threads", "training", 1, 1, 256)
        return TrainingConfig(
            max_epochs=max_epochs, patience=patience, device=device, torch_threads=threads
        )

    def pruner(self, table: dict[str, Any], training: TrainingConfig) -> PrunerConfig:
        kind = table.get("type", "median")
        if kind not in PRUNERS:
            self.bad("pruner.type", f"must be one of {', '.join(PRUNERS)}, got {_fmt(kind)}")
            return PrunerConfig()
        defaults = _PRUNER_SETTINGS[kind]
        self.unknown_keys(table, {"type", *defaults}, "pruner")
        settings: dict[str, Any] = {}
        for key, default in defaults.items():
            value = table.get(key, default)
            if key == "percentile":
                settings[key] = self.float_in(
                    table, key, "pruner", default, 0.0, 100.0, open_low=False, open_high=False
                )
            elif key in ("min_resource", "max_resource") and value == "auto":
                settings[key] = "auto"
            elif key == "reduction_factor":
                settings[key] = self.int_in(table, key, "pruner", default, 2)
            elif key in ("min_resource", "max_resource", "interval_steps"):
                settings[key] = self.int_in(
                    table, key, "pruner", 1 if default == "auto" else default, 1
                )
            else:
                settings[key] = self.int_in(table, key, "pruner", default, 0)
        if kind == "hyperband" and settings["max_resource"] == "auto":
            settings["max_resource"] = training.max_epochs
        return PrunerConfig(type=kind, settings=settings)

    def tasks(self, value: Any) -> tuple[TaskConfig, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
            self.bad(
                "tasks",
                'needs at least one [[tasks]] table, e.g. [[tasks]] name = "digits" dataset = "digits"',
            )
            return ()
        tasks = []
        names: set[str] = set()
        for i, raw in enumerate(value):
            task = self.task(raw, f"tasks[{i}]")
            if task is not None:
                if task.name in names:
                    self.bad(
                        f"tasks[{i}].name",
                        f"task name {task.name!r} is used twice; give each task its own name",
                    )
                names.add(task.name)
                tasks.append(task)
        return tuple(tasks)

    def task(self, raw: dict[str, Any], prefix: str) -> TaskConfig | None:
        if "benchmark" in raw:
            return self.benchmark_task(raw, prefix)
        self.unknown_keys(raw, _TASK_KEYS, prefix)
        n_before = len(self.problems)
        dataset, csv, target = raw.get("dataset"), raw.get("csv"), raw.get("target")
        name = raw.get("name", dataset)
        if not is_valid_name(name):
            self.bad(
                f"{prefix}.name",
                f"must be a name of at most {MAX_NAME_LENGTH} letters, digits, '-' and '_', got {_fmt(_cut(name))}",
            )
        kind = raw.get("kind")
        csv_path: str | None = None
        if (dataset is None) == (csv is None):
            self.bad(
                prefix, "give exactly one of dataset (a built-in data set) or csv (a file path)"
            )
        elif dataset is not None:
            if dataset not in BUILTIN_DATASETS:
                self.bad(
                    f"{prefix}.dataset",
                    f'unknown data set {_fmt(dataset)}; choose from {", ".join(BUILTIN_DATASETS)} or use csv = "path.csv"',
                )
            else:
                if kind is not None and kind != BUILTIN_DATASETS[dataset]:
                    self.bad(
                        f"{prefix}.kind",
                        f"{dataset} is a {BUILTIN_DATASETS[dataset]} data set, got kind = {_fmt(kind)}",
                    )
                kind = BUILTIN_DATASETS[dataset]
            if target is not None:
                self.bad(
                    f"{prefix}.target",
                    "is only for csv tasks; built-in data sets know their target",
                )
        else:
            if not isinstance(csv, str):
                self.bad(f"{prefix}.csv", f"must be a file path, got {_fmt(csv)}")
            else:
                resolved = (self.base_dir / csv).resolve()
                if not resolved.is_file():
                    self.bad(
                        f"{prefix}.csv",
                        f"file not found: {resolved} (csv paths are relative to the study file)",
                    )
                csv_path = str(resolved)
            if not isinstance(target, str) or not target:
                self.bad(
                    f"{prefix}.target", "is required for a csv task: the name of the target column"
                )
        if kind is not None and kind not in KINDS:
            self.bad(f"{prefix}.kind", f"must be classification or regression, got {_fmt(kind)}")
        metric = raw.get("metric")
        if metric is not None:
            if metric in BENCHMARK_METRICS:
                self.bad(f"{prefix}.metric", f"{metric} is only for benchmark tasks")
            elif metric not in METRICS:
                self.bad(
                    f"{prefix}.metric",
                    f"unknown metric {_fmt(metric)}; choose from {', '.join(METRICS)}",
                )
            elif kind in KINDS and METRICS[metric][0] != kind:
                allowed = [m for m, (k, _) in METRICS.items() if k == kind]
                self.bad(
                    f"{prefix}.metric",
                    f"{metric} is not a {kind} metric; choose from {', '.join(allowed)}",
                )
        select = self.select(raw, prefix, kind if kind in KINDS else None, metric)
        test_size = self.float_in(raw, "test_size", prefix, 0.2, 0.0, 0.9)
        val_size = self.float_in(raw, "val_size", prefix, 0.2, 0.0, 0.9)
        if test_size + val_size >= 0.95:
            self.bad(
                prefix,
                f"test_size + val_size must leave data to train on, got {test_size} + {val_size}",
            )
        cv_folds = raw.get("cv_folds", 0)
        if not _is_int(cv_folds) or cv_folds == 1 or not 0 <= cv_folds <= 20:
            self.bad(
                f"{prefix}.cv_folds",
                f"must be 0 (one validation split) or 2-20 folds, got {_fmt(cv_folds)}",
            )
        features, drop = self.columns(raw, prefix, target)
        margin = self.margin(raw, prefix)
        options = self.task_options(raw, prefix, target, kind, metric, drop)
        if len(self.problems) > n_before:
            return None
        return TaskConfig(
            name=str(name), dataset=dataset, csv=csv_path, target=target, kind=kind, metric=metric,
            test_size=test_size, val_size=val_size, cv_folds=cv_folds, features=features, drop=drop,
            margin=margin, select=select, **options,
        )  # fmt: skip

    def select(
        self, raw: dict[str, Any], prefix: str, kind: str | None, metric: Any
    ) -> str | None:
        """A task's ``select``: what trials are selected on (``None``: the kind's default)."""
        value = raw.get("select")
        if value is None:
            return None
        if kind is None and metric in METRICS:
            kind = METRICS[metric][0]
        allowed = [
            o
            for o, (k, _) in OBJECTIVES.items()
            if (kind is None or k == kind) and o not in BENCHMARK_METRICS
        ]
        if value not in allowed:
            what = f"a {kind} task" if kind else "a task"
            self.bad(
                f"{prefix}.select",
                f"{_fmt(value)} is not an objective for {what}; choose from {', '.join(allowed)}",
            )
            return None
        return str(value)

    def task_options(
        self,
        raw: dict[str, Any],
        prefix: str,
        target: Any,
        kind: Any,
        metric: Any,
        drop: tuple[str, ...],
    ) -> dict[str, Any]:
        """How a csv file is read (``sep``, ``quotechar``), its declared categorical columns,
        ``drop_missing_target``, and the training options ``loss`` and ``class_weight``."""
        options: dict[str, Any] = {}
        is_csv = raw.get("csv") is not None
        for key in ("sep", "quotechar"):
            if key not in raw:
                continue
            value = raw[key]
            example = '"\\t" for tabs' if key == "sep" else "'\"' or \"'\""
            if not is_csv:
                self.bad(f"{prefix}.{key}", "is only for csv tasks")
            elif not isinstance(value, str) or len(value) != 1 or value in "\r\n":
                self.bad(
                    f"{prefix}.{key}", f"must be one character (e.g. {example}), got {_fmt(value)}"
                )
            else:
                options[key] = value
        if options.get("sep") is not None and options.get("sep") == options.get("quotechar"):
            self.bad(f"{prefix}.quotechar", "must differ from sep")
        if "categorical" in raw:
            value = raw["categorical"]
            if not is_csv:
                self.bad(f"{prefix}.categorical", "is only for csv tasks")
            elif not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                self.bad(
                    f"{prefix}.categorical", f"must be a list of column names, got {_fmt(value)}"
                )
            elif len(set(value)) != len(value):
                self.bad(f"{prefix}.categorical", f"names a column twice: {_fmt(value)}")
            elif target in value:
                self.bad(
                    f"{prefix}.categorical",
                    f"must not name the target column {target!r} (set kind = 'classification' "
                    "for a categorical target)",
                )
            elif set(value) & set(drop):
                both = sorted(set(value) & set(drop))
                self.bad(
                    f"{prefix}.categorical",
                    f"names dropped column(s) {', '.join(map(repr, both))}; remove them from one list",
                )
            else:
                options["categorical"] = tuple(value)
        if "drop_missing_target" in raw:
            value = raw["drop_missing_target"]
            if not is_csv:
                self.bad(f"{prefix}.drop_missing_target", "is only for csv tasks")
            elif not isinstance(value, bool):
                self.bad(
                    f"{prefix}.drop_missing_target", f"must be true or false, got {_fmt(value)}"
                )
            else:
                options["drop_missing_target"] = value
        if "loss" in raw:
            value = raw["loss"]
            if value not in REGRESSION_LOSSES:
                self.bad(
                    f"{prefix}.loss",
                    f"must be one of {', '.join(REGRESSION_LOSSES)} (regression; poisson for "
                    f"counts), got {_fmt(value)}",
                )
            elif kind == "classification":
                self.bad(
                    f"{prefix}.loss",
                    "is for regression tasks (classification trains on cross-entropy); "
                    "use class_weight = 'balanced' for unbalanced classes",
                )
            elif metric in METRICS and METRICS[metric][0] == "classification":
                self.bad(f"{prefix}.loss", f"is for regression, but metric = {_fmt(metric)}")
            else:
                options["loss"] = value
        if "class_weight" in raw:
            value = raw["class_weight"]
            if value not in CLASS_WEIGHTS:
                self.bad(
                    f"{prefix}.class_weight",
                    f"must be {' or '.join(map(repr, CLASS_WEIGHTS))} (each class weighted by "
                    f"rows / (classes x its rows)), got {_fmt(value)}",
                )
            elif kind == "regression" or (
                metric in METRICS and METRICS[metric][0] == "regression"
            ):
                self.bad(f"{prefix}.class_weight", "is for classification tasks")
            else:
                options["class_weight"] = value
        return options

    def benchmark_task(self, raw: dict[str, Any], prefix: str) -> TaskConfig | None:
        """A task that names a published tabular benchmark (a trial is a table lookup)."""
        n_before = len(self.problems)
        for key in raw:
            if key not in _BENCHMARK_TASK_KEYS:
                self.bad(
                    f"{prefix}.{key}",
                    f"does not apply to a benchmark task (its data, split and training are the table's); allowed keys are {', '.join(sorted(_BENCHMARK_TASK_KEYS))}",
                )
        benchmark = raw.get("benchmark")
        metric = None
        if benchmark not in BENCHMARK_NAMES:
            self.bad(
                f"{prefix}.benchmark",
                f"unknown benchmark {_fmt(benchmark)}; choose from {', '.join(BENCHMARK_NAMES)}",
            )
            benchmark = None
        else:
            family = FAMILIES[benchmark.split("/", 1)[0]]
            metric = raw.get("metric", family.metric)
            if metric != family.metric:
                self.bad(
                    f"{prefix}.metric",
                    f"the {family.name} tables hold {family.metric} only, got {_fmt(metric)}",
                )
        name = raw.get("name", benchmark.split("/", 1)[1] if benchmark else None)
        if not is_valid_name(name):
            self.bad(
                f"{prefix}.name",
                f"must be a name of letters, digits, '-' and '_', got {_fmt(name)}",
            )
        margin = self.margin(raw, prefix)
        if len(self.problems) > n_before or benchmark is None:
            return None
        family = FAMILIES[benchmark.split("/", 1)[0]]
        return TaskConfig(
            name=str(name), dataset=None, csv=None, target=None, kind=family.kind, metric=metric,
            test_size=0.0, val_size=0.0, margin=margin, benchmark=benchmark,
        )  # fmt: skip

    def benchmark_family(
        self, tasks: tuple[TaskConfig, ...], raw: dict[str, Any], strategies: tuple[str, ...]
    ) -> str | None:
        """The benchmark family the file's tasks look up, checking what a lookup excludes:
        trained tasks beside them, two families, a pruner, training settings, strategies
        that cannot search the tables' levels."""
        benches = [t for t in tasks if t.benchmark is not None]
        if not benches:
            return None
        families = sorted({str(t.benchmark).split("/", 1)[0] for t in benches})
        if len(benches) != len(tasks):
            self.bad(
                "tasks",
                "benchmark tasks and trained tasks (dataset/csv) cannot share a study file: results from tables are never pooled with real training; put them in two files",
            )
        if len(families) > 1:
            self.bad(
                "tasks",
                f"benchmark tasks of one study file must come from one benchmark (they share its space), got {', '.join(families)}; put each in its own file",
            )
        if "pruner" in raw:
            kind = raw["pruner"].get("type") if isinstance(raw["pruner"], dict) else None
            if kind != "none":
                self.bad(
                    "pruner",
                    'a benchmark task has no learning curves (a trial is one table lookup), so it cannot be pruned; remove [pruner] or set type = "none"',
                )
        if "training" in raw:
            self.bad(
                "training",
                "does not apply to benchmark tasks (the tables were trained in advance, as the benchmark defines); remove [training]",
            )
        for s in strategies:
            if s in _NOT_FOR_BENCHMARKS:
                self.bad(
                    "strategies",
                    f"{s!r} cannot search a benchmark's levels ({_NOT_FOR_BENCHMARKS[s]}; on categorical levels it would be random search); use grid, random, tpe, gp or manual",
                )
        return families[0]

    def level(self, levels: tuple[Any, ...], allowed: str, value: Any, where: str) -> Any:
        """The table level ``value`` names, or ``None`` after reporting it off the table."""
        found = match_level(levels, value)
        if found is None:
            self.bad(where, f"{_fmt(value)} is off the table; {allowed}")
        return found

    def benchmark_space(self, table: dict[str, Any], family_name: str) -> dict[str, ParamConfig]:
        """A benchmark's space: its own hyperparameters at its own levels; the file may narrow
        them (``choices``), fix one (a plain value) and choose grid values among them."""
        family = FAMILIES[family_name]
        space: dict[str, ParamConfig] = {}
        for name in table:
            if name not in family.levels:
                self.bad(
                    f"space.{name}",
                    f"not a hyperparameter of the {family_name} tables; choose from {', '.join(family.levels)}",
                )
        for name, levels in family.levels.items():
            key = f"space.{name}"
            allowed = f"the table's levels of {name} are {list(levels)}"
            level = functools.partial(self.level, levels, allowed)
            raw = table.get(name)
            if raw is None:
                space[name] = ParamConfig(name, "categorical", choices=levels, grid=levels)
                continue
            if not isinstance(raw, dict):
                value = level(raw, key)
                if value is not None:
                    space[name] = ParamConfig(name, "fixed", value=value)
                continue
            n_before = len(self.problems)
            for other in raw:
                if other not in ("choices", "grid"):
                    self.bad(
                        f"{key}.{other}",
                        f"a benchmark's hyperparameter takes its table's levels: give choices = [...] and/or grid = [...]; {allowed}",
                    )
            choices: tuple[Any, ...] = levels
            for part in ("choices", "grid"):
                values = raw.get(part)
                if values is None:
                    continue
                if not isinstance(values, list) or not values:
                    self.bad(f"{key}.{part}", f"must be a non-empty list of levels; {allowed}")
                    continue
                found = tuple(level(v, f"{key}.{part}[{i}]") for i, v in enumerate(values))
                if len(set(found)) != len(found):
                    self.bad(f"{key}.{part}", f"must not repeat a level, got {values}")
                if part == "choices":
                    choices = tuple(lv for lv in levels if lv in found)  # the table's order
                else:
                    for i, g in enumerate(found):
                        if g is not None and g not in choices:
                            self.bad(
                                f"{key}.grid[{i}]",
                                f"{_fmt(values[i])} is not one of space.{name}.choices {list(choices)}",
                            )
            if len(self.problems) > n_before:
                continue
            grid = raw.get("grid")
            space[name] = ParamConfig(
                name, "categorical", choices=choices,
                grid=choices if grid is None else tuple(match_level(levels, g) for g in grid),
            )  # fmt: skip
        return space

    def columns(
        self, raw: dict[str, Any], prefix: str, target: Any
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """A csv task's ``features`` (the input columns) or ``drop`` (columns to leave out)."""
        chosen: dict[str, tuple[str, ...]] = {}
        for key in ("features", "drop"):
            if key not in raw:
                continue
            value = raw[key]
            if raw.get("csv") is None:
                self.bad(f"{prefix}.{key}", "is only for csv tasks")
            elif (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) and v for v in value)
            ):
                self.bad(f"{prefix}.{key}", f"must be a list of column names, got {_fmt(value)}")
            elif len(set(value)) != len(value):
                self.bad(f"{prefix}.{key}", f"names a column twice: {_fmt(value)}")
            elif target in value:
                self.bad(f"{prefix}.{key}", f"must not name the target column {target!r}")
            else:
                chosen[key] = tuple(value)
        if "features" in raw and "drop" in raw:
            self.bad(
                prefix,
                "give features (the columns to use) or drop (columns to leave out), not both",
            )
        return chosen.get("features"), chosen.get("drop", ())

    def space(self, table: dict[str, Any], training: TrainingConfig) -> dict[str, ParamConfig]:
        space: dict[str, ParamConfig] = {}
        self.invalid_params = set()
        for name, raw in table.items():
            key = f"space.{name}"
            if name not in HYPERPARAMETERS:
                self.bad(key, f"unknown hyperparameter; choose from {', '.join(HYPERPARAMETERS)}")
                continue
            param = self.param(name, raw, key, training)
            if param is not None:
                space[name] = param
            else:
                self.invalid_params.add(name)  # reported once; later sections must not cascade
        return space

    def param(self, name: str, raw: Any, key: str, training: TrainingConfig) -> ParamConfig | None:
        ptype = HYPERPARAMETERS[name][0]
        if not isinstance(raw, dict):
            value = self.value(name, raw, key, training)
            return None if value is _INVALID else ParamConfig(name=name, kind="fixed", value=value)
        self.unknown_keys(raw, _PARAM_KEYS, key)
        n_before = len(self.problems)
        if "choices" in raw:
            for other in ("low", "high", "log", "step"):
                if other in raw:
                    self.bad(f"{key}.{other}", "cannot be combined with choices")
            choices = raw["choices"]
            if not isinstance(choices, list) or not choices:
                self.bad(f"{key}.choices", f"must be a non-empty list, got {_fmt(choices)}")
                return None
            values = tuple(
                self.value(name, c, f"{key}.choices[{i}]", training) for i, c in enumerate(choices)
            )
            if len(set(values)) != len(values):
                self.bad(f"{key}.choices", f"must not repeat a value, got {choices}")
            grid = self.grid_values(
                raw, key, lambda g, k: self.value(name, g, k, training), choices=values
            )
            if len(self.problems) > n_before:
                return None
            return ParamConfig(
                name=name,
                kind="categorical",
                choices=values,
                grid=grid if grid is not None else values,
            )
        if ptype == "categorical":
            self.bad(
                key,
                f"{name} is categorical: give choices = [...] from {', '.join(CATEGORICAL_CHOICES[name])}, or one fixed value",
            )
            return None
        if "low" not in raw or "high" not in raw:
            self.bad(key, "a searched numeric parameter needs low and high (or choices = [...])")
            return None
        low = self.value(name, raw["low"], f"{key}.low", training)
        high = self.value(name, raw["high"], f"{key}.high", training)
        log = raw.get("log", False)
        if not isinstance(log, bool):
            self.bad(f"{key}.log", f"must be true or false, got {_fmt(log)}")
        step = raw.get("step")
        if low is _INVALID or high is _INVALID:
            return None
        if low >= high:
            self.bad(key, f"low must be < high, got low = {low}, high = {high}")
        if log is True and low <= 0:
            self.bad(f"{key}.low", f"must be > 0 when log = true, got {low}")
        if step is not None:
            ok = (_is_int(step) if ptype == "int" else _is_number(step)) and step > 0
            if not ok:
                self.bad(f"{key}.step", f"must be a positive {ptype}, got {_fmt(step)}")
            elif log is True:
                self.bad(f"{key}.step", "cannot be combined with log = true")

        def grid_item(g: Any, k: str) -> Any:
            value = self.value(name, g, k, training)
            if value is not _INVALID and not low <= value <= high:
                self.bad(k, f"grid value {value} is outside [low, high] = [{low}, {high}]")
            return value

        grid = self.grid_values(raw, key, grid_item)
        if len(self.problems) > n_before:
            return None
        return ParamConfig(
            name=name, kind=ptype, low=low, high=high, log=bool(log), step=step, grid=grid,  # type: ignore[arg-type]
        )  # fmt: skip

    def grid_values(
        self, raw: dict[str, Any], key: str, check: Any, choices: tuple[Any, ...] | None = None
    ) -> tuple[Any, ...] | None:
        if "grid" not in raw:
            return None
        grid = raw["grid"]
        if not isinstance(grid, list) or not grid:
            self.bad(f"{key}.grid", f"must be a non-empty list of values, got {_fmt(grid)}")
            return None
        values = tuple(check(g, f"{key}.grid[{i}]") for i, g in enumerate(grid))
        if choices is not None:
            for i, g in enumerate(values):
                if g is not _INVALID and g not in choices:
                    self.bad(
                        f"{key}.grid[{i}]", f"{_fmt(g)} is not one of the choices {list(choices)}"
                    )
        if len(set(values)) != len(values):
            self.bad(f"{key}.grid", f"must not repeat a value, got {grid}")
        return values

    def value(self, name: str, value: Any, key: str, training: TrainingConfig) -> Any:
        """Check one value of hyperparameter ``name``; returns ``_INVALID`` after reporting."""
        ptype = HYPERPARAMETERS[name][0]
        if ptype == "categorical":
            if isinstance(value, str):
                value = INIT_ALIASES.get(value, value) if name == "init" else value
                if value in CATEGORICAL_CHOICES[name]:
                    return value
            self.bad(
                key, f"must be one of {', '.join(CATEGORICAL_CHOICES[name])}, got {_fmt(value)}"
            )
            return _INVALID
        if ptype == "int" and not _is_int(value):
            self.bad(key, f"{name} must be an integer, got {_fmt(value)}")
            return _INVALID
        if ptype == "float" and not _is_number(value):
            self.bad(key, f"{name} must be a number, got {_fmt(value)}")
            return _INVALID
        limits: dict[str, tuple[float, float, str]] = {
            "n_layers": (0, 16, "between 0 (a linear model) and 16"),
            "n_units": (1, 16384, "between 1 and 16384"),
            "batch_size": (1, 1_000_000, ">= 1"),
            "epochs": (
                1,
                training.max_epochs,
                f"between 1 and training.max_epochs = {training.max_epochs}",
            ),
            "weight_decay": (0.0, 1.0, "in [0, 1]"),
        }
        if name in limits:
            lo, hi, text = limits[name]
            if not lo <= value <= hi:
                self.bad(key, f"{name} must be {text}, got {value}")
                return _INVALID
        elif name == "dropout" and not 0.0 <= value < 1.0:
            self.bad(key, f"dropout must be in [0, 1), got {value}")
            return _INVALID
        elif name == "lr" and not 0.0 < value <= 10.0:
            self.bad(key, f"lr must be in (0, 10], got {value}")
            return _INVALID
        return float(value) if ptype == "float" else int(value)

    def grid_declared(self, space: dict[str, ParamConfig]) -> None:
        searched = [p for p in space.values() if p.searched]
        if not searched:
            self.bad("space", "the grid strategy needs at least one searched parameter")
        for p in searched:
            if p.grid is None:
                self.bad(
                    f"space.{p.name}.grid",
                    f"is required by the grid strategy: list the values to visit, e.g. grid = [{p.low}, {p.high}]",
                )

    def manual(
        self, value: Any, space: dict[str, ParamConfig], wanted: bool, family: str | None = None
    ) -> tuple[dict[str, Any], ...]:
        if value is None:
            if wanted:
                self.bad(
                    "manual",
                    "the manual strategy needs [[manual]] tables, one per hand-picked configuration",
                )
            return ()
        if not wanted:
            self.bad(
                "manual",
                "[[manual]] configurations are given but 'manual' is not in strategies; add it or remove them",
            )
        if not isinstance(value, list) or not all(isinstance(m, dict) for m in value) or not value:
            self.bad("manual", "must be [[manual]] tables of hyperparameter values")
            return ()
        configs = []
        searched = {n: p for n, p in space.items() if p.searched}
        vocabulary = list(FAMILIES[family].levels) if family else list(HYPERPARAMETERS)
        for i, raw in enumerate(value):
            key = f"manual[{i}]"
            config: dict[str, Any] = {}
            for name, v in raw.items():
                if name not in vocabulary:
                    self.bad(
                        f"{key}.{name}",
                        f"unknown hyperparameter; choose from {', '.join(vocabulary)}",
                    )
                elif name in self.invalid_params:
                    continue
                elif name not in searched:
                    self.bad(
                        f"{key}.{name}",
                        f"{name} is not searched (it is fixed for every strategy); remove it here or search it in [space.{name}]",
                    )
                else:
                    config[name] = self.manual_value(searched[name], v, f"{key}.{name}")
            missing = [n for n in searched if n not in raw and n not in self.invalid_params]
            if missing:
                self.bad(
                    key,
                    f"missing searched parameter(s) {', '.join(missing)}; a manual configuration names every searched parameter",
                )
            configs.append(config)
        return tuple(configs)

    def manual_value(self, param: ParamConfig, value: Any, key: str) -> Any:
        if param.kind == "categorical":
            assert param.choices is not None
            v = (
                INIT_ALIASES.get(value, value)
                if param.name == "init" and isinstance(value, str)
                else value
            )
            if param.name not in HYPERPARAMETERS:  # a benchmark's level: 0.001 names 1e-3
                v = match_level(param.choices, value)
                v = value if v is None else v
            if v not in param.choices:
                self.bad(
                    key,
                    f"{_fmt(value)} is not one of space.{param.name}.choices {list(param.choices)}",
                )
            return v
        ok = _is_int(value) if param.kind == "int" else _is_number(value)
        if not ok or not param.low <= value <= param.high:
            self.bad(
                key,
                f"must be a{'n integer' if param.kind == 'int' else ' number'} in space.{param.name} [{param.low}, {param.high}], got {_fmt(value)}",
            )
            return value
        return float(value) if param.kind == "float" else int(value)


_INVALID: Any = object()
