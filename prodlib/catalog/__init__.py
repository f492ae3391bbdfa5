"""Catalog readers: every public product catalog the study can use, read into one table with a report of what was
skipped and repaired (notebook 01). ``report``, ``records`` and ``fields`` serve the readers, one module per format
(``amazon2014``, ``amazon_jsonl``, ``flipkart``, ``generic``); here the dispatch: :func:`read_catalog` (a path or
``format:path``), :func:`catalog_from_env` and :func:`open_catalog` (a profile's catalog)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prodlib import download
from prodlib.artifacts import repo_root, run_root
from prodlib.catalog.amazon2014 import iter_amazon2014, read_amazon2014
from prodlib.catalog.amazon_jsonl import read_amazon2018, read_amazon2023
from prodlib.catalog.flipkart import read_flipkart
from prodlib.catalog.generic import default_columns, load_mapping, mapping_beside, read_generic
from prodlib.catalog.records import first_line
from prodlib.catalog.report import CatalogError, CatalogResult, ReadReport
from prodlib.demo import DEMO_SOURCE, generate_demo_catalog

if TYPE_CHECKING:
    from prodlib.config import Profile

__all__ = ["CATALOG_COLUMNS", "FORMATS", "CatalogError", "CatalogResult", "ReadReport", "catalog_from_env",
           "detect_format", "iter_amazon2014", "load_mapping", "open_catalog", "read_amazon2014", "read_amazon2018",
           "read_amazon2023", "read_catalog", "read_flipkart", "read_generic"]

CATALOG_COLUMNS = ("id", "title", "description", "category_paths", "image", "source")
FORMATS = ("amazon2014", "amazon2018", "amazon2023", "flipkart", "generic")
ENV_VAR = "PRODLIB_CATALOG"
ENV_EXAMPLE = "PRODLIB_CATALOG=flipkart:../shared/data/flipkart1050 make book PROFILE=sample"
AMAZON2014_ENV = "PRODLIB_AMAZON2014"

_READERS: dict[str, Callable[..., CatalogResult]] = {
    "amazon2014": read_amazon2014, "amazon2018": read_amazon2018, "amazon2023": read_amazon2023,
    "flipkart": read_flipkart, "generic": read_generic}
_ACCEPTED = ("a path to a Flipkart folder (CSV + images/) or CSV, an Amazon metadata file (2014 metadata.json.gz / "
             "meta_<Category>.json.gz, 2018 meta_<Category>.json.gz, 2023 meta_<Category>.jsonl[.gz]), "
             "'format:path' with format one of " + ", ".join(FORMATS) + " (generic: a column mapping <name>.mapping."
             "json|yaml beside the file, or generic:<file>?mapping=<mapping file>), or "
             "amazon2014|amazon2018|amazon2023:<Category> (downloaded, e.g. amazon2023:All_Beauty)")


def detect_format(path: str | os.PathLike[str]) -> str:
    """The catalog format of ``path``, from its files and first line (see :func:`read_catalog`)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CatalogError(f"catalog path {p} does not exist; accepted: {_ACCEPTED}")
    if p.is_dir():
        if any(p.glob("flipkart_*.csv")):
            return "flipkart"
        raise CatalogError(f"cannot tell the catalog format of folder {p}; accepted: {_ACCEPTED}")
    if mapping_beside(p):
        return "generic"
    first = first_line(p).lstrip("\ufeff")
    if p.name.lower().endswith((".csv", ".csv.gz")):
        if "uniq_id" in first and "product_category_tree" in first:
            return "flipkart"
        raise CatalogError(f"{p} is a CSV without Flipkart columns; read it as generic:{p} with a column mapping "
                           f"{p.name.split('.')[0]}.mapping.yaml beside it (see the README; header: {first[:200]!r})")
    if not first.startswith("{"):
        raise CatalogError(f"cannot tell the catalog format of {p} (first line {first[:80]!r}); accepted: {_ACCEPTED}")
    try:
        rec = json.loads(first)
    except ValueError:
        return "amazon2014"  # a Python dict literal
    if "parent_asin" in rec:  # a line that starts with "{" and parses is a JSON object
        return "amazon2023"
    if "category" in rec:
        return "amazon2018"
    if "categories" in rec:
        return "amazon2014"
    if "asin" in rec:
        return "amazon2018"
    raise CatalogError(f"cannot tell the catalog format of {p} (keys {sorted(rec)[:10]}); accepted: {_ACCEPTED}")


def _check_fits(fmt: str, p: Path) -> None:
    """A :class:`CatalogError` when the file of ``fmt:p`` looks like another format, naming it and the spec to use
    (otherwise its records would all be skipped and the table come out empty)."""
    try:
        looks = detect_format(p)
    except CatalogError:
        looks = "generic" if p.is_file() else None  # a CSV or JSON lines with other columns
    if looks is None or looks == fmt:
        return
    how = (f"use the spec generic:{p} with a mapping of its columns (see the README)" if looks == "generic"
           else f"use the spec {looks}:{p}")
    raise CatalogError(f"{p} does not fit the format {fmt}: it looks like {looks}; {how}")


def _locate(path: str | os.PathLike[str]) -> Path:
    """``path``, or from the repository root when relative and not found here (notebooks run in their own folder)."""
    p = Path(path).expanduser()
    return (repo_root() / p).resolve() if not p.is_absolute() and not p.exists() and (repo_root() / p).exists() else p


def read_catalog(spec: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
                 **kw: Any) -> CatalogResult:
    """Read a catalog given as a path (format detected), ``format:path`` or ``release:<Category>`` (a publisher's
    per-category file, downloaded once into ``cache_dir``, default ``runs/.cache``); notebook 01. Keyword arguments go
    to the reader (``limit``, ``require_title``, ``sample``, ..., ``columns`` for ``generic``). Errors say what is
    accepted."""
    fmt, path, mapping = None, os.fspath(spec), ""
    head, sep, tail = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if sep and head.lower() in FORMATS:
        fmt, path = head.lower(), tail
    elif sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]+", head) and not Path(spec).exists():
        raise CatalogError(f"unknown catalog format {head!r} in {spec!r}; accepted: {_ACCEPTED}")
    if fmt in (None, "generic") and "?mapping=" in path:
        fmt, (path, _, mapping) = "generic", path.partition("?mapping=")
    if not path:
        raise CatalogError(f"empty catalog path in {spec!r}; accepted: {_ACCEPTED}")
    p = _locate(path)
    if not p.exists() and fmt in download.SOURCES and download.SOURCES[fmt].per_category and "/" not in path:
        try:
            p = download.fetch(f"{fmt}:{path}", Path(cache_dir) if cache_dir else run_root() / ".cache")
        except download.DownloadError as e:
            raise CatalogError(str(e)) from e
    if not p.exists():
        raise CatalogError(f"catalog path {p} does not exist; accepted: {_ACCEPTED}")
    if fmt in ("amazon2014", "amazon2018", "amazon2023", "flipkart"):
        _check_fits(fmt, p)
    fmt = fmt or ("generic" if "columns" in kw else detect_format(p))
    if fmt == "generic" and "columns" not in kw:
        found = ((p.parent / mapping if (p.parent / mapping).is_file() else _locate(mapping)) if mapping
                 else mapping_beside(p))  # a relative mapping: beside the catalog, else from here
        kw = {**kw, **(load_mapping(found) if found else {"columns": default_columns(p)})}
    if fmt != "flipkart" and p.is_dir():
        raise CatalogError(f"{p} is a folder; format {fmt!r} reads a file. Accepted: {_ACCEPTED}")
    return _READERS[fmt](p, **kw)


def catalog_from_env(var: str = ENV_VAR, **kw: Any) -> CatalogResult:
    """Read the catalog named by the environment variable ``var`` (``PRODLIB_CATALOG``); notebook 01."""
    spec = os.environ.get(var, "").strip()
    how = f"Set {var} to a catalog path or format:path, for example\n    {ENV_EXAMPLE}"
    if not spec:
        raise CatalogError(f"${var} is not set, so there is no catalog to read. {how}\nAccepted: {_ACCEPTED}.")
    try:
        return read_catalog(spec, **kw)
    except CatalogError as e:
        raise CatalogError(f"${var}={spec!r} cannot be read: {e}\n{how}") from e


def open_catalog(profile: Profile, work_dir: str | os.PathLike[str]) -> CatalogResult:
    """The catalog of ``profile.catalog`` as notebook 01 reads it: ``demo`` (images in ``work_dir/raw_images``), ``env``
    (``$PRODLIB_CATALOG``), ``amazon2014`` (``$PRODLIB_AMAZON2014`` or downloaded, table cached in ``runs/.cache``;
    products with title, description and image, as in the paper), else a :func:`read_catalog` spec. The profile's
    ``n_products`` are sampled while the file streams (seeded), so that only they are kept and get images."""
    if (source := profile.catalog) == "demo":
        table = generate_demo_catalog(profile.demo_products, profile.seed, Path(work_dir) / "raw_images")
        return CatalogResult(table, ReadReport(DEMO_SOURCE, records_read=len(table), kept=len(table)))
    cache_dir = Path(work_dir).parent.parent / ".cache"  # runs/.cache, two folders above work_dir
    sampling = {"sample": profile.n_products, "seed": profile.seed}
    if source == "env":
        return catalog_from_env(cache_dir=cache_dir, **sampling)
    if source == "amazon2014":
        local = os.environ.get(AMAZON2014_ENV, "").strip()  # a local copy, else downloaded
        path = _locate(local) if local else download.fetch("amazon2014", cache_dir)
        if local and not path.is_file():
            raise CatalogError(f"${AMAZON2014_ENV}={local!r} is not a file; point it at metadata.json.gz "
                               "(or a meta_<Category>.json.gz) or unset it to download")
        return read_amazon2014(path, require_title=True, require_description=True, require_image=True,
                               cache_dir=cache_dir, **sampling)
    return read_catalog(source, cache_dir=cache_dir, **sampling)
