"""Figures shared by the notebooks. Each function returns a matplotlib Figure and never calls ``show``.

Engineers add functions at the end of this file; each names the notebook that uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["image_grid", "plot_class_frequency"]


def plot_class_frequency(freq: pd.Series, title: str = "Products per class", top_labels: int = 12) -> Figure:
    """The long tail: products per class, sorted, log scale, the most frequent classes named (notebook 01)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(np.arange(len(freq)), freq.to_numpy(), color="#4c72b0", width=0.9)
    ax.set_yscale("log")
    ax.set_xlabel(f"class rank (of {len(freq)})")
    ax.set_ylabel("products (log scale)")
    ax.set_title(title)
    for i, (name, value) in enumerate(freq.head(top_labels).items()):
        ax.annotate(str(name)[:22], (i, value), rotation=60, fontsize=7, ha="left", va="bottom",
                    xytext=(0, 2), textcoords="offset points")
    ax.margins(y=0.35)
    fig.tight_layout()
    return fig


def image_grid(rows: Sequence[tuple[str, Sequence[str]]], per_row: int = 6, size: float = 1.3,
               captions: Sequence[Sequence[str]] | None = None) -> Figure:
    """A grid of product images: one row per ``(row label, image paths)`` (notebooks 01, 04, 06).

    Missing or unreadable files show as an empty grey tile, never an error.
    """
    from PIL import Image

    n_rows = max(len(rows), 1)
    fig, axes = plt.subplots(n_rows, per_row, figsize=(per_row * size + 1.6, n_rows * size + 0.2),
                             squeeze=False)
    for r, (label, paths) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(paths):
                try:
                    with Image.open(paths[c]) as img:
                        ax.imshow(img.convert("RGB"))
                except (OSError, ValueError, TypeError):
                    ax.imshow(np.full((8, 8, 3), 200, dtype=np.uint8))
                if captions is not None and c < len(captions[r]):
                    ax.set_title(captions[r][c], fontsize=6)
            if c == 0:
                ax.set_ylabel(str(label)[:24], rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig
