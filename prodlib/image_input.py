"""The image classifier's input pipeline (notebook 04): :class:`ImageSequence` turns the image files notebook 01
validated into batches of network inputs on every Keras backend. Products without a usable image are left out of
image training; their image output is the training-set label prevalence (:func:`prevalence_probs`). Keras is
imported at module level here (like the model modules); TensorFlow never is.
"""

from __future__ import annotations

import importlib
import math
import os
import textwrap
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import pandas as pd
from PIL import Image

from prodlib.images import check_image_file

__all__ = ["ImageSequence", "load_image", "load_image_array", "prediction_examples", "prevalence_probs",
           "preprocess", "split_images"]


def load_image(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """``path`` as a ``size × size × 3`` float32 array of RGB values in 0–255, letterboxed (scaled to fit,
    centred on white) so shapes are not distorted. Raises ``OSError`` for unreadable files."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(im, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.float32)


def preprocess(x: np.ndarray, backbone: str = "resnet50") -> np.ndarray:
    """The backbone's own ``keras.applications.<backbone>.preprocess_input`` on a copy of 0–255 RGB images
    (ResNet-50: BGR, ImageNet mean subtracted; MobileNet: scaled to [-1, 1])."""
    module = importlib.import_module(f"keras.applications.{backbone}")
    return np.asarray(module.preprocess_input(np.array(x, dtype=np.float32, copy=True)), dtype=np.float32)


def load_image_array(paths: Sequence[str], size: int, *, preprocessed: bool = False, backbone: str = "resnet50",
                     workers: int = 4) -> np.ndarray:
    """All of ``paths`` as one ``(n, size, size, 3)`` float32 array, 0–255 or (``preprocessed``) the
    ``backbone``'s inputs, decoded in ``workers`` threads (for small sets and figures)."""
    paths = list(paths)
    out = np.empty((len(paths), size, size, 3), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, x in enumerate(pool.map(lambda p: load_image(p, size), paths)):
            out[i] = x
    return preprocess(out, backbone) if preprocessed else out


class ImageSequence(keras.utils.PyDataset):
    """Batches of images preprocessed for the ``backbone`` (and labels ``y``) for Keras ``fit``/``predict``
    (notebook 04). ``augment`` flips with probability ½; flips and the ``shuffle`` order come from ``seed``, epoch
    and batch number. An undecodable image becomes white, with a warning, and its path is kept in ``failed``."""

    def __init__(self, paths: Sequence[str], y: np.ndarray | None = None, *, image_size: int,
                 batch_size: int = 32, augment: bool = False, shuffle: bool = False, seed: int = 0,
                 backbone: str = "resnet50", workers: int = 1, use_multiprocessing: bool = False,
                 max_queue_size: int = 10) -> None:
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        self.paths = [str(p) for p in paths]
        y = None if y is None else np.asarray(y, dtype=np.float32)
        if y is not None and len(y) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(y)} label rows")
        if batch_size < 1 or image_size < 1:
            raise ValueError("batch_size and image_size must be positive")
        self.y, self.image_size, self.batch_size = y, int(image_size), int(batch_size)
        self.augment, self.shuffle, self.seed, self.epoch = augment, shuffle, int(seed), 0
        self.backbone = backbone
        self.failed: list[str] = []
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        n = len(self.paths)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch_size)

    def _load(self, path: str) -> np.ndarray:
        try:
            return load_image(path, self.image_size)
        except Exception as exc:
            self.failed.append(path)
            warnings.warn(f"could not decode {path} ({type(exc).__name__}: {exc}); a white image stands in",
                          stacklevel=2)
            return np.full((self.image_size, self.image_size, 3), 255.0, dtype=np.float32)

    def __getitem__(self, index: int) -> Any:
        if index < 0 or index >= len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        x = np.stack([self._load(self.paths[i]) for i in idx])
        if self.augment:
            flips = np.random.default_rng([self.seed, self.epoch, index]).random(len(idx)) < 0.5
            x[flips] = x[flips, :, ::-1, :]
        x = preprocess(x, self.backbone)
        return x if self.y is None else (x, self.y[idx])

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._make_order()


def split_images(part: pd.DataFrame, column: str = "image") -> tuple[list[str], list[str], list[str]]:
    """``(ids_with_image, their_paths, ids_without_image)`` for one split (notebook 04); a path that is missing,
    empty or does not decode completely counts as *without image*, never as an error."""
    values = part[column].tolist() if column in part.columns else [None] * len(part)
    rows = [(pid, path, isinstance(path, str) and bool(path) and check_image_file(path))
            for pid, path in zip(part.index.astype(str), values, strict=True)]
    return [r[0] for r in rows if r[2]], [r[1] for r in rows if r[2]], [r[0] for r in rows if not r[2]]


def prevalence_probs(y_train: np.ndarray, n: int) -> np.ndarray:
    """The image output for ``n`` products without an image: each class's training prevalence, a neutral value
    without image evidence (notebooks 04, 05)."""
    y_train = np.asarray(y_train, dtype=np.float64)
    if y_train.ndim != 2 or not len(y_train):
        raise ValueError("y_train must be a non-empty (products × classes) matrix")
    return np.tile(y_train.mean(axis=0).astype(np.float32), (n, 1))


def prediction_examples(ds: Any, probs: np.ndarray, *, split: str = "test", n: int = 12, per_row: int = 4,
                        seed: int = 0, threshold: float = 0.5) -> tuple[list[tuple[str, list[str]]], list[list[str]]]:
    """Rows and captions for :func:`prodlib.plots.image_grid`: ``n`` random products of ``split`` that have an
    image (drawn with ``seed``), captioned with their true and predicted labels (notebook 04)."""
    images, y = ds.part(split)["image"], ds.y(split)
    has = [i for i in range(len(ds.splits[split])) if isinstance(images.iloc[i], str) and images.iloc[i]]
    pick = sorted(np.random.default_rng(seed).choice(has, size=min(n, len(has)), replace=False).tolist()) if has else []

    def labels(mask: Any) -> str:
        names = [c for c, m in zip(ds.classes, mask, strict=True) if m]
        return "\n".join(textwrap.wrap(", ".join(names) if names else "(none)", 34)[:3])

    chunks = [pick[start:start + per_row] for start in range(0, len(pick), per_row)]
    return ([("", [str(images.iloc[i]) for i in chunk]) for chunk in chunks],
            [[f"true: {labels(y[i])}\npred: {labels(probs[i] >= threshold)}" for i in chunk] for chunk in chunks])
