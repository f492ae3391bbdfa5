"""Multi-label metrics: micro-F1 (the paper's), macro-F1, per-class scores, tuned thresholds, bootstrap CIs and
the paper's *most-missed classes* table. Explained in notebooks 02 and 06."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["binarize", "bootstrap_ci", "evaluate", "fit_threshold", "micro_f1", "most_missed", "paired_bootstrap",
           "per_class_f1", "product_f1", "threshold_curve", "tune_class_thresholds", "tune_threshold"]

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


def threshold_curve(y_val: np.ndarray, probs_val: np.ndarray, grid: Sequence[float] = _GRID) -> pd.DataFrame:
    """Micro-F1 at each global threshold of ``grid`` (the curve notebook 02 plots to justify a threshold)."""
    return pd.DataFrame({"threshold": list(grid), "micro_f1": [micro_f1(y_val, probs_val, t) for t in grid]})


def _nearest_best(scores: np.ndarray, grid: Sequence[float], default: float) -> np.ndarray:
    """Per row of ``scores`` (… × thresholds): the best threshold, ties going to the one nearest ``default``."""
    g = np.asarray(grid, dtype=float)
    best = np.isclose(scores, scores.max(axis=-1, keepdims=True))
    return g[np.where(best, -np.abs(g - default), -np.inf).argmax(axis=-1)]


def tune_threshold(y_val: np.ndarray, probs_val: np.ndarray, grid: Sequence[float] = _GRID,
                   default: float = 0.5) -> float:
    """One global threshold maximising micro-F1 on held-out predictions (ties: the one nearest ``default``)."""
    return float(_nearest_best(threshold_curve(y_val, probs_val, grid)["micro_f1"].to_numpy(), grid, default))


def tune_class_thresholds(y_val: np.ndarray, probs_val: np.ndarray, default: float = 0.5,
                          grid: Sequence[float] = _GRID, min_support: int = 5) -> np.ndarray:
    """One threshold per class maximising its F1 on held-out (validation or out-of-fold) predictions; a class
    with fewer than ``min_support`` positive products keeps ``default``, and ties go to the threshold nearest it."""
    y, p = _check(y_val, probs_val)
    pred = np.stack([p >= t for t in grid], axis=2)  # products × classes × thresholds
    tp, denom = (pred & y[:, :, None]).sum(axis=0), pred.sum(axis=0) + y.sum(axis=0)[:, None]
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return np.where(y.sum(axis=0) >= max(1, min_support), _nearest_best(f1, grid, default), float(default))


def fit_threshold(y_held: np.ndarray, probs_held: np.ndarray, *, per_class: bool = False,
                  min_support: int = 5) -> float | np.ndarray:
    """The study's tuned threshold, fitted on held-out (validation or out-of-fold) predictions: one global threshold,
    or with ``per_class`` one per class (:func:`tune_class_thresholds`), which overfits small held-out sets."""
    return tune_class_thresholds(y_held, probs_held, min_support=min_support) if per_class else \
        tune_threshold(y_held, probs_held)


def product_f1(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> np.ndarray:
    """F1 of each product's predicted label set against its true set (1 when both are empty)."""
    y, p = _check(y_true, probs)
    tp, fp, fn = _counts(y, binarize(p, threshold), 1)
    return np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)


def _boot_f1(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Micro-F1 of each bootstrap resample (rows of ``idx`` are product indices)."""
    tp, fp, fn = _counts(y, pred, 1)
    TP, FP, FN = tp[idx].sum(1), fp[idx].sum(1), fn[idx].sum(1)
    return np.where(2 * TP + FP + FN > 0, 2 * TP / np.maximum(2 * TP + FP + FN, 1), 0.0)


def bootstrap_ci(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5,
                 n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of micro-F1, resampling products with replacement."""
    y, p = _check(y_true, probs)
    f1 = _boot_f1(y, binarize(p, threshold), np.random.default_rng(seed).integers(0, len(y), size=(n, len(y))))
    alpha = (1 - level) / 2
    return float(np.quantile(f1, alpha)), float(np.quantile(f1, 1 - alpha))


def paired_bootstrap(y_true: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray,
                     threshold: float | np.ndarray = 0.5, n: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Micro-F1 of ``a`` minus that of ``b`` and its percentile bootstrap CI, both models scored on the *same*
    resampled products (a paired interval: it excludes 0 only when the difference holds across resamples)."""
    y, pa = _check(y_true, probs_a)
    _, pb = _check(y_true, probs_b)
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n, len(y)))
    diff = _boot_f1(y, binarize(pa, threshold), idx) - _boot_f1(y, binarize(pb, threshold), idx)
    alpha = (1 - level) / 2
    return (micro_f1(y, pa, threshold) - micro_f1(y, pb, threshold), float(np.quantile(diff, alpha)),
            float(np.quantile(diff, 1 - alpha)))


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
