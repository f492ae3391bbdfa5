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


# --- text and image classifiers (notebooks 02, 03, 04) ------------------------------------------------------

__all__ += ["plot_history", "plot_length_histogram", "plot_per_class_f1"]


def plot_history(history: pd.DataFrame) -> Figure:
    """Training curves of :func:`prodlib.train.fit_classifier`: losses (left) and validation micro-F1 (right),
    the restored best epoch marked (notebooks 02, 03, 04)."""
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = history["epoch"].to_numpy()
    ax_loss.plot(epochs, history["loss"], marker="o", label="train")
    ax_loss.plot(epochs, history["val_loss"], marker="o", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("binary cross-entropy")
    ax_loss.legend()
    f1 = history["val_micro_f1"].to_numpy()
    ax_f1.plot(epochs, 100 * f1, marker="o", color="#55a868")
    if len(f1):
        best = int(np.nanargmax(f1))
        ax_f1.axvline(epochs[best], color="grey", linestyle="--", linewidth=1)
        ax_f1.annotate(f"best: epoch {epochs[best]}", (epochs[best], 100 * f1[best]), xytext=(4, -12),
                       textcoords="offset points", fontsize=8)
    ax_f1.set_xlabel("epoch")
    ax_f1.set_ylabel("validation micro-F1 (%)")
    for ax in (ax_loss, ax_f1):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def plot_per_class_f1(metrics_test: dict, top: int = 30) -> Figure:
    """Test F1 of each class (the ``top`` most frequent, by support), bars sorted by F1, support annotated
    (notebooks 02, 03, 04). ``metrics_test`` is ``metrics["test"]`` with its ``per_class`` rows."""
    table = pd.DataFrame(metrics_test["per_class"])
    table = table.sort_values("support", ascending=False).head(top).sort_values("f1")
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(table) + 1.0))
    ax.barh(table["class"].astype(str).str.slice(0, 32), 100 * table["f1"], color="#4c72b0")
    for y, (f1, n) in enumerate(zip(table["f1"], table["support"], strict=True)):
        ax.annotate(f"n={int(n)}", (100 * f1, y), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=7)
    ax.axvline(100 * metrics_test["micro_f1"], color="grey", linestyle="--", linewidth=1, label="micro-F1")
    ax.set_xlabel("test F1 (%)")
    ax.set_xlim(0, 110)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_length_histogram(lengths: np.ndarray, seq_len: int, what: str = "words") -> Figure:
    """Histogram of cleaned text lengths with the model's input length ``seq_len`` marked (notebooks 02, 03)."""
    lengths = np.asarray(lengths)
    fig, ax = plt.subplots(figsize=(7, 3))
    top = max(int(lengths.max()) if lengths.size else 1, seq_len) + 1
    ax.hist(lengths, bins=min(60, top), range=(0, top), color="#4c72b0")
    ax.axvline(seq_len, color="#c44e52", linestyle="--", linewidth=1.2)
    share = float(np.mean(lengths > seq_len)) if lengths.size else 0.0
    ax.annotate(f"input length {seq_len}\n({100 * share:.1f} % truncated)", (seq_len, ax.get_ylim()[1] * 0.8),
                xytext=(4, 0), textcoords="offset points", fontsize=8, color="#c44e52")
    ax.set_xlabel(f"{what} after cleaning")
    ax.set_ylabel("training products")
    fig.tight_layout()
    return fig
