"""The Amazon 2018 (Ni et al.) and 2023 (Hou et al.) metadata: one JSON object per line; notebook 01."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prodlib.catalog.fields import Row, id_of, image_url, path, paths, text
from prodlib.catalog.records import existing_file, json_records, read_rows, source_name
from prodlib.catalog.report import CatalogResult, ReadReport

__all__ = ["read_amazon2018", "read_amazon2023"]


def _categories(value: Any, pid: str, report: ReadReport, bullets: bool) -> list[list[str]]:
    """A list of names is one path (as these files have it); anything else is read as a list of paths."""
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return [one] if (one := path(value, pid, report, bullets=bullets)) else []
    return paths(value, pid, report, bullets=bullets)


def _row_2018(rec: dict[str, Any], line: str, report: ReadReport) -> Row | None:
    if (pid := id_of(rec.get("asin"))) is None:
        report.skip("no asin", line)
        return None
    title = text(rec.get("title"), "title", pid, report)
    desc = text(rec.get("description"), "description", pid, report, join_lists=True)
    cats = _categories(rec.get("category"), pid, report, bullets=True)
    image = None
    for key in ("imageURLHighRes", "imageURL", "image"):
        if (image := image_url(rec.get(key), pid, report)) is not None:
            break
    return Row(pid, title, desc, cats, image)


def _image_2023(value: Any, pid: str, report: ReadReport) -> str | None:
    if not value:
        return None
    if not isinstance(value, list):
        report.fix("images was not a list (ignored)", f"{pid}: {value!r}")
        return None
    dicts = [v for v in value if isinstance(v, dict)]
    if len(dicts) < len(value):
        report.fix("image entry with wrong type ignored", pid)
    for d in sorted(dicts, key=lambda d: d.get("variant") != "MAIN"):  # the MAIN image first
        for key in ("hi_res", "large", "thumb"):
            if (url := image_url(d.get(key), pid, report)) is not None:
                return url
    return None


def _row_2023(rec: dict[str, Any], line: str, report: ReadReport) -> Row | None:
    if (pid := id_of(rec.get("parent_asin")) or id_of(rec.get("asin"))) is None:
        report.skip("no parent_asin", line)
        return None
    title = text(rec.get("title"), "title", pid, report)
    desc = text(rec.get("description"), "description", pid, report, join_lists=True)
    cat, main = rec.get("categories"), rec.get("main_category")
    cats = _categories(cat, pid, report, bullets=False) if cat else []
    if not cats and isinstance(main, str) and main.strip() and (one := path([main], pid, report)):
        report.fix("empty categories: main_category used as the path", pid)
        cats = [one]
    return Row(pid, title, desc, cats, _image_2023(rec.get("images"), pid, report))


def _read(path: str | os.PathLike[str], release: str,
          row: Callable[[dict[str, Any], str, ReadReport], Row | None], **options: Any) -> CatalogResult:
    p = existing_file(path)
    report = ReadReport(source_name(p, release))
    return read_rows((row(rec, line, report) for rec, line in json_records(p, report)), report, **options)


def read_amazon2018(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
                    seed: int = 0) -> CatalogResult:
    """Read a 2018 Amazon metadata file (``meta_<Category>.json.gz``); notebook 01. Copes with HTML titles
    (nothing left counts as no title), feature bullets in ``category`` (the path is cut there) and duplicated
    lines; images: ``imageURLHighRes``, else ``imageURL``, else ``image``."""
    return _read(path, "amazon2018", _row_2018, limit=limit, require_title=require_title,
                 require_description=require_description, require_image=require_image,
                 require_category=require_category, chunk_size=chunk_size, sample=sample, seed=seed)


def read_amazon2023(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
                    seed: int = 0) -> CatalogResult:
    """Read a 2023 Amazon metadata file (``meta_<Category>.jsonl[.gz]``); notebook 01. ``parent_asin`` is the
    id, ``categories`` one path (``[main_category]`` when empty, counted); images: the ``MAIN`` variant first,
    ``hi_res``, else ``large``, else ``thumb``."""
    return _read(path, "amazon2023", _row_2023, limit=limit, require_title=require_title,
                 require_description=require_description, require_image=require_image,
                 require_category=require_category, chunk_size=chunk_size, sample=sample, seed=seed)
