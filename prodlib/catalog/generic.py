"""A catalog a teacher brings: a CSV or JSON-lines file and a column mapping (given, or a small JSON/YAML file
``<name>.mapping.json`` beside the catalog, or named in the spec ``generic:<file>?mapping=<file>``); notebook 01."""

from __future__ import annotations

import csv
import json
import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from prodlib.catalog.fields import Row, id_of, image_url, paths, text
from prodlib.catalog.records import csv_records, existing_file, first_line, json_records, read_rows
from prodlib.catalog.report import CatalogError, CatalogResult, ReadReport

__all__ = ["load_mapping", "mapping_beside", "read_generic"]

REQUIRED = ("id", "title", "category")
OPTIONAL = ("description", "image")
SEPARATORS = ("category_sep", "paths_sep")  # a mapping's names of read_generic's path_sep and paths_sep
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_OTHER_SEPS = (">>", ">", "/", "|", "\\", ";")  # how else a path is often written
Columns = Mapping[str, str | Sequence[str]]


def mapping_beside(path: Path) -> Path | None:
    """``<name>.mapping.json`` (or ``.yaml``, ``.yml``) beside the catalog ``<name>.csv[.gz]``, if there is one."""
    stem = Path(path.name.removesuffix(".gz")).stem
    return next((m for ext in (".json", ".yaml", ".yml") if (m := path.with_name(f"{stem}.mapping{ext}")).is_file()),
                None)


def load_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keyword arguments of :func:`read_generic` from a mapping file (JSON or YAML): our names ``id``,
    ``title``, ``description``, ``category``, ``image`` and the separators ``category_sep``, ``paths_sep``;
    notebook 01 and *Reproduce it yourself*."""
    p = Path(path).expanduser()
    try:
        raw = p.read_text(encoding="utf-8")
        data = json.loads(raw) if p.suffix.lower() == ".json" else yaml.safe_load(raw)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise CatalogError(f"cannot read the column mapping {p}: {e}") from e
    if not isinstance(data, dict) or (unknown := sorted(set(data) - {*REQUIRED, *OPTIONAL, *SEPARATORS})):
        raise CatalogError(f"the column mapping {p} must map {list(REQUIRED + OPTIONAL + SEPARATORS)} to your "
                           f"columns; unknown keys: {unknown if isinstance(data, dict) else data!r}")
    kw: dict[str, Any] = {"columns": {k: v for k, v in data.items() if k not in SEPARATORS}}
    if "category_sep" in data:
        kw["path_sep"] = data["category_sep"]
    if "paths_sep" in data:
        kw["paths_sep"] = data["paths_sep"] or None
    return kw


def _names(value: str | Sequence[str], key: str) -> list[str]:
    """The file's columns that ``columns[key]`` names (several for a list, the fields of an image pattern)."""
    if key == "image" and isinstance(value, str) and "{" in value:
        return [f for _, f, _, _ in string.Formatter().parse(value) if f]
    return [value] if isinstance(value, str) else list(value)


def _category(value: Any, path_sep: str, paths_sep: str | None, pid: str, report: ReadReport) -> Any:
    """A string category split into paths (``paths_sep``) and nodes (``path_sep``); a value that looks like one path
    written with another separator is counted with the setting to change, not split silently."""
    if not isinstance(value, str):
        return [value] if isinstance(value, list) and all(isinstance(v, str) for v in value) else value
    groups = [g for g in (value.split(paths_sep) if paths_sep else [value]) if g.strip()]
    if len(groups) > 1 and not any(path_sep in g for g in groups):
        report.fix(f"category split at {paths_sep!r} into {len(groups)} one-level paths (if it is one path, set "
                   f"category_sep: {paths_sep!r})", f"{pid}: {value}")
    elif path_sep not in value and (other := next((s for s in _OTHER_SEPS if s in value and s != paths_sep), None)):
        report.fix(f"category without {path_sep!r} holds {other!r} (read as one name; if it is a path, set "
                   f"category_sep: {other!r})", f"{pid}: {value}")
    return [g.split(path_sep) for g in groups]


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


def read_generic(path: str | os.PathLike[str], *, columns: Columns, path_sep: str = ">",
                 paths_sep: str | None = "|", format: str | None = None, limit: int | None = None,
                 require_title: bool = False, require_description: bool = False, require_image: bool = False,
                 require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
                 seed: int = 0) -> CatalogResult:
    """Read a teacher's CSV or JSONL file; ``columns`` maps our names (``id``, ``title``, ``category``; optionally
    ``description``, ``image``) to theirs. ``title`` and ``description`` may name several columns (joined);
    ``category`` one column (one path joined by ``path_sep``, several joined by ``paths_sep``, or in JSONL a list of
    nodes or of paths) or several columns joined in order into one path; ``image`` a column (a URL or a path
    relative to the file) or a pattern such as ``images/{id}.jpg``. A CSV row with more fields than the header has
    the rest joined into its last column (unquoted commas), counted. Notebook 01."""
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

    names = {key: _names(value, key) for key, value in columns.items()}
    if bad := [k for k, v in names.items() if not v or not all(isinstance(c, str) and c for c in v)
               or (k in ("id", "image") and not isinstance(columns[k], str))]:
        raise CatalogError(f"columns {bad} must name a column (id, image: one; title, description, category: one or "
                           f"a list), got {[columns[k] for k in bad]}")

    def value(rec: dict[str, Any], key: str) -> Any:
        """The record's value for our ``key``: a column, several joined (a category: nodes of one path)."""
        if key not in columns:
            return None
        if isinstance(theirs := columns[key], str):
            return rec.get(theirs)
        got = [v for c in theirs if isinstance(v := rec.get(c), str | int | float) and str(v).strip()]
        return [[str(v) for v in got]] if key == "category" else " ".join(str(v) for v in got)

    def row(rec: dict[str, Any]) -> Row | None:
        if fmt == "csv" and (absent := [f"{ours} -> {c!r}" for ours, cs in names.items() for c in cs if c not in rec]):
            raise CatalogError(f"{p} has no column(s) {absent}; its columns are {sorted(rec)}")
        if (pid := id_of(rec.get(columns["id"]))) is None:  # type: ignore[arg-type]
            report.skip(f"no id (column {columns['id']!r})", rec)
            return None
        title = text(value(rec, "title"), "title", pid, report)
        desc = text(value(rec, "description"), "description", pid, report, join_lists=True)  # unmapped: None
        cats = paths(_category(value(rec, "category"), path_sep, paths_sep, pid, report), pid, report)
        pattern = columns.get("image")
        img = (pattern.format(**{f: rec.get(f, "") for f in names["image"]})  # type: ignore[union-attr]
               if isinstance(pattern, str) and "{" in pattern else value(rec, "image"))
        return Row(pid, title, desc, cats, _image(img, p.parent, pid, report))

    records = csv_records(p, report, join_extra=True) if fmt == "csv" else (rec for rec, _ in json_records(p, report))
    result = read_rows(map(row, records), report, limit=limit, require_title=require_title,
                       require_description=require_description, require_image=require_image,
                       require_category=require_category, chunk_size=chunk_size, sample=sample, seed=seed)
    if fmt == "jsonl" and report.records_read and not len(result.table) and report.skipped:
        report.notes.append(f"no product kept: check columns={dict(columns)} against the file's keys")
    return result
