"""Take the winning model home: retrain the best configuration, save it, predict with it.

A saved model is a folder of two files that execute no code when loaded:

- ``weights.pt``: the network's state dict, loaded with ``torch.load(weights_only=True)``;
- ``model.json``: the architecture and hyperparameters, the preprocessing as plain numbers
  (per numeric column its median, mean and scale; per categorical column its most frequent
  value and categories), the target encoding (class labels, or the regression target's mean
  and standard deviation), the input columns, the scores and the hpstudy/torch versions,
  and the digests that bind it to ``weights.pt`` (see ``hpstudy/_model_check.py``: an edit
  to either file is refused; the digests are a checksum, not a signature).

Preprocessing is re-applied from those numbers with NumPy, exactly as scikit-learn's
imputers, scaler and one-hot encoder (unknown categories -> all zeros) do, so no pickle is
ever needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpstudy._errors import ConfigError, HpStudyError, UsageError
from hpstudy._model_check import (
    DIGEST_KEY,
    FORMAT,
    MAX_JSON_BYTES,
    check_meta,
    file_sha256,
    layer_widths,
    meta_sha256,
    seal,
)
from hpstudy._paths import default_output


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
        known = {*self.columns, target["column"], *self.meta.get("ignored_columns", [])}
        extra = [c for c in frame.columns if c not in known]
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
    if config.benchmark_family is not None:
        raise UsageError(
            f"experiment '{experiment}' looks up a published benchmark ({config.benchmark_family}): "
            "its configurations were trained in advance and there is no data or model to save; "
            f"'hpstudy best {experiment}' shows the best configurations"
        )
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
        "ignored_columns": list(
            raw.ignored
        ),  # in the training file, not inputs: predict skips them
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
    path = Path(output) if output else default_output("models", (experiment, best.task))
    path.mkdir(parents=True, exist_ok=True)
    # each file is written whole under a temporary name, then renamed; the weights first, so
    # a model.json always describes the weights beside it
    tmp = path / ".weights.pt.tmp"
    torch.save(network.state_dict(), tmp)
    meta = seal(meta, tmp)
    os.replace(tmp, path / "weights.pt")
    tmp = path / ".model.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, path / "model.json")
    return path, meta


def load_model(path: str | Path) -> SavedModel:
    """Load a model saved by :func:`train_best`; executes no code from the files.

    ``model.json`` is checked against its schema and both files against its digests before
    anything is allocated; the network's sizes come from the tensor shapes in ``weights.pt``.

    Raises:
        ModelError: The folder is not a saved model, or its files are damaged or were edited.
    """
    import pickle

    import torch

    from hpstudy.model import build_mlp

    path = Path(path)
    json_path, weights_path = path / "model.json", path / "weights.pt"
    if not json_path.is_file():
        raise ModelError(
            f"{path} is not a saved hpstudy model (no model.json); make one with 'hpstudy train-best'"
        )
    retrain = "retrain it with 'hpstudy train-best'"
    try:
        if json_path.stat().st_size > MAX_JSON_BYTES:
            raise ModelError(f"{json_path} is over {MAX_JSON_BYTES} bytes; not a model.json")
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{json_path} is not readable JSON: {e}") from e
    version = meta.get("format") if isinstance(meta, dict) else None
    if version == "hpstudy-model/1":
        raise ModelError(f"{path} was saved by an older hpstudy (no digests); {retrain}")
    if version != FORMAT:
        raise ModelError(f"{json_path} is not an {FORMAT} file")
    problems = check_meta(meta)
    if problems:
        raise ModelError(f"{json_path} is damaged or was edited: {'; '.join(problems)}; {retrain}")
    if meta_sha256(meta) != meta[DIGEST_KEY]["model_sha256"]:
        raise ModelError(
            f"{json_path} is damaged or was tampered with: its content does not match its digest "
            f"(edited after it was saved); {retrain}"
        )
    if not weights_path.is_file():
        raise ModelError(f"{path} has no weights.pt; {retrain}")
    if file_sha256(weights_path) != meta[DIGEST_KEY]["weights_sha256"]:
        raise ModelError(
            f"{weights_path} is damaged or was tampered with: it does not match the digest in "
            f"model.json (edited, or from another model); {retrain}"
        )
    try:
        # memory-mapped: the shapes are read before anything the size of the network exists
        state = torch.load(weights_path, weights_only=True, map_location="cpu", mmap=True)
        if not isinstance(state, dict):
            raise ValueError("not a state dict")
        widths = layer_widths(state, meta["n_features"], meta["n_outputs"])
    except (pickle.UnpicklingError, RuntimeError, KeyError, TypeError, ValueError) as e:
        raise ModelError(
            f"{path} is damaged or was tampered with; refusing to load it ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from e
    p = meta["params"]
    hidden = widths[1:-1]
    if p.get("n_layers") != len(hidden) or (hidden and p.get("n_units") != hidden[0]):
        raise ModelError(
            f"{json_path} says n_layers = {p.get('n_layers')!r}, n_units = {p.get('n_units')!r} but "
            f"weights.pt has {len(hidden)} hidden layer(s) of {hidden[0] if hidden else 0} units; {retrain}"
        )
    try:
        network = build_mlp(
            widths[0], widths[-1], n_layers=len(hidden), n_units=hidden[0] if hidden else 1,
            dropout=float(p["dropout"]), activation=str(p["activation"]), init="default",
        )  # fmt: skip
        network.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise ModelError(
            f"{path} is damaged or was tampered with; refusing to load it ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from e
    for t in network.state_dict().values():
        if not bool(torch.isfinite(t).all()):
            raise ModelError(f"{weights_path} holds non-finite weights; {retrain}")
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
