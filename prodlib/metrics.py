"""Multi-label metrics: micro-F1 (the paper's metric), macro-F1, per-class scores, tuned thresholds,
bootstrap confidence intervals and the paper's *most-missed classes* table.

Explained in notebooks 02 (title classifier) and 06 (error analysis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "binarize",
    "bootstrap_ci",
    "evaluate",
    "micro_f1",
    "most_missed",
    "per_class_f1",
    "tune_class_thresholds",
    "tune_threshold",
]


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(f"labels {y_true.shape} and predictions {scores.shape} must be equal 2-D shapes")
    return y_true.astype(bool), scores


def binarize(probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> np.ndarray:
    """0/1 predictions: ``probs >= threshold`` (a scalar, or one threshold per class)."""
    return np.asarray(probs) >= threshold


def _counts(y: np.ndarray, pred: np.ndarray, axis: int | None) -> tuple[Any, Any, Any]:
    tp = np.logical_and(y, pred).sum(axis=axis)
    fp = np.logical_and(~y, pred).sum(axis=axis)
    fn = np.logical_and(y, ~pred).sum(axis=axis)
    return tp, fp, fn


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
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": y.sum(axis=0)})


def evaluate(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str],
             threshold: float | np.ndarray = 0.5) -> dict[str, Any]:
    """The metrics every stage writes to ``metrics.json``: micro/macro F1, micro P/R, per-class rows.

    Macro-F1 averages over classes with at least one true test product.
    """
    y, p = _check(y_true, probs)
    pred = binarize(p, threshold)
    tp, fp, fn = _counts(y, pred, None)
    table = per_class_f1(y, p, threshold)
    table.insert(0, "class", list(classes))
    present = table["support"] > 0
    return {
        "threshold": threshold if np.isscalar(threshold) else "per-class",
        "n_products": int(y.shape[0]),
        "n_classes": int(y.shape[1]),
        "micro_f1": micro_f1(y, p, threshold),
        "micro_precision": float(tp / (tp + fp)) if tp + fp else 0.0,
        "micro_recall": float(tp / (tp + fn)) if tp + fn else 0.0,
        "macro_f1": float(table.loc[present, "f1"].mean()) if present.any() else 0.0,
        "per_class": table.to_dict(orient="records"),
    }


def tune_threshold(y_val: np.ndarray, probs_val: np.ndarray,
                   grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))) -> float:
    """One global threshold maximising validation micro-F1 (never fit on test)."""
    scores = [micro_f1(y_val, probs_val, t) for t in grid]
    return float(grid[int(np.argmax(scores))])


def tune_class_thresholds(y_val: np.ndarray, probs_val: np.ndarray, default: float = 0.5,
                          grid: Sequence[float] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))) -> np.ndarray:
    """One threshold per class maximising that class's validation F1; ``default`` for classes absent
    from validation."""
    y, p = _check(y_val, probs_val)
    out = np.full(y.shape[1], default, dtype=float)
    for c in range(y.shape[1]):
        if not y[:, c].any():
            continue
        best, best_t = -1.0, default
        for t in grid:
            pred = p[:, c] >= t
            tp = np.sum(pred & y[:, c])
            denom = pred.sum() + y[:, c].sum()
            f1 = 2 * tp / denom if denom else 0.0
            if f1 > best:
                best, best_t = f1, t
        out[c] = best_t
    return out


def bootstrap_ci(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5,
                 n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of micro-F1, resampling products with replacement."""
    y, p = _check(y_true, probs)
    pred = binarize(p, threshold)
    tp = np.logical_and(y, pred).sum(axis=1)
    fp = np.logical_and(~y, pred).sum(axis=1)
    fn = np.logical_and(y, ~pred).sum(axis=1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n, len(y)))
    TP, FP, FN = tp[idx].sum(1), fp[idx].sum(1), fn[idx].sum(1)
    denom = 2 * TP + FP + FN
    f1 = np.where(denom > 0, 2 * TP / np.maximum(denom, 1), 0.0)
    alpha = (1 - level) / 2
    return float(np.quantile(f1, alpha)), float(np.quantile(f1, 1 - alpha))


def most_missed(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], k: int = 5,
                threshold: float | np.ndarray = 0.5, min_support: int = 1) -> pd.DataFrame:
    """The paper's Tables 2 and 4: classes ranked by how many of their test products missed them.

    *Missed* = test products whose true labels include the class and whose prediction does not. Ranked by
    miss rate (missed / support), then by missed count; ``label`` renders the paper's ``Name (m/s)`` form.
    """
    y, p = _check(y_true, probs)
    pred = binarize(p, threshold)
    support = y.sum(axis=0)
    missed = np.logical_and(y, ~pred).sum(axis=0)
    table = pd.DataFrame({"class": list(classes), "missed": missed, "support": support})
    table = table[table["support"] >= min_support].copy()
    table["miss_rate"] = table["missed"] / table["support"]
    table = table.sort_values(["miss_rate", "missed"], ascending=False).head(k).reset_index(drop=True)
    parts = zip(table["class"], table["missed"], table["support"], strict=True)
    table["label"] = [f"{c} ({m}/{s})" for c, m, s in parts]
    table.index = table.index + 1
    return table
