"""Benchmark the report on a large synthetic storage: 10,000 trials over 40 studies.

Builds an experiment as hpstudy stores it (2 tasks x 4 strategies x 5 seeds, 250 trials per
study, 4 hyperparameters, up to 30 per-epoch values per trial, a quarter pruned) with bulk
inserts into a fresh SQLite file, with test scores cached as a previous report leaves them,
then times ``write_report`` and measures the HTML file. The baseline in the same run is
Optuna's own read of the same storage (``get_all_trials`` for every study).

Run:  .venv/bin/python benchmarks/bench_report.py [--trials-per-study 250]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.storages._rdb import models
from optuna.trial import TrialState

from hpstudy.report import write_report
from hpstudy.runner import open_storage

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1)
DISTS = {
    "n_layers": IntDistribution(1, 3),
    "n_units": IntDistribution(16, 256, log=True),
    "lr": FloatDistribution(1e-4, 3e-2, log=True),
    "optimizer": CategoricalDistribution(["adam", "sgd"]),
}


def _trial_rows(
    rng: np.random.Generator, tid: int, number: int, sid: int, direction: str
) -> dict[str, list[dict]]:
    pruned = rng.random() < 0.25
    epochs = int(rng.integers(3, 12)) if pruned else 30
    maximize = direction == "maximize"
    base = rng.normal(0.9, 0.03) if maximize else rng.normal(60, 5)
    curve = [
        float(base * (1 - np.exp(-e / 5))) if maximize else float(base + 100 * np.exp(-e / 5))
        for e in range(1, epochs + 1)
    ]
    finite_v = models.TrialValueModel.TrialValueType.FINITE
    finite_i = models.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE
    rows: dict[str, list[dict]] = {
        "trials": [
            {
                "trial_id": tid,
                "number": number,
                "study_id": sid,
                "state": TrialState.PRUNED if pruned else TrialState.COMPLETE,
            }
        ],
        "values": [{"trial_id": tid, "objective": 0, "value": curve[-1], "value_type": finite_v}],
        "params": [],
        "users": [
            {"trial_id": tid, "key": k, "value_json": json.dumps(v)}
            for k, v in (("epochs", epochs), ("seconds", 0.01 * epochs))
        ],
        "steps": [
            {
                "trial_id": tid,
                "step": e + 1,
                "intermediate_value": c,
                "intermediate_value_type": finite_i,
            }
            for e, c in enumerate(curve)
        ],
    }
    for p, d in DISTS.items():
        if isinstance(d, CategoricalDistribution):
            v: object = d.choices[int(rng.integers(2))]
        elif isinstance(d, IntDistribution):
            v = int(rng.integers(d.low, d.high + 1))
        else:
            v = float(np.exp(rng.uniform(np.log(d.low), np.log(d.high))))
        rows["params"].append(
            {
                "trial_id": tid,
                "param_name": p,
                "param_value": d.to_internal_repr(v),
                "distribution_json": distribution_to_json(d),
            }
        )
    return rows


def build(url: str, per_study: int) -> int:
    """40 studies as hpstudy stores them, filled with bulk inserts (one transaction each)."""
    storage = open_storage(url)
    engine = storage._backend.engine  # type: ignore[attr-defined]
    path = ROOT / "studies" / "quickstart.toml"
    rng = np.random.default_rng(0)
    tables = {
        "trials": models.TrialModel.__table__,
        "values": models.TrialValueModel.__table__,
        "params": models.TrialParamModel.__table__,
        "users": models.TrialUserAttributeModel.__table__,
        "steps": models.TrialIntermediateValueModel.__table__,
    }
    next_id, n = 1, 0
    for task, metric, direction in (
        ("digits", "accuracy", "maximize"),
        ("diabetes", "rmse", "minimize"),
    ):
        for strategy in ("manual", "grid", "random", "tpe"):
            for seed in range(5):
                d = (
                    optuna.study.StudyDirection.MAXIMIZE
                    if direction == "maximize"
                    else optuna.study.StudyDirection.MINIMIZE
                )
                sid = storage.create_new_study([d], f"big.{task}.{strategy}.s{seed}")
                attrs = {
                    "experiment": "big", "task": task, "strategy": strategy, "seed": seed, "metric": metric,
                    "direction": direction, "kind": "classification" if task == "digits" else "regression",
                    "budget": {"n_trials": per_study, "timeout": None}, "fingerprint": "x",
                    "study_file": path.read_text(), "study_file_path": str(path),
                }  # fmt: skip
                rows: dict[str, list[dict]] = {k: [] for k in tables}
                first = next_id
                for i in range(per_study):
                    for k, v in _trial_rows(rng, next_id, i, sid, direction).items():
                        rows[k] += v
                    next_id += 1
                # test scores as a previous report caches them, for the best complete trial
                complete = {
                    r["trial_id"] for r in rows["trials"] if r["state"] == TrialState.COMPLETE
                }
                candidates = [r for r in rows["values"] if r["trial_id"] in complete]
                best = (max if direction == "maximize" else min)(
                    candidates, key=lambda r: r["value"]
                )
                attrs["test_scores"] = {
                    "trial": best["trial_id"] - first,
                    "scores": [0.9, 0.91, 0.92],
                }
                # and for every complete trial, as the equal-compute picks leave them
                level = 0.9 if direction == "maximize" else 60.0
                attrs["test_scores_by_trial"] = {
                    str(t - first): [float(level + rng.normal(0, level / 100))] * 3
                    for t in sorted(complete)
                }
                with engine.begin() as conn:
                    for k, table in tables.items():
                        conn.execute(table.insert(), rows[k])
                    conn.execute(
                        models.StudyUserAttributeModel.__table__.insert(),
                        [
                            {"study_id": sid, "key": k, "value_json": json.dumps(v)}
                            for k, v in attrs.items()
                        ],
                    )
                n += per_study
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-per-study", type=int, default=250)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/big.db"
        n = build(url, args.trials_per_study)
        # Baseline: Optuna reading every trial of every study through its own storage.
        t0 = time.perf_counter()
        storage = optuna.storages.RDBStorage(url)
        for s in storage.get_all_studies():
            storage.get_all_trials(s._study_id)
        optuna_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        path, _ = write_report(url, "big", Path(tmp) / "big.html")
        seconds = time.perf_counter() - t0
        size = path.stat().st_size / 1e6
    print(
        f"{n} trials over 40 studies: report in {seconds:.2f} s (target <= 10 s), {size:.1f} MB (target <= 15 MB)"
    )
    print(
        f"baseline in the same run: Optuna's own read of every trial took {optuna_read:.2f} s; the report took {seconds / optuna_read:.2f}x that"
    )


if __name__ == "__main__":
    main()
