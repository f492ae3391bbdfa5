"""The Amazon 2014 metadata (McAuley et al.), one Python dict literal per line (9.4 M lines); notebook 01. Each
line is read with ``ast.literal_eval`` (never ``eval``: a line cannot run code), in batches that worker processes
may parse; each line's report comes back with its row and is added up in file order, so the table and the report
do not depend on the number of workers."""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import os
import pickle
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from pathlib import Path

import pandas as pd

from prodlib.artifacts import atomic_write
from prodlib.catalog import records
from prodlib.catalog.fields import Row, id_of, image_url, paths, text
from prodlib.catalog.report import CatalogResult, ReadReport

__all__ = ["iter_amazon2014", "parse_lines", "read_amazon2014"]

BATCH = 2_000  # lines per task of a worker process
_CACHE_VERSION = 1  # raise it when this reader's table or report changes (part of the cache key)
Parsed = list[tuple[bool, Row | None, ReadReport | None]]


def parse_lines(lines: list[bytes]) -> Parsed:
    """Per raw line: whether it is a record, its row (``None`` when skipped) and its own report of skips and
    repairs (``None`` when there are none). Top level, so that worker processes can run it."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # literal_eval warns about escapes such as "\d" in old dumps
        for raw in lines:
            report = ReadReport("")
            line = records.decode_line(raw, report).strip()
            row = _row(line, report) if line else None
            out.append((bool(line), row, report if report.skipped or report.cleaned else None))
    return out


def _row(line: str, report: ReadReport) -> Row | None:
    try:
        value = ast.literal_eval(line)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        report.skip("malformed line (not a Python literal)", f"{type(e).__name__}: {line}")
        return None
    if not isinstance(value, dict):
        report.skip("line is not a dict", line)
        return None
    if (pid := id_of(value.get("asin"))) is None:
        report.skip("no asin", line)
        return None
    return Row(pid, text(value.get("title"), "title", pid, report),
               text(value.get("description"), "description", pid, report, join_lists=True),
               paths(value.get("categories"), pid, report), image_url(value.get("imUrl"), pid, report))


def _parsed(batches: Iterator[list[bytes]], workers: int) -> Iterator[Parsed]:
    """:func:`parse_lines` of each batch, in order: here, or (a file of two batches or more) by ``workers``
    processes that run a few batches ahead."""
    head = list(itertools.islice(batches, 2))
    batches = itertools.chain(head, batches)
    if workers == 1 or len(head) < 2:
        yield from map(parse_lines, batches)
        return
    pool, ahead = ProcessPoolExecutor(workers), deque[Future[Parsed]]()
    try:
        for batch in batches:
            ahead.append(pool.submit(parse_lines, batch))
            if len(ahead) > 2 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:  # also when a limit ends the read early
        pool.shutdown(cancel_futures=True)


def _rows(path: Path, report: ReadReport, workers: int) -> Iterator[Row]:
    """The rows of the file in order, each line's report added to ``report`` just before its row."""
    cut = ReadReport(report.source)  # a gzip stream cut short: counted after the lines before it
    lines = records.raw_lines(path, cut)
    batches = iter(lambda: list(itertools.islice(lines, BATCH)), [])  # lists of BATCH lines, until none is left
    with closing(_parsed(batches, workers)) as parsed:
        for batch in parsed:
            for is_record, row, line_report in batch:
                if line_report is not None:
                    report.add(line_report)
                report.records_read += is_record
                if row is not None:
                    yield row
    report.add(cut)


def iter_amazon2014(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
                    seed: int = 0, report: ReadReport | None = None,
                    workers: int | None = None) -> Iterator[pd.DataFrame]:
    """Stream the 2014 metadata (``metadata.json.gz`` or ``meta_<Category>.json.gz``) in table chunks; pass a
    ``report`` to read the counts while streaming. ``workers`` processes parse the lines (default: one per CPU).
    Memory: one chunk of rows and the ids seen; with ``sample`` (one table, drawn while streaming), the sample
    only. Notebook 01."""
    p = records.existing_file(path)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be a positive number of processes (or None: one per CPU), got {workers}")
    rep = report if report is not None else ReadReport(records.source_name(p, "amazon2014"))
    yield from records.collect(_rows(p, rep, workers), rep, limit=limit, require_title=require_title,
                               require_description=require_description, require_image=require_image,
                               require_category=require_category, chunk_size=chunk_size, sample=sample, seed=seed)


def read_amazon2014(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
                    seed: int = 0, workers: int | None = None,
                    cache_dir: str | os.PathLike[str] | None = None) -> CatalogResult:
    """Read the 2014 Amazon metadata into a catalog table (see :func:`iter_amazon2014`); notebook 01. With a
    ``cache_dir``, the result is saved there and loaded instead of parsing when the same file (path, size,
    modification time) is read with the same options."""
    p = records.existing_file(path)
    options = {"limit": limit, "require_title": require_title, "require_description": require_description,
               "require_image": require_image, "require_category": require_category, "sample": sample,
               "seed": seed}
    key = json.dumps([_CACHE_VERSION, pd.__version__, str(p.resolve()), options]).encode()
    cache = Path(cache_dir) / f"amazon2014-{hashlib.sha256(key).hexdigest()[:16]}.pkl" if cache_dir else None
    stamp = [p.stat().st_size, p.stat().st_mtime_ns]
    if cache is not None and cache.is_file():
        with open(cache, "rb") as fh:
            saved = pickle.load(fh)  # our own file (written below), not foreign data
        if saved["stamp"] == stamp:  # else the file changed since: parsed again
            saved["result"].report.notes.append(f"read from the cache {cache} (same file, same options)")
            return saved["result"]
    rep = ReadReport(records.source_name(p, "amazon2014"))
    result = CatalogResult(records.concat(iter_amazon2014(p, **options, chunk_size=chunk_size, report=rep,
                                                          workers=workers)), rep)
    if cache is not None:
        try:
            with atomic_write(cache) as tmp, open(tmp, "wb") as fh:
                pickle.dump({"stamp": stamp, "result": result}, fh, protocol=5)
        except OSError as e:
            rep.notes.append(f"the table could not be cached in {cache} ({e})")
    return result
