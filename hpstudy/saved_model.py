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

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpstudy._atomic import atomic_file, write_bytes_atomic
from hpstudy._errors import HpStudyError, UsageError
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
from hpstudy._model_inputs import check_inputs, preprocessing_spec, transform
from hpstudy._paths import default_output
from hpstudy._threads import torch_threads


class ModelError(HpStudyError):
    """A saved model is missing, damaged or was tampered with."""

    exit_code = 1


@dataclass
class SavedModel:
    """A trained network with everything needed to use it on new rows."""

    meta: dict[str, Any]
    network: Any  # torch.nn.Sequential

    @property
    def columns(self) -> list[str]:
        return list(self.meta["columns"])

    def predict_frame(
        self,
        frame: pd.DataFrame,
        *,
        impute: bool = False,
        ids: list[str] | None = None,
        notes: list[str] | None = None,
    ) -> pd.DataFrame:
        """Predictions for ``frame``: a ``prediction`` column (class label or value) and, for
        classification, one ``proba_<class>`` column per class.

        Args:
            frame: Rows with the model's input columns.
            impute: Fill text, infinite and overflowing numbers in numeric columns with the
                training median instead of refusing them.
            ids: Columns of ``frame`` copied to the front of the output, so that rows can be
                matched; ``None``: every column of ``frame`` the model ignores (as in training).
            notes: Receives one line on what was imputed, if anything.

        Raises:
            UsageError: Missing or unexpected columns, an unknown ``ids`` column, or values a
                numeric column cannot hold (unless ``impute``).
        """
        import torch

        from hpstudy.metrics import probabilities

        target = self.meta["target"]
        missing = [c for c in self.columns if c not in frame.columns]
        known = {
            *self.columns, target["column"], *self.meta.get("ignored_columns", []), *(ids or []),
        }  # fmt: skip
        extra = [c for c in frame.columns if c not in known]
        unknown_ids = [c for c in ids or [] if c not in frame.columns]
        if unknown_ids:
            raise UsageError(
                f"--id names column(s) not in the data: {', '.join(map(repr, unknown_ids))}; "
                f"its columns are: {', '.join(map(str, frame.columns[:20]))}"
            )
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"missing column(s) {', '.join(map(str, missing))}")
            if extra:
                problems.append(f"unexpected column(s) {', '.join(map(str, extra))}")
            hint = f" (an ID to keep beside the predictions: --id {extra[0]})" if extra else ""
            raise UsageError(
                f"the data do not have the model's columns: {'; '.join(problems)}; expected: "
                f"{', '.join(self.columns)}{hint}"
            )
        spec = self.meta["preprocessing"]
        check = check_inputs(spec, frame)
        if check.problems and not impute:
            raise UsageError(
                f"{'; '.join(check.problems)}: the model was trained on numbers only; fix those "
                "cells (or leave them empty to impute them), or pass --impute to fill them with "
                "the training median"
            )
        if notes is not None:
            n_bad = sum(len(r) for r in check.bad.values())
            n_missing = sum(check.missing.values())
            if n_bad or n_missing:
                parts = [f"{n_missing} empty cell(s)"] if n_missing else []
                if n_bad:
                    parts.append(
                        f"{n_bad} unusable number(s) in {', '.join(map(repr, check.bad))} (--impute)"
                    )
                notes.append(
                    f"imputed {' and '.join(parts)}: numeric columns with the training median, "
                    "categorical ones with the most frequent training value"
                )
        X = torch.from_numpy(transform(spec, frame))
        self.network.eval()
        with torch.inference_mode():
            out = self.network(X)
        out = out.squeeze(1) if out.shape[1] == 1 else out
        result = pd.DataFrame(index=frame.index)
        passed = (
            ids
            if ids is not None
            else [
                c
                for c in self.meta.get("ignored_columns", [])
                if c in frame.columns and c != "prediction" and not str(c).startswith("proba_")
            ]
        )
        for c in passed:
            result[c] = frame[c]
        if self.meta["kind"] == "regression":
            value = out.double().numpy() * target["std"] + target["mean"]
            if target.get("link") == "log":
                with np.errstate(over="ignore"):
                    value = np.exp(value)
            clash = [c for c in passed if c == "prediction"]
            if clash:
                raise UsageError("an --id column is named 'prediction'; rename it in the data")
            result["prediction"] = value
            return result
        proba = probabilities(out)
        classes = target["classes"]
        outputs = ["prediction", *(f"proba_{c}" for c in classes)]
        clash = [c for c in passed if c in outputs]
        if clash:
            raise UsageError(
                f"--id column(s) {', '.join(map(repr, clash))} have the name of an output "
                "column; rename them in the data"
            )
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
        if target.get("link") == "log":
            out = torch.exp(out)
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
    storage_url: str,
    experiment: str,
    task: str | None = None,
    output: str | Path | None = None,
    *,
    all_rows: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Retrain the best configuration of ``task`` (as ``hpstudy best`` chooses it: by its mean
    over seeds) on train+validation of its seed, score it on that seed's test split, and save
    it (default ``models/EXPERIMENT-TASK``).

    Args:
        all_rows: Train on every labelled row, the test split included (more data for the
            model you deploy); its test score is then not held out and is saved as
            ``train_{metric}`` instead, with the held-out score of the same recipe trained
            without the test rows beside it.

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
    from hpstudy.scoring import retrain
    from hpstudy.store import stored_config as _stored_config
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
    params = dict(best.params)
    params["epochs"] = int(best.best_epoch or params["epochs"])
    data = prepare_final(task_config, best.seed, raw, keep=True)
    # the first of the test-score retrainings (the same function, seed and device), so the
    # saved model's test score is the first cached one
    result = retrain(
        task_config, best.seed, params, params["epochs"],
        device=config.training.device, repeats=1, data=data,
    )  # fmt: skip
    seed = result.seeds[0]
    if result.first_model is None:
        raise HpStudyError(
            f"retraining {best.study} trial {best.trial} on train+validation diverged (its loss "
            "became NaN or infinite); nothing was saved"
        )
    network = result.first_model
    scores = {
        f"validation_{best.objective or data.metric}": best.value,
        f"test_{data.metric}": float(result.scores[0]),
    }
    if all_rows:
        # the same recipe refitted on every labelled row: more data for the model deployed;
        # its score on rows it trained on is saved as train_METRIC, never as a test score
        data = prepare_final(task_config, best.seed, raw, all_rows=True, keep=True)
        with torch_threads(config.training.torch_threads):
            refit = train(
                params, data, seed=seed, max_epochs=params["epochs"], patience=0,
                device=config.training.device,
            )  # fmt: skip
        network = refit.models[0].cpu()
        scores[f"train_{data.metric}"] = float(refit.history[-1])
    fold = data.folds[0]
    if raw.kind == "classification":
        target: dict[str, Any] = {
            "column": task_config.target or "target",
            "classes": class_labels(raw),
        }
    else:
        target = {"column": task_config.target or "target", "mean": fold.y_mean, "std": fold.y_std}
        if data.loss == "poisson":
            target["link"] = "log"  # the network predicts log(count)
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
        "preprocessing": preprocessing_spec(fold.preprocessor),
        "target": target,
        "trained_on": {
            "seed": best.seed,
            "study": best.study,
            "trial": best.trial,
            "epochs": params["epochs"],
            "training_seed": seed,
            "rows": "all labelled rows" if all_rows else "train+validation",
            "validation_by_seed": {str(k): v for k, v in best.values_by_seed.items()},
        },
        "scores": scores,
        "versions": {"hpstudy": hpstudy.__version__, "torch": torch.__version__},
    }
    path = Path(output) if output else default_output("models", (experiment, best.task))
    path.mkdir(parents=True, exist_ok=True)
    # each file is written whole under a unique temporary name (O_EXCL: never a planted
    # symlink), then renamed; the weights first, so a model.json always describes the
    # weights beside it
    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer)
    weights = buffer.getvalue()
    with atomic_file(path / "weights.pt") as f:
        f.write(weights)
    meta = seal(meta, path / "weights.pt")
    write_bytes_atomic(path / "model.json", json.dumps(meta, indent=1).encode())
    return path, meta


def load_model(path: str | Path) -> SavedModel:
    """Load a model saved by :func:`train_best`; executes no code from the files.

    ``model.json`` is checked against its schema and both files against its digests before
    anything is allocated; the network's sizes come from the tensor shapes in ``weights.pt``.

    Raises:
        ModelError: The folder is not a saved model, or its files are damaged or were edited.
    """
    try:
        return _load_model(Path(path))
    except RecursionError as e:  # JSON nested deeper than Python's recursion limit
        raise ModelError(
            f"{Path(path) / 'model.json'} is not a model.json: it is nested too deeply to read; "
            "retrain it with 'hpstudy train-best'"
        ) from e


def _load_model(path: Path) -> SavedModel:
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
    model_path: str | Path,
    csv_path: str | Path,
    output: str | Path | None = None,
    *,
    impute: bool = False,
    ids: list[str] | None = None,
    notes: list[str] | None = None,
) -> tuple[Path | None, pd.DataFrame]:
    """Predict every row of ``csv_path`` (delimiter and quoting sniffed, as for training);
    writes ``output`` (CSV) when given. See :meth:`SavedModel.predict_frame` for ``impute``,
    ``ids`` and ``notes``."""
    from hpstudy.data._csv import read_table

    model = load_model(model_path)
    table = read_table(csv_path)
    if table.duplicates:
        name, positions = next(iter(table.duplicates.items()))
        raise UsageError(
            f"column name {name!r} appears {len(positions)} times in the header of {csv_path} "
            f"(columns {', '.join(map(str, positions))}); rename or remove the copies"
        )
    predictions = model.predict_frame(table.frame, impute=impute, ids=ids, notes=notes)
    if output is not None:
        out = Path(output)
        write_bytes_atomic(out, predictions.to_csv(index=False).encode())
        return out, predictions
    return None, predictions
