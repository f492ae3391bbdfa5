"""A catalog a teacher brings: a CSV or JSON-lines file and a column mapping; notebook 01."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prodlib.catalog.fields import Row, id_of, image_url, paths, text
from prodlib.catalog.records import csv_records, existing_file, first_line, json_records, read_rows
from prodlib.catalog.report import CatalogError, CatalogResult, ReadReport

__all__ = ["read_generic"]

REQUIRED = ("id", "title", "category")
OPTIONAL = ("description", "image")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _image(value: Any, root: Path, pid: str, report: ReadReport) -> str | None:
    """A URL (placeholders dropped), or a local file, relative to the catalog's folder ``root`` or absolute."""
    if not isinstance(value, str) or not value.strip():
        return None
    if _URL.match(v := value.strip()):
        return image_url(v, pid, report)
    if (img := root / Path(v).expanduser()).is_file():  # an absolute path stays as it is
        return str(img.resolve())
    report.fix("no image file", f"{pid}: {v}")
    return None


def sniff(path: Path) -> str:
    """``csv`` or ``jsonl``, from the file name or else the first line."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    return "jsonl" if first_line(path).startswith("{") else "csv"


def default_columns(path: Path) -> dict[str, str]:
    """The mapping for ``generic:path`` without one: the file must use our names (``id``, ``title``,
    ``category``; optionally ``description`` and ``image``), so that ``PRODLIB_CATALOG`` can name it directly."""
    line = first_line(path)
    try:
        header = next(csv.reader([line]), []) if sniff(path) == "csv" else list(json.loads(line or "{}"))
    except (ValueError, TypeError):
        header = []
    present = {str(h).strip().lstrip("\ufeff") for h in header}
    if missing := [c for c in REQUIRED if c not in present]:
        raise CatalogError(f"{path} lacks the columns {missing}; format 'generic' without a mapping needs the "
                           f"columns {list(REQUIRED)} (optional: {list(OPTIONAL)}), or call read_generic(path, "
                           "columns={'id': ..., 'title': ..., 'category': ...}) with your own names")
    return {c: c for c in (*REQUIRED, *OPTIONAL) if c in present}


def read_generic(path: str | os.PathLike[str], *, columns: Mapping[str, str], path_sep: str = ">",
                 paths_sep: str | None = "|", format: str | None = None, limit: int | None = None,
                 require_title: bool = False, require_description: bool = False, require_image: bool = False,
                 require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
                 seed: int = 0) -> CatalogResult:
    """Read a teacher's CSV or JSONL file; ``columns`` maps our names (``id``, ``title``, ``category``; optionally
    ``description``, ``image``) to theirs. A category is one path joined by ``path_sep``, several joined by
    ``paths_sep``, or (JSONL) a list of nodes or of paths; image paths are relative to the file. Notebook 01."""
    p = existing_file(path)
    if unknown := sorted(set(columns) - set(REQUIRED) - set(OPTIONAL)):
        raise CatalogError(f"unknown keys {unknown} in columns; use {list(REQUIRED + OPTIONAL)}")
    if need := [k for k in REQUIRED if k not in columns]:
        raise CatalogError(f"columns must name the file's column for {need}, e.g. "
                           "columns={'id': 'sku', 'title': 'name', 'category': 'category_path'}")
    if not path_sep:
        raise CatalogError("path_sep must be a non-empty separator such as '>' or '/'")
    if (fmt := format or sniff(p)) not in ("csv", "jsonl"):
        raise CatalogError(f"format must be 'csv' or 'jsonl', got {fmt!r}")
    report = ReadReport(f"generic:{p.name}")

    def row(rec: dict[str, Any]) -> Row | None:
        if fmt == "csv" and (absent := [f"{ours} -> {theirs!r}" for ours, theirs in columns.items()
                                        if theirs not in rec]):
            raise CatalogError(f"{p} has no column(s) {absent}; its columns are {sorted(rec)}")
        if (pid := id_of(rec.get(columns["id"]))) is None:
            report.skip(f"no id (column {columns['id']!r})", rec)
            return None
        title = text(rec.get(columns["title"]), "title", pid, report)
        desc = text(rec.get(columns.get("description")), "description", pid, report, join_lists=True)  # unmapped: None
        cat = rec.get(columns["category"])
        if isinstance(cat, str):  # "A > B|C > D": paths joined by paths_sep, nodes by path_sep
            cat = [g.split(path_sep) for g in (cat.split(paths_sep) if paths_sep else [cat]) if g.strip()]
        elif isinstance(cat, list) and all(isinstance(v, str) for v in cat):  # one path
            cat = [cat]
        cats = paths(cat, pid, report)
        image = _image(rec.get(columns.get("image")), p.parent, pid, report)
        return Row(pid, title, desc, cats, image)

    records = csv_records(p, report) if fmt == "csv" else (rec for rec, _ in json_records(p, report))
    result = read_rows(map(row, records), report, limit=limit, require_title=require_title,
                       require_description=require_description, require_image=require_image,
                       require_category=require_category, chunk_size=chunk_size, sample=sample, seed=seed)
    if fmt == "jsonl" and report.records_read and not len(result.table) and report.skipped:
        report.notes.append(f"no product kept: check columns={dict(columns)} against the file's keys")
    return result
