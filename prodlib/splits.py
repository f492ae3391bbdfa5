"""Sampling and train / validation / test splits, all driven by one seed.

The paper drew 119,063 products at random and used the first 90,000 for training and the remaining 29,063
for testing; the reproduction carves a validation split out of train (early stopping, fusion fitting).
Explained in notebook 01.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SPLITS", "sample_ids", "split_ids"]

SPLITS = ("train", "val", "test")


def _count(size: float | int, total: int, what: str) -> int:
    if isinstance(size, float) and 0 < size < 1:
        n = int(round(size * total))
    elif isinstance(size, (int, np.integer)) and size >= 0:
        n = int(size)
    else:
        raise ValueError(f"{what} must be a fraction in (0, 1) or a count ≥ 0, got {size!r}")
    if n >= total:
        raise ValueError(f"{what}={size!r} leaves nothing else out of {total} products; lower it")
    return n


def sample_ids(ids: Sequence[str], n: int | None, seed: int) -> list[str]:
    """A random sample of ``n`` ids (all of them when ``n`` is ``None`` or ≥ their number), seeded."""
    ids = list(ids)
    if n is None or n >= len(ids):
        return ids
    if n <= 0:
        raise ValueError(f"sample size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ids), size=n, replace=False))
    return [ids[i] for i in pick]


def split_ids(ids: Sequence[str], test_size: float | int, val_size: float | int,
              seed: int) -> dict[str, list[str]]:
    """Disjoint ``train``/``val``/``test`` id lists: shuffle with ``seed``, the first ``len - test`` are
    train (the paper's rule), and ``val_size`` of train (fraction or count) becomes validation."""
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("product ids must be unique before splitting")
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    n_test = _count(test_size, len(ids), "test_size")
    train_all, test = order[: len(order) - n_test], order[len(order) - n_test:]
    n_val = _count(val_size, len(train_all), "val_size")
    val, train = train_all[:n_val], train_all[n_val:]
    return {"train": train, "val": val, "test": test}
