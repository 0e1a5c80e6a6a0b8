"""The baseline of benchmarks/bench_random60.py: random60.toml written as optuna-examples writes
a PyTorch study (``pytorch/pytorch_simple.py``): a model defined from the trial, a DataLoader
loop per epoch, the validation accuracy reported with ``trial.report`` and
``trial.should_prune`` every epoch, SQLite storage, the median pruner, 60 random trials.

The data are prepared as hpstudy prepares them (the same 60/20/20 split of digits for seed 0,
standardised on the training part) so both sides learn the same problem; the search space is
random60.toml's.

Run:  python benchmarks/random60/optuna_pattern.py STORAGE_URL [--threads N]
"""

from __future__ import annotations

import argparse

import optuna
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EPOCHS = 20
BATCHSIZE = 64
N_TRIALS = 60


def get_digits() -> tuple[DataLoader, torch.Tensor, torch.Tensor]:
    X, y = load_digits(return_X_y=True)
    rest, _test = train_test_split(range(len(y)), test_size=0.2, random_state=0, stratify=y)
    train, valid = train_test_split(rest, test_size=0.25, random_state=0, stratify=y[rest])
    scaler = StandardScaler().fit(X[train])
    x_train = torch.tensor(scaler.transform(X[train]), dtype=torch.float32)
    x_valid = torch.tensor(scaler.transform(X[valid]), dtype=torch.float32)
    loader = DataLoader(
        TensorDataset(x_train, torch.tensor(y[train])), batch_size=BATCHSIZE, shuffle=True
    )
    return loader, x_valid, torch.tensor(y[valid])


def define_model(trial: optuna.Trial) -> nn.Sequential:
    n_layers = trial.suggest_int("n_layers", 1, 3)
    n_units = trial.suggest_int("n_units", 16, 256, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    layers: list[nn.Module] = []
    in_features = 64
    for _ in range(n_layers):
        layers += [nn.Linear(in_features, n_units), nn.ReLU(), nn.Dropout(dropout)]
        in_features = n_units
    layers.append(nn.Linear(in_features, 10))
    return nn.Sequential(*layers)


def objective(trial: optuna.Trial) -> float:
    model = define_model(trial)
    lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader, x_valid, y_valid = DATA
    accuracy = 0.0
    for epoch in range(EPOCHS):
        model.train()
        for data, target in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(data), target)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_valid).argmax(dim=1) == y_valid).float().mean().item()
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=args.storage,
        study_name="random60",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(objective, n_trials=N_TRIALS)


DATA = get_digits()

if __name__ == "__main__":
    main()
