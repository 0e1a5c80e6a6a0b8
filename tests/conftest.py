"""Shared fixtures: tiny study files and a tmp_path SQLite storage (tests never touch storage/)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TINY = """
name = "tiny"
seeds = 1
strategies = {strategies}

[budget]
n_trials = {n_trials}
grid_subset = true  # the grid has 4 points; tests run 3 of them

[training]
max_epochs = 3
patience = 0

[pruner]
type = "{pruner}"

[[tasks]]
name = "iris"
dataset = "iris"

[[tasks]]
name = "diabetes"
dataset = "diabetes"

[space]
n_layers = {{ low = 1, high = 2, grid = [1, 2] }}
n_units = {{ low = 8, high = 32, log = true, grid = [8, 32] }}
lr = {{ low = 1e-3, high = 1e-1, log = true, grid = [1e-2] }}
dropout = 0.1
batch_size = 32
{extra}
"""

MANUAL = """
[[manual]]
n_layers = 1
n_units = 16
lr = 0.01

[[manual]]
n_layers = 2
n_units = 8
lr = 0.003
"""


def tiny_study_text(
    strategies: tuple[str, ...] = ("manual", "grid", "random", "tpe"),
    n_trials: int = 3,
    pruner: str = "median",
    extra: str = "",
) -> str:
    """A study file on iris + diabetes with 3-epoch trials (fast enough for unit tests)."""
    manual = MANUAL if "manual" in strategies else ""
    quoted = "[" + ", ".join(f'"{s}"' for s in strategies) + "]"
    return TINY.format(strategies=quoted, n_trials=n_trials, pruner=pruner, extra=extra) + manual


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hpstudy.db'}"


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_study_text())
    return path


@contextmanager
def fresh_postgres_database(prefix: str = "hpstudy_test") -> Iterator[str]:
    """A new, empty database on the test server (``$HPSTUDY_TEST_POSTGRES_URL``), dropped after;
    skips the test when that variable is unset (``.ci/run`` sets it, so CI never skips)."""
    base = os.environ.get("HPSTUDY_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("HPSTUDY_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    import sqlalchemy

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url
