"""Data-exploration summaries: modalities present, text lengths, label distribution (notebook 01)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from prodlib.labels import flatten_paths

__all__ = ["class_frequencies", "dataset_numbers", "label_modes_side_by_side", "modality_summary", "path_depths",
           "text_stats", "word_counts"]

_WORD = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*")


def word_counts(texts: pd.Series) -> pd.Series:
    """Words (letter/digit runs) of each text; empty or missing text counts 0."""
    return texts.fillna("").map(lambda s: len(_WORD.findall(str(s))))


def text_stats(table: pd.DataFrame, columns: tuple[str, ...] = ("title", "description")) -> pd.DataFrame:
    """Per text column: missing texts, words per present text (mean, median, 95th pct, max), lower-cased vocabulary."""
    rows = {}
    for col in columns:
        texts = table[col].fillna("").astype(str)
        counts = word_counts(texts)
        present = counts[counts > 0]
        some = len(present) > 0
        rows[col] = {"missing": int((counts == 0).sum()), "missing %": 100 * float((counts == 0).mean()),
                     "mean words": float(present.mean()) if some else 0.0,
                     "median words": float(present.median()) if some else 0.0,
                     "95th pct words": float(np.percentile(present, 95)) if some else 0.0,
                     "max words": int(counts.max()) if len(counts) else 0,
                     "vocabulary": len({w.lower() for s in texts for w in _WORD.findall(s)})}
    return pd.DataFrame(rows).T


def modality_summary(table: pd.DataFrame, decided: dict[str, Any] | None = None) -> pd.DataFrame:
    """Products with and without each modality, and with all three; with notebook 01's ``decided`` modalities
    (:func:`prodlib.dataset.decide_modalities`), whether the study uses each."""
    has = pd.DataFrame({c: table[c].fillna("").str.strip() != "" for c in ("title", "description")}
                       | {"image": table["image"].notna() & (table["image"].astype(str) != "")})
    has["all three"] = has.all(axis=1)
    out = pd.DataFrame({"products with it": has.sum(), "missing": (~has).sum()})
    out["share %"] = 100 * out["products with it"] / max(len(table), 1)
    if decided:
        out["used"] = [("yes" if m in decided["present"] else "no") if m in decided["share"] else "" for m in out.index]
    return out


def class_frequencies(labels: pd.Series) -> pd.Series:
    """Products per class, most frequent first."""
    return pd.Series(Counter(label for labs in labels for label in labs)).sort_values(ascending=False)


def path_depths(category_paths: pd.Series) -> pd.Series:
    """Depth of every category path (a product may have several)."""
    return pd.Series([len(p) for paths in category_paths for p in paths], dtype=int)


def label_modes_side_by_side(category_paths: pd.Series, top: int = 15) -> pd.DataFrame:
    """Flat labels that merge several subtrees (generic names such as ``Women``), with their path-qualified labels."""
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
    """``(class, image paths)`` for :func:`prodlib.plots.image_grid`: the first ``per_class`` products with an image."""
    has_image = table["image"].notna()
    return [(cls, table.loc[table["labels"].map(lambda labs, c=cls: c in labs) & has_image, "image"]
             .head(per_class).tolist()) for cls in classes]


def dataset_numbers(ds: Any, modalities: pd.DataFrame, profile: Any, source: str) -> dict[str, Any]:
    """Numbers of notebook 01's closing paragraph (glued ``data_*``): sizes, labels, splits, missing modalities."""
    after = ds.stats["labels"]["after"]
    return {"profile": profile.name, "source": source.split(":")[0], "n_products": len(ds.table),
            "n_classes": len(ds.classes), "labels_per_product": f"{after['labels_per_product']:.2f}",
            "max_per_class": after["max_products_per_class"], "min_per_class": after["min_products_per_class"],
            "mean_per_class": f"{after['mean_products_per_class']:.1f}",
            **{f"n_{split}": n for split, n in ds.stats["split_sizes"].items()},
            "missing_description": int(modalities["missing"]["description"]),
            "missing_image": int(modalities["missing"]["image"]), "min_count": profile.label_min_count,
            "modalities": ", ".join(ds.stats.get("modalities", {}).get("present", []))}
