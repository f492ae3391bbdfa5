"""The embedded demo catalog of ``smoke``: seeded, *synthetic*, offline, in the readers' table form; generic names
(``Women``) under several roots, multi-label products, a long tail, partial complementary modalities (notebook 01)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DEMO_SOURCE", "DEMO_TREE", "DemoLeaf", "demo_leaves", "generate_demo_catalog"]

DEMO_SOURCE = "synthetic-demo"

#: root -> department -> leaves. Departments named ``Women``/``Men``/``Accessories`` recur across roots.
DEMO_TREE: dict[str, dict[str, list[str]]] = {
    "Clothing, Shoes & Jewelry": {"Women": ["Dresses", "Sandals", "Handbags"], "Men": ["Shirts", "Boots"],
                                  "Accessories": ["Scarves", "Sunglasses"]},
    "Home & Kitchen": {"Kitchen": ["Cookware", "Mugs", "Knives"], "Bedding": ["Pillows", "Quilts"]},
    "Pet Supplies": {"Dogs": ["Chew Toys", "Leashes"], "Cats": ["Scratchers", "Litter"], "Accessories": ["Pet Bowls"]},
    "Sports & Outdoors": {"Women": ["Yoga Mats", "Running Shoes"], "Boating": ["Life Jackets", "Paddles"],
                          "Accessories": ["Water Bottles"]},
    "Office Products": {"Writing": ["Ballpoint Pens", "Notebooks"], "Accessories": ["Desk Organizers"]},
}

_ROOT_WORDS = dict(zip(DEMO_TREE, [s.split() for s in ("fashion wear style fit", "home kitchen household decor",
                                                          "pet animal puppy kitten", "sport outdoor training active",
                                                          "office desk work school")], strict=True))
_FILLER = ("premium quality new classic durable soft everyday great value perfect gift easy lightweight "
           "comfortable modern design best seller original authentic brand item product pack set color "
           "size large small medium model series edition").split()
_BRANDS = ["Acme", "Nordia", "Kestrel", "Bluefin", "Orla", "Tamaro", "Vexa", "Lumen", "Pico", "Halden"]
_ROOT_COLOURS = dict(zip(DEMO_TREE, [(205, 92, 120), (90, 150, 200), (120, 180, 90), (235, 160, 60),
                                     (150, 120, 200)], strict=True))  # background hue: the image shows the root
_SHAPES = ("circle", "square", "triangle", "diamond", "cross")


@dataclass(frozen=True)
class DemoLeaf:
    """One leaf of the demo tree and how much each modality reveals about it."""

    root: str
    department: str
    leaf: str
    keyword: str
    named_in_title: bool
    stripes: int
    shape: str


def demo_leaves() -> list[DemoLeaf]:
    """Leaves in a fixed order; every other one is *image-only* (never in titles: stripes, sometimes a keyword)."""
    leaves: list[DemoLeaf] = []
    for r, (root, departments) in enumerate(DEMO_TREE.items()):
        for d, (department, names) in enumerate(departments.items()):
            for name in names:
                n = len(leaves)
                leaves.append(DemoLeaf(root, department, name, name.lower().rstrip("s").replace(" ", "-"),
                                       n % 2 == 0, 1 + n % 4, _SHAPES[(r + d) % len(_SHAPES)]))
    return leaves


def _draw(leaf: DemoLeaf, rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo stand-in: background from the root, shape from the department, stripes from the leaf, noise."""
    from PIL import Image, ImageDraw
    base = np.array(_ROOT_COLOURS[leaf.root], dtype=float) + rng.normal(0, 18, 3)
    img = Image.new("RGB", (size, size), tuple(int(c) for c in np.clip(base, 0, 255)))
    draw = ImageDraw.Draw(img)
    ink = tuple(int(c) for c in np.clip(255 - base + rng.normal(0, 25, 3), 0, 255))
    for k in range(leaf.stripes):
        y = int(size * (0.12 + 0.16 * k)) + int(rng.integers(-2, 3))
        draw.rectangle([0, y, size, y + max(2, size // 24)], fill=(250, 250, 250))
    (x, y), r = size / 2 + rng.normal(0, size / 14, 2), size * rng.uniform(0.18, 0.26)
    polygons = {"triangle": [(x, y - r), (x - r, y + r), (x + r, y + r)],
                "diamond": [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]}
    if leaf.shape in ("circle", "square"):
        (draw.ellipse if leaf.shape == "circle" else draw.rectangle)([x - r, y - r, x + r, y + r], fill=ink)
    elif leaf.shape in polygons:
        draw.polygon(polygons[leaf.shape], fill=ink)
    else:
        draw.rectangle([x - r / 3, y - r, x + r / 3, y + r], fill=ink)
        draw.rectangle([x - r, y - r / 3, x + r, y + r / 3], fill=ink)
    return np.clip(np.asarray(img, dtype=float) + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)


def _title(leaf: DemoLeaf, rng: np.random.Generator) -> str:
    words = [str(rng.choice(_BRANDS)), *rng.choice(_FILLER, size=int(rng.integers(1, 4)), replace=False)]
    if rng.random() < 0.6:
        words.append(str(rng.choice(_ROOT_WORDS[leaf.root])))
    if leaf.department in ("Women", "Men") and rng.random() < 0.5:
        words.append(f"{leaf.department.lower()}'s")
    if leaf.named_in_title and rng.random() < 0.85:
        words.append(leaf.keyword)
    rng.shuffle(words[1:])
    return " ".join(w.capitalize() if i == 0 else w for i, w in enumerate(words))


def _description(leaf: DemoLeaf, rng: np.random.Generator) -> str:
    if rng.random() < 0.15:  # missing description, as often in real catalogs
        return ""
    words = list(rng.choice(_FILLER, size=int(rng.integers(12, 40))))
    if rng.random() < 0.5:
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(_ROOT_WORDS[leaf.root])))
    if rng.random() < 0.45:
        words.insert(int(rng.integers(0, len(words))), leaf.keyword)
    if leaf.department in ("Boating", "Dogs", "Cats", "Kitchen", "Writing") and rng.random() < 0.5:
        words.insert(0, leaf.department.lower())
    text = " ".join(words)
    return f"<p>{text}</p> <b>Size:</b> {int(rng.integers(1, 60))} cm" if rng.random() < 0.2 else text


def generate_demo_catalog(n_products: int, seed: int, image_dir: str | os.PathLike[str] | None = None,
                          image_size: int = 96) -> pd.DataFrame:
    """``n_products`` seeded synthetic products (the catalog table). Zipf-like leaf popularity; 30 % get a
    second path (a sibling leaf or ``Gift Ideas``); with ``image_dir`` JPEGs are written there (existing files
    reused) and 2 % have no image, without it ``image`` is ``None``."""
    if n_products <= 0:
        raise ValueError(f"n_products must be positive, got {n_products}")
    rng = np.random.default_rng(seed)
    leaves = demo_leaves()
    weights = 1.0 / (1.0 + np.arange(len(leaves))) ** 0.9
    p = np.empty(len(leaves))
    p[rng.permutation(len(leaves))] = weights / weights.sum()  # a random leaf order, Zipf-like popularity
    out_dir = Path(image_dir) if image_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_products):
        leaf = leaves[int(rng.choice(len(leaves), p=p))]
        paths = [[leaf.root, leaf.department, leaf.leaf]]
        if rng.random() < 0.3:
            if rng.random() < 0.5:
                siblings = [x for x in leaves if (x.root, x.department) == (leaf.root, leaf.department) and x != leaf]
                if siblings:
                    other = siblings[int(rng.integers(0, len(siblings)))]
                    paths.append([other.root, other.department, other.leaf])
            else:
                paths.append(["Gift Ideas", leaf.root.split(",")[0].split(" &")[0]])
        pid, image = f"demo{seed:03d}-{i:05d}", None
        pixels = _draw(leaf, rng, image_size)
        if out_dir is not None and rng.random() >= 0.02:
            path = out_dir / f"{pid}.jpg"
            if not path.exists():
                from PIL import Image
                Image.fromarray(pixels).save(path, quality=90)
            image = str(path.resolve())
        rows.append({"id": pid, "title": _title(leaf, rng), "description": _description(leaf, rng),
                     "category_paths": paths, "image": image, "source": DEMO_SOURCE})
    return pd.DataFrame(rows, columns=["id", "title", "description", "category_paths", "image", "source"])
