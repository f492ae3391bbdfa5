"""Error analysis of notebook 06: which products each model gets wrong, how those errors overlap across
modalities, per-class F1 gains of fusion, galleries of fixed and remaining errors, and F1 on products
missing a modality.

A product is *wrong* for a model when its predicted label set (probabilities >= threshold) differs from
its true label set. Explained in notebook 06 (*Error analysis*).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from prodlib.metrics import binarize, bootstrap_ci, micro_f1, per_class_f1

__all__ = [
    "error_overlap",
    "fix_masks",
    "gallery_rows",
    "per_class_gain",
    "subgroup_f1",
    "wrong_products",
]


def wrong_products(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> np.ndarray:
    """Boolean vector: the products whose predicted label set is not exactly their true label set."""
    y = np.asarray(y_true).astype(bool)
    pred = binarize(probs, threshold)
    if y.shape != pred.shape:
        raise ValueError(f"labels {y.shape} and predictions {pred.shape} differ in shape")
    return (y != pred).any(axis=1)


def error_overlap(wrong: Mapping[str, np.ndarray], include_none: bool = False) -> pd.DataFrame:
    """UpSet-style intersections: for each combination of models, how many products are wrong for exactly
    those models (and right for the others). One boolean column per model plus ``products``; largest first.
    ``include_none`` adds the row of products every model gets right."""
    names = list(wrong)
    if not names:
        raise ValueError("give at least one model's wrong-product mask")
    masks = np.column_stack([np.asarray(wrong[n], dtype=bool) for n in names])
    rows = []
    for combo in itertools.product((True, False), repeat=len(names)):
        if not any(combo) and not include_none:
            continue
        count = int(np.all(masks == np.asarray(combo), axis=1).sum())
        rows.append({**dict(zip(names, combo, strict=True)), "products": count})
    table = pd.DataFrame(rows)
    table["models"] = [" & ".join(n for n in names if r[n]) or "(none)" for _, r in table.iterrows()]
    return table.sort_values("products", ascending=False, kind="stable").reset_index(drop=True)


def per_class_gain(y_true: np.ndarray, fused: np.ndarray, singles: Mapping[str, np.ndarray],
                   classes: Sequence[str], threshold: float = 0.5) -> pd.DataFrame:
    """Per-class F1 of each single model and of fusion, and fusion's gain over the best single model
    (the one with the highest test micro-F1 overall, named in column ``best_single``)."""
    if not singles:
        raise ValueError("give at least one single-modality model")
    best = max(singles, key=lambda n: micro_f1(y_true, singles[n], threshold))
    table = pd.DataFrame({"class": list(classes), "support": np.asarray(y_true).sum(axis=0).astype(int)})
    for name, probs in singles.items():
        table[f"f1_{name}"] = per_class_f1(y_true, probs, threshold)["f1"].to_numpy()
    table["f1_fused"] = per_class_f1(y_true, fused, threshold)["f1"].to_numpy()
    table["best_single"] = best
    table["gain"] = table["f1_fused"] - table[f"f1_{best}"]
    return table.sort_values("gain", ascending=False).reset_index(drop=True)


def fix_masks(y_true: np.ndarray, fused: np.ndarray, single: np.ndarray,
              threshold: float = 0.5) -> dict[str, np.ndarray]:
    """``fixed``: wrong for the single model, right after fusion; ``broken``: the reverse; ``still_wrong``:
    wrong for both."""
    ws, wf = wrong_products(y_true, single, threshold), wrong_products(y_true, fused, threshold)
    return {"fixed": ws & ~wf, "broken": ~ws & wf, "still_wrong": ws & wf}


def gallery_rows(part: pd.DataFrame, mask: np.ndarray, y_true: np.ndarray, probs: Mapping[str, np.ndarray],
                 classes: Sequence[str], *, k: int = 6, seed: int = 0, threshold: float = 0.5) -> list[dict[str, Any]]:
    """Up to ``k`` products where ``mask`` holds (a seeded random pick): id, title, image path, true labels
    and each model's predicted labels. ``part`` is the split's table in the same row order."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if len(part) != len(mask):
        raise ValueError(f"table has {len(part)} rows, mask {len(mask)}")
    pick = np.sort(np.random.default_rng(seed).choice(idx, size=min(k, len(idx)), replace=False)) if len(idx) else idx
    classes = list(classes)
    rows = []
    for i in pick:
        rec = part.iloc[int(i)]
        image = rec.get("image")
        row = {"id": str(rec.get("id", part.index[int(i)])), "title": str(rec.get("title", "")),
               "image": image if isinstance(image, str) and image else None,
               "true": [classes[c] for c in np.flatnonzero(np.asarray(y_true)[i])]}
        for name, p in probs.items():
            row[name] = [classes[c] for c in np.flatnonzero(np.asarray(p)[i] >= threshold)]
        rows.append(row)
    return rows


def subgroup_f1(y_true: np.ndarray, probs: np.ndarray, groups: Mapping[str, np.ndarray], *, n_boot: int = 1000,
                seed: int = 0, threshold: float = 0.5) -> pd.DataFrame:
    """Micro-F1 (%) with a bootstrap 95 % CI on subsets of products (e.g. those without an image); empty
    groups are reported with ``products = 0`` and no score."""
    rows = []
    for name, mask in groups.items():
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            rows.append({"group": name, "products": 0, "f1": np.nan, "ci_low": np.nan, "ci_high": np.nan})
            continue
        lo, hi = bootstrap_ci(y_true[mask], probs[mask], threshold, n=n_boot, seed=seed)
        rows.append({"group": name, "products": n, "f1": 100 * micro_f1(y_true[mask], probs[mask], threshold),
                     "ci_low": 100 * lo, "ci_high": 100 * hi})
    return pd.DataFrame(rows)


def missing_modality_sentence(groups: Mapping[str, tuple[int, float]], model: str = "the tri-modal network") -> str:
    """One sentence on how ``model`` scores on test products lacking a modality; ``groups`` maps the missing
    thing (``"a description"``) to ``(number of products, micro-F1 in %)``. An empty group is said to be
    empty instead of being given a meaningless score. Notebook 05 and the results chapter."""
    parts = []
    for noun, (n, f1) in groups.items():
        if n == 0:
            parts.append(f"no test product lacks {noun}")
        else:
            product = "product" if n == 1 else "products"
            parts.append(f"on the {n} test {product} without {noun} {model} scores {f1:.1f} % micro-F1")
    text = "; ".join(parts)
    return (text[:1].upper() + text[1:] + ".") if text else ""
