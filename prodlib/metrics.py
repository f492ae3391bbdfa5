"""Multi-label metrics: micro-F1 (the paper's), macro-F1, per-class scores, tuned thresholds, bootstrap CIs and
the paper's *most-missed classes* table. Explained in notebooks 02 and 06."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["binarize", "bootstrap_ci", "evaluate", "micro_f1", "most_missed", "per_class_f1",
           "tune_class_thresholds", "tune_threshold"]

_GRID = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(f"labels {y_true.shape} and predictions {scores.shape} must be equal 2-D shapes")
    return y_true.astype(bool), scores


def binarize(probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> np.ndarray:
    """0/1 predictions: ``probs >= threshold`` (a scalar, or one threshold per class)."""
    return np.asarray(probs) >= threshold


def _counts(y: np.ndarray, pred: np.ndarray, axis: int | None) -> tuple[Any, Any, Any]:
    """True positives, false positives, false negatives summed over ``axis``."""
    return (np.logical_and(y, pred).sum(axis=axis), np.logical_and(~y, pred).sum(axis=axis),
            np.logical_and(y, ~pred).sum(axis=axis))


def micro_f1(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> float:
    """Micro-averaged F1 over the whole products × classes matrix (0 when nothing is predicted or true)."""
    y, p = _check(y_true, probs)
    tp, fp, fn = _counts(y, binarize(p, threshold), None)
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else 0.0


def per_class_f1(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class (column order kept), as a table."""
    y, p = _check(y_true, probs)
    tp, fp, fn = _counts(y, binarize(p, threshold), 0)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)  # np.maximum: never a division by 0
    recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": y.sum(axis=0)})


def evaluate(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str],
             threshold: float | np.ndarray = 0.5) -> dict[str, Any]:
    """A stage's ``metrics.json``: micro/macro F1 (macro over classes with true products), micro P/R, per class."""
    y, p = _check(y_true, probs)
    tp, fp, fn = _counts(y, binarize(p, threshold), None)
    table = per_class_f1(y, p, threshold)
    table.insert(0, "class", list(classes))
    present = table["support"] > 0
    return {"threshold": threshold if np.isscalar(threshold) else "per-class", "n_products": int(y.shape[0]),
            "n_classes": int(y.shape[1]), "micro_f1": micro_f1(y, p, threshold),
            "micro_precision": float(tp / (tp + fp)) if tp + fp else 0.0,
            "micro_recall": float(tp / (tp + fn)) if tp + fn else 0.0,
            "macro_f1": float(table.loc[present, "f1"].mean()) if present.any() else 0.0,
            "per_class": table.to_dict(orient="records")}


def tune_threshold(y_val: np.ndarray, probs_val: np.ndarray, grid: Sequence[float] = _GRID) -> float:
    """One global threshold maximising validation micro-F1 (never fit on test)."""
    return float(grid[int(np.argmax([micro_f1(y_val, probs_val, t) for t in grid]))])


def tune_class_thresholds(y_val: np.ndarray, probs_val: np.ndarray, default: float = 0.5,
                          grid: Sequence[float] = _GRID) -> np.ndarray:
    """One threshold per class maximising its validation F1; ``default`` for classes absent from validation."""
    y, p = _check(y_val, probs_val)
    pred = np.stack([p >= t for t in grid], axis=2)  # products × classes × thresholds
    tp, denom = (pred & y[:, :, None]).sum(axis=0), pred.sum(axis=0) + y.sum(axis=0)[:, None]
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return np.where(y.any(axis=0), np.asarray(grid, dtype=float)[f1.argmax(axis=1)], float(default))


def bootstrap_ci(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5,
                 n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of micro-F1, resampling products with replacement."""
    y, p = _check(y_true, probs)
    tp, fp, fn = _counts(y, binarize(p, threshold), 1)
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n, len(y)))
    TP, FP, FN = tp[idx].sum(1), fp[idx].sum(1), fn[idx].sum(1)
    f1 = np.where(2 * TP + FP + FN > 0, 2 * TP / np.maximum(2 * TP + FP + FN, 1), 0.0)
    alpha = (1 - level) / 2
    return float(np.quantile(f1, alpha)), float(np.quantile(f1, 1 - alpha))


def most_missed(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], k: int = 5,
                threshold: float | np.ndarray = 0.5, min_support: int = 1) -> pd.DataFrame:
    """The paper's Tables 2 and 4: most-missed classes (by miss rate, count); ``label`` is ``Name (missed/support)``."""
    y, p = _check(y_true, probs)
    missed = np.logical_and(y, ~binarize(p, threshold)).sum(axis=0)
    table = pd.DataFrame({"class": list(classes), "missed": missed, "support": y.sum(axis=0)})
    table = table[table["support"] >= min_support].copy()
    table["miss_rate"] = table["missed"] / table["support"]
    table = table.sort_values(["miss_rate", "missed"], ascending=False).head(k).reset_index(drop=True)
    table["label"] = [f"{c} ({m}/{s})" for c, m, s in table[["class", "missed", "support"]].itertuples(index=False)]
    table.index = table.index + 1
    return table
