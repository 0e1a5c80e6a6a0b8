"""The published tabular benchmarks a task can name: their hyperparameters, levels and metrics.

The vocabulary of ``benchmark = "family/data_set"`` tasks, needed to validate a study file
without the tables installed; the tables themselves are read by
:mod:`hpstudy.data._benchmarks`. Hyperparameters keep the benchmark's own names and levels,
so anyone can check a trial against the published table.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BenchmarkFamily:
    """One published benchmark: its hyperparameters and levels, and what its table holds.

    Attributes:
        name: The family's name in a study file (``fcnet``, ``hpobench_nn``).
        folder: The package's data folder for it.
        datasets: Its data sets.
        levels: Each hyperparameter's levels, in the order of the table's keys (each key is
            the concatenated level indices of a configuration).
        value_key, seconds_key: The table's validation value and training time per repetition.
        metric, direction, kind: What a trial's value is.
        epochs: Epochs each configuration was trained, as the benchmark defines them.
        repetitions: Repetitions per configuration.
    """

    name: str
    folder: str
    datasets: tuple[str, ...]
    levels: dict[str, tuple[Any, ...]]
    value_key: str
    seconds_key: str
    metric: str
    direction: str
    kind: str
    epochs: int
    repetitions: int


FAMILIES: dict[str, BenchmarkFamily] = {
    "fcnet": BenchmarkFamily(
        name="fcnet",
        folder="hpolib",
        datasets=(
            "protein_structure",
            "slice_localization",
            "naval_propulsion",
            "parkinsons_telemonitoring",
        ),
        levels={
            "activation_fn_1": ("relu", "tanh"),
            "activation_fn_2": ("relu", "tanh"),
            "batch_size": (8, 16, 32, 64),
            "dropout_1": (0.0, 0.3, 0.6),
            "dropout_2": (0.0, 0.3, 0.6),
            "init_lr": (5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1),
            "lr_schedule": ("cosine", "const"),
            "n_units_1": (16, 32, 64, 128, 256, 512),
            "n_units_2": (16, 32, 64, 128, 256, 512),
        },
        value_key="val_loss",
        seconds_key="train_time",
        metric="mse",
        direction="minimize",
        kind="regression",
        epochs=100,
        repetitions=4,
    ),
    "hpobench_nn": BenchmarkFamily(
        name="hpobench_nn",
        folder="hpobench",
        datasets=(
            "australian",
            "blood_transfusion",
            "car",
            "credit_g",
            "kc1",
            "phoneme",
            "segment",
            "vehicle",
        ),
        levels={
            "alpha": (
                1e-8,
                7.742637e-8,
                5.994842e-7,
                4.641589e-6,
                3.5938137e-5,
                2.7825593e-4,
                2.1544348e-3,
                1.6681006e-2,
                1.2915497e-1,
                1.0,
            ),
            "batch_size": (4, 6, 10, 16, 25, 40, 64, 101, 161, 256),
            "depth": (1, 2, 3),
            "learning_rate_init": (
                1e-5,
                3.5938137e-5,
                1.2915497e-4,
                4.641589e-4,
                1.6681006e-3,
                5.9948424e-3,
                2.1544347e-2,
                7.742637e-2,
                2.7825594e-1,
                1.0,
            ),
            "width": (16, 25, 40, 64, 101, 161, 256, 406, 645, 1024),
        },  # fmt: skip
        value_key="val_acc",
        seconds_key="train_time",
        metric="balanced_accuracy",
        direction="maximize",
        kind="classification",
        epochs=243,
        repetitions=5,
    ),
}
BENCHMARK_NAMES = tuple(f"{f.name}/{d}" for f in FAMILIES.values() for d in f.datasets)


def family_of(benchmark: str) -> BenchmarkFamily:
    """The family of ``benchmark`` (``"fcnet/protein_structure"``); KeyError if unknown."""
    if benchmark not in BENCHMARK_NAMES:
        raise KeyError(benchmark)
    return FAMILIES[benchmark.split("/", 1)[0]]


def match_level(levels: tuple[Any, ...], value: Any) -> Any:
    """The level ``value`` names (numbers within 1e-6 relative, so 0.001 names 1e-3 and 0
    names 0.0); ``None`` when it names none."""
    if isinstance(value, bool):  # true is not level 1
        return None
    for level in levels:
        if isinstance(level, str) or isinstance(value, str):
            if level == value:
                return level
        elif isinstance(value, int | float) and math.isclose(
            float(level), float(value), rel_tol=1e-6, abs_tol=1e-12
        ):
            return level
    return None


def repetition_for(seed: int, benchmark: str) -> int:
    """The repetition a study of ``benchmark`` with study seed ``seed`` observes.

    Drawn from the seed (every strategy at seed k observes the same repetition: comparisons
    stay paired by seed) and the benchmark's name (data sets draw independently)."""
    reps = family_of(benchmark).repetitions
    state = np.random.SeedSequence([seed, zlib.crc32(benchmark.encode())]).generate_state(1)[0]
    return int(state) % reps
