"""Summaries for data exploration: what a catalog holds per modality, how long its texts are, how its
labels are distributed. Explained in notebook 01 (*Data exploration*).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from prodlib.labels import flatten_paths

__all__ = ["class_frequencies", "label_modes_side_by_side", "modality_summary", "path_depths", "text_stats",
           "word_counts"]

_WORD = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*")


def word_counts(texts: pd.Series) -> pd.Series:
    """Number of words of each text (letters/digits runs; empty or missing text counts 0)."""
    return texts.fillna("").map(lambda s: len(_WORD.findall(str(s))))


def text_stats(table: pd.DataFrame, columns: tuple[str, ...] = ("title", "description")) -> pd.DataFrame:
    """Per text column: share missing, words per text (mean, median, 95th percentile, max), vocabulary size
    (distinct lower-cased words)."""
    rows = {}
    for col in columns:
        texts = table[col].fillna("").astype(str)
        counts = word_counts(texts)
        vocab = Counter(w.lower() for s in texts for w in _WORD.findall(s))
        present = counts[counts > 0]
        rows[col] = {
            "missing": int((counts == 0).sum()),
            "missing %": 100 * float((counts == 0).mean()),
            "mean words": float(present.mean()) if len(present) else 0.0,
            "median words": float(present.median()) if len(present) else 0.0,
            "95th pct words": float(np.percentile(present, 95)) if len(present) else 0.0,
            "max words": int(counts.max()) if len(counts) else 0,
            "vocabulary": len(vocab),
        }
    return pd.DataFrame(rows).T


def modality_summary(table: pd.DataFrame) -> pd.DataFrame:
    """How many products have each modality, and how many have all three."""
    has = pd.DataFrame({
        "title": table["title"].fillna("").str.strip() != "",
        "description": table["description"].fillna("").str.strip() != "",
        "image": table["image"].notna() & (table["image"].astype(str) != ""),
    })
    has["all three"] = has.all(axis=1)
    out = pd.DataFrame({"products with it": has.sum(), "missing": (~has).sum()})
    out["share %"] = 100 * out["products with it"] / max(len(table), 1)
    return out


def class_frequencies(labels: pd.Series) -> pd.Series:
    """Products per class, most frequent first."""
    return pd.Series(Counter(label for labs in labels for label in labs)).sort_values(ascending=False)


def path_depths(category_paths: pd.Series) -> pd.Series:
    """Depth of every category path (one value per path, products may have several)."""
    return pd.Series([len(p) for paths in category_paths for p in paths], dtype=int)


def label_modes_side_by_side(category_paths: pd.Series, top: int = 15) -> pd.DataFrame:
    """Flat labels vs path-qualified labels: how many distinct classes each gives, and the flat names that
    merge several subtrees (the generic names such as ``Women`` or ``Accessories``)."""
    merged: dict[str, set[str]] = {}
    for paths in category_paths:
        for label in flatten_paths(paths, "path"):
            merged.setdefault(label.split(" > ")[-1], set()).add(label)
    rows = [{"flat label": name, "subtrees merged": len(qualified),
             "path-qualified labels": "; ".join(sorted(qualified)[:4]) + (" …" if len(qualified) > 4 else "")}
            for name, qualified in merged.items() if len(qualified) > 1]
    frame = pd.DataFrame(rows, columns=["flat label", "subtrees merged", "path-qualified labels"])
    return frame.sort_values("subtrees merged", ascending=False).head(top).reset_index(drop=True)


def images_per_class(table: pd.DataFrame, classes: list[str], per_class: int = 6) -> list[tuple[str, list[str]]]:
    """``(class, image paths)`` rows for :func:`prodlib.plots.image_grid`: the first ``per_class`` products
    of each class that have a usable image."""
    has_image = table["image"].notna()
    rows = []
    for cls in classes:
        members = table["labels"].map(lambda labs, c=cls: c in labs) & has_image
        rows.append((cls, table.loc[members, "image"].head(per_class).tolist()))
    return rows
