"""Field cleaning shared by the catalog readers, every repair counted in the report (notebook 01): text (HTML
removed by :func:`prodlib.text.strip_html`, whitespace collapsed, lone surrogates and UTF-8 read as Latin-1
undone), categories (a list of root-to-node paths) and image URLs (placeholder images dropped)."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from prodlib.catalog.report import ReadReport
from prodlib.images import is_placeholder_url
from prodlib.text import HTML_TAG, strip_html

__all__ = ["Row", "id_of", "image_url", "is_bullet", "path", "paths", "repair_unicode", "text"]


class Row(NamedTuple):
    """One product as a reader makes it; :func:`prodlib.catalog.records.collect` turns rows into the table."""

    id: str
    title: str
    description: str
    paths: list[list[str]]
    image: str | None


def id_of(value: Any) -> str | None:
    """A product id: a non-blank string (stripped) or an integer (as text); else ``None``."""
    if isinstance(value, str):
        return value.strip() or None
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_LATIN1 = re.compile("[^\x00-\xff]")
_UTF8_PAIR = re.compile("[\xc2-\xf4][\x80-\xbf]")


def repair_unicode(s: str) -> tuple[str, str | None]:
    """Undo lone surrogates and UTF-8 read as Latin-1 (mojibake): ``(text, the repair made or None)``."""
    if s.isascii():
        return s, None
    why = None
    if _SURROGATE.search(s):
        s, why = s.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), "surrogate escapes repaired"
    if not _NOT_LATIN1.search(s) and _UTF8_PAIR.search(s):  # only Latin-1, with a UTF-8 lead + continuation byte
        try:
            s, why = s.encode("latin-1").decode("utf-8"), "UTF-8 bytes read as Latin-1 (mojibake) repaired"
        except UnicodeDecodeError:
            pass
    return s, why


def text(value: Any, name: str, pid: str, report: ReadReport, *, join_lists: bool = False) -> str:
    """A title or description as clean text (``""`` when missing); each repair counted under ``name``."""
    if value is None or isinstance(value, str):
        raw = value or ""
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        if not join_lists:
            report.fix(f"{name} was a list (joined)", pid)
        raw = " ".join(value)
    elif isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        report.fix(f"{name} was a number (kept as text)", f"{pid}: {value!r}")
        raw = str(value)
    else:
        report.fix(f"{name} had wrong type {type(value).__name__} (treated as missing)", f"{pid}: {value!r}")
        return ""
    raw, why = repair_unicode(raw)
    if why:
        report.fix(why, f"{pid}: {raw}")
    out = " ".join((stripped := strip_html(raw)).split())
    if stripped != raw:
        report.fix(f"HTML removed from {name}" if out else f"{name} was only HTML (treated as missing)",
                   f"{pid}: {raw}")
    return out


def path(raw: list[Any], pid: str, report: ReadReport, *, bullets: bool = False) -> list[str]:
    """Clean a root-to-node path: drop empty and non-string names; ``bullets``: cut at the first :func:`is_bullet`."""
    out = []
    for i, elem in enumerate(raw):
        if not isinstance(elem, str):
            report.fix("category element with wrong type dropped", f"{pid}: {elem!r}")
            continue
        if bullets and is_bullet(elem):
            report.fix("feature bullet / markup in category path dropped", f"{pid}: {elem}", len(raw) - i)
            break
        s, why = repair_unicode(elem)
        if why:
            report.fix(why, f"{pid}: {elem}")
        if (stripped := strip_html(s)) != s:
            report.fix("HTML removed from category name", f"{pid}: {elem}")
        if name := " ".join(stripped.split()):
            out.append(name)
    return out


def paths(value: Any, pid: str, report: ReadReport, *, bullets: bool = False) -> list[list[str]]:
    """Distinct root-to-node paths from a list of lists (or one list, or one string)."""
    if value is None:
        return []
    if isinstance(value, str):
        report.fix("categories was a string, not a list of paths (used as one path)", f"{pid}: {value}")
        value = [[value]]
    if not isinstance(value, list):
        report.fix(f"categories had wrong type {type(value).__name__} (ignored)", f"{pid}: {value!r}")
        return []
    out: list[list[str]] = []
    for raw in value:
        if isinstance(raw, str):
            report.fix("category path was a string, not a list (used as one element)", f"{pid}: {raw}")
            raw = [raw]
        if not isinstance(raw, list):
            report.fix("category path with wrong type dropped", f"{pid}: {raw!r}")
        elif (one := path(raw, pid, report, bullets=bullets)) and one not in out:
            out.append(one)
    return out


def is_bullet(elem: str) -> bool:
    """A category element that is really a feature bullet or markup (Amazon 2018 noise): a tag, more than 60
    characters or 8 words, or a sentence (ends with ``.``, ``!`` or ``?``, three words or more)."""
    s = elem.strip()
    if not s:
        return False
    if "<" in s and HTML_TAG.search(s) or s.startswith("</") or s.endswith(">"):
        return True
    words = s.split()
    return len(s) > 60 or len(words) > 8 or s[-1] in ".!?" and len(words) >= 3


def image_url(value: Any, pid: str, report: ReadReport) -> str | None:
    """An image URL from a string or a list of strings (the first non-blank one); placeholders dropped."""
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        report.fix(f"image URL had wrong type {type(value).__name__} (ignored)", f"{pid}: {value!r}")
        return None
    if is_placeholder_url(url := value.strip()):
        report.fix("placeholder image URL dropped", f"{pid}: {url}")
        return None
    return url or None
