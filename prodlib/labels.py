"""Labels from category paths (notebook 01): the paper's labels are the node names at every depth of every
path, classes under 400 products dropped; ``mode="path"`` keeps path-qualified names (``Clothing > Women``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LABEL_MODES", "LabelResult", "build_labels", "flatten_paths", "label_matrix", "label_stats"]

LABEL_MODES = ("flat", "path")
PATH_SEP = " > "


def flatten_paths(paths: Iterable[Sequence[str]], mode: str = "flat") -> list[str]:
    """All labels of one product, in first-seen order without repeats.

    >>> flatten_paths([["Clothing", "Women", "Dresses"], ["Sale", "Women"]])
    ['Clothing', 'Women', 'Dresses', 'Sale']
    >>> flatten_paths([["Clothing", "Women"]], mode="path")
    ['Clothing', 'Clothing > Women']
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown label mode {mode!r}; choose one of {', '.join(LABEL_MODES)}")
    seen: dict[str, None] = {}
    for path in [paths] if isinstance(paths, str) else paths or ():  # a plain string is one node, not its letters
        names = [str(n).strip() for n in ([path] if isinstance(path, str) else path) if str(n).strip()]
        for depth, name in enumerate(names):
            seen.setdefault(name if mode == "flat" else PATH_SEP.join(names[: depth + 1]), None)
    return list(seen)


def label_stats(label_lists: Iterable[Sequence[str]]) -> dict[str, float]:
    """The paper's dataset statistics: classes, products, labels per product, products per class."""
    lists = [list(x) for x in label_lists]
    counts = Counter(label for labels in lists for label in labels)
    per_class = np.array(list(counts.values())) if counts else np.array([0])
    return {
        "classes": len(counts),
        "products": sum(1 for x in lists if x),
        "labels_per_product": float(np.mean([len(x) for x in lists])) if lists else 0.0,
        "max_products_per_class": int(per_class.max()),
        "min_products_per_class": int(per_class.min()),
        "mean_products_per_class": float(per_class.mean()),
    }


@dataclass
class LabelResult:
    """Output of :func:`build_labels`: kept products' labels, the class order and a before/after report."""

    labels: pd.Series
    classes: list[str]
    before: dict[str, float]
    after: dict[str, float]
    dropped_classes: list[str] = field(default_factory=list)
    dropped_products: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "dropped_classes": len(self.dropped_classes),
                "dropped_products": len(self.dropped_products)}


def build_labels(category_paths: pd.Series, mode: str = "flat", min_count: int = 1) -> LabelResult:
    """Flatten ``category_paths`` (indexed by product id), drop rare classes and then label-less products;
    classes sorted alphabetically (the stable order saved with the run)."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    flat = category_paths.map(lambda paths: flatten_paths(paths, mode))
    counts = Counter(label for labels in flat for label in labels)
    keep = {c for c, n in counts.items() if n >= min_count}
    filtered = flat.map(lambda labels: [c for c in labels if c in keep])
    empty = filtered.map(len) == 0
    kept = filtered[~empty]
    return LabelResult(labels=kept, classes=sorted(keep), before=label_stats(flat), after=label_stats(kept),
                       dropped_classes=sorted(set(counts) - keep),
                       dropped_products=[str(i) for i in filtered.index[empty]])


def label_matrix(labels: Iterable[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """0/1 ``uint8`` matrix (products × classes) in the given class order; unknown labels are ignored."""
    index = {c: j for j, c in enumerate(classes)}
    rows = [[index[label] for label in labs if label in index] for labs in labels]
    y = np.zeros((len(rows), len(classes)), dtype=np.uint8)
    for i, cols in enumerate(rows):
        y[i, cols] = 1
    return y
