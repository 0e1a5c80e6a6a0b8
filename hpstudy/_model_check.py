"""Checks of a saved model's two files before anything is allocated from them.

``model.json`` is validated against its schema (every key, type and range) and the sizes of
the network are taken from the tensor shapes in ``weights.pt`` (read memory-mapped, so
nothing is allocated), never from numbers in the JSON. The two files are bound by digests:
``model.json`` stores the SHA-256 of ``weights.pt`` and of its own canonical content, so an
edit to either file, or a file swapped in from another model, is refused.

The digests detect accidental damage and edits made without hpstudy. They are not a
signature: someone who edits a file on purpose can recompute them, so a model folder is only
as trustworthy as whoever could write to it. Loading never executes code either way
(``torch.load(weights_only=True)``, plain JSON).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, TypeGuard

from hpstudy.config._schema import ACTIVATIONS, KINDS, METRICS

FORMAT = "hpstudy-model/2"
DIGEST_KEY = "digest"
# model.json is a few kB for any real model; a larger file is not one.
MAX_JSON_BYTES = 16 * 1024 * 1024
_TOP_KEYS = (
    "format", "kind", "metric", "params", "n_features", "n_outputs", "columns",
    "preprocessing", "target", DIGEST_KEY,
)  # fmt: skip


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def meta_sha256(meta: dict[str, Any]) -> str:
    """Digest of ``model.json``'s canonical content (sorted keys, the digest itself left out)."""
    body = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def seal(meta: dict[str, Any], weights: Path) -> dict[str, Any]:
    """``meta`` with the digests that bind it to ``weights``."""
    meta = {k: v for k, v in meta.items() if k != DIGEST_KEY}
    meta[DIGEST_KEY] = {"weights_sha256": file_sha256(weights), "model_sha256": meta_sha256(meta)}
    return meta


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _str_list(v: Any) -> TypeGuard[list[str]]:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def check_meta(meta: Any) -> list[str]:
    """Every problem of a parsed ``model.json`` (empty when it is well-formed)."""
    if not isinstance(meta, dict):
        return [f"must be a JSON object, got {type(meta).__name__}"]
    missing = [k for k in _TOP_KEYS if k not in meta]
    if missing:
        return [f"missing key(s) {', '.join(missing)}"]
    problems: list[str] = []
    if meta["kind"] not in KINDS:
        problems.append(f"kind must be classification or regression, got {meta['kind']!r}")
    if meta["metric"] not in METRICS:
        problems.append(f"metric {meta['metric']!r} is not one of {', '.join(METRICS)}")
    params = meta["params"]
    if not isinstance(params, dict) or params.get("activation") not in ACTIVATIONS:
        problems.append(f"params.activation must be one of {', '.join(ACTIVATIONS)}")
    elif not (_finite(params.get("dropout")) and 0 <= params["dropout"] < 1):
        problems.append(f"params.dropout must be in [0, 1), got {params.get('dropout')!r}")
    columns = meta["columns"]
    if not _str_list(columns) or not columns or len(set(columns)) != len(columns):
        problems.append("columns must be a non-empty list of distinct column names")
        columns = []
    problems += _check_preprocessing(meta["preprocessing"], columns)
    problems += _check_target(meta["kind"], meta["target"])
    for key in ("n_features", "n_outputs"):
        if not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 1:
            problems.append(f"{key} must be an integer >= 1, got {meta[key]!r}")
    if not problems:
        pre = meta["preprocessing"]
        width = len(pre["numeric"]) + sum(len(c["categories"]) for c in pre["categorical"])
        if meta["n_features"] != width:
            problems.append(
                f"n_features is {meta['n_features']} but the preprocessing makes {width} inputs"
            )
        classes = meta["target"].get("classes", [])
        outputs = len(classes) if len(classes) > 2 else 1
        if meta["n_outputs"] != outputs:
            problems.append(f"n_outputs is {meta['n_outputs']} but the target needs {outputs}")
    ignored = meta.get("ignored_columns", [])
    if not _str_list(ignored):
        problems.append("ignored_columns must be a list of column names")
    digest = meta[DIGEST_KEY]
    if not (
        isinstance(digest, dict)
        and all(
            isinstance(digest.get(k), str) and len(digest[k]) == 64
            for k in ("weights_sha256", "model_sha256")
        )
    ):
        problems.append("digest must hold weights_sha256 and model_sha256 (64 hex digits each)")
    return problems


def _check_preprocessing(pre: Any, columns: list[str]) -> list[str]:
    if not isinstance(pre, dict) or not all(
        isinstance(pre.get(k), list) for k in ("numeric", "categorical")
    ):
        return ["preprocessing must hold the lists numeric and categorical"]
    problems = []
    seen = []
    for i, c in enumerate(pre["numeric"]):
        where = f"preprocessing.numeric[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("column"), str):
            problems.append(f"{where} must name its column")
            continue
        seen.append(c["column"])
        for key in ("median", "mean"):
            if not _finite(c.get(key)):
                problems.append(f"{where}.{key} must be a finite number, got {c.get(key)!r}")
        if not (_finite(c.get("scale")) and c["scale"] > 0):
            problems.append(f"{where}.scale must be a finite number > 0, got {c.get('scale')!r}")
    for i, c in enumerate(pre["categorical"]):
        where = f"preprocessing.categorical[{i}]"
        if not isinstance(c, dict) or not isinstance(c.get("column"), str):
            problems.append(f"{where} must name its column")
            continue
        seen.append(c["column"])
        if not isinstance(c.get("most_frequent"), str):
            problems.append(f"{where}.most_frequent must be a string")
        if not _str_list(c.get("categories")) or not c["categories"]:
            problems.append(f"{where}.categories must be a non-empty list of strings")
    if columns and sorted(seen) != sorted(columns):
        problems.append(
            f"preprocessing covers columns {sorted(seen)} but columns lists {sorted(columns)}"
        )
    return problems


def _check_target(kind: Any, target: Any) -> list[str]:
    if not isinstance(target, dict) or not isinstance(target.get("column"), str):
        return ["target must name its column"]
    if kind == "classification":
        classes = target.get("classes")
        if not _str_list(classes) or len(classes) < 2 or len(set(classes)) != len(classes):
            return [f"target.classes must list at least 2 distinct class labels, got {classes!r}"]
    elif kind == "regression":
        if not _finite(target.get("mean")):
            return [f"target.mean must be a finite number, got {target.get('mean')!r}"]
        if not (_finite(target.get("std")) and target["std"] > 0):
            return [f"target.std must be a finite number > 0, got {target.get('std')!r}"]
        if target.get("link", "identity") not in ("identity", "log"):
            return [f"target.link must be identity or log, got {target.get('link')!r}"]
    return []


def layer_widths(state: dict[str, Any], n_features: int, n_outputs: int) -> list[int]:
    """The widths ``[inputs, hidden..., outputs]`` read from the tensor shapes of a state dict
    of the MLP :func:`hpstudy.model.build_mlp` makes, checked to chain and to match the
    preprocessing's inputs and the target's outputs.

    Raises:
        ValueError: The tensors are not such a network.
    """
    linear: dict[int, dict[str, tuple[int, ...]]] = {}
    for key, tensor in state.items():
        position, _, kind = key.partition(".")
        if not position.isdigit() or kind not in ("weight", "bias"):
            raise ValueError(f"unexpected tensor {key!r}")
        linear.setdefault(int(position), {})[kind] = tuple(tensor.shape)
    widths = [n_features]
    for index in sorted(linear):
        shapes = linear[index]
        weight, bias = shapes.get("weight"), shapes.get("bias")
        if weight is None or len(weight) != 2 or bias != (weight[0],):
            raise ValueError(f"layer {index} has weight {weight} and bias {bias}")
        if weight[1] != widths[-1]:
            raise ValueError(f"layer {index} takes {weight[1]} inputs, not {widths[-1]}")
        widths.append(weight[0])
    if len(widths) < 2 or widths[-1] != n_outputs:
        raise ValueError(f"the network ends in {widths[-1]} outputs, not {n_outputs}")
    if len(set(widths[1:-1])) > 1:
        raise ValueError(f"hidden layers of different widths {widths[1:-1]}")
    return widths
