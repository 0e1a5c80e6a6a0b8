"""A saved model's preprocessing as plain numbers, and its checks of new rows.

``train-best`` saves the fitted ColumnTransformer as numbers (per numeric column its median,
mean and scale; per categorical column its most frequent value and categories);
:func:`transform` re-applies them with NumPy exactly as scikit-learn's imputers, scaler and
``OneHotEncoder(handle_unknown="ignore")`` do, so no pickle is needed. :func:`check_inputs`
finds in new rows the values training would have refused, so ``predict`` refuses them too
(or imputes them when asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def preprocessing_spec(pre: Any) -> dict[str, Any]:
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


def category_label(value: object) -> str:
    """A categorical cell as the label training saw: integral numbers without ``.0``, so a
    column of codes read as floats (because of an empty cell) still matches ``'1'``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Beyond this magnitude a value's square overflows float64 (training refuses them too).
_MAX_ABS = 1e150


@dataclass(frozen=True)
class InputCheck:
    """What :func:`check_inputs` found in new rows' numeric columns.

    Attributes:
        problems: One line per column with text, infinite or overflowing values (their count,
            the values and the lines), empty when the rows are clean.
        bad: Per column, the rows holding such values (``--impute`` fills them).
        missing: Empty cells per input column (always imputed, as in training).
    """

    problems: list[str]
    bad: dict[str, np.ndarray]
    missing: dict[str, int]


def _line_list(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(r + 2) for r in rows[:limit])  # the header is line 1
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def check_inputs(spec: dict[str, Any], frame: pd.DataFrame) -> InputCheck:
    """Find the values training would have refused in the numeric input columns: text
    (``"abc"``), infinite, or beyond 1e150 (standardising them overflows)."""
    problems: list[str] = []
    bad: dict[str, np.ndarray] = {}
    missing: dict[str, int] = {}
    for c in spec["numeric"]:
        column = frame[c["column"]]
        present = column.notna().to_numpy()
        x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        text = present & np.isnan(x)
        with np.errstate(invalid="ignore"):
            infinite = np.isinf(x)
            huge = np.abs(np.where(infinite, 0.0, np.nan_to_num(x))) > _MAX_ABS
        wrong = text | infinite | huge
        if (~present).any():
            missing[c["column"]] = int((~present).sum())
        if wrong.any():
            rows = np.flatnonzero(wrong)
            values = ", ".join(repr(v) for v in pd.unique(column.to_numpy()[rows])[:5])
            kinds = [
                label
                for label, mask in (("text", text), ("infinite", infinite), (">1e150", huge))
                if mask.any()
            ]
            problems.append(
                f"column {c['column']!r} has {len(rows)} {'/'.join(kinds)} value(s) {values} at "
                f"line(s) {_line_list(rows)}"
            )
            bad[c["column"]] = rows
    for c in spec["categorical"]:
        n = int(frame[c["column"]].isna().sum())
        if n:
            missing[c["column"]] = n
    return InputCheck(problems, bad, missing)


def transform(spec: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Apply saved preprocessing to ``frame`` (numeric columns first, then one-hot).

    Values that are not finite numbers in a numeric column are imputed like empty cells;
    :func:`check_inputs` finds them first so that callers can refuse them.
    """
    parts = []
    for c in spec["numeric"]:
        x = pd.to_numeric(frame[c["column"]], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            unusable = ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > _MAX_ABS)
        x = np.where(unusable, c["median"], x)
        parts.append(((x - c["mean"]) / c["scale"])[:, None])
    for c in spec["categorical"]:
        column = frame[c["column"]]
        values = column.where(column.notna(), c["most_frequent"]).map(category_label).to_numpy()
        parts.append(
            np.stack([(values == cat).astype(np.float64) for cat in c["categories"]], axis=1)
        )
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)
