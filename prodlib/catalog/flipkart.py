"""The Flipkart e-commerce sample: a CSV and a folder ``images/<uniq_id>.jpg``; notebook 01."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prodlib.catalog.fields import Row, id_of, path, text
from prodlib.catalog.records import csv_records, read_rows
from prodlib.catalog.report import CatalogError, CatalogResult, ReadReport

__all__ = ["read_flipkart"]

_COLUMNS = ("uniq_id", "product_name", "product_category_tree")


def _paths(value: str, pid: str, report: ReadReport) -> list[list[str]]:
    """``["A >> B >> C >> Truncated product name..."]`` -> ``[["A", "B", "C"]]``."""
    raw = value.strip()
    try:
        trees = json.loads(raw) if raw.startswith("[") else [raw]
    except ValueError:
        report.fix("product_category_tree not a JSON list (read as one path)", f"{pid}: {raw}")
        trees = [raw.strip("[]\"' ")]
    out: list[list[str]] = []
    for tree in trees:
        if not isinstance(tree, str):
            report.fix("category path with wrong type dropped", f"{pid}: {tree!r}")
            continue
        elems = [e.strip() for e in tree.split(">>")]
        if elems[-1].endswith("..."):  # a product name cut short, not a category
            report.fix("truncated product name removed from category path", f"{pid}: {elems[-1]}")
            elems = elems[:-1]
        if (one := path(elems, pid, report)) and one not in out:
            out.append(one)
    return out


def _row(rec: dict[str, Any], csv_path: Path, report: ReadReport) -> Row | None:
    if missing := [c for c in _COLUMNS if c not in rec]:
        raise CatalogError(f"{csv_path} lacks Flipkart columns {missing}; is it the Flipkart CSV? "
                           "For another CSV use read_generic (format 'generic:')")
    if (pid := id_of(rec["uniq_id"])) is None:
        report.skip("no uniq_id", rec.get("product_name"))
        return None
    title = text(rec["product_name"], "title", pid, report)
    desc = text(rec.get("description"), "description", pid, report)
    cats = _paths(rec["product_category_tree"], pid, report)
    img = (folder := csv_path.parent / "images") / f"{pid}.jpg"
    image = str(img.resolve()) if img.is_file() and img.resolve().parent == folder.resolve() else None
    if image is None:  # also for an id such as ../../x, whose file would lie outside images/
        report.fix("no image file", f"{pid}: images/{pid}.jpg")
    return Row(pid, title, desc, cats, image)


def read_flipkart(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                  require_description: bool = False, require_image: bool = False,
                  require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
                  seed: int = 0) -> CatalogResult:
    """Read the Flipkart catalog: the folder (CSV + ``images/``) or the CSV itself; notebook 01. The last element
    of ``product_category_tree`` is dropped (counted) when it ends in ``...`` (a product name); ``image`` is the
    absolute path of ``images/<uniq_id>.jpg``, or ``None`` when that file is missing (counted)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CatalogError(f"Flipkart catalog {p} does not exist; give the folder with the CSV and images/")
    if p.is_dir():
        if not (found := sorted(p.glob("flipkart_*.csv")) or sorted(p.glob("*.csv"))):
            raise CatalogError(f"{p} holds no flipkart_*.csv file; point at the Flipkart folder or its CSV")
        p = found[0]
    report = ReadReport("flipkart")
    return read_rows((_row(rec, p, report) for rec in csv_records(p, report)), report, limit=limit,
                     require_title=require_title, require_description=require_description,
                     require_image=require_image, require_category=require_category, chunk_size=chunk_size,
                     sample=sample, seed=seed)
