"""Benchmark hpstudy's core: training speed and orchestration overhead, as ratios in one run.

Part 1 trains one configuration on digits (2x128 ReLU MLP, Adam lr 1e-3, batch 64, 30 epochs,
no dropout or weight decay so that scikit-learn's MLP is the same model) three ways, on the
same preprocessed split, one thread each:

- hpstudy's trial loop (``hpstudy.training.train``, with its per-epoch validation score),
- scikit-learn's ``MLPClassifier`` (BLAS limited to one thread, like torch),
- a plain torch loop over a ``DataLoader`` of in-memory tensors with the default Adam.

Part 2 runs a 100-trial TPE study with the median pruner on a fresh SQLite file, through
hpstudy's runner and, as the naive baseline, through ``study.optimize`` with a
``trial.report`` + ``trial.should_prune`` per epoch. Each is compared with the *pure* training
time of the trials it ran: every trial's configuration is retrained for the same number of
epochs with no storage, pruner or callback.

Run:  .venv/bin/python benchmarks/bench_core.py [--repeats 5] [--trials 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from hpstudy.config import parse_config
from hpstudy.data import TaskData, prepare_task
from hpstudy.metrics import score
from hpstudy.runner import DataCache, Progress, _run, create_studies, open_storage, run_studies
from hpstudy.runner._local import LocalStudy
from hpstudy.strategies import derive_seed
from hpstudy.training import train

EPOCHS = 30
PARAMS: dict[str, Any] = dict(
    n_layers=2, n_units=128, dropout=0.0, activation="relu", init="default",
    lr=1e-3, optimizer="adam", batch_size=64, weight_decay=0.0, epochs=EPOCHS,
)  # fmt: skip


def _digits() -> TaskData:
    config = parse_config(BENCH_STUDY.format(n_trials=1))
    return prepare_task(config.tasks[0], seed=0)


def time_hpstudy(data: TaskData, seed: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    result = train(PARAMS, data, seed=seed, max_epochs=EPOCHS)
    return time.perf_counter() - t0, result.history[-1]


def time_sklearn(data: TaskData, seed: int) -> tuple[float, float]:
    from sklearn.neural_network import MLPClassifier

    fold = data.folds[0]
    clf = MLPClassifier(
        hidden_layer_sizes=(128, 128), activation="relu", solver="adam", alpha=0.0,
        batch_size=64, learning_rate_init=1e-3, max_iter=EPOCHS, tol=0.0,
        n_iter_no_change=EPOCHS + 1, shuffle=True, random_state=seed,
    )  # fmt: skip
    t0 = time.perf_counter()
    with threadpool_limits(1):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "max_iter reached": intended
            clf.fit(fold.X_train, fold.y_train)
    elapsed = time.perf_counter() - t0
    return elapsed, float((clf.predict(fold.X_valid) == fold.y_valid).mean())


def time_dataloader(data: TaskData, seed: int) -> tuple[float, float]:
    fold = data.folds[0]
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(data.n_features, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, data.n_classes),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(
            torch.from_numpy(fold.X_train), torch.from_numpy(fold.y_train)
        ),
        batch_size=64,
        shuffle=True,
    )
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = score(
            "accuracy", model(torch.from_numpy(fold.X_valid)), torch.from_numpy(fold.y_valid)
        )
    return time.perf_counter() - t0, acc


def bench_training(repeats: int) -> None:
    data = _digits()
    time_hpstudy(data, 0)  # warm-up: first use of fused Adam loads kernels
    runs: dict[str, list[tuple[float, float]]] = {"hpstudy": [], "sklearn": [], "dataloader": []}
    for r in range(repeats):  # interleaved, so machine noise hits all three alike
        runs["hpstudy"].append(time_hpstudy(data, r))
        runs["sklearn"].append(time_sklearn(data, r))
        runs["dataloader"].append(time_dataloader(data, r))
    med = {k: statistics.median(t for t, _ in v) for k, v in runs.items()}
    print(
        f"== training: digits, 2x128 MLP, Adam, batch 64, {EPOCHS} epochs, 1 thread, median of {repeats}"
    )
    for name, results in runs.items():
        accs = [a for _, a in results]
        print(
            f"{name:>11}: {med[name]:6.3f} s  ({med[name] / EPOCHS * 1000:5.1f} ms/epoch)  validation accuracy {np.mean(accs):.4f} +- {np.std(accs):.4f}"
        )
    print(f"speed-up vs scikit-learn: {med['sklearn'] / med['hpstudy']:.2f}x (target >= 1.3x)")
    print(f"speed-up vs DataLoader:   {med['dataloader'] / med['hpstudy']:.2f}x (target >= 2x)")


BENCH_STUDY = """
name = "bench"
strategies = ["tpe"]
[budget]
n_trials = {n_trials}
[training]
max_epochs = 20
patience = 5
[pruner]
type = "median"
n_startup_trials = 5
n_warmup_steps = 4
[[tasks]]
name = "digits"
dataset = "digits"
[space]
n_layers = {{ low = 1, high = 3 }}
n_units = {{ low = 16, high = 256, log = true }}
dropout = {{ low = 0.0, high = 0.5 }}
lr = {{ low = 1e-4, high = 3e-2, log = true }}
batch_size = {{ choices = [32, 64, 128] }}
"""


def _pure_training_seconds(
    data: TaskData, trials: list[optuna.trial.FrozenTrial], fixed: dict[str, Any]
) -> float:
    total = 0.0
    for t in trials:
        epochs = len(t.intermediate_values)
        if epochs == 0:
            continue
        params = {**fixed, **t.params, "epochs": epochs}
        t0 = time.perf_counter()
        train(params, data, seed=0, max_epochs=epochs)
        total += time.perf_counter() - t0
    return total


class _Clock:
    """Accumulates seconds spent in wrapped callables (same-run accounting, no retraining)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        return timed


class _PerTrialTPE(optuna.samplers.BaseSampler):
    """Optuna's TPE made afresh for each trial with the seed hpstudy derives for that trial
    number: the same proposals hpstudy makes."""

    def __init__(self) -> None:
        self.current = optuna.samplers.TPESampler()

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self.current = optuna.samplers.TPESampler(seed=derive_seed(0, trial.number, "tpe"))
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> Any:
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: Any, space: Any) -> Any:
        return self.current.sample_relative(study, trial, space)

    def sample_independent(self, study: optuna.Study, trial: Any, name: str, dist: Any) -> Any:
        return self.current.sample_independent(study, trial, name, dist)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        self.current.after_trial(study, trial, state, values)


def _naive_optuna(config: Any, task_data: TaskData, url: str, n_trials: int) -> dict[str, Any]:
    """The same study through study.optimize with per-epoch report/should_prune to storage."""
    fixed = config.fixed_params()
    s = config.pruner.settings
    study = optuna.create_study(
        storage=url, study_name="bench.digits.tpe.s0", direction="maximize",
        # the seeds hpstudy derives for each trial number: both make the same proposals
        sampler=_PerTrialTPE(),
        pruner=optuna.pruners.MedianPruner(s["n_startup_trials"], s["n_warmup_steps"]),
    )  # fmt: skip
    training, hook = _Clock(), _Clock()

    def objective(trial: optuna.Trial) -> float:
        params = {
            **fixed,
            "n_layers": trial.suggest_int("n_layers", 1, 3),
            "n_units": trial.suggest_int("n_units", 16, 256, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
        }

        def on_epoch(epoch: int, value: float) -> bool:
            trial.report(value, epoch)
            return trial.should_prune()

        result = training.wrap(train)(
            params, task_data, seed=0, max_epochs=20, patience=5, on_epoch=hook.wrap(on_epoch)
        )
        if result.pruned:
            raise optuna.TrialPruned()
        return result.score

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    wall = time.perf_counter() - t0
    return {
        "wall": wall,
        "pure": training.seconds - hook.seconds,
        "trials": study.get_trials(deepcopy=False),
    }


def bench_overhead(n_trials: int, repeats: int, workdir: Path) -> None:
    config = parse_config(BENCH_STUDY.format(n_trials=n_trials))
    fixed = config.fixed_params()
    data = DataCache(config)
    task_data = data.get("digits", 0)
    train({**PARAMS, "epochs": 1}, task_data, seed=0, max_epochs=1)  # warm-up

    print(f"== orchestration: {n_trials}-trial TPE study, median pruner, digits, SQLite")
    print(
        "   pure training = time inside train() minus the per-epoch hook, measured in the same run"
    )
    rows = []
    for r in range(repeats):
        sampler, hook = _Clock(), _Clock()
        original = (LocalStudy.sample, _run._EpochReporter.__call__)
        LocalStudy.sample = sampler.wrap(LocalStudy.sample)  # type: ignore[method-assign]
        _run._EpochReporter.__call__ = hook.wrap(_run._EpochReporter.__call__)  # type: ignore[method-assign]
        try:
            url = f"sqlite:///{workdir / f'hpstudy{r}.db'}"
            storage = open_storage(url)
            infos = create_studies(config, storage, data)
            t0 = time.perf_counter()
            run_studies(config, storage, infos, data, Progress())
            wall = time.perf_counter() - t0
        finally:
            LocalStudy.sample, _run._EpochReporter.__call__ = original  # type: ignore[method-assign]
        trials = optuna.load_study(study_name=infos[0].name, storage=url).get_trials(
            deepcopy=False
        )
        pure = sum(t.user_attrs["seconds"] for t in trials) - hook.seconds
        overhead = wall - pure
        rows.append((overhead / pure, (overhead - sampler.seconds) / pure))
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
        epochs = sum(t.user_attrs["epochs"] for t in trials)
        n = len(trials)
        print(
            f"  run {r}: wall {wall:6.2f} s, pure training {pure:6.2f} s, overhead {1000 * overhead / n:4.1f} ms/trial = "
            f"{100 * rows[-1][0]:4.1f}% (TPE sampling {1000 * sampler.seconds / n:.1f} ms/trial; hpstudy's own "
            f"{1000 * (overhead - sampler.seconds) / n:.1f} ms/trial = {100 * rows[-1][1]:.1f}%: storage, sync, "
            f"pruning {1000 * hook.seconds / epochs:.2f} ms/epoch) [{n} trials, {pruned} pruned, {epochs} epochs]"
        )
    total = statistics.median(r[0] for r in rows)
    own = statistics.median(r[1] for r in rows)
    print(
        f"hpstudy overhead, median of {repeats}: {100 * total:.1f}% of pure training time; {100 * own:.1f}% without TPE's own sampling compute (target <= 5%)"
    )
    # Cross-check with the literal definition: retrain every trial with no storage or hook.
    retrained = _pure_training_seconds(task_data, trials, fixed)
    print(
        f"cross-check, last run: retraining its trials alone took {retrained:.2f} s (same-run estimate {pure:.2f} s)"
    )

    naive = _naive_optuna(config, task_data, f"sqlite:///{workdir / 'naive.db'}", n_trials)
    n = len(naive["trials"])
    print(
        f"naive optuna (optimize + per-epoch report/should_prune on SQLite): wall {naive['wall']:6.2f} s, pure training "
        f"{naive['pure']:6.2f} s, overhead {1000 * (naive['wall'] - naive['pure']) / n:.1f} ms/trial = "
        f"{100 * (naive['wall'] - naive['pure']) / naive['pure']:.1f}%"
    )
    same = [(t.params, t.state, len(t.intermediate_values)) for t in naive["trials"]] == [
        (t.params, t.state, len(t.intermediate_values)) for t in trials
    ]
    print(f"naive optuna reached the same trials, pruning decisions and epochs as hpstudy: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--repeats-overhead", type=int, default=3)
    parser.add_argument("--only", choices=["training", "overhead"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.only != "overhead":
        bench_training(args.repeats)
    if args.only != "training":
        with tempfile.TemporaryDirectory() as tmp:
            bench_overhead(args.trials, args.repeats_overhead, Path(tmp))


if __name__ == "__main__":
    main()
