"""Seeded sampling and train / validation / test splits: the paper's first-90,000-train rule, with validation
carved out of train (notebook 01)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["SPLITS", "product_folds", "sample_ids", "split_ids"]

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
    """A seeded random sample of ``n`` ids, in their original order (all when ``n`` is ``None`` or too big)."""
    ids = list(ids)
    if n is None or n >= len(ids):
        return ids
    if n <= 0:
        raise ValueError(f"sample size must be positive, got {n}")
    return [ids[i] for i in np.sort(np.random.default_rng(seed).choice(len(ids), size=n, replace=False))]


def split_ids(ids: Sequence[str], test_size: float | int, val_size: float | int,
              seed: int) -> dict[str, list[str]]:
    """Disjoint ``train``/``val``/``test`` ids: shuffle with ``seed``, the last ``test_size`` are test, the first
    ``val_size`` of the rest (fraction of train or count) validation."""
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("product ids must be unique before splitting")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_train = len(order) - _count(test_size, len(ids), "test_size")
    n_val = _count(val_size, n_train, "val_size")
    if min(n_train - n_val, n_val, len(order) - n_train) < 1:
        raise ValueError(f"{len(order)} products split into {n_train - n_val} train, {n_val} validation and "
                         f"{len(order) - n_train} test (test_size={test_size!r}, val_size={val_size!r}): every "
                         "split needs a product; use a larger catalog, a lower label_min_count or other sizes")
    return {"train": order[n_val:n_train], "val": order[:n_val], "test": order[n_train:]}


def product_folds(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold cut of ``n`` products: ``(fit rows, held-out rows)`` per fold, every row held out once
    (at least 2 folds, at most ``n``). Cross-fitting (notebooks 02–04) and fusion's cross-validation (05)."""
    from sklearn.model_selection import KFold
    if n < 2:
        raise ValueError(f"cannot cut {n} product(s) into folds; at least 2 are needed")
    return list(KFold(n_splits=max(2, min(folds, n)), shuffle=True, random_state=seed).split(np.arange(n)))
