"""The paper's reported numbers as data (Wirojwatanakul & Wangperawong 2019, arXiv:1907.00420; ``PAPER.md``);
F1 values are test micro-F1 in percent at threshold 0.5. Used by notebooks 01–06 and the results chapter."""

from __future__ import annotations

import pandas as pd

__all__ = ["DATASET", "SINGLE", "FUSION", "MOST_MISSED", "MOST_MISSED_TRIMODAL", "single_table",
           "fusion_table", "missed_table"]

#: Dataset statistics after flattening and the 400-product filter.
DATASET: dict[str, float] = {"products": 119_063, "train_products": 90_000, "test_products": 29_063, "classes": 122,
                             "max_products_per_class": 37_202, "min_products_per_class": 558,
                             "mean_products_per_class": 2_919, "glove_title_coverage": 77.5}

#: Table 1, the single-modality classifiers.
SINGLE: dict[str, float] = {"title": 82.7, "description": 77.0, "image": 61.0}

#: Table 3, late fusion. The tri-modal network is 88.2 in the abstract, 88.3 in a table.
FUSION: dict[str, float] = {"max": 78.7, "mean": 81.6, "ridge": 83.1, "image+description": 82.1,
                            "image+title": 85.1, "title+description": 87.1, "trimodal": 88.2}

#: Table 2, the five most-misclassified classes per classifier as (class, missed, support).
MOST_MISSED: dict[str, list[tuple[str, int, int]]] = {
    "image": [("Ballpoint Pens", 192, 203), ("Martial Arts", 146, 154), ("Reptiles & Amphibians", 136, 144),
              ("Chew Toys", 123, 132), ("Small Animals", 327, 349)],
    "description": [("Accessories", 663, 924), ("Women", 107, 134), ("Clothing, Shoes & Jewelry", 481, 686),
                    ("Novelty, Costumes & More", 194, 303), ("Boating", 222, 327)],
    "title": [("Novelty, Costumes & More", 176, 303), ("Horses", 167, 265), ("Women", 77, 134),
              ("Feeding", 137, 244), ("Accessories", 521, 924)],
}

#: Table 4, the tri-modal policy network's five most-missed classes.
MOST_MISSED_TRIMODAL: list[tuple[str, int, int]] = [("Chew Toys", 64, 132), ("Accessories", 417, 924),
                                                     ("Women", 58, 134), ("Novelty, Costumes & More", 127, 303),
                                                     ("Snacks", 143, 363)]


def single_table() -> pd.DataFrame:
    """Table 1 as a frame (``model``, ``paper_f1``)."""
    return pd.DataFrame({"model": list(SINGLE), "paper_f1": list(SINGLE.values())})


def fusion_table() -> pd.DataFrame:
    """Table 3 as a frame (``method``, ``paper_f1``)."""
    return pd.DataFrame({"method": list(FUSION), "paper_f1": list(FUSION.values())})


def missed_table(model: str) -> pd.DataFrame:
    """Table 2 (``title``/``description``/``image``) or 4 (``trimodal``) in the paper's ``Name (m/s)`` form."""
    rows = MOST_MISSED_TRIMODAL if model == "trimodal" else MOST_MISSED.get(model)
    if rows is None:
        raise KeyError(f"unknown model {model!r}; choose title, description, image or trimodal")
    frame = pd.DataFrame(rows, columns=["class", "missed", "support"])
    frame["label"] = [f"{c} ({m}/{s})" for c, m, s in rows]
    frame.index = frame.index + 1
    return frame
