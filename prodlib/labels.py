"""Labels from category paths: flattening, the min-count filter and the label matrix.

The paper flattens each product's category hierarchy into the set of node names at every depth of every
path, then drops classes with fewer than 400 products. ``mode="path"`` keeps path-qualified names
(``Clothing > Women``) so that generic names of unrelated subtrees do not merge. Explained in notebook 01.
"""

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
    for path in paths or ():
        names = [str(n).strip() for n in path if str(n).strip()]
        for depth in range(len(names)):
            label = names[depth] if mode == "flat" else PATH_SEP.join(names[: depth + 1])
            seen.setdefault(label, None)
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

    def report(self) -> pd.DataFrame:
        """Before/after statistics side by side."""
        return pd.DataFrame({"before filter": self.before, "after filter": self.after})

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "dropped_classes": len(self.dropped_classes),
                "dropped_products": len(self.dropped_products)}


def build_labels(category_paths: pd.Series, mode: str = "flat", min_count: int = 1) -> LabelResult:
    """Flatten ``category_paths`` (indexed by product id), drop rare classes and label-less products.

    Classes are ordered alphabetically, a stable order saved with the run.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    flat = category_paths.map(lambda paths: flatten_paths(paths, mode))
    before = label_stats(flat)
    counts = Counter(label for labels in flat for label in labels)
    keep = {c for c, n in counts.items() if n >= min_count}
    filtered = flat.map(lambda labels: [c for c in labels if c in keep])
    empty = filtered.map(len) == 0
    kept = filtered[~empty]
    return LabelResult(
        labels=kept,
        classes=sorted(keep),
        before=before,
        after=label_stats(kept),
        dropped_classes=sorted(set(counts) - keep),
        dropped_products=[str(i) for i in filtered.index[empty]],
    )


def label_matrix(labels: Iterable[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """0/1 matrix (products × classes, ``uint8``) in the given class order; unknown labels are ignored."""
    index = {c: j for j, c in enumerate(classes)}
    rows = list(labels)
    y = np.zeros((len(rows), len(classes)), dtype=np.uint8)
    for i, labs in enumerate(rows):
        for label in labs:
            j = index.get(label)
            if j is not None:
                y[i, j] = 1
    return y
