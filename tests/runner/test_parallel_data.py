"""Forked workers train on the data the parent prepared; they do not load or split it again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpstudy.config import parse_config
from hpstudy.runner import DataCache, Progress, create_studies, open_storage, run_with_jobs
from hpstudy.runner._parallel import _context

STUDY = """
name = "shared"
seeds = 2
strategies = ["random"]

[budget]
n_trials = 2

[training]
max_epochs = 2

[[tasks]]
name = "mine"
csv = "{csv}"
target = "label"

[space]
n_units = {{ low = 4, high = 16 }}
lr = {{ low = 1e-3, high = 1e-1, log = true }}
"""


def test_forked_workers_use_the_parents_prepared_data(tmp_path: Path) -> None:
    """The CSV is prepared for every seed when the studies are planned, then removed: the
    two forked workers still run every study to its budget, which they can only do with the
    data the parent handed them (a worker that prepared it again would find no file)."""
    assert _context().get_start_method() == "fork"  # the sharing this test is about
    rng = np.random.default_rng(0)
    csv = tmp_path / "mine.csv"
    rows = [f"{a:.4f},{b:.4f},{int(a + b > 0)}" for a, b in rng.standard_normal((80, 2))]
    csv.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    config = parse_config(STUDY.format(csv=csv), str(tmp_path / "shared.toml"))
    url = f"sqlite:///{tmp_path / 'hpstudy.db'}"
    storage = open_storage(url)
    data = DataCache(config)
    infos = create_studies(config, storage, data)  # plans: prepares (task, seed) 0 and 1
    csv.unlink()
    results = run_with_jobs(config, storage, url, infos, Progress(), 2, data)
    assert sorted(r.name for r in results) == ["shared.mine.random.s0", "shared.mine.random.s1"]
    assert all(r.reason == "budget met" and r.counts.finished == 2 for r in results), results
