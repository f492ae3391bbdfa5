"""Draw the method chapter's diagrams (book/method.md) as PNGs next to this script.

    .venv/bin/python book/figures/draw_diagrams.py

Deterministic: the same code writes the same pixels (no timestamp in the PNG metadata). The PNGs are
committed so that the book builds without running this script.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

HERE = Path(__file__).resolve().parent
COLORS = {"title": "#4C72B0", "desc": "#55A868", "image": "#C44E52", "fusion": "#8172B2", "out": "#937860",
          "neutral": "#8C8C8C"}


def box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, color: str, *,
        fill: float = 0.18, size: int = 10, bold: bool = False) -> tuple[float, float, float, float]:
    """A rounded box centred on (x, y); returns its extent (left, right, bottom, top)."""
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.04",
                           linewidth=1.6, edgecolor=color, facecolor=matplotlib.colors.to_rgba(color, fill))
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=size, weight="bold" if bold else "normal",
            wrap=True)
    return x - w / 2, x + w / 2, y - h / 2, y + h / 2


def arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], color: str = "#444444",
          label: str | None = None) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, linewidth=1.4, color=color,
                                 shrinkA=2, shrinkB=2))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.03, label, ha="center", va="bottom",
                fontsize=8, color=color)


def canvas(width: float, height: float) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def save(fig: plt.Figure, name: str) -> Path:
    path = HERE / name
    fig.savefig(path, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    plt.close(fig)
    return path


def late_fusion_pipeline() -> Path:
    """Three inputs -> three classifiers -> per-class probabilities -> a fusion rule -> a label set."""
    fig, ax = canvas(11, 4.2)
    rows = [("title", "Title\n\"Women's leather\nthong sandal\"", "Kim CNN\n(GloVe init.)"),
            ("desc", "Description\n(up to 300 words)", "Kim CNN\n(Word2Vec init.)"),
            ("image", "Image\n224 × 224 px", "ResNet-50\n(last K layers train)")]
    for i, (key, inp, model) in enumerate(rows):
        y = 3.6 - i * 1.25
        box(ax, 1.1, y, 1.9, 1.0, inp, COLORS[key], size=9)
        box(ax, 3.6, y, 1.9, 1.0, model, COLORS[key], size=9, bold=True)
        box(ax, 6.0, y, 1.8, 0.8, "p(class | input)\none sigmoid\nper class", COLORS[key], fill=0.08, size=8)
        arrow(ax, (2.05, y), (2.65, y))
        arrow(ax, (4.55, y), (5.1, y))
        arrow(ax, (6.9, y), (7.75, 2.35), color=COLORS[key])
    box(ax, 8.5, 2.35, 1.5, 1.5, "Fusion\nmax · mean\nridge\npolicy network", COLORS["fusion"], size=9, bold=True)
    box(ax, 10.25, 2.35, 1.4, 1.5, "labels with\np ≥ 0.5\n\nWomen\nShoes\nSandals", COLORS["out"], size=8)
    arrow(ax, (9.25, 2.35), (9.55, 2.35))
    ax.text(3.6, 0.15, "trained separately, one modality each", ha="center", fontsize=9, style="italic")
    ax.text(8.5, 0.15, "trained on held-out (validation) predictions", ha="center", fontsize=9, style="italic")
    return save(fig, "late_fusion_pipeline.png")


def early_vs_late() -> Path:
    """Early fusion joins features before one classifier; late fusion joins the classifiers' decisions."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for ax, title in ((left, "Early fusion: join the features"), (right, "Late fusion: join the decisions")):
        ax.set_xlim(0, 5.4)
        ax.set_ylim(0, 4.2)
        ax.axis("off")
        ax.set_title(title, fontsize=12, weight="bold")
    keys = ("title", "desc", "image")
    names = ("title", "description", "image")
    for i, (key, name) in enumerate(zip(keys, names, strict=True)):
        y = 3.3 - i * 1.2
        box(left, 0.7, y, 1.2, 0.7, name, COLORS[key], size=9)
        box(left, 2.1, y, 1.1, 0.7, "encoder", COLORS[key], fill=0.08, size=9)
        arrow(left, (1.3, y), (1.55, y))
        arrow(left, (2.65, y), (3.25, 2.1), color=COLORS[key])
        box(right, 0.7, y, 1.2, 0.7, name, COLORS[key], size=9)
        box(right, 2.15, y, 1.2, 0.7, "classifier", COLORS[key], size=9, bold=True)
        arrow(right, (1.3, y), (1.55, y))
        arrow(right, (2.75, y), (3.5, 2.1), color=COLORS[key])
    box(left, 3.75, 2.1, 1.0, 1.6, "concat.\nfeatures\n→ one\nclassifier", COLORS["fusion"], size=9, bold=True)
    box(left, 4.95, 2.1, 0.8, 0.8, "labels", COLORS["out"], size=9)
    arrow(left, (4.25, 2.1), (4.55, 2.1))
    box(right, 4.0, 2.1, 1.0, 1.6, "fusion\nof class\nprobabil-\nities", COLORS["fusion"], size=9, bold=True)
    box(right, 5.0, 2.1, 0.75, 0.8, "labels", COLORS["out"], size=9)
    arrow(right, (4.5, 2.1), (4.62, 2.1))
    left.text(2.7, 0.15, "one model learns everything at once;\na missing modality breaks the input",
              ha="center", fontsize=9, style="italic")
    right.text(2.7, 0.15, "each classifier stays usable alone;\nthe fusion model is small and fast to train",
               ha="center", fontsize=9, style="italic")
    fig.tight_layout()
    return save(fig, "early_vs_late_fusion.png")


def policy_networks() -> Path:
    """The bi-modal and tri-modal policy networks as stacks of dense layers."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), dpi=110)
    specs = [
        (left, "Bi-modal policy network", [("title", "p_title (C)"), ("image", "p_image (C)")],
         ["Dense 200", "Dense 150", "Dense C, sigmoid"]),
        (right, "Tri-modal policy network", [("title", "p_title (C)"), ("desc", "p_desc (C)"),
                                             ("image", "p_image (C)")],
         ["Dense 200, sigmoid", "Dense 150, tanh", "Dense C, sigmoid"]),
    ]
    for ax, title, inputs, layers in specs:
        ax.set_xlim(0, 5)
        ax.set_ylim(0, 5.2)
        ax.axis("off")
        ax.set_title(title, fontsize=12, weight="bold")
        n = len(inputs)
        for i, (key, text) in enumerate(inputs):
            x = 2.5 + (i - (n - 1) / 2) * 1.45
            box(ax, x, 0.55, 1.3, 0.55, text, COLORS[key], size=9)
            arrow(ax, (x, 0.85), (2.5, 1.35), color=COLORS[key])
        box(ax, 2.5, 1.6, 3.2, 0.45, f"concatenate ({n}·C values)", COLORS["neutral"], fill=0.1, size=9)
        y = 1.6
        for layer in layers:
            arrow(ax, (2.5, y + 0.25), (2.5, y + 0.65))
            y += 0.95
            box(ax, 2.5, y, 2.6, 0.5, layer, COLORS["fusion"], size=10, bold=True)
        ax.text(2.5, y + 0.55, "fused p(class), threshold 0.5", ha="center", fontsize=9, style="italic")
    fig.tight_layout()
    return save(fig, "policy_networks.png")


def label_flattening() -> Path:
    """Category paths of one product flattened into its multi-label target."""
    fig, ax = canvas(11, 3.2)
    paths = ["Clothing, Shoes & Jewelry › Women › Shoes › Sandals",
             "Clothing, Shoes & Jewelry › Women › Accessories"]
    for i, p in enumerate(paths):
        box(ax, 2.9, 2.3 - i * 1.0, 5.4, 0.6, p, COLORS["neutral"], fill=0.1, size=9)
        arrow(ax, (5.65, 2.3 - i * 1.0), (6.6, 1.8))
    labels = ["Clothing, Shoes & Jewelry", "Women", "Shoes", "Sandals", "Accessories"]
    box(ax, 8.7, 1.8, 3.9, 2.2, "label set (every node name):\n\n" + "\n".join(labels), COLORS["out"], size=9)
    ax.text(2.9, 0.45, "a product's category paths (root to leaf)", ha="center", fontsize=9, style="italic")
    return save(fig, "label_flattening.png")


def main() -> list[Path]:
    return [late_fusion_pipeline(), early_vs_late(), policy_networks(), label_flattening()]


if __name__ == "__main__":
    for written in main():
        print(written)
