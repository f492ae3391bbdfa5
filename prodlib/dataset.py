"""The study's dataset: a catalog table (the columns of ``CATALOG_COLUMNS``) sampled, labelled and split by
:func:`build_dataset`, saved by notebook 01 into ``runs/<profile>/01_data/`` and read back by the others
with :func:`load_dataset`. Explained in notebook 01.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prodlib.artifacts import ArtifactMismatch, StageOutput, atomic_write, load_stage
from prodlib.catalog import CATALOG_COLUMNS
from prodlib.config import Profile
from prodlib.labels import build_labels, label_matrix
from prodlib.splits import SPLITS, sample_ids, split_ids

__all__ = ["CATALOG_COLUMNS", "DATA_STAGE", "Dataset", "build_dataset", "check_catalog", "decide_modalities",
           "load_dataset", "save_dataset"]

DATA_STAGE = "01_data"


def check_catalog(table: pd.DataFrame) -> None:
    """Raise a clear error when ``table`` does not follow the catalog contract."""
    if missing := [c for c in CATALOG_COLUMNS if c not in table.columns]:
        raise ValueError(f"catalog table lacks columns {missing}; readers must return {list(CATALOG_COLUMNS)}")
    if table["id"].duplicated().any():
        dup = table.loc[table["id"].duplicated(), "id"].iloc[0]
        raise ValueError(f"catalog ids must be unique (e.g. {dup!r} repeats); readers keep the first")


@dataclass
class Dataset:
    """Labelled, split products of one run (rows indexed by product id)."""

    table: pd.DataFrame
    classes: list[str]
    splits: dict[str, list[str]]
    profile: str
    fingerprint: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = _fingerprint(self.table, self.classes, self.splits)

    def part(self, split: str) -> pd.DataFrame:
        """The rows of ``split`` (``train``, ``val`` or ``test``) in split order."""
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}; choose one of {', '.join(self.splits)}")
        return self.table.loc[self.splits[split]]

    def y(self, split: str) -> np.ndarray:
        """The 0/1 label matrix of ``split`` (rows follow :meth:`part`, columns follow ``classes``)."""
        return label_matrix(self.part(split)["labels"], self.classes)

    @property
    def modalities(self) -> list[str]:
        """The modalities notebook 01 kept (``dataset_stats.json``), in the order title, description, image."""
        return list(self.stats.get("modalities", {}).get("present", ("title", "description", "image")))

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _fingerprint(table: pd.DataFrame, classes: list[str], splits: dict[str, list[str]]) -> str:
    h = hashlib.sha256()
    cols = ["title", "description", "category_paths", "labels"]
    for pid, row in table[cols].iterrows():
        h.update(json.dumps([pid, *[row[c] for c in cols]], default=str, ensure_ascii=False).encode())
    h.update(json.dumps([classes, splits]).encode())
    return h.hexdigest()


def build_dataset(catalog: pd.DataFrame, profile: Profile) -> Dataset:
    """Sample (before labelling, as in the paper), label (flatten + min-count filter; products left without
    a label are dropped and counted in ``stats``) and split ``catalog`` as ``profile`` says."""
    check_catalog(catalog)
    if catalog.empty:
        raise ValueError("the catalog has no product left to label: see the read report above for why its records "
                         "were skipped (a wrong format in PRODLIB_CATALOG, or columns that the mapping does not name)")
    table = catalog.set_index("id", drop=False)
    table.index = table.index.astype(str)
    table = table.loc[ids := sample_ids(list(table.index), profile.n_products, profile.seed)]
    result = build_labels(table["category_paths"], profile.label_mode, profile.label_min_count)
    if not result.classes:
        raise ValueError(f"no class has {profile.label_min_count} products in this catalog of {len(table)}; "
                         "lower label_min_count")
    table = table.loc[result.labels.index].copy()
    table["labels"] = result.labels
    splits = split_ids(list(table.index), profile.test_size, profile.val_size, profile.seed)
    stats = {"sampled_products": len(ids), "labels": result.to_dict(),
             "split_sizes": {k: len(v) for k, v in splits.items()}, "modalities": decide_modalities(table, profile)}
    return Dataset(table=table, classes=result.classes, splits=splits, profile=profile.name, stats=stats)


def decide_modalities(table: pd.DataFrame, profile: Profile) -> dict[str, Any]:
    """Which of title, description and image the study uses (notebook 01): each one carried by at least
    ``profile.min_modality_share`` of the products, or ``profile.modalities`` when set (a modality no product carries
    is an error). Returns ``present``, ``share`` (per modality) and ``why`` (a sentence per modality)."""
    has = {"title": table["title"].fillna("").str.strip() != "", "description": table["description"].fillna("")
           .str.strip() != "", "image": table["image"].notna() & (table["image"].astype(str) != "")}
    share = {m: round(float(h.mean()) if len(h) else 0.0, 4) for m, h in has.items()}
    counts = {m: f"{int(h.sum()):,} of {len(table):,} products ({share[m]:.1%})" for m, h in has.items()}
    if chosen := list(profile.modalities):
        if empty := [m for m in chosen if not share[m]]:
            raise ValueError(f"modalities={','.join(chosen)} names {empty}, which no product of this catalog carries; "
                             "leave modalities empty to decide from the data")
        present = [m for m in has if m in chosen]
        why = {m: f"{counts[m]}; {'chosen' if m in chosen else 'left out'} by the profile's modalities" for m in has}
    else:
        present = [m for m in has if share[m] >= profile.min_modality_share]
        why = {m: f"{counts[m]}, {'at least' if m in present else 'below'} min_modality_share "
                  f"{profile.min_modality_share:.0%}" for m in has}
    if not present:
        raise ValueError(f"no modality reaches min_modality_share={profile.min_modality_share}: {counts}; lower it")
    return {"present": present, "share": share, "why": why}


def save_dataset(ds: Dataset, out: StageOutput) -> None:
    """Write ``catalog.jsonl``, ``classes.json``, ``splits.json`` and ``dataset_stats.json`` into ``out``."""
    with atomic_write(out.path / "catalog.jsonl") as tmp:
        ds.table.reset_index(drop=True).to_json(tmp, orient="records", lines=True, force_ascii=False)
    for name, obj in (("classes", ds.classes), ("splits", ds.splits), ("dataset_stats", ds.stats)):
        out.save_json(name, obj)


def load_dataset(profile: str | Profile, run_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Read the dataset notebook 01 saved for ``profile``; its fingerprint is checked against the manifest."""
    stage = load_stage(profile, DATA_STAGE, run_dir)
    table = pd.read_json(Path(stage.path) / "catalog.jsonl", orient="records", lines=True, dtype={"id": str})
    table["id"] = table["id"].astype(str)
    for col in ("title", "description"):
        table[col] = table[col].fillna("").astype(str)
    table["image"] = table["image"].astype(object).where(table["image"].notna(), None)
    table = table.set_index("id", drop=False)
    ds = Dataset(table=table, classes=stage.load_json("classes"), splits=stage.load_json("splits"),
                 profile=stage.profile, stats=stage.load_json("dataset_stats"))
    if ds.fingerprint != stage.fingerprint:
        raise ArtifactMismatch(
            f"{stage.path} was changed after its run (fingerprint {ds.fingerprint[:12]} vs manifest "
            f"{stage.fingerprint[:12]}); rerun notebook 01"
        )
    for split in SPLITS:
        ds.splits.setdefault(split, [])
    return ds

