"""Catalog readers: every public product catalog the study can use, read into one table.

Each reader returns a :class:`CatalogResult`: a pandas table with exactly the columns ``id``, ``title``,
``description``, ``category_paths`` (list of root-to-node paths), ``image`` (local path, URL or ``None``)
and ``source``, plus a :class:`ReadReport` that counts every record skipped (and why) and every repair
made (HTML stripped, feature bullets dropped from category paths, bytes that were not UTF-8, ...).
Nothing is dropped without being counted: ``kept + sum(skipped) == records_read``.

Formats: the Amazon 2014 metadata (one Python dict literal per line, 9.4 M lines, read by a record
scanner that takes only lines in a strict subset of Python's literal grammar and builds just the five
fields needed, in C when ``prodlib/_scan2014.c`` is built, else with one regex; every other line goes to
``ast.literal_eval``, never ``eval``), the Amazon 2018 and 2023 JSON-lines
releases, the Flipkart CSV + images folder, and a generic CSV/JSONL with a column mapping so a teacher
can bring a catalog. :func:`read_catalog` detects the format; :func:`open_catalog` is the profile
dispatch used by notebook 01 (*Data exploration*), which explains the readers and shows their reports.
"""

from __future__ import annotations

import ast
import csv
import gc
import gzip
import html
import io
import json
import os
import re
import sys
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "CATALOG_COLUMNS",
    "FORMATS",
    "CatalogError",
    "CatalogResult",
    "ReadReport",
    "catalog_from_env",
    "clean_text",
    "iter_amazon2014",
    "open_catalog",
    "parse_python_literal",
    "read_amazon2014",
    "read_amazon2018",
    "read_amazon2023",
    "read_catalog",
    "read_flipkart",
    "read_generic",
]

CATALOG_COLUMNS = ("id", "title", "description", "category_paths", "image", "source")
FORMATS = ("amazon2014", "amazon2018", "amazon2023", "flipkart", "generic")
ENV_VAR = "PRODLIB_CATALOG"
ENV_EXAMPLE = "PRODLIB_CATALOG=flipkart:../shared/data/flipkart1050 make book PROFILE=sample"
_MAX_EXAMPLES = 3
_SNIPPET = 80


class CatalogError(ValueError):
    """A catalog that cannot be read at all (unknown format, missing path, missing columns)."""


# ----------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------


def _snippet(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


@dataclass
class ReadReport:
    """What a reader read, kept, skipped (reason -> count) and repaired; explained in notebook 01.

    ``skipped`` counts whole records that did not make it into the table (``kept + sum(skipped) ==
    records_read``); ``cleaned`` counts repairs made inside records (a record can have several);
    ``examples`` holds up to three short snippets per reason of either kind.
    """

    source: str
    records_read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    cleaned: Counter = field(default_factory=Counter)

    def skip(self, reason: str, example: Any = None) -> None:
        """Count one skipped record under ``reason`` (keeping a short example)."""
        self.skipped[reason] += 1
        self._example(reason, example)

    def fix(self, reason: str, example: Any = None, n: int = 1) -> None:
        """Count ``n`` repairs of kind ``reason`` made inside kept or later-skipped records."""
        self.cleaned[reason] += n
        self._example(reason, example)

    def _example(self, reason: str, example: Any) -> None:
        if example is None:
            return
        ex = self.examples.setdefault(reason, [])
        if len(ex) < _MAX_EXAMPLES:
            ex.append(_snippet(example))

    @property
    def n_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    @property
    def consistent(self) -> bool:
        """``kept + skipped == records_read`` (always true for a finished read)."""
        return self.kept + self.n_skipped == self.records_read

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for ``dataset_stats.json`` and manifests)."""
        return {
            "source": self.source,
            "records_read": self.records_read,
            "kept": self.kept,
            "skipped": dict(self.skipped.most_common()),
            "cleaned": dict(self.cleaned.most_common()),
            "duplicates": self.duplicates,
            "examples": {k: list(v) for k, v in self.examples.items()},
            "notes": list(self.notes),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per reason: ``kind`` (skipped/cleaned), ``reason``, ``count``, ``example``."""
        rows = [("skipped", r, n, (self.examples.get(r) or [""])[0]) for r, n in self.skipped.most_common()]
        rows += [("cleaned", r, n, (self.examples.get(r) or [""])[0]) for r, n in self.cleaned.most_common()]
        return pd.DataFrame(rows, columns=["kind", "reason", "count", "example"])

    def __str__(self) -> str:
        parts = [f"{self.source}: read {self.records_read:,} records, kept {self.kept:,}"]
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{n:,} {r}" for r, n in self.skipped.most_common()))
        else:
            parts.append("skipped none")
        if self.cleaned:
            parts.append("repaired " + ", ".join(f"{r} ({n:,})" for r, n in self.cleaned.most_common()))
        text = "; ".join(parts) + "."
        if self.notes:
            text += " " + " ".join(n if n.endswith(".") else n + "." for n in self.notes)
        return text


@dataclass
class CatalogResult:
    """A catalog table (the contract in :data:`CATALOG_COLUMNS`) and the report of its reading."""

    table: pd.DataFrame
    report: ReadReport

    def __iter__(self) -> Iterator[Any]:  # allows ``table, report = read_x(...)``
        return iter((self.table, self.report))


# ----------------------------------------------------------------------------------------------------
# Text cleaning
# ----------------------------------------------------------------------------------------------------

_TAG = re.compile(r"<!--.*?(?:-->|$)|</?[A-Za-z][^<>]*(?:>|$)", re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_LATIN1 = re.compile("[^\x00-\xff]")
_UTF8_PAIR = re.compile("[\xc2-\xf4][\x80-\xbf]")


def _repair_unicode(text: str) -> tuple[str, str | None]:
    """Undo two byte-level accidents of old dumps: lone surrogates and UTF-8 read as Latin-1."""
    if text.isascii():
        return text, None
    why = None
    if not text.isprintable() and _SURROGATE.search(text):  # surrogates are not printable
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        why = "surrogate escapes repaired"
    # not ASCII and nothing above \xff; as UTF-8 bytes it needs a lead byte followed by a continuation byte
    if not _NOT_LATIN1.search(text) and _UTF8_PAIR.search(text):
        try:
            fixed = text.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            text, why = fixed, "UTF-8 bytes read as Latin-1 (mojibake) repaired"
    return text, why


def _clean(text: str) -> tuple[str, bool, bool]:
    """``(clean text, tags were stripped, entities were decoded)``."""
    entities = tags = False
    if "&" in text:
        unescaped = html.unescape(text)
        entities = unescaped != text
        text = unescaped
    if "<" in text:
        stripped = _TAG.sub(" ", text)
        tags = stripped != text
        text = stripped
    return _squash(text), tags, entities


def _squash(text: str) -> str:
    """``" ".join(text.split())``, skipped when there is nothing to collapse.

    Every whitespace character but the ASCII space is non-printable (checked in the tests), so a
    printable text without a double space and without a space at either end is already collapsed.
    """
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


def clean_text(text: str) -> str:
    """Decode HTML entities, strip tags, collapse whitespace (notebook 01: real titles carry HTML)."""
    return _clean(text)[0]


class _Fields:
    """Field-level normalisation shared by the readers; every repair is counted in ``report``."""

    _CACHE_MAX = 100_000

    def __init__(self, report: ReadReport) -> None:
        self.report = report
        self.swapped = False  # strings of the current record have ' and " exchanged (2014 fast path)
        self._paths: dict[Any, tuple[tuple[str, ...], tuple[tuple[str, Any, int], ...]]] = {}
        self._nodes: dict[str, tuple[str, str | None, bool]] = {}

    def _str(self, value: str) -> str:
        if self.swapped and ("'" in value or '"' in value):
            return _swap(value)
        return value

    def text(self, value: Any, name: str, pid: str, *, join_lists: bool = False) -> str:
        rep = self.report
        if value is None:
            return ""
        if type(value) is str:
            raw = _swap(value) if self.swapped and ("'" in value or '"' in value) else value
            if "&" not in raw and "<" not in raw:  # the common cases, without HTML
                if raw.isascii():
                    return _squash(raw)
                if raw.isprintable() and _NOT_LATIN1.search(raw):  # no surrogates, no Latin-1 mojibake
                    return _squash(raw)
        elif isinstance(value, str):
            raw = self._str(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            if not join_lists:
                rep.fix(f"{name} was a list (joined)", pid)
            raw = " ".join(self._str(v) for v in value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            rep.fix(f"{name} was a number (kept as text)", f"{pid}: {value!r}")
            raw = str(value)
        else:
            rep.fix(f"{name} had wrong type {type(value).__name__} (treated as missing)", f"{pid}: {value!r}")
            return ""
        if not raw:
            return ""
        raw, why = _repair_unicode(raw)
        if why:
            rep.fix(why, f"{pid}: {raw}")
        out, tags, entities = _clean(raw)
        if tags or entities:
            if not out:
                rep.fix(f"{name} was only HTML (treated as missing)", f"{pid}: {raw}")
            elif tags:
                rep.fix(f"HTML stripped from {name}", f"{pid}: {raw}")
            else:
                rep.fix(f"HTML entities decoded in {name}", f"{pid}: {raw}")
        return out

    def node(self, value: Any, pid: str) -> str | None:
        """One category path element, cleaned; ``None`` when it is not usable text."""
        out, fixes = self._path((value,), False)
        _report_fixes(self.report, fixes, pid)
        return out[0] if out else None

    def paths(self, value: Any, pid: str, *, bullets: bool = False) -> list[list[str]]:
        """A list of root-to-node paths from a list of lists (or one list, or one string)."""
        rep = self.report
        if value is None:
            return []
        if isinstance(value, str):
            rep.fix("categories was a string, not a list of paths (used as one path)", f"{pid}: {value}")
            value = [[value]]
        if not isinstance(value, list):
            rep.fix(f"categories had wrong type {type(value).__name__} (ignored)", f"{pid}: {value!r}")
            return []
        out: list[list[str]] = []
        for raw_path in value:
            if isinstance(raw_path, str):
                rep.fix("category path was a string, not a list (used as one element)", f"{pid}: {raw_path}")
                raw_path = [raw_path]
            if not isinstance(raw_path, list):
                rep.fix("category path with wrong type dropped", f"{pid}: {raw_path!r}")
                continue
            path = self.path(raw_path, pid, bullets=bullets)
            if path and path not in out:
                out.append(path)
        return out

    def path(self, raw_path: list[Any], pid: str, *, bullets: bool = False) -> list[str]:
        """One root-to-node path: elements cleaned (cached: category names repeat a lot), junk dropped."""
        out, fixes = self._path(tuple(raw_path), bullets)
        _report_fixes(self.report, fixes, pid)
        return list(out)

    def _path(self, raw: tuple[Any, ...], bullets: bool) -> tuple[tuple[str, ...], tuple[tuple[str, Any, int], ...]]:
        key = (self.swapped, bullets, raw)
        try:
            hit = self._paths.get(key)
        except TypeError:  # an unhashable element (a list or dict where a name should be)
            key, hit = None, None
        if hit is not None:
            return hit
        path: list[str] = []
        fixes: list[tuple[str, Any, int]] = []
        for i, elem in enumerate(raw):
            if not isinstance(elem, str):
                fixes.append(("category element with wrong type dropped", repr(elem), 1))
                continue
            elem = self._str(elem)
            if bullets and _is_bullet(elem):
                fixes.append(("feature bullet / markup in category path dropped", elem, len(raw) - i))
                break
            node = self._nodes.get(elem)
            if node is None:
                text, why = _repair_unicode(elem)
                out, tags, entities = _clean(text)
                node = (out, why, tags or entities)
                if len(self._nodes) >= self._CACHE_MAX:
                    self._nodes.clear()
                self._nodes[elem] = node
            if node[1]:
                fixes.append((node[1], elem, 1))
            if node[2]:
                fixes.append(("HTML decoded/stripped in category name", elem, 1))
            if node[0]:
                path.append(node[0])
        hit = (tuple(path), tuple(fixes))
        if key is not None:
            if len(self._paths) >= self._CACHE_MAX:
                self._paths.clear()
            self._paths[key] = hit
        return hit


_BULLET_MAX_CHARS = 60
_BULLET_MAX_WORDS = 8


def _is_bullet(elem: str) -> bool:
    """A category element that is really a feature bullet or a markup fragment (Amazon 2018 noise).

    Markup (``<...>``), more than 60 characters or 8 words, or a sentence (ends with ``.``, ``!`` or
    ``?`` and has three or more words). The path is cut at the first such element: what follows it is
    not a child category.
    """
    s = elem.strip()
    if not s:
        return False
    if "<" in s and _TAG.search(s) or s.startswith("</") or s.endswith(">"):
        return True
    words = s.split()
    if len(s) > _BULLET_MAX_CHARS or len(words) > _BULLET_MAX_WORDS:
        return True
    return s[-1] in ".!?" and len(words) >= 3


# ----------------------------------------------------------------------------------------------------
# The Python-literal parser of the 2014 metadata
# ----------------------------------------------------------------------------------------------------


class _NotFast(Exception):
    pass


def _reject_constant(name: str) -> Any:  # NaN / Infinity are names, not literals, in Python
    raise _NotFast(name)


_DECODER = json.JSONDecoder(strict=False, parse_constant=_reject_constant)
_decode_json = _DECODER.decode
_SWAP = str.maketrans({"'": '"', '"': "'"})
# Escapes seen *after* swapping the two quote characters; left to right, as Python pairs them.
_ESC = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_ESC_SIMPLE = {"\\\\": "\\\\", '\\"': '\\"', "\\n": "\\n", "\\t": "\\t", "\\r": "\\r", "\\b": "\\b",
               "\\f": "\\f", "\\/": "\\\\/"}


def _esc_to_json(m: re.Match[str]) -> str:
    e = m.group(0)
    r = _ESC_SIMPLE.get(e)
    if r is not None:
        return r
    if e[1] in "xuU" and len(e) > 2:
        cp = int(e[2:], 16)
        if 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
            raise _NotFast("surrogate or out of range")
        if cp == 0x22:  # the swapped domain: a Python '"' reads as "'" and vice versa
            cp = 0x27
        elif cp == 0x27:
            cp = 0x22
        if cp > 0xFFFF:  # JSON spells astral characters as a surrogate pair, which it joins again
            return json.dumps(chr(cp))[1:-1]
        return f"\\u{cp:04x}"
    raise _NotFast(e)


def _json_escapes_only(s: str) -> bool:
    """Whether every escape in ``s`` already means the same in JSON (``\\\\ \\" \\n \\t \\r \\b \\f``).

    Removing ``\\\\`` pairs left to right pairs backslashes as Python does; each backslash left then
    starts an escape, and they are counted by kind (all C-speed string scans, no callback).
    """
    t = s.replace("\\\\", "") if "\\\\" in s else s
    n = t.count("\\")
    k = t.count('\\"')  # the usual one: a Python \' in a string that also holds "
    if n == k:
        return True
    k += t.count("\\n") + t.count("\\t")
    return n == k or n == k + t.count("\\r") + t.count("\\b") + t.count("\\f")


def _swap(text: str) -> str:
    """``text`` with ``'`` and ``"`` exchanged (three C-speed replaces; ``translate`` is slow on non-ASCII)."""
    if "\x00" in text:
        return text.translate(_SWAP)
    return text.replace("'", "\x00").replace('"', "'").replace("\x00", '"')


# After the first Python "..." string: runs of JSON punctuation/numbers/strings pass, Python "..." strings
# (now '...') become JSON strings, anything else means "not for the fast path".
_TAIL = re.compile(
    r"""((?:[ \t\d{}\[\]:,.eE+\-]+|"[^"\\]*(?:\\.[^"\\]*)*")+)|'([^'\\]*(?:\\.[^'\\]*)*)'|(.)""", re.S)


def _tail_to_json(m: re.Match[str]) -> str:
    g = m.group(1)
    if g is not None:
        return g
    g = m.group(2)
    if g is not None:
        if "\\" not in g:
            return '"' + g.replace('"', '\\"') + '"'
        if "\x00" in g or "\x01" in g:
            raise _NotFast("placeholder in string")
        # escapes are JSON already; only the raw '"' (a Python "'") needs escaping. Pairs first, as Python.
        g = g.replace("\\\\", "\x00").replace('\\"', "\x01").replace('"', '\\"')
        return '"' + g.replace("\x01", '\\"').replace("\x00", "\\\\") + '"'
    raise _NotFast(m.group(0))


def _parse_swapped(text: str) -> tuple[Any, str]:
    """JSON parse of ``text`` with its two quote characters swapped (strings come back swapped).

    Why this equals ``ast.literal_eval`` whenever it returns: after the swap, a Python ``'...'`` string is
    a JSON string whose value is the original with ``'`` and ``"`` exchanged (an escaped ``\\'`` becomes
    the JSON escape ``\\"``); the other escapes are rewritten to their JSON form (``\\xHH``) or refused.
    A Python ``"..."`` string is found either cheaply (the first ``'`` after swapping, when no backslash
    precedes it and an even number of ``"`` do, so that it lies outside every string) or as a JSON error
    *at its first character*, so JSON agreed with Python on everything before it. From there one regex
    pass (``_TAIL``) walks the rest token by token as Python would, rewriting each Python ``"..."`` string
    into a JSON string with the same swapped value and refusing anything that is not punctuation, a
    number or a string; the result is parsed (again).
    Outside strings JSON then reads numbers and punctuation as Python does, ``NaN``/``Infinity`` are
    refused, and a bare ``true``/``false``/``null`` (not Python) is caught by :func:`_bare_names`.
    Anything else raises ``_NotFast`` and the exact slower paths decide.
    """
    s = _swap(text)
    if "\\" in s and not _json_escapes_only(s):
        s = _ESC.sub(_esc_to_json, s)
    pos = s.find("'")
    if pos < 0 or s.find("\\", 0, pos) >= 0 or s.count('"', 0, pos) % 2:
        # Without a "'" (a Python '"') there is no Python "..." string; otherwise let JSON find the first.
        try:
            return _decode_json(s), s
        except json.JSONDecodeError as e:
            pos = e.pos
            if pos >= len(s) or s[pos] != "'":
                raise _NotFast(e.msg) from None
    # else: before the first "'" there is no backslash, so every '"' there delimits a string and an even
    # number of them puts that "'" outside all strings: the start of a Python "..." string.
    s = s[:pos] + _TAIL.sub(_tail_to_json, s[pos:])
    try:
        return _decode_json(s), s
    except json.JSONDecodeError as e:
        raise _NotFast(e.msg) from None


def _bare_names(s: str) -> bool:
    """Whether the JSON text ``s`` (which parses) may hold a bare ``true``/``false``/``null`` token.

    In valid JSON a bare literal follows ``[``, ``,``, ``:`` or the start (and whitespace); an occurrence
    after any other character lies inside a string. For the undecided ones, capitalising every occurrence
    changes only string contents unless one was bare (``True`` is not JSON): a second parse decides.
    """
    for name in ("true", "false", "null"):
        i = s.find(name)
        while i >= 0:
            j = i - 1
            while j >= 0 and s[j] in " \t\n\r":
                j -= 1
            if j < 0 or s[j] in "[,:":
                probe = s.replace("true", "True").replace("false", "False").replace("null", "Null")
                try:
                    _decode_json(probe)
                except (ValueError, _NotFast, RecursionError):
                    return True
                return False
            i = s.find(name, i + len(name))
    return False


# Exact tokenizer/translator (middle path): runs of punctuation/numbers and simple strings, other strings,
# Python constants; any other character means "not a plain literal" (ast decides).
_TOKENS = re.compile(
    r"""((?:[ \t\d{}\[\]:,.eE+\-]+|'[^'"\\]*')+)|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(True|False|None)|(.)""",
    re.S,
)
_CONST = {"True": "true", "False": "false", "None": "null"}


def _py_string_to_json(content: str, quote: str) -> str:
    if "\\" in content:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(quote + content + quote)
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(content, ensure_ascii=False)


def _token_to_json(m: re.Match[str]) -> str:
    g = m.group(1)
    if g is not None:
        return g.replace("'", '"')
    g = m.group(2)
    if g is not None:
        return _py_string_to_json(g, "'")
    g = m.group(3)
    if g is not None:
        return _py_string_to_json(g, '"') if "\\" in g else m.group(0)
    g = m.group(4)
    if g is not None:
        return _CONST[g]
    raise _NotFast(m.group(0))


def _parse_tokens(text: str) -> Any:
    return _decode_json(_TOKENS.sub(_token_to_json, text))


def _literal_eval(text: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.literal_eval(text)


def _parse_literal(text: str) -> tuple[Any, bool, str]:
    """``(value, swapped, path)``; ``swapped`` means strings have ``'``/``"`` exchanged (see above)."""
    if "\x00" in text:  # as ast.literal_eval: source code cannot contain NUL (the readers remove them first)
        raise ValueError("source code string cannot contain null bytes")
    try:
        value, s = _parse_swapped(text)
    except (_NotFast, RecursionError):
        pass
    else:
        if not _bare_names(s):  # JSON's bare true/false/null are not Python literals
            return value, True, "fast"
    try:
        return _parse_tokens(text), False, "tokens"
    except (_NotFast, ValueError, SyntaxError, RecursionError):
        pass
    return _literal_eval(text), False, "ast"


def _unswap(value: Any) -> Any:
    if isinstance(value, str):
        return _swap(value) if ("'" in value or '"' in value) else value
    if isinstance(value, list):
        return [_unswap(v) for v in value]
    if isinstance(value, dict):
        return {_unswap(k): _unswap(v) for k, v in value.items()}
    return value


def parse_python_literal(text: str) -> Any:
    """The value ``ast.literal_eval(text)`` gives for one line of the 2014 metadata, but fast.

    The common case goes through ``json.loads`` (see ``_parse_swapped`` for why the result is the same);
    an exact regex translator and finally ``ast.literal_eval`` itself handle the rest. Never ``eval``.
    Raises ``ValueError``/``SyntaxError`` exactly where ``ast.literal_eval`` does. Notebook 01.
    """
    value, swapped, _ = _parse_literal(text)
    return _unswap(value) if swapped else value


# The record scanner of the 2014 reader. One regex ``fullmatch`` both validates the whole line against a
# strict subset of Python's literal grammar and captures the raw text of the five values the reader needs,
# so the big fields it does not need (``related`` with its hundreds of ids, ``salesRank``, ``price``,
# ``brand``) are checked but never built. Every construct of the subset is a valid Python literal:
#
# * strings: ``'...'`` / ``"..."`` with an optional ``u`` prefix, no raw newline/CR/NUL, and only escapes that
#   Python accepts (``\\xHH``, ``\\uHHHH``, ``\\U`` up to 10FFFF, any other single character; ``\\N{...}``
#   is left out), and never two strings in a row (implicit concatenation is left to the exact path);
# * numbers as JSON writes them (at most 40 integer digits, far below Python's 4,300-digit limit);
# * ``True``/``False``/``None``; lists and dicts nested at most three deep inside the record; dict keys
#   are strings, numbers or constants (all hashable); spaces and tabs between tokens; trailing commas.
#
# A key equal to one of the five names is captured by its own named group; any other key must be a string
# *without* escapes that is not one of those names (so ``'t\\x69tle'`` or ``u'title'`` cannot hide a
# duplicate), and for duplicate keys the group keeps the last value, as a dict does. A line outside the
# subset (or with a value of an unusual type) simply takes the exact path below, which decides it.
_ESC_OK = r"\\(?:[^xuUN\r\n\x00]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U000[0-9a-fA-F]{5}|U0010[0-9a-fA-F]{4})"
_STR_RE = (rf"""[uU]?+(?:'[^'\\\r\n\x00]*+(?:{_ESC_OK}[^'\\\r\n\x00]*+)*+'"""
           rf"""|"[^"\\\r\n\x00]*+(?:{_ESC_OK}[^"\\\r\n\x00]*+)*+")""")
_NUM_RE = r"-?+(?:0|[1-9][0-9]{0,39}+)(?:\.[0-9]{1,40}+)?+(?:[eE][+-]?+[0-9]{1,5}+)?+"
_W = r"[ \t]*+"
_NAMES_2014 = ("asin", "title", "description", "categories", "imUrl")


def _fast_2014_regex() -> re.Pattern[str]:
    v0 = rf"(?:{_STR_RE}|{_NUM_RE}|True|False|None)"
    simple = r"'[^'\\\r\n\x00]*+'"
    # lists of ids and of plain strings first: tight loops for the common shapes of ``related``
    fast_lists = rf"\[(?:'[0-9A-Z]{{10}}', )*+'[0-9A-Z]{{10}}'\]|\[(?:{simple}, )*+{simple}\]"

    def lst(v: str) -> str:
        return rf"{fast_lists}|\[{_W}(?:{v}{_W}(?:,{_W}|(?=\])))*+\]"

    def dct(v: str) -> str:
        return rf"\{{{_W}(?:{v0}{_W}:{_W}{v}{_W}(?:,{_W}|(?=\}})))*+\}}"

    v1 = rf"(?:{v0}|{lst(v0)}|{dct(v0)})"
    v2 = rf"(?:{v0}|{lst(v1)}|{dct(v1)})"
    names = "|".join(_NAMES_2014)
    named = "|".join(rf"[uU]?+(?:'{n}'|\"{n}\"){_W}:{_W}(?P<{n}>{v2})" for n in _NAMES_2014)
    other_key = (rf"""(?![uU]?+['"](?:{names})['"])"""
                 rf"""(?:[uU]?+(?:'[^'\\\r\n\x00]*+'|"[^"\\\r\n\x00]*+")|{_NUM_RE}|True|False|None)""")
    item = rf"(?:{named}|{other_key}{_W}:{_W}{v2})"
    return re.compile(rf"\{{{_W}(?:{item}{_W}(?:,{_W}|(?=\}})))*+\}}")


_FAST_2014: list[re.Pattern[str]] = []  # compiled on first use (about 0.1 s)


def _fast_2014() -> re.Pattern[str]:
    if not _FAST_2014:
        _FAST_2014.append(_fast_2014_regex())
    return _FAST_2014[0]


_BS_NON_ASCII = re.compile(r"\\[^\x00-\x7f]")
_BAD_ESCAPE = re.compile(r"\\(?:[^'\"abfnrtv0-7xuU\\]|[4-7][0-7]{2})")  # unknown, or octal above \377


def _unescape(body: str) -> str:
    """The value of a Python string literal's body that holds backslashes (escapes already validated).

    Python's compiler decodes a string literal with the ``unicode_escape`` machinery after writing every
    non-ASCII character as a ``\\U`` escape, which ``backslashreplace`` does too; a backslash *before* a
    non-ASCII character (treated specially by the compiler) and escapes Python only tolerates with a
    warning (``\\q``) are left to ``ast.literal_eval`` (``_NotFast``).
    """
    if body.isascii():
        src = body.encode("ascii")
    elif _BS_NON_ASCII.search(body):
        raise _NotFast("backslash before a non-ASCII character")
    else:
        src = body.encode("ascii", "backslashreplace")
    if _BAD_ESCAPE.search(body.replace("\\\\", "") if "\\\\" in body else body):
        raise _NotFast("invalid escape")
    return src.decode("unicode_escape")


def _token_value(token: str) -> Any:
    """The value of one captured token: a string literal decoded here, anything else exactly."""
    q = token[0]
    if q == "'" or q == '"':
        body = token[1:-1]
    elif q == "u" or q == "U":
        body = token[2:-1]
    else:
        return parse_python_literal(token)
    if "\\" not in body:
        return body
    try:
        return _unescape(body)
    except _NotFast:
        return _literal_eval(token)


# ----------------------------------------------------------------------------------------------------
# Reading lines and collecting rows
# ----------------------------------------------------------------------------------------------------


class _Row(NamedTuple):
    id: str
    title: str
    description: str
    paths: list[list[str]]
    image: str | None


_RowLike = tuple[str, str, str, list[list[str]], str | None]  # a _Row or a plain tuple (the fast 2014 path)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_binary(path: Path) -> io.BufferedIOBase:
    if _is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


_BLOCK = 1 << 20


def _inflate_module() -> Any:
    """``zlib_ng.zlib_ng`` when installed (the same API as ``zlib``, inflating 1.6x faster), else ``zlib``.

    Not ``isal``, although it inflates faster still: on a Xeon with AVX-512 one ``isal`` call left the whole
    process slower afterwards (the regex scanner ran at half speed; benchmarks/bench_parse_2014.py checks).
    """
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return zlib
    return zlib_ng


_ZLIB_ERRORS: tuple[type[Exception], ...] = (zlib.error,) if _inflate_module() is zlib else (
    zlib.error, _inflate_module().error)


def _gzip_blocks(fh: io.BufferedIOBase) -> Iterator[bytes]:
    """Decompressed blocks of a (possibly multi-member) gzip stream; ``EOFError`` when it is cut short.

    ``zlib`` (or ``zlib_ng``, when installed) directly: everything before a cut is still delivered
    (``gzip.GzipFile`` would lose a block). Raises one of ``_ZLIB_ERRORS`` on corrupt data.
    """
    inflate = _inflate_module()
    d = inflate.decompressobj(wbits=31)
    fed = False
    while True:
        comp = fh.read(_BLOCK)
        if not comp:
            break
        while comp:
            fed = True
            out = d.decompress(comp)
            if out:
                yield out
            if d.eof:
                comp = d.unused_data
                d = inflate.decompressobj(wbits=31)
                fed = False
                if comp and not comp.strip(b"\x00"):  # zero padding after the last member
                    comp = b""
            else:
                comp = b""
    rest = d.flush()
    if rest:
        yield rest
    if fed and not d.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _file_blocks(fh: io.BufferedIOBase) -> Iterator[bytes]:
    """The content of a plain or gzipped file in blocks of about 1 MiB."""
    gz = fh.read(2) == b"\x1f\x8b"
    fh.seek(0)
    return _gzip_blocks(fh) if gz else iter(lambda: fh.read(_BLOCK), b"")


def _raw_lines(path: Path) -> Iterator[bytes]:
    """Lines of a plain or gzipped file as bytes, read in 1 MiB blocks (much faster than readline)."""
    with open(path, "rb") as fh:
        rest = b""
        for block in _file_blocks(fh):
            lines = (rest + block).split(b"\n") if rest else block.split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest


def _decode_line(raw: bytes, report: ReadReport) -> str:
    """One line as text: non-UTF-8 bytes replaced and NUL bytes removed, each repair counted."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        line = raw.decode("utf-8", "replace")
        report.fix("non-UTF-8 bytes replaced", line)
    if "\x00" in line:
        line = line.replace("\x00", "")
        report.fix("NUL bytes removed", line)
    return line


def _text_lines(path: Path, report: ReadReport) -> Iterator[str]:
    """Decoded, stripped, non-empty lines (non-UTF-8 bytes replaced and counted; a cut gzip noted)."""
    try:
        for raw in _raw_lines(path):
            line = _decode_line(raw, report).strip()
            if line:
                yield line
    except (EOFError, *_ZLIB_ERRORS) as e:
        _report_cut(path, report, e)


def _report_cut(path: Path, report: ReadReport, e: Exception) -> None:
    """A compressed file that ends early: counted as one skipped record, and noted."""
    report.skip("file cut short (compressed stream ended early)", f"{path.name}: {e}")
    report.records_read += 1
    report.notes.append(f"{path.name} ends early ({e}); the last, partial line was not read")


class _IdSet:
    """Ids seen in earlier chunks, as sorted 64-bit hashes: 8 bytes per id, so 9.4 M ids take 75 MB.

    Within a chunk ids are compared exactly; across chunks by hash (two different ids share a 64-bit hash
    with probability about n^2 / 2^65, 2e-6 for 9.4 M ids; such a pair would be counted as a duplicate).
    """

    def __init__(self) -> None:
        self._h = np.empty(0, dtype=np.uint64)

    def new_mask(self, ids: list[str]) -> np.ndarray:
        """True for ids not seen before (first occurrence within ``ids`` wins); remembers them."""
        arr = np.asarray(ids, dtype=object)
        h = pd.util.hash_array(arr, categorize=False)
        first = ~pd.Series(arr).duplicated().to_numpy()
        if len(self._h):
            pos = np.searchsorted(self._h, h)
            seen = self._h[np.minimum(pos, len(self._h) - 1)] == h
            first &= ~seen
        new = np.sort(h[first])
        self._h = np.insert(self._h, np.searchsorted(self._h, new), new)
        return first


class _Collector:
    """Applies the require_* filters, drops duplicate ids (first kept) and yields table chunks."""

    def __init__(self, report: ReadReport, source: str, *, require_title: bool, require_description: bool,
                 require_image: bool, require_category: bool, chunk_size: int, limit: int | None) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of records, got {chunk_size}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be None or a non-negative number of products, got {limit}")
        self.report, self.source = report, source
        self.req = (require_title, require_description, require_image, require_category)
        self.chunk_size, self.limit = chunk_size, limit
        self.ids = _IdSet()
        self.rows: list[_RowLike] = []
        self.missing: Counter = Counter()

    def run(self, rows: Iterable[_RowLike | None]) -> Iterator[pd.DataFrame]:
        """Table chunks of ``chunk_size`` rows. The cyclic garbage collector is paused while rows are made
        (they form no cycles, and its passes over the growing chunk cost about 5 us per record) and runs
        as before while the caller has a chunk."""
        rep = self.report
        req_title, req_desc, req_image, req_cat = self.req
        limit = self.limit
        it = iter(rows)
        append = self.rows.append
        paused = gc.isenabled()  # True while this generator has the collector paused
        gc.disable()
        try:
            while limit is None or rep.kept + len(self.rows) < limit:
                try:
                    row = next(it)
                except StopIteration:
                    break
                if row is None:
                    continue
                rid, title, desc, paths, image = row
                if not paths and req_cat:
                    rep.skip("no category", rid)
                elif not title and req_title:
                    rep.skip("no title", rid)
                elif not desc and req_desc:
                    rep.skip("no description", rid)
                elif image is None and req_image:
                    rep.skip("no image", rid)
                else:
                    append(row)
                    if len(self.rows) >= self.chunk_size:
                        chunk = self._flush()
                        append = self.rows.append
                        if chunk is not None:
                            if paused:
                                gc.enable()
                                paused = False
                            yield chunk
                            paused = gc.isenabled()
                            gc.disable()
            else:
                rep.notes.append(f"stopped after {limit:,} products (limit={limit})")
        finally:
            if paused:
                gc.enable()
            close = getattr(it, "close", None)
            if close is not None:
                close()
        chunk = self._flush()
        if chunk is not None:
            yield chunk
        self._finish()

    def _flush(self) -> pd.DataFrame | None:
        rows, self.rows = self.rows, []
        if not rows:
            return None
        try:
            mask = self.ids.new_mask([r[0] for r in rows])
        except UnicodeEncodeError:  # a lone surrogate in an id (a "\\ud83d" escape): repaired and counted
            rows = [self._valid_id(r) for r in rows]
            mask = self.ids.new_mask([r[0] for r in rows])
        if not mask.all():
            for r, ok in zip(rows, mask, strict=True):
                if not ok:
                    self.report.skip("duplicate id (first kept)", r[0])
                    self.report.duplicates += 1
            rows = [r for r, ok in zip(rows, mask, strict=True) if ok]
        self.report.kept += len(rows)
        frame = _frame(rows, self.source)
        m = self.missing
        m["title"] += int((frame["title"] == "").sum())
        m["description"] += int((frame["description"] == "").sum())
        m["image"] += int(frame["image"].isna().sum())
        m["category"] += int((frame["category_paths"].map(len) == 0).sum())
        return frame

    def _valid_id(self, row: _RowLike) -> _RowLike:
        pid = row[0]
        if pid.isascii() or pid.isprintable() or not _SURROGATE.search(pid):
            return row
        fixed = pid.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        self.report.fix("surrogate escapes repaired in id", f"{fixed}")
        return (fixed, *row[1:])

    def _finish(self) -> None:
        rep = self.report
        for what, n in self.missing.items():
            if n:
                rep.notes.append(f"{n:,} kept products have no {what}")
        for reason, n in rep.cleaned.items():
            if reason.startswith("HTML stripped from "):
                rep.notes.append(f"HTML stripped from {n:,} {reason.removeprefix('HTML stripped from ')}s")


def _frame(rows: list[_RowLike], source: str) -> pd.DataFrame:
    ids, titles, descs, paths, images = zip(*rows, strict=True) if rows else ((), (), (), (), ())
    return pd.DataFrame({
        "id": list(ids),
        "title": list(titles),
        "description": list(descs),
        "category_paths": pd.Series(list(paths), dtype=object),
        "image": pd.Series(list(images), dtype=object),
        "source": [source] * len(rows),
    })


def _empty_frame() -> pd.DataFrame:
    return _frame([], "")


def _concat(chunks: Iterable[pd.DataFrame]) -> pd.DataFrame:
    parts = list(chunks)
    if not parts:
        return _empty_frame()
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    return table


def _id_of(value: Any) -> str | None:
    if isinstance(value, str):
        v = value.strip()
        return v or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


# ----------------------------------------------------------------------------------------------------
# Amazon 2014 (McAuley et al.): one Python dict literal per line
# ----------------------------------------------------------------------------------------------------


def _amazon_source(path: Path, release: str) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    name = name.removeprefix("meta_")
    return f"{release}:{'all' if name == 'metadata' else name}"


def _is_no_img(url: str) -> bool:
    return "no-img" in url.lower() or "no_image" in url.lower()


ENGINES = ("auto", "c", "python")


def _c_scanner() -> Any:
    """The compiled record scanner ``prodlib._scan2014`` (built by ``pip install -e .``), or ``None``."""
    try:
        from prodlib import _scan2014
    except ImportError:
        return None
    return _scan2014


def _engine_scanner(engine: str) -> Any:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    mod = None if engine == "python" else _c_scanner()
    if mod is None and engine == "c":
        raise CatalogError("engine='c' needs the compiled scanner prodlib._scan2014, which is not built here: "
                           "run `pip install -e .` (or `make setup`) with a C compiler installed, or use "
                           "engine='auto' to fall back to the pure-Python scanner (same results, slower)")
    return mod


def _row_2014_line(line: str, f: _Fields, report: ReadReport, fullmatch: Callable[[str], Any],
                   cats: _Categories2014) -> _Row | None:
    """One stripped, non-empty line through the regex scanner, else through the exact full parse."""
    m = fullmatch(line)
    if m is None:
        return _row_2014_exact(line, f, report)
    asin, title, desc, categories, im = m.groups()
    if asin is None:
        report.skip("no asin", line)
        return None
    f.swapped = False
    pid = _id_of(_token_value(asin))
    if pid is None:
        report.skip("no asin", line)
        return None
    title = "" if title is None else f.text(_token_value(title), "title", pid)
    desc = "" if desc is None else f.text(_token_value(desc), "description", pid, join_lists=True)
    paths = [] if categories is None else cats.from_token(categories, pid)
    image = None if im is None else _image_url(_token_value(im), pid, report)
    return _Row(pid, title, desc, paths, image)


def _rows_amazon2014(path: Path, report: ReadReport, engine: str = "auto") -> Iterator[_RowLike | None]:
    scanner = _engine_scanner(engine)
    if scanner is not None:
        return _rows_amazon2014_c(path, report, scanner)
    return _rows_amazon2014_py(path, report)


def _rows_amazon2014_py(path: Path, report: ReadReport) -> Iterator[_RowLike | None]:
    f = _Fields(report)
    fullmatch = _fast_2014().fullmatch
    categories = _Categories2014(f)
    for line in _text_lines(path, report):
        report.records_read += 1
        yield _row_2014_line(line, f, report, fullmatch, categories)


def _scanned_blocks(path: Path, report: ReadReport, scan: Callable[[bytes, bool], tuple[list[Any], int]]
                    ) -> Iterator[list[Any]]:
    """The C scanner's items, block by block (a cut gzip stream counted as in :func:`_text_lines`)."""
    with open(path, "rb") as fh:
        rest = b""
        try:
            for block in _file_blocks(fh):
                buf = rest + block if rest else block
                items, used = scan(buf, False)
                rest = buf[used:]
                yield items
        except (EOFError, *_ZLIB_ERRORS) as e:  # the partial last line is not read (as in _text_lines)
            _report_cut(path, report, e)
            return
        if rest:
            yield scan(rest, True)[0]


def _rows_amazon2014_c(path: Path, report: ReadReport, mod: Any) -> Iterator[_RowLike | None]:
    """The 2014 rows with the C scanner: it validates each line and hands over the five values (see
    ``prodlib/_scan2014.c``); lines it does not take go through :func:`_row_2014_line`, as without it."""
    f = _Fields(report)
    text = f.text
    categories = _Categories2014(f)
    fullmatch: Callable[[str], Any] | None = None
    raw_title, raw_desc, raw_im, raw_cats = mod.RAW_TITLE, mod.RAW_DESC, mod.RAW_IMURL, mod.RAW_CATS
    clean_title, clean_desc, plain_im = mod.CLEAN_TITLE, mod.CLEAN_DESC, mod.PLAIN_IMURL
    common = clean_title | clean_desc | plain_im  # nothing to decode or clean
    for items in _scanned_blocks(path, report, mod.scan):
        it = iter(items)
        for flags, pid, title, desc, cats, im in zip(it, it, it, it, it, it, strict=True):  # six per line
            if flags == -1:  # not taken by the scanner: decoded and read exactly as without it
                line = _decode_line(pid, report).strip()
                if line:
                    report.records_read += 1
                    if fullmatch is None:
                        fullmatch = _fast_2014().fullmatch
                    yield _row_2014_line(line, f, report, fullmatch, categories)
                    f.swapped = False  # the exact path may have left it set for its own line
                continue
            report.records_read += 1
            if flags != common:
                if title is not None and not flags & clean_title:
                    title = text(_token_value(title) if flags & raw_title else title, "title", pid)
                if desc is not None and not flags & clean_desc:
                    desc = text(_token_value(desc) if flags & raw_desc else desc, "description", pid,
                                join_lists=True)
                if im is not None and not flags & plain_im:
                    im = _image_url(_token_value(im) if flags & raw_im else im, pid, report)
            if cats is None:
                paths = []
            elif flags & raw_cats:  # not a list of lists of strings: the literal itself
                paths = categories.from_token(cats, pid)
            else:
                paths = categories.from_sources(cats, pid)
            yield (pid, "" if title is None else title, "" if desc is None else desc, paths, im)


def _report_fixes(report: ReadReport, fixes: tuple[tuple[str, Any, int], ...], pid: str) -> None:
    for why, example, n in fixes:
        report.fix(why, f"{pid}: {example}", n)


_PLAIN_STR = r"""[uU]?+(?:'[^'\\\r\n]*+(?:\\.[^'\\\r\n]*+)*+'|"[^"\\\r\n]*+(?:\\.[^"\\\r\n]*+)*+")"""
_CATS_SHAPE = re.compile(rf"\[(?:\[{_W}(?:{_PLAIN_STR}{_W}(?:,{_W}|(?=\])))*+\]{_W}(?:,{_W}|(?=\])))*+\]")
_CATS_INNER = re.compile(rf"\[{_W}((?:{_PLAIN_STR}{_W}(?:,{_W}|(?=\])))*+)\]")
_STR_TOKEN = re.compile(_PLAIN_STR)


class _Categories2014:
    """``categories`` of 2014 records, cleaned as ``_Fields.paths`` does (counted repairs included).

    Each distinct path's source (``['A', 'B']``) is decoded and cleaned once: real catalogs repeat a few
    thousand paths. A list of lists of strings comes either as the captured literal (regex scanner) or
    already split into its paths' sources (C scanner); any other shape goes to ``_Fields.paths``.
    """

    def __init__(self, f: _Fields) -> None:
        self.f = f
        self.paths: dict[str, tuple[tuple[str, ...], tuple[tuple[str, Any, int], ...]]] = {}
        self.tokens: dict[str, tuple[str, ...]] = {}  # the literal -> its paths' sources

    def from_token(self, token: str, pid: str) -> list[list[str]]:
        sources = self.tokens.get(token)
        if sources is None:
            if not _CATS_SHAPE.fullmatch(token):
                return self.f.paths(_token_value(token), pid)
            sources = tuple(m.group(0) for m in _CATS_INNER.finditer(token, 1))  # only commas between
            _remember(self.tokens, token, sources)
        return self.from_sources(sources, pid)

    def from_sources(self, sources: tuple[str, ...], pid: str) -> list[list[str]]:
        paths: list[tuple[str, ...]] = []
        for source in sources:
            one = self.paths.get(source)
            if one is None:
                one = self.f._path(tuple(_token_value(t) for t in _STR_TOKEN.findall(source)), False)
                _remember(self.paths, source, one)
            if one[1]:
                _report_fixes(self.f.report, one[1], pid)
            if one[0] and one[0] not in paths:
                paths.append(one[0])
        return [list(p) for p in paths]


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= _Fields._CACHE_MAX:
        cache.clear()
    cache[key] = value


def _row_2014_exact(line: str, f: _Fields, report: ReadReport) -> _Row | None:
    """One line that the scanner did not take, through the exact full parse (``_parse_literal``)."""
    try:
        value, swapped, _ = _parse_literal(line)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        report.skip("malformed line (not a Python literal)", f"{type(e).__name__}: {line}")
        return None
    if not isinstance(value, dict):
        report.skip("line is not a dict", line)
        return None
    f.swapped = swapped
    get = value.get
    pid = _id_of(get("asin"))
    if swapped and pid is not None:
        pid = f._str(pid)
    if pid is None:
        report.skip("no asin", line)
        return None
    title = f.text(get("title"), "title", pid)
    desc = f.text(get("description"), "description", pid, join_lists=True)
    paths = f.paths(get("categories"), pid)
    image = _image_url(get("imUrl"), pid, report)
    if swapped and image is not None and ("'" in image or '"' in image):
        image = _swap(image)
    return _Row(pid, title, desc, paths, image)


def _image_url(value: Any, pid: str, report: ReadReport) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
        if value is None:
            return None
    if not isinstance(value, str):
        report.fix(f"image URL had wrong type {type(value).__name__} (ignored)", f"{pid}: {value!r}")
        return None
    url = value.strip()
    if _is_no_img(url):
        report.fix("no-img placeholder URL dropped", f"{pid}: {url}")
        return None
    return url


def iter_amazon2014(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000,
                    report: ReadReport | None = None, engine: str = "auto") -> Iterator[pd.DataFrame]:
    """Stream the 2014 metadata (``metadata.json.gz`` or ``meta_<Category>.json.gz``) in table chunks.

    Memory stays flat: one chunk of rows plus 8 bytes per id seen (for duplicate detection). Pass a
    ``report`` to read the counts while or after streaming. ``engine`` picks the record scanner: ``"c"``
    (compiled, about twice as fast), ``"python"`` (the regex scanner) or ``"auto"`` (C when built); both give
    the same table and report, and lines neither takes go through ``ast.literal_eval``. Notebook 01.
    """
    p = _existing_file(path)
    scanner = _engine_scanner(engine)  # a wrong or unavailable engine fails here, before anything is read
    rep = report if report is not None else ReadReport(_amazon_source(p, "amazon2014"))
    if scanner is None and engine == "auto":
        rep.notes.append("the C record scanner is not built (pip install -e . with a C compiler builds it): "
                         "the pure-Python scanner read this file, with the same results, about half as fast")
    col = _Collector(rep, rep.source, require_title=require_title, require_description=require_description,
                     require_image=require_image, require_category=require_category,
                     chunk_size=chunk_size, limit=limit)
    yield from col.run(_rows_amazon2014(p, rep, engine))


def read_amazon2014(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000, engine: str = "auto") -> CatalogResult:
    """Read the 2014 Amazon metadata into a catalog table (see :func:`iter_amazon2014`). Notebook 01."""
    p = _existing_file(path)
    rep = ReadReport(_amazon_source(p, "amazon2014"))
    chunks = iter_amazon2014(p, limit=limit, require_title=require_title, require_description=require_description,
                             require_image=require_image, require_category=require_category,
                             chunk_size=chunk_size, report=rep, engine=engine)
    return CatalogResult(_concat(chunks), rep)


# ----------------------------------------------------------------------------------------------------
# Amazon 2018 (Ni et al.) and 2023 (Hou et al.): JSON lines
# ----------------------------------------------------------------------------------------------------


def _json_records(path: Path, report: ReadReport) -> Iterator[tuple[dict[str, Any], str] | None]:
    for line in _text_lines(path, report):
        report.records_read += 1
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as e:
            report.skip("malformed line (not JSON)", f"{type(e).__name__}: {line}")
            yield None
            continue
        if not isinstance(value, dict):
            report.skip("line is not a JSON object", line)
            yield None
            continue
        yield value, line


def _rows_amazon2018(path: Path, report: ReadReport) -> Iterator[_Row | None]:
    f = _Fields(report)
    for item in _json_records(path, report):
        if item is None:
            yield None
            continue
        rec, line = item
        pid = _id_of(rec.get("asin"))
        if pid is None:
            report.skip("no asin", line)
            yield None
            continue
        title = f.text(rec.get("title"), "title", pid)
        desc = f.text(rec.get("description"), "description", pid, join_lists=True)
        cat = rec.get("category")
        if isinstance(cat, list) and all(isinstance(c, str) for c in cat):
            path_ = f.path(cat, pid, bullets=True)
            paths = [path_] if path_ else []
        else:
            paths = f.paths(cat, pid, bullets=True)
        image = None
        for key in ("imageURLHighRes", "imageURL", "image"):
            image = _image_url(rec.get(key), pid, report)
            if image is not None:
                break
        yield _Row(pid, title, desc, paths, image)


def _read_jsonl(path: str | os.PathLike[str], release: str,
                rows: Callable[[Path, ReadReport], Iterator[_Row | None]], *, limit: int | None,
                require_title: bool, require_description: bool, require_image: bool, require_category: bool,
                chunk_size: int) -> CatalogResult:
    p = _existing_file(path)
    rep = ReadReport(_amazon_source(p, release))
    col = _Collector(rep, rep.source, require_title=require_title, require_description=require_description,
                     require_image=require_image, require_category=require_category, chunk_size=chunk_size,
                     limit=limit)
    return CatalogResult(_concat(col.run(rows(p, rep))), rep)


def read_amazon2018(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000) -> CatalogResult:
    """Read a 2018 Amazon metadata file (``meta_<Category>.json.gz``); notebook 01.

    Copes with its real noise: titles that are HTML fragments (stripped; nothing left counts as no
    title), feature bullets and markup inside ``category`` (the path is cut there, counted), ``&amp;`` in
    category names, duplicated lines (first kept, counted). Images: ``imageURLHighRes`` first, then
    ``imageURL``, then ``image``.
    """
    return _read_jsonl(path, "amazon2018", _rows_amazon2018, limit=limit, require_title=require_title,
                       require_description=require_description, require_image=require_image,
                       require_category=require_category, chunk_size=chunk_size)


def _image_2023(value: Any, pid: str, report: ReadReport) -> str | None:
    if not value:
        return None
    if not isinstance(value, list):
        report.fix("images was not a list (ignored)", f"{pid}: {value!r}")
        return None
    dicts = [v for v in value if isinstance(v, dict)]
    if len(dicts) < len(value):
        report.fix("image entry with wrong type ignored", pid)
    dicts.sort(key=lambda d: d.get("variant") != "MAIN")
    for d in dicts:
        for key in ("hi_res", "large", "thumb"):
            url = _image_url(d.get(key), pid, report)
            if url is not None:
                return url
    return None


def _rows_amazon2023(path: Path, report: ReadReport) -> Iterator[_Row | None]:
    f = _Fields(report)
    for item in _json_records(path, report):
        if item is None:
            yield None
            continue
        rec, line = item
        pid = _id_of(rec.get("parent_asin")) or _id_of(rec.get("asin"))
        if pid is None:
            report.skip("no parent_asin", line)
            yield None
            continue
        title = f.text(rec.get("title"), "title", pid)
        desc = f.text(rec.get("description"), "description", pid, join_lists=True)
        cats = rec.get("categories")
        main = rec.get("main_category")
        if isinstance(cats, list) and cats and all(isinstance(c, str) for c in cats):
            path_ = f.path(cats, pid)
            paths = [path_] if path_ else []
        elif cats:
            paths = f.paths(cats, pid)
        else:
            paths = []
        if not paths and isinstance(main, str) and main.strip():
            node = f.node(main, pid)
            if node:
                report.fix("empty categories: main_category used as the path", pid)
                paths = [[node]]
        image = _image_2023(rec.get("images"), pid, report)
        yield _Row(pid, title, desc, paths, image)


def read_amazon2023(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                    require_description: bool = False, require_image: bool = False,
                    require_category: bool = True, chunk_size: int = 50_000) -> CatalogResult:
    """Read a 2023 Amazon metadata file (``meta_<Category>.jsonl[.gz]``); notebook 01.

    ``parent_asin`` is the id; ``categories`` is one path (when empty, ``[main_category]`` is used and
    counted); images prefer the ``MAIN`` variant and ``hi_res`` > ``large`` > ``thumb``.
    """
    return _read_jsonl(path, "amazon2023", _rows_amazon2023, limit=limit, require_title=require_title,
                       require_description=require_description, require_image=require_image,
                       require_category=require_category, chunk_size=chunk_size)


# ----------------------------------------------------------------------------------------------------
# Flipkart (CSV + images/) and generic CSV/JSONL catalogs
# ----------------------------------------------------------------------------------------------------


def _csv_records(path: Path, report: ReadReport) -> Iterator[dict[str, Any]]:
    """Rows of a CSV as dicts; rows with the wrong number of fields are skipped and counted."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = _text_lines_keep(path, report)
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise CatalogError(f"{path} is not a readable CSV file: {e}") from e
    header = [h.strip().lstrip("\ufeff") for h in header]
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            report.records_read += 1
            report.skip("malformed CSV row", str(e))
            continue
        if not row or not any(c.strip() for c in row):
            continue
        report.records_read += 1
        if len(row) != len(header):
            report.skip(f"CSV row with {len(row)} fields instead of {len(header)}", ",".join(row))
            continue
        yield dict(zip(header, row, strict=True))


def _text_lines_keep(path: Path, report: ReadReport) -> Iterator[str]:
    """Decoded lines with their newline (for the csv module; quoted fields may span lines)."""
    with _open_binary(path) as fh:
        for raw in fh:
            yield _decode_line(raw, report)


def _flipkart_paths(value: str, pid: str, f: _Fields) -> list[list[str]]:
    rep = f.report
    raw = value.strip()
    try:
        trees = json.loads(raw) if raw.startswith("[") else [raw]
    except ValueError:
        rep.fix("product_category_tree not a JSON list (read as one path)", f"{pid}: {raw}")
        trees = [raw.strip("[]\"' ")]
    if isinstance(trees, str):
        trees = [trees]
    if not isinstance(trees, list):
        rep.fix("product_category_tree had wrong type (ignored)", f"{pid}: {raw}")
        return []
    out: list[list[str]] = []
    for tree in trees:
        if not isinstance(tree, str):
            rep.fix("category path with wrong type dropped", f"{pid}: {tree!r}")
            continue
        elems = [e.strip() for e in tree.split(">>")]
        if elems and elems[-1].endswith("..."):
            rep.fix("truncated product name removed from category path", f"{pid}: {elems[-1]}")
            elems = elems[:-1]
        path = [n for n in (f.node(e, pid) for e in elems) if n]
        if path and path not in out:
            out.append(path)
    return out


def _flipkart_csv(path: Path) -> tuple[Path, Path]:
    """(csv file, folder holding images/) for a Flipkart folder or CSV path."""
    if path.is_dir():
        found = sorted(path.glob("flipkart_*.csv")) or sorted(path.glob("*.csv"))
        if not found:
            raise CatalogError(f"{path} holds no flipkart_*.csv file; point at the Flipkart folder or its CSV")
        return found[0], path
    return path, path.parent


def read_flipkart(path: str | os.PathLike[str], *, limit: int | None = None, require_title: bool = False,
                  require_description: bool = False, require_image: bool = False,
                  require_category: bool = True, chunk_size: int = 50_000) -> CatalogResult:
    """Read the Flipkart catalog: the folder (CSV + ``images/``) or the CSV itself; notebook 01.

    ``product_category_tree`` looks like ``["A >> B >> C >> Truncated product name..."]``: the last
    element, when it ends in ``...``, is a product name and is dropped (counted). ``image`` is the
    absolute path of ``images/<uniq_id>.jpg`` when that file exists, else ``None`` (counted).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CatalogError(f"Flipkart catalog {p} does not exist; give the folder with the CSV and images/")
    csv_path, root = _flipkart_csv(p)
    rep = ReadReport("flipkart")
    images = root / "images"
    f = _Fields(rep)

    def rows() -> Iterator[_Row | None]:
        for rec in _csv_records(csv_path, rep):
            missing = [c for c in ("uniq_id", "product_name", "product_category_tree") if c not in rec]
            if missing:
                raise CatalogError(f"{csv_path} lacks Flipkart columns {missing}; is it the Flipkart CSV? "
                                   "For another CSV use read_generic (format 'generic:')")
            pid = _id_of(rec["uniq_id"])
            if pid is None:
                rep.skip("no uniq_id", rec.get("product_name"))
                yield None
                continue
            title = f.text(rec["product_name"], "title", pid)
            desc = f.text(rec.get("description"), "description", pid)
            paths = _flipkart_paths(rec["product_category_tree"], pid, f)
            img = images / f"{pid}.jpg"
            image = str(img.resolve()) if img.is_file() else None
            if image is None:
                rep.fix("no image file", f"{pid}: images/{pid}.jpg")
            yield _Row(pid, title, desc, paths, image)

    col = _Collector(rep, "flipkart", require_title=require_title, require_description=require_description,
                     require_image=require_image, require_category=require_category, chunk_size=chunk_size,
                     limit=limit)
    return CatalogResult(_concat(col.run(rows())), rep)


_GENERIC_REQUIRED = ("id", "title", "category")
_GENERIC_OPTIONAL = ("description", "image")


def read_generic(path: str | os.PathLike[str], *, columns: Mapping[str, str], path_sep: str = ">",
                 paths_sep: str | None = "|", format: str | None = None, limit: int | None = None,
                 require_title: bool = False, require_description: bool = False, require_image: bool = False,
                 require_category: bool = True, chunk_size: int = 50_000) -> CatalogResult:
    """Read a catalog a teacher brings: a CSV or JSONL file and a column mapping; notebook 01.

    ``columns`` maps our names to theirs: ``id``, ``title`` and ``category`` are required,
    ``description`` and ``image`` optional. A category cell holds one path joined by ``path_sep``
    (``"Home > Kitchen > Knives"``), several paths joined by ``paths_sep``, or (JSONL) a list of nodes or
    a list of paths. Relative image paths are resolved against the file's folder; a missing file is
    counted and gives ``None``; URLs are kept.
    """
    p = _existing_file(path)
    unknown = sorted(set(columns) - set(_GENERIC_REQUIRED) - set(_GENERIC_OPTIONAL))
    if unknown:
        raise CatalogError(f"unknown keys {unknown} in columns; use {list(_GENERIC_REQUIRED + _GENERIC_OPTIONAL)}")
    need = [k for k in _GENERIC_REQUIRED if k not in columns]
    if need:
        raise CatalogError(f"columns must name the file's column for {need}, e.g. "
                           "columns={'id': 'sku', 'title': 'name', 'category': 'category_path'}")
    if not path_sep:
        raise CatalogError("path_sep must be a non-empty separator such as '>' or '/'")
    fmt = format or _sniff_generic(p)
    if fmt not in ("csv", "jsonl"):
        raise CatalogError(f"format must be 'csv' or 'jsonl', got {fmt!r}")
    rep = ReadReport(f"generic:{p.name}")
    f = _Fields(rep)

    def records() -> Iterator[dict[str, Any] | None]:
        if fmt == "csv":
            yield from _csv_records(p, rep)
        else:
            for item in _json_records(p, rep):
                yield None if item is None else item[0]

    def split_paths(value: Any, pid: str) -> list[list[str]]:
        if isinstance(value, str):
            groups = value.split(paths_sep) if paths_sep else [value]
            return f.paths([[e for e in g.split(path_sep)] for g in groups if g.strip()], pid)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return f.paths([value], pid)
        return f.paths(value, pid)

    def rows() -> Iterator[_Row | None]:
        checked = False
        for rec in records():
            if rec is None:
                yield None
                continue
            if not checked and fmt == "csv":
                absent = [f"{ours} -> {theirs!r}" for ours, theirs in columns.items() if theirs not in rec]
                if absent:
                    raise CatalogError(f"{p} has no column(s) {absent}; its columns are {sorted(rec)}")
                checked = True
            pid = _id_of(rec.get(columns["id"]))
            if pid is None:
                rep.skip(f"no id (column {columns['id']!r})", rec)
                yield None
                continue
            title = f.text(rec.get(columns["title"]), "title", pid)
            desc = f.text(rec.get(columns["description"]), "description", pid, join_lists=True) \
                if "description" in columns else ""
            paths = split_paths(rec.get(columns["category"]), pid)
            image = None
            if "image" in columns:
                image = _generic_image(rec.get(columns["image"]), p.parent, pid, rep)
            yield _Row(pid, title, desc, paths, image)

    col = _Collector(rep, rep.source, require_title=require_title, require_description=require_description,
                     require_image=require_image, require_category=require_category, chunk_size=chunk_size,
                     limit=limit)
    result = CatalogResult(_concat(col.run(rows())), rep)
    if fmt == "jsonl" and rep.records_read and not result.table.shape[0] and rep.skipped:
        rep.notes.append(f"no product kept: check columns={dict(columns)} against the file's keys")
    return result


def _generic_image(value: Any, root: Path, pid: str, report: ReadReport) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip()
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", v):
        return v
    img = Path(v).expanduser()
    img = img if img.is_absolute() else root / img
    if img.is_file():
        return str(img.resolve())
    report.fix("no image file", f"{pid}: {v}")
    return None


def _sniff_generic(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv") or name.endswith(".tsv"):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    first = _first_line(path)
    return "jsonl" if first.startswith("{") else "csv"


# ----------------------------------------------------------------------------------------------------
# Format detection and the profile dispatch
# ----------------------------------------------------------------------------------------------------

_READERS: dict[str, Callable[..., CatalogResult]] = {
    "amazon2014": read_amazon2014,
    "amazon2018": read_amazon2018,
    "amazon2023": read_amazon2023,
    "flipkart": read_flipkart,
    "generic": read_generic,
}

_ACCEPTED = (
    "a path to a Flipkart folder (CSV + images/) or CSV, an Amazon metadata file (2014 metadata.json.gz / "
    "meta_<Category>.json.gz, 2018 meta_<Category>.json.gz, 2023 meta_<Category>.jsonl[.gz]), or "
    "'format:path' with format one of " + ", ".join(FORMATS) + " (generic needs columns=...)"
)


def _existing_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise CatalogError(f"catalog file {p} does not exist")
    if not p.is_file():
        raise CatalogError(f"{p} is not a file")
    return p


def _first_line(path: Path, max_bytes: int = 1 << 20) -> str:
    try:
        with _open_binary(path) as fh:
            for raw in fh:
                line = raw[:max_bytes].decode("utf-8", "replace").strip()
                if line:
                    return line
    except (OSError, EOFError) as e:
        raise CatalogError(f"cannot read {path}: {e}") from e
    return ""


def detect_format(path: str | os.PathLike[str]) -> str:
    """The catalog format of ``path``, from its files and first line (see :func:`read_catalog`)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CatalogError(f"catalog path {p} does not exist; accepted: {_ACCEPTED}")
    if p.is_dir():
        if any(p.glob("flipkart_*.csv")):
            return "flipkart"
        raise CatalogError(f"cannot tell the catalog format of folder {p}; accepted: {_ACCEPTED}")
    name = p.name.lower()
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        header = _first_line(p)
        if "uniq_id" in header and "product_category_tree" in header:
            return "flipkart"
        raise CatalogError(f"{p} is a CSV without Flipkart columns; read it with format 'generic' and "
                           f"columns={{'id': ..., 'title': ..., 'category': ...}} (header: {header[:200]!r})")
    first = _first_line(p)
    if not first.startswith("{"):
        raise CatalogError(f"cannot tell the catalog format of {p} (first line {first[:80]!r}); accepted: {_ACCEPTED}")
    try:
        rec = json.loads(first)
    except ValueError:
        return "amazon2014"  # a Python dict literal
    if isinstance(rec, dict) and "parent_asin" in rec:
        return "amazon2023"
    if isinstance(rec, dict) and ("category" in rec or "asin" in rec):
        return "amazon2018"
    if isinstance(rec, dict) and "categories" in rec:
        return "amazon2014"
    raise CatalogError(f"cannot tell the catalog format of {p} (keys {sorted(rec)[:10]}); accepted: {_ACCEPTED}")


def _split_spec(spec: str | os.PathLike[str]) -> tuple[str | None, str]:
    if not isinstance(spec, str):
        return None, os.fspath(spec)
    head, sep, tail = spec.partition(":")
    if sep and head.lower() in FORMATS:
        return head.lower(), tail
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]+", head) and not Path(spec).exists():
        raise CatalogError(f"unknown catalog format {head!r} in {spec!r}; accepted: {_ACCEPTED}")
    return None, spec


_REPO = Path(__file__).resolve().parents[1]


def _locate(path: str | os.PathLike[str]) -> Path:
    """``path``; a relative one that is not found from here is also tried from the repository root
    (notebooks run with their own working folder, while ``../shared/data/...`` is meant from the root)."""
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists() and (_REPO / p).exists():
        return (_REPO / p).resolve()
    return p


def read_catalog(spec: str | os.PathLike[str], **kw: Any) -> CatalogResult:
    """Read a catalog given as a path (format detected) or ``format:path``; notebook 01.

    Keyword arguments go to the reader (``limit``, ``require_title``, ... and for ``generic``
    ``columns``/``path_sep``). Unknown formats and unreadable paths raise :class:`CatalogError` saying what
    is accepted.
    """
    fmt, path = _split_spec(spec)
    if not path:
        raise CatalogError(f"empty catalog path in {spec!r}; accepted: {_ACCEPTED}")
    p = _locate(path)
    if not p.exists():
        raise CatalogError(f"catalog path {p} does not exist; accepted: {_ACCEPTED}")
    if fmt is None:
        fmt = "generic" if "columns" in kw else detect_format(p)
    if fmt == "generic" and "columns" not in kw:
        kw = {**kw, "columns": _generic_default_columns(p)}
    if fmt != "flipkart" and p.is_dir():
        raise CatalogError(f"{p} is a folder; format {fmt!r} reads a file. Accepted: {_ACCEPTED}")
    return _READERS[fmt](p, **kw)


def _generic_default_columns(path: Path) -> dict[str, str]:
    """``generic:path`` without a mapping: the file must use our own column names (``id``, ``title``,
    ``category``; optionally ``description`` and ``image``), so a teacher's CSV can be named in
    ``PRODLIB_CATALOG`` directly."""
    fmt = _sniff_generic(path)
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle), [])
    else:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        try:
            header = list(json.loads(first)) if first.strip() else []
        except (json.JSONDecodeError, TypeError):
            header = []
    present = {h.strip() for h in header}
    missing = [c for c in _GENERIC_REQUIRED if c not in present]
    if missing:
        raise CatalogError(
            f"{path} lacks the columns {missing}; format 'generic' without a mapping needs the columns "
            f"{list(_GENERIC_REQUIRED)} (optional: {list(_GENERIC_OPTIONAL)}), or call "
            "read_generic(path, columns={'id': ..., 'title': ..., 'category': ...}) with your own names"
        )
    return {c: c for c in (*_GENERIC_REQUIRED, *_GENERIC_OPTIONAL) if c in present}


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


AMAZON2014_ENV = "PRODLIB_AMAZON2014"


def open_catalog(source: str, *, cache_dir: str | os.PathLike[str], **kw: Any) -> CatalogResult:
    """The profile dispatch of notebook 01: ``env``, ``amazon2014`` or any :func:`read_catalog` spec.

    ``amazon2014`` uses ``$PRODLIB_AMAZON2014`` when set (a local copy), else downloads the metadata
    into ``cache_dir`` through :mod:`prodlib.download`, and keeps only products with a title, a
    description and an image (the paper's filter). ``demo`` is handled by the caller.
    """
    if source == "env":
        return catalog_from_env(**kw)
    if source == "amazon2014":
        local = os.environ.get(AMAZON2014_ENV, "").strip()
        if local:
            path = _locate(local)
            if not path.is_file():
                raise CatalogError(f"${AMAZON2014_ENV}={local!r} is not a file; point it at metadata.json.gz "
                                   "(or a meta_<Category>.json.gz) or unset it to download")
        else:
            from prodlib.download import fetch

            path = fetch("amazon2014", Path(cache_dir))
        opts = {"require_title": True, "require_description": True, "require_image": True, **kw}
        return read_amazon2014(path, **opts)
    if source == "demo":
        raise CatalogError("source 'demo' is the embedded synthetic catalog (prodlib.demo), not a file catalog")
    return read_catalog(source, **kw)
