"""Take the winning model home: retrain the best configuration, save it, predict with it.

A saved model is a folder of two files that execute no code when loaded:

- ``weights.pt``: the network's state dict, loaded with ``torch.load(weights_only=True)``;
- ``model.json``: the architecture and hyperparameters, the preprocessing as plain numbers
  (per numeric column its median, mean and scale; per categorical column its most frequent
  value and categories), the target encoding (class labels, or the regression target's mean
  and standard deviation), the input columns, the scores and the hpstudy/torch versions.

Preprocessing is re-applied from those numbers with NumPy, exactly as scikit-learn's
imputers, scaler and one-hot encoder (unknown categories -> all zeros) do, so no pickle is
ever needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpstudy._errors import ConfigError, HpStudyError, UsageError

FORMAT = "hpstudy-model/1"


class ModelError(HpStudyError):
    """A saved model is missing, damaged or was tampered with."""

    exit_code = 1


def _preprocessing_spec(pre: Any) -> dict[str, Any]:
    """Plain numbers from a fitted ColumnTransformer built by ``make_preprocessor``."""
    spec: dict[str, Any] = {"numeric": [], "categorical": []}
    for name, pipeline, columns in pre.transformers_:
        if name == "num":
            imputer, scaler = pipeline.named_steps["impute"], pipeline.named_steps["scale"]
            for i, col in enumerate(columns):
                spec["numeric"].append(
                    {
                        "column": str(col),
                        "median": float(imputer.statistics_[i]),
                        "mean": float(scaler.mean_[i]),
                        "scale": float(scaler.scale_[i]),
                    }
                )
        elif name == "cat":
            imputer, onehot = pipeline.named_steps["impute"], pipeline.named_steps["onehot"]
            for i, col in enumerate(columns):
                spec["categorical"].append(
                    {
                        "column": str(col),
                        "most_frequent": str(imputer.statistics_[i]),
                        "categories": [str(c) for c in onehot.categories_[i]],
                    }
                )
    return spec


def transform(spec: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Apply saved preprocessing to ``frame`` (numeric columns first, then one-hot)."""
    parts = []
    for c in spec["numeric"]:
        x = pd.to_numeric(frame[c["column"]], errors="coerce").to_numpy(dtype=np.float64)
        x = np.where(np.isnan(x), c["median"], x)
        parts.append(((x - c["mean"]) / c["scale"])[:, None])
    for c in spec["categorical"]:
        column = frame[c["column"]]
        values = column.where(column.notna(), c["most_frequent"]).map(str).to_numpy()
        parts.append(
            np.stack([(values == cat).astype(np.float64) for cat in c["categories"]], axis=1)
        )
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


@dataclass
class SavedModel:
    """A trained network with everything needed to use it on new rows."""

    meta: dict[str, Any]
    network: Any  # torch.nn.Sequential

    @property
    def columns(self) -> list[str]:
        return list(self.meta["columns"])

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions for ``frame``: a ``prediction`` column (class label or value) and, for
        classification, one ``proba_<class>`` column per class."""
        import torch

        from hpstudy.metrics import probabilities

        target = self.meta["target"]
        missing = [c for c in self.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in self.columns and c != target["column"]]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing column(s) {', '.join(map(str, missing))}")
            if extra:
                problems.append(f"unexpected column(s) {', '.join(map(str, extra))}")
            raise UsageError(
                f"the data do not have the model's columns: {'; '.join(problems)}; expected: {', '.join(self.columns)}"
            )
        X = torch.from_numpy(transform(self.meta["preprocessing"], frame))
        self.network.eval()
        with torch.inference_mode():
            out = self.network(X)
        out = out.squeeze(1) if out.shape[1] == 1 else out
        result = pd.DataFrame(index=frame.index)
        if self.meta["kind"] == "regression":
            result["prediction"] = out.double().numpy() * target["std"] + target["mean"]
            return result
        proba = probabilities(out)
        classes = target["classes"]
        result["prediction"] = [classes[i] for i in proba.argmax(axis=1)]
        for i, c in enumerate(classes):
            result[f"proba_{c}"] = proba[:, i]
        return result

    def score_frame(self, frame: pd.DataFrame) -> float:
        """The model's metric on ``frame``, which must contain the target column."""
        import torch

        from hpstudy.metrics import score

        target = self.meta["target"]
        if target["column"] not in frame.columns:
            raise UsageError(
                f"the data have no target column {target['column']!r} to score against"
            )
        X = torch.from_numpy(transform(self.meta["preprocessing"], frame[self.columns]))
        self.network.eval()
        with torch.inference_mode():
            out = self.network(X)
        out = out.squeeze(1) if out.shape[1] == 1 else out
        if self.meta["kind"] == "regression":
            y = (frame[target["column"]].to_numpy(dtype=np.float64) - target["mean"]) / target[
                "std"
            ]
            return score(
                self.meta["metric"], out, torch.from_numpy(y.astype(np.float32)), target["std"]
            )
        index = {c: i for i, c in enumerate(target["classes"])}
        y = torch.tensor([index[str(v)] for v in frame[target["column"]]])
        return score(self.meta["metric"], out, y)


def train_best(
    storage_url: str, experiment: str, task: str | None = None, output: str | Path | None = None
) -> tuple[Path, dict[str, Any]]:
    """Retrain the best configuration of ``task`` on train+validation of its seed, score it on
    that seed's test split, and save it (default ``models/EXPERIMENT-TASK``).

    Returns:
        The model folder and its metadata.
    """
    import torch

    import hpstudy
    from hpstudy.data import prepare_final
    from hpstudy.data._datasets import load_data
    from hpstudy.data._prepare import class_labels
    from hpstudy.model import output_size
    from hpstudy.report._best import best_of
    from hpstudy.report._collect import collect_experiment
    from hpstudy.store import stored_config as _stored_config
    from hpstudy.strategies import derive_seed
    from hpstudy.training import train

    data_collected = collect_experiment(storage_url, experiment)
    config = _stored_config(data_collected.studies[0].info, storage_url)
    bests = best_of(data_collected, config, task)
    if task is None and len(bests) > 1:
        raise UsageError(
            f"experiment '{experiment}' has several tasks ({', '.join(b.task for b in bests)}); choose one with --task"
        )
    best = bests[0]
    task_config = config.task(best.task)
    raw = load_data(task_config)
    data = prepare_final(task_config, best.seed, raw)
    params = dict(best.params)
    params["epochs"] = int(best.best_epoch or params["epochs"])
    seed = derive_seed(best.seed, 0, "test")  # the first of the report's test retrainings
    # the same device as the report's retraining, so the test score is the same
    result = train(
        params,
        data,
        seed=seed,
        max_epochs=params["epochs"],
        patience=0,
        device=config.training.device,
    )
    network = result.models[0].cpu()
    fold = data.folds[0]
    if raw.kind == "classification":
        target: dict[str, Any] = {
            "column": task_config.target or "target",
            "classes": class_labels(raw),
        }
    else:
        target = {"column": task_config.target or "target", "mean": fold.y_mean, "std": fold.y_std}
    meta = {
        "format": FORMAT,
        "experiment": experiment,
        "task": best.task,
        "kind": data.kind,
        "metric": data.metric,
        "direction": best.direction,
        "params": params,
        "n_features": data.n_features,
        "n_outputs": output_size(data.kind, data.n_classes),
        "columns": [str(c) for c in raw.X.columns],
        "preprocessing": _preprocessing_spec(fold.preprocessor),
        "target": target,
        "trained_on": {
            "seed": best.seed,
            "study": best.study,
            "trial": best.trial,
            "epochs": params["epochs"],
            "training_seed": seed,
        },
        "scores": {
            f"validation_{data.metric}": best.value,
            f"test_{data.metric}": float(result.history[-1]),
        },
        "versions": {"hpstudy": hpstudy.__version__, "torch": torch.__version__},
    }
    path = Path(output) if output else Path("models") / f"{experiment}-{best.task}"
    path.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), path / "weights.pt")
    (path / "model.json").write_text(json.dumps(meta, indent=1))
    return path, meta


def load_model(path: str | Path) -> SavedModel:
    """Load a model saved by :func:`train_best`; executes no code from the files.

    Raises:
        ModelError: The folder is not a saved model, or its files are damaged or tampered with.
    """
    import pickle

    import torch

    from hpstudy.model import build_mlp

    path = Path(path)
    try:
        meta = json.loads((path / "model.json").read_text())
    except FileNotFoundError as e:
        raise ModelError(
            f"{path} is not a saved hpstudy model (no model.json); make one with 'hpstudy train-best'"
        ) from e
    except (OSError, ValueError) as e:
        raise ModelError(f"{path / 'model.json'} is not readable JSON: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path / 'model.json'} is not an {FORMAT} file")
    try:
        p = meta["params"]
        network = build_mlp(
            int(meta["n_features"]), int(meta["n_outputs"]), n_layers=int(p["n_layers"]), n_units=int(p["n_units"]),
            dropout=float(p["dropout"]), activation=str(p["activation"]), init="default",
        )  # fmt: skip
        state = torch.load(path / "weights.pt", weights_only=True, map_location="cpu")
        network.load_state_dict(state)
    except FileNotFoundError as e:
        raise ModelError(f"{path} has no weights.pt") from e
    except (pickle.UnpicklingError, RuntimeError, KeyError, TypeError, ValueError) as e:
        raise ModelError(
            f"{path} is damaged or was tampered with; refusing to load it ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from e
    for t in network.state_dict().values():
        if not bool(torch.isfinite(t).all()):
            raise ModelError(f"{path / 'weights.pt'} holds non-finite weights")
    return SavedModel(meta, network)


def predict_csv(
    model_path: str | Path, csv_path: str | Path, output: str | Path | None = None
) -> tuple[Path | None, pd.DataFrame]:
    """Predict every row of ``csv_path``; writes ``output`` (CSV) when given."""
    model = load_model(model_path)
    try:
        frame = pd.read_csv(csv_path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read CSV {csv_path}: {e}") from e
    predictions = model.predict_frame(frame)
    if output is not None:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        predictions.to_csv(out, index=False)
        return out, predictions
    return None, predictions
