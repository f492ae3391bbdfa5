"""Every figure of the book: each function returns a matplotlib Figure (never calls ``show``) and names its notebook."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["array_grid", "image_grid", "plot_class_frequency", "plot_class_gain", "plot_error_overlap",
           "plot_f1_by_method", "plot_history", "plot_label_structure", "plot_length_histogram",
           "neighbour_gallery", "plot_embedding_map", "plot_modality_importance", "plot_per_class_f1",
           "plot_text_lengths", "plot_threshold_curve", "product_gallery"]


def _tight(fig: Figure) -> Figure:
    fig.tight_layout()
    return fig


def plot_class_frequency(freq: pd.Series, title: str = "Products per class", top_labels: int = 12) -> Figure:
    """The long tail: products per class, sorted, log scale, the most frequent classes named (notebook 01)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(np.arange(len(freq)), freq.to_numpy(), color="#4c72b0", width=0.9)
    ax.set(yscale="log", xlabel=f"class rank (of {len(freq)})", ylabel="products (log scale)", title=title)
    for i, (name, value) in enumerate(freq.head(top_labels).items()):
        ax.annotate(str(name)[:22], (i, value), rotation=60, fontsize=7, ha="left", va="bottom",
                    xytext=(0, 2), textcoords="offset points")
    ax.margins(y=0.35)
    return _tight(fig)


def _tile_grid(rows: Sequence[tuple[str, Sequence[np.ndarray]]], n_cols: int, size: float,
               captions: Sequence[Sequence[str]] | None = None) -> Figure:
    """Rows of image tiles with a row label on the left; missing columns stay blank."""
    n_rows = max(len(rows), 1)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * size + 1.6, n_rows * size + 0.2), squeeze=False)
    for r, (label, tiles) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
            if c < len(tiles):
                ax.imshow(tiles[c])
                if captions is not None and c < len(captions[r]):
                    ax.set_title(captions[r][c], fontsize=6)
            if c == 0:
                ax.set_ylabel(str(label)[:24], rotation=0, ha="right", va="center", fontsize=8)
    return _tight(fig)


def _load_rgb(path: str) -> np.ndarray:
    """The image at ``path`` as an RGB array, or a grey tile when it is missing or unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, TypeError, AttributeError):
        return np.full((8, 8, 3), 200, dtype=np.uint8)


def image_grid(rows: Sequence[tuple[str, Sequence[str]]], per_row: int = 6, size: float = 1.3,
               captions: Sequence[Sequence[str]] | None = None) -> Figure:
    """Product images, one row per ``(label, image paths)``; unreadable or missing ones grey (notebooks 01, 04, 06)."""
    return _tile_grid([(label, [_load_rgb(p) for p in list(paths)[:per_row]]) for label, paths in rows], per_row,
                      size, captions)


def plot_history(history: pd.DataFrame) -> Figure:
    """Losses and validation micro-F1 of :func:`prodlib.train.fit_classifier`, best epoch marked (notebooks 02-04)."""
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = history["epoch"].to_numpy()
    ax_loss.plot(epochs, history["loss"], marker="o", label="train")
    ax_loss.plot(epochs, history["val_loss"], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="binary cross-entropy")
    ax_loss.legend()
    f1 = history["val_micro_f1"].to_numpy()
    ax_f1.plot(epochs, 100 * f1, marker="o", color="#55a868")
    if len(f1):
        best = int(np.nanargmax(f1))
        ax_f1.axvline(epochs[best], color="grey", linestyle="--", linewidth=1)
        ax_f1.annotate(f"best: epoch {epochs[best]}", (epochs[best], 100 * f1[best]), xytext=(4, -12),
                       textcoords="offset points", fontsize=8)
    ax_f1.set(xlabel="epoch", ylabel="validation micro-F1 (%)")
    for ax in (ax_loss, ax_f1):
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _tight(fig)


def plot_per_class_f1(metrics_test: dict, top: int = 30) -> Figure:
    """Test F1 of the ``top`` classes by support in ``metrics["test"]``, sorted, support annotated (notebooks 02-04)."""
    table = pd.DataFrame(metrics_test["per_class"]).sort_values("support", ascending=False).head(top).sort_values("f1")
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(table) + 1.0))
    ax.barh(table["class"].astype(str).str.slice(0, 32), 100 * table["f1"], color="#4c72b0")
    for y, (f1, n) in enumerate(zip(table["f1"], table["support"], strict=True)):
        ax.annotate(f"n={int(n)}", (100 * f1, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.axvline(100 * metrics_test["micro_f1"], color="grey", linestyle="--", linewidth=1, label="micro-F1")
    ax.set(xlabel="test F1 (%)", xlim=(0, 110))
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="lower right", fontsize=8)
    return _tight(fig)


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
    ax.set(xlabel=f"{what} after cleaning", ylabel="training products")
    return _tight(fig)


def plot_f1_by_method(table: pd.DataFrame, paper_col: str = "paper_f1", label_col: str = "model",
                      title: str = "Test micro-F1 by model") -> Figure:
    """Our test micro-F1 (%) with its 95 % bootstrap CI per model, the paper's value as a marker (notebook 05).
    ``table`` has columns ``label_col``, ``f1``, ``ci_low``, ``ci_high`` and optionally ``paper_col``."""
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(table) + 1.2))
    pos = np.arange(len(table))[::-1]
    f1 = table["f1"].to_numpy(dtype=float)
    err = np.vstack([f1 - table["ci_low"].to_numpy(dtype=float), table["ci_high"].to_numpy(dtype=float) - f1])
    ax.barh(pos, f1, xerr=err, color="#4c72b0", alpha=0.85, capsize=3, label="ours (95 % CI)")
    if paper_col in table:
        paper = table[paper_col].to_numpy(dtype=float)
        ok = ~np.isnan(paper)
        ax.scatter(paper[ok], pos[ok], marker="D", color="#c44e52", zorder=3, label="paper")
    ax.set_yticks(pos, table[label_col].astype(str).tolist())
    ax.set(xlabel="micro-F1 (%)", xlim=(0, 100), title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _tight(fig)


def plot_threshold_curve(curve: pd.DataFrame, tuned: float, default: float = 0.5,
                         title: str = "Validation micro-F1 against the decision threshold") -> Figure:
    """:func:`prodlib.metrics.threshold_curve` as a line, the default and the tuned threshold marked (notebook 02)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(curve["threshold"], 100 * curve["micro_f1"], marker="o", ms=3, color="#4c72b0")
    ax.axvline(default, color="#888888", ls="--", label=f"default {default:.2f}")
    ax.axvline(tuned, color="#c44e52", ls=":", label=f"tuned {tuned:.2f}")
    ax.set(xlabel="threshold", ylabel="validation micro-F1 (%)", title=title)
    ax.legend(fontsize=8)
    return _tight(fig)


def plot_error_overlap(overlap: pd.DataFrame, models: Sequence[str], title: str = "Which models get a product wrong"
                       ) -> Figure:
    """UpSet chart of :func:`prodlib.analysis.error_overlap`: products wrong per model combination (notebook 06)."""
    models = list(models)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(5, 0.7 * len(overlap) + 2), 4.2), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.2]})
    x = np.arange(len(overlap))
    top.bar(x, overlap["products"], color="#4c72b0")
    for xi, v in zip(x, overlap["products"], strict=True):
        top.annotate(str(int(v)), (xi, v), ha="center", va="bottom", fontsize=8)
    top.set(ylabel="test products", title=title)
    top.margins(y=0.15)
    for r, name in enumerate(models):
        on = overlap[name].to_numpy(dtype=bool)
        bottom.scatter(x[on], np.full(on.sum(), r), color="#222222", s=40)
        bottom.scatter(x[~on], np.full((~on).sum(), r), color="#dddddd", s=40)
    bottom.set_yticks(range(len(models)), models)
    bottom.set(xticks=[], ylim=(-0.6, len(models) - 0.4))
    bottom.spines[["top", "right", "bottom"]].set_visible(False)
    return _tight(fig)


def plot_modality_importance(frame: pd.DataFrame, title: str = "F1 lost when a modality is shuffled") -> Figure:
    """Heat map of per-class, per-modality importance (rows = classes; notebook 05)."""
    fig, ax = plt.subplots(figsize=(1.3 * frame.shape[1] + 3, 0.28 * len(frame) + 1.4))
    vmax = float(np.nanmax(np.abs(frame.to_numpy()))) or 1.0
    im = ax.imshow(frame.to_numpy(dtype=float), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(frame.shape[1]), [str(c) for c in frame.columns])
    ax.set_yticks(range(len(frame)), [str(i)[:30] for i in frame.index], fontsize=7)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="per-class F1 drop")
    return _tight(fig)


def product_gallery(rows: Sequence[dict], models: Sequence[str], per_row: int = 4, title: str = "") -> Figure:
    """Products from :func:`prodlib.analysis.gallery_rows`: image, title, true labels, models' errors (notebook 06)."""
    n_rows = int(np.ceil(max(len(rows), 1) / per_row))
    fig, axes = plt.subplots(n_rows, per_row, figsize=(per_row * 3.1, n_rows * 4.4), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set(xticks=[], yticks=[])
        if k >= len(rows):
            ax.axis("off")
            continue
        row = rows[k]
        ax.imshow(_load_rgb(row["image"]))
        ax.set_title("\n".join(textwrap.wrap(str(row["title"]), 34)[:2]), fontsize=7)
        true = set(row["true"])
        lines = ["true: " + ", ".join(sorted(true))]
        for m in models:
            pred = set(row["pred"].get(m, []))
            extra, lost = sorted(pred - true), sorted(true - pred)
            parts = (["+" + ", ".join(extra)] if extra else []) + (["-" + ", ".join(lost)] if lost else [])
            lines.append(f"{m}: {'; '.join(parts) or 'ok'}")
        ax.set_xlabel("\n".join(textwrap.fill(line, 40) for line in lines), fontsize=6, loc="left")
    if title:
        fig.suptitle(title)
    return _tight(fig)


def array_grid(rows: Sequence[tuple[str, np.ndarray]], size: float = 1.4) -> Figure:
    """Rows of ``(label, n × h × w × 3 array in [0, 1])``: e.g. decoded files above the model's inputs (notebook 04)."""
    n_cols = max((len(a) for _, a in rows), default=1)
    tiles = [(label, [np.clip(np.asarray(x, dtype=float), 0, 1) for x in arr]) for label, arr in rows]
    return _tile_grid(tiles, n_cols, size)


def plot_label_structure(labels_per_product: pd.Series, depths: pd.Series) -> Figure:
    """Labels per product and depth of category paths, side by side (notebook 01)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    labels_per_product.value_counts().sort_index().plot.bar(ax=axes[0], color="#55a868")
    axes[0].set(xlabel="labels per product", ylabel="products", title="Labels per product")
    depths.value_counts().sort_index().plot.bar(ax=axes[1], color="#c44e52")
    axes[1].set(xlabel="path depth", ylabel="paths", title="Depth of category paths")
    return _tight(fig)


def plot_text_lengths(word_counts: dict[str, pd.Series]) -> Figure:
    """One histogram of words per text for each text field, empty texts left out (notebook 01)."""
    import seaborn as sns
    fig, axes = plt.subplots(1, len(word_counts), figsize=(4.5 * len(word_counts), 3), squeeze=False)
    for ax, (name, counts), color in zip(axes[0], word_counts.items(), sns.color_palette(n_colors=len(word_counts)),
                                         strict=True):
        sns.histplot(counts[counts > 0], bins=30, color=color, ax=ax)
        ax.set(xlabel="words", ylabel="products", title=f"{name.capitalize()} length")
    return _tight(fig)


def plot_class_gain(gain: pd.DataFrame, best_single: str) -> Figure:
    """Per-class F1 gain (points) of fusion over the best single model, one bar per class with its test
    support in brackets; ``gain`` comes from :func:`prodlib.analysis.per_class_gain` (notebook 06)."""
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(gain) + 1.2))
    pos = np.arange(len(gain))[::-1]
    ax.barh(pos, 100 * gain["gain"], color=np.where(gain["gain"] >= 0, "#4c72b0", "#c44e52"))
    ax.set_yticks(pos, [f"{c[:28]} ({s})" for c, s in zip(gain["class"], gain["support"], strict=True)], fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"F1 gain over the {best_single} model (points)")
    return _tight(fig)


def neighbour_gallery(rows: Sequence[dict], title: str = "") -> Figure:
    """Rows of :func:`prodlib.similar.neighbour_rows`: a query product, then its neighbours with image, title,
    labels and cosine score; one row per query and vector kind (notebook 07)."""
    n_cols = max((len(r["tiles"]) for r in rows), default=1)
    fig, axes = plt.subplots(max(len(rows), 1), n_cols, figsize=(n_cols * 1.6 + 0.4, len(rows) * 2.3), squeeze=False)
    for r, ax in enumerate(axes.ravel()):
        row, c = rows[r // n_cols] if rows else {"tiles": []}, r % n_cols
        ax.set(xticks=[], yticks=[])
        if c >= len(row["tiles"]):
            ax.axis("off")
            continue
        tile = row["tiles"][c]
        ax.imshow(_load_rgb(tile["image"]))
        head = "query" if tile["score"] is None else f"cos {tile['score']:.2f}"
        ax.set_title(head + "\n" + "\n".join(textwrap.wrap(tile["title"], 22)[:2]), fontsize=7)
        ax.set_xlabel(textwrap.fill(", ".join(tile["labels"]), 26, max_lines=3), fontsize=6.5)
        if c == 0:
            ax.set_ylabel(row["kind"], fontsize=9)
    if title:
        fig.suptitle(title)
    return _tight(fig)


def plot_embedding_map(xy: np.ndarray, groups: Sequence[str], title: str = "", top: int = 8) -> Figure:
    """A 2-D map of products coloured by group (the ``top`` largest groups, the rest grey) (notebook 07)."""
    groups = pd.Series(list(groups))
    named = groups.value_counts().index[:top]
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    rest = ~groups.isin(named).to_numpy()
    ax.scatter(xy[rest, 0], xy[rest, 1], s=6, c="#cccccc", label="other" if rest.any() else None)
    for n, name in enumerate(named):
        m = (groups == name).to_numpy()
        ax.scatter(xy[m, 0], xy[m, 1], s=8, color=plt.cm.tab10(n % 10), label=f"{str(name)[:28]} ({m.sum()})")
    ax.set(xticks=[], yticks=[], title=title)
    ax.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _tight(fig)
