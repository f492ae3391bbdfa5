"""Lines, CSV rows and JSON records of plain or gzip catalog files, and :func:`collect`, which turns the readers'
rows into the table (``require_*`` filters, duplicate ids dropped); notebook 01."""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import io
import itertools
import json
import os
import sys
import zlib
from collections import Counter, deque
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd

from prodlib.catalog.fields import Row
from prodlib.catalog.report import CatalogError, CatalogResult, ReadReport

__all__ = ["collect", "csv_records", "decode_line", "json_records", "partial_allowed", "raw_lines", "read_rows",
           "sample_rows"]

_BLOCK = 1 << 16  # a corrupt gzip stream loses at most the lines of one block


def existing_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path`; a :class:`CatalogError` when it is not an existing file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CatalogError(f"{p} is not a file" if p.exists() else f"catalog file {p} does not exist")
    return p


def source_name(path: Path, release: str) -> str:
    """``amazon2018:Gift_Cards`` for ``meta_Gift_Cards.json.gz``; ``amazon2014:all`` for ``metadata.json.gz``."""
    name = path.name.removesuffix(".gz").removesuffix(".jsonl").removesuffix(".json").removeprefix("meta_")
    return f"{release}:{'all' if name == 'metadata' else name}"


def open_binary(path: Path) -> io.BufferedIOBase:
    """``path`` opened for reading bytes, decompressed when it is gzip."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")  # type: ignore[return-value]


def first_line(path: Path) -> str:
    """The first non-blank line of ``path`` (for format detection)."""
    try:
        with open_binary(path) as fh:
            for raw in fh:
                if line := raw[: 1 << 20].decode("utf-8", "replace").strip():
                    return line
    except (OSError, EOFError) as e:
        raise CatalogError(f"cannot read {path}: {e}") from e
    return ""


class Damaged(Exception):
    """A gzip stream that cannot be read past compressed byte ``at`` of ``size``."""

    def __init__(self, why: str, at: int, size: int) -> None:
        super().__init__(why)
        self.why, self.at, self.size = why, at, size


def _gunzip(fh: io.BufferedIOBase, size: int) -> Iterator[bytes]:
    """Blocks of a (multi-member) gzip stream decompressed with ``zlib``; at damage (or a cut) everything before it
    is delivered (the failing block is fed again byte by byte), then :class:`Damaged` says where."""
    d, started, pos = zlib.decompressobj(wbits=31), False, 0  # started: the current member has input
    while comp := fh.read(_BLOCK):
        while comp:
            started, saved = True, d.copy()
            try:
                out = d.decompress(comp)
            except zlib.error as e:
                for i in range(len(comp)):  # the output of the bytes before the damage
                    try:
                        yield saved.decompress(comp[i: i + 1])
                    except zlib.error:
                        raise Damaged(str(e), pos + i, size) from e
                raise Damaged(str(e), pos + len(comp), size) from e
            if out:
                yield out
            pos, comp = pos + len(comp), b""
            if d.eof:  # the member ended: what follows starts the next one (or is zero padding)
                comp, d, started = d.unused_data.lstrip(b"\x00"), zlib.decompressobj(wbits=31), False
                pos -= len(comp)
    if started and not d.eof:
        raise Damaged("compressed file ended before the end-of-stream marker was reached", size, size)


def partial_allowed() -> bool:
    """``$PRODLIB_PARTIAL_INPUT`` is set (``1``/``true``/``yes``): a damaged catalog file is read up to the damage
    instead of failing (notebook 01)."""
    return os.environ.get("PRODLIB_PARTIAL_INPUT", "").strip().lower() in {"1", "true", "yes"}


def raw_lines(path: Path, report: ReadReport) -> Iterator[bytes]:
    """A plain or gzip file's lines (bytes). A damaged or cut gzip delivers every line before the damage; the
    partial line there is one skip, and ``report.damage`` says where and how much could not be read."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        rest = b""
        try:
            for block in _gunzip(fh, path.stat().st_size) if gz else iter(lambda: fh.read(_BLOCK), b""):
                *lines, rest = (rest + block).split(b"\n")
                yield from lines
        except Damaged as e:
            lost, where = e.size - e.at, f"{path.name} is damaged at compressed byte {e.at:,} of {e.size:,} ({e.why})"
            if not lost:
                report.damage = f"{path.name} is cut short after {e.size:,} bytes (no gzip end marker)"
            elif lost <= 8 and "check" in e.why:
                report.damage = (f"{where}: all of it was decompressed, but part of it is corrupt (records that no "
                                 "longer parse are counted as skipped)")
            else:
                report.damage = f"{where}: the {lost:,} bytes after it ({lost / e.size:.1%}) could not be read"
            if rest:
                report.records_read += 1
                report.skip("partial line at damage in the compressed file", f"{path.name}: {rest[:60]!r}")
            report.notes.append(report.damage)
            return
        if rest:
            yield rest


def decode_line(raw: bytes, report: ReadReport) -> str:
    """One line as text: non-UTF-8 bytes replaced, NUL bytes and a byte-order mark removed, each repair counted."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        line = raw.decode("utf-8", "replace")
        report.fix("non-UTF-8 bytes replaced", line)
    if "\x00" in line:
        line = line.replace("\x00", "")
        report.fix("NUL bytes removed", line)
    if line.startswith("\ufeff"):  # a byte-order mark before the first record
        line = line[1:]
        report.fix("byte-order mark removed", line)
    return line


def json_records(path: Path, report: ReadReport) -> Iterator[tuple[dict[str, Any], str]]:
    """``(record, line)`` per line holding a JSON object; other non-blank lines are skipped (and counted)."""
    for raw in raw_lines(path, report):
        if not (line := decode_line(raw, report).strip()):
            continue
        report.records_read += 1
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as e:
            report.skip("malformed line (not JSON)", f"{type(e).__name__}: {line}")
            continue
        if isinstance(value, dict):
            yield value, line
        else:
            report.skip("line is not a JSON object", line)


class _Lines:
    """An iterator over lines that remembers the lines of the current CSV row and can be fed lines again."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines, self.again, self.row = lines, deque[str](), list[str]()

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        self.row.append(line := self.again.popleft() if self.again else next(self.lines))
        return line


def csv_records(path: Path, report: ReadReport, *, join_extra: bool = False) -> Iterator[dict[str, Any]]:
    """Rows of a CSV as dicts; rows with the wrong number of fields are skipped and counted (``join_extra``: a row
    with too many has the rest joined into its last field, unquoted commas in a last text column; counted). A quote
    left open that swallows the lines after it is skipped with its line number, and those lines are read again."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open_binary(path) as fh:
        src = _Lines(decode_line(raw, report) for raw in fh)  # lines keep their newline
        reader, line_no = csv.reader(src), 1
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
        except csv.Error as e:
            raise CatalogError(f"{path} is not a readable CSV file: {e}") from e
        while True:
            src.row = []
            try:
                row: list[str] | None = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                row, error = None, str(e)
            start, line_no = line_no + 1, line_no + len(src.row)
            if not "".join(src.row).strip():  # a blank line
                continue
            report.records_read += 1
            if row is not None and len(row) > len(header) > 0 and join_extra:
                report.fix(f"unquoted commas in the last column {header[-1]!r} (joined)", f"line {start}")
                yield dict(zip(header, [*row[: len(header) - 1], ",".join(row[len(header) - 1:])], strict=True))
            elif row is not None and len(row) == len(header):
                yield dict(zip(header, row, strict=True))
            elif len(src.row) > 1:  # an open quote ran over the next lines: skip its line, read the others again
                report.skip("unterminated quote (its line skipped, the lines after it read again)",
                            f"line {start}: {src.row[0]}")
                report.notes.append(f"{path.name}: a quote opened on line {start} ran over {len(src.row) - 1:,} "
                                    f"more lines; line {start} was skipped and the others read again")
                src.again.extendleft(reversed(src.row[1:]))
                reader, line_no = csv.reader(src), start
            elif row is None:
                report.skip("malformed CSV row", f"line {start}: {error}")
            else:
                report.skip(f"CSV row with {len(row)} fields instead of {len(header)}", ",".join(row))


def collect(rows: Generator[Row, None, None], report: ReadReport, *, limit: int | None = None,
            require_title: bool = False, require_description: bool = False, require_image: bool = False,
            require_category: bool = True, chunk_size: int = 50_000, sample: int | None = None,
            seed: int = 0) -> Iterator[pd.DataFrame]:
    """Table chunks of the rows that pass the ``require_*`` filters, duplicate ids dropped (the first kept), up
    to ``limit`` products; notes what kept products lack. The ``source`` column is ``report.source``. With
    ``sample``, one table: the seeded random sample of that many eligible products (:func:`sample_rows`) among the
    first ``limit``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of records, got {chunk_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or a non-negative number of products, got {limit}")
    if sample is not None and sample < 1:
        raise ValueError(f"sample must be None or a positive number of products, got {sample}")
    need = {"category": require_category, "title": require_title, "description": require_description,
            "image": require_image}
    seen: set[str] = set()
    missing: Counter[str] = Counter()
    pending: list[Row] = []
    with closing(rows):  # when a limit ends the read early, this also stops the 2014 reader's worker processes
        if sample is not None:
            eligible = itertools.islice((row for row in rows if _passes(row, report, need)), limit)
            yield _chunk(sample_rows(eligible, report, sample, seed), seen, report, missing)
        else:
            while limit is None or report.kept + len(pending) < limit:
                if (row := next(rows, None)) is None:
                    break
                if _passes(row, report, need):
                    pending.append(row)
                    if len(pending) >= chunk_size:
                        yield _chunk(pending, seen, report, missing)
                        pending = []
            else:
                report.notes.append(f"stopped after {limit:,} products (limit={limit})")
    if pending:
        yield _chunk(pending, seen, report, missing)
    report.notes += [f"{n:,} kept products have no {what}" for what, n in missing.items() if n]
    report.notes += [f"HTML removed from {n:,} {reason.removeprefix('HTML removed from ')}s"
                     for reason, n in report.cleaned.items() if reason.startswith("HTML removed from ")]
    if report.damage and not partial_allowed():
        raise CatalogError(f"{report.damage}. {report.kept:,} products were read before the damage; download the "
                           "file again, or set PRODLIB_PARTIAL_INPUT=1 to use them")


def _passes(row: Row, report: ReadReport, need: dict[str, bool]) -> bool:
    """Whether ``row`` has what ``need`` requires (placeholder image URLs are already ``None``); else a skip."""
    lacks = {"category": not row.paths, "title": not row.title, "description": not row.description,
             "image": row.image is None}
    if what := next((w for w, required in need.items() if required and lacks[w]), None):
        report.skip(f"no {what}", row.id)
        return False
    return True


def sample_rows(rows: Iterable[Row], report: ReadReport, n: int, seed: int) -> list[Row]:
    """The seeded random sample of ``n`` distinct products of ``rows``, in file order, read in one pass that holds
    only the sample (notebook 01): each id gets a key from a hash of ``seed`` and the id, the ``n`` smallest keys
    win. The sample is uniform, does not depend on the file's order or size, and a repeated id (same key) is
    recognised without remembering every id; only repeats of sampled ids are counted as duplicates."""
    heap: list[tuple[int, str]] = []  # (-key, id) of the sample: the root has the largest key
    chosen: dict[str, tuple[int, Row]] = {}  # id -> (position, row)
    eligible = 0
    for position, row in enumerate(rows):
        if row.id in chosen:
            report.skip("duplicate id (first kept)", row.id)
            report.duplicates += 1
            continue
        eligible += 1
        key = int.from_bytes(hashlib.blake2b(f"{seed}:{row.id}".encode(), digest_size=8).digest(), "big")
        if len(heap) < n:
            heapq.heappush(heap, (-key, row.id))
        elif key < -heap[0][0]:
            del chosen[heapq.heapreplace(heap, (-key, row.id))[1]]
        else:
            continue
        chosen[row.id] = (position, row)
    report.notes.append(f"seeded sample of {len(chosen):,} of {eligible:,} eligible products (seed {seed}), drawn "
                        "while streaming")
    return [row for _, row in sorted(chosen.values(), key=lambda pr: pr[0])]


def _chunk(rows: list[Row], seen: set[str], report: ReadReport, missing: Counter[str]) -> pd.DataFrame:
    """The table of ``rows`` without the ids seen before; counts what the kept rows lack."""
    for i, r in enumerate(rows):  # a lone surrogate (a "\ud83d" escape) in an id cannot be written as UTF-8
        fixed = r.id if r.id.isprintable() else r.id.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        if fixed != r.id:
            report.fix("surrogate escapes repaired in id", fixed)
            rows[i] = r._replace(id=fixed)
    kept = []
    for r in rows:
        if r.id in seen:
            report.skip("duplicate id (first kept)", r.id)
            report.duplicates += 1
        else:
            seen.add(r.id)
            kept.append(r)
    report.kept += len(kept)
    frame = _frame(kept, report.source)
    missing.update(title=int((frame["title"] == "").sum()), description=int((frame["description"] == "").sum()),
                   image=int(frame["image"].isna().sum()), category=int((frame["category_paths"].map(len) == 0).sum()))
    return frame


def _frame(rows: list[Row], source: str) -> pd.DataFrame:
    return pd.DataFrame({"id": [r.id for r in rows], "title": [r.title for r in rows],
                         "description": [r.description for r in rows],
                         "category_paths": pd.Series([r.paths for r in rows], dtype=object),
                         "image": pd.Series([r.image for r in rows], dtype=object), "source": [source] * len(rows)})


def concat(chunks: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """One table from its chunks (an empty table with the right columns when there are none)."""
    parts = list(chunks)
    return pd.concat(parts, ignore_index=True) if parts else _frame([], "")


def read_rows(rows: Iterable[Row | None], report: ReadReport, **options: Any) -> CatalogResult:
    """The catalog of a reader's ``rows`` (``None`` for a record it skipped); ``options`` go to :func:`collect`."""
    return CatalogResult(concat(collect((r for r in rows if r is not None), report, **options)), report)
