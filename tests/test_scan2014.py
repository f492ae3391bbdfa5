"""prodlib._scan2014, the C record scanner of the 2014 reader, against the regex scanner it speeds up.

The C scanner must take exactly the lines the regex scanner takes (minus the few it documents it leaves to
Python) and hand over the same values; a file read with ``engine="c"`` and ``engine="python"`` must give
the same table and the same report.
"""

from __future__ import annotations

import ast
import gc
import gzip
import importlib.util
import os
import random
import tracemalloc
import zlib
from pathlib import Path

import pandas as pd
import pytest
from lines2014 import GOOD, bad_2014_lines, random_line_2014, write_2014

from prodlib import catalog as C
from prodlib.catalog import CatalogError, ReadReport, iter_amazon2014, read_amazon2014

REPO = Path(__file__).resolve().parents[1]
S = C._c_scanner()
needs_c = pytest.mark.skipif(S is None, reason="prodlib._scan2014 is not built (pip install -e . with a C compiler)")
ASCII_WS = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def test_c_scanner_is_built_where_required() -> None:
    """CI sets PRODLIB_REQUIRE_C_SCANNER=1: there a build that silently fell back to Python fails."""
    if os.environ.get("PRODLIB_REQUIRE_C_SCANNER") != "1":
        pytest.skip("PRODLIB_REQUIRE_C_SCANNER is not set")
    assert S is not None, "prodlib._scan2014 did not build: is a C compiler installed?"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_parse_2014", REPO / "benchmarks" / "bench_parse_2014.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------------------------------
# One line: the C scanner's entries against what the regex path says they must be
# ----------------------------------------------------------------------------------------------------


def _plain_text(v: str) -> bool:
    return (v.isascii() and v.isprintable() and "&" not in v and "<" not in v and "  " not in v
            and v[:1] != " " and v[-1:] != " ")


def _plain_url(v: str) -> bool:
    return (bool(v) and v.isascii() and v.isprintable() and v[0] != " " and v[-1] != " "
            and "no-img" not in v.lower() and "no_image" not in v.lower())


def reference(raw: bytes) -> object:
    """``"blank"``, ``None`` (not taken) or the six entries, derived from the regex scanner and the
    contract in ``prodlib/_scan2014.c``; categories as Python values (the C side gives sources)."""
    stripped = raw.strip(ASCII_WS)
    if not stripped:
        return "blank"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in line or line.strip() != stripped.decode("utf-8"):
        return None
    m = C._fast_2014().fullmatch(line.strip())
    if m is None:
        return None
    asin, title, desc, cats, im = m.groups()
    if asin is None or asin[0] not in "'\"uU" or "\\" in asin:
        return None
    pid = C._token_value(asin)
    if not pid or not ("!" <= pid[0] <= "~" and "!" <= pid[-1] <= "~"):
        return None
    flags = 0

    def value(tok: str | None, raw_flag: int) -> str | None:
        nonlocal flags
        if tok is None:
            return None
        if tok[0] in "'\"uU" and "\\" not in tok:
            return C._token_value(tok)
        flags |= raw_flag
        return tok

    title_v = value(title, S.RAW_TITLE)
    desc_v = value(desc, S.RAW_DESC)
    im_v = value(im, S.RAW_IMURL)
    if title is None or (not flags & S.RAW_TITLE and _plain_text(title_v)):
        flags |= S.CLEAN_TITLE
    if desc is None or (not flags & S.RAW_DESC and _plain_text(desc_v)):
        flags |= S.CLEAN_DESC
    if im is not None and not flags & S.RAW_IMURL and _plain_url(im_v):
        flags |= S.PLAIN_IMURL
    cats_v: object = None
    if cats is not None:
        parsed = ast.literal_eval(cats)
        if isinstance(parsed, list) and all(isinstance(p, list) and all(isinstance(x, str) for x in p)
                                            for p in parsed):
            cats_v = parsed
        else:
            flags |= S.RAW_CATS
            cats_v = cats
    return [flags, pid, title_v, desc_v, cats_v, im_v]


def scanned(raw: bytes) -> object:
    """The C scanner's view of one line, categories decoded to Python values when split."""
    items, used = S.scan(raw, True)
    assert used == len(raw)
    if not items:
        return "blank"
    assert len(items) == 6
    if items[0] == -1:
        assert items[1:] == [raw, None, None, None, None]
        return None
    cats = items[4]
    if isinstance(cats, tuple):
        assert all(isinstance(c, str) and c in raw.decode("utf-8") for c in cats)
        items[4] = [ast.literal_eval(c) for c in cats]
    return items


def _mutate(rng: random.Random, line: bytes) -> bytes:
    alphabet = [b"'", b'"', b"\\", b"[", b"]", b"{", b"}", b",", b":", b" ", b"\t", b"u", b"U", b"0", b"7", b"-",
                b"e", b".", b"x", b"N", b"\x00", b"\r", b"\xff", b"\xc3", b"\xc3\xa9", b"\xe2\x80\xa8", b"\xc2\xa0",
                b"'title'", b"'asin': ", b"\\x4", b"\\u00e", b"True", b"None"]
    b = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randint(0, len(b))
        r = rng.random()
        if r < 0.4:
            b[pos:pos] = rng.choice(alphabet)
        elif r < 0.7:
            del b[pos:pos + rng.randint(1, 3)]
        else:
            b[pos:pos + 1] = rng.choice(alphabet)
    return bytes(b)


def _lines_under_test(n_random: int = 6000, n_mutated: int = 6000) -> list[bytes]:
    rng = random.Random(20140)
    bench = _bench_module()
    realistic = [bench.make_line(rng, i).encode("utf-8") for i in range(400)]
    realistic += [repr(dict(GOOD, asin=a)).encode() for a in ("B01", " B02", "B03 ", "", "\u00e9X", "X\xa0")]
    lines = [random_line_2014(rng).encode("utf-8", "surrogatepass") for _ in range(n_random)]
    lines += bad_2014_lines() + realistic
    lines += [_mutate(rng, rng.choice(realistic)) for _ in range(n_mutated)]
    r = repr(GOOD).encode()
    lines += [b"  " + r + b" \r", b"\xc2\xa0" + r, r + b"\xc2\x85", r.replace(b"'", b'"', 1), b"\x1c" + r]
    lines += [b"", b"   ", b"\t\r", b"\xc2\xa0", b"{}", b"{'asin': 'Z'}", b"{'asin': 5}", b"{'asin': u'Z', }"]
    return [ln.replace(b"\n", b" ") for ln in lines]


@needs_c
def test_scanner_equals_regex_scanner_line_by_line() -> None:
    """Random grammar-driven lines, realistic lines and byte-level mutations of them: same outcome, same
    values, same flags."""
    outcomes = {"taken": 0, "not taken": 0, "blank": 0, "raw": 0, "split": 0}
    for raw in _lines_under_test():
        want, got = reference(raw), scanned(raw)
        assert got == want, raw
        if isinstance(got, list):
            outcomes["taken"] += 1
            outcomes["raw"] += bool(got[0] & (S.RAW_TITLE | S.RAW_DESC | S.RAW_IMURL | S.RAW_CATS))
            outcomes["split"] += not got[0] & S.RAW_CATS and got[4] is not None
        else:
            outcomes["blank" if got == "blank" else "not taken"] += 1
    # every outcome is exercised, and plenty of each
    assert outcomes["taken"] > 1500 and outcomes["not taken"] > 3000 and outcomes["blank"] >= 4, outcomes
    assert outcomes["raw"] > 300 and outcomes["split"] > 500, outcomes


@needs_c
def test_scan_buffers_lines_and_consumed_offset() -> None:
    good = repr(GOOD).encode()
    buf = good + b"\r\n\n   \n" + b"{'asin': 5}\n" + good[:30]
    items, used = S.scan(buf, False)
    assert used == len(buf) - 30 and len(items) == 12  # two lines; blank lines give nothing; partial left
    assert items[0] == S.CLEAN_TITLE | S.PLAIN_IMURL | S.RAW_DESC and items[1] == "A1"  # description: "\\n"
    assert items[4] == ("['Sports & Outdoors', 'Other Sports', 'Dance']", "['Clothing, Shoes & Jewelry', 'Girls']")
    assert items[6:] == [-1, b"{'asin': 5}", None, None, None, None]
    items, used = S.scan(buf[used:], True)
    assert used == 30 and items[:2] == [-1, good[:30]]
    assert S.scan(b"", True) == ([], 0) and S.scan(b"no newline", False) == ([], 0)
    with pytest.raises(TypeError):
        S.scan("text, not bytes", True)


@needs_c
def test_scanner_does_not_leak() -> None:
    buf = b"\n".join(_lines_under_test(300, 300)) + b"\n"
    S.scan(buf, True)
    tracemalloc.start()
    try:
        S.scan(buf, True)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            S.scan(buf, True)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 50_000, (before, after)  # about 1,500 objects per pass: a leak would show


# ----------------------------------------------------------------------------------------------------
# Whole files: engine="c" and engine="python" give the same table and report
# ----------------------------------------------------------------------------------------------------


@needs_c
@pytest.mark.parametrize("opts", [{}, {"chunk_size": 97, "require_title": True, "require_image": True},
                                  {"limit": 700, "require_category": False}])
def test_file_read_is_the_same_with_both_engines(tmp_path: Path, opts: dict) -> None:
    path = write_2014(tmp_path / "meta_Mixed.json.gz", _lines_under_test(1500, 1500))
    fast = read_amazon2014(path, engine="c", **opts)
    slow = read_amazon2014(path, engine="python", **opts)
    pd.testing.assert_frame_equal(fast.table, slow.table)
    assert fast.report.to_dict() == slow.report.to_dict()
    assert fast.report.consistent and len(fast.table) > 300


@needs_c
def test_benchmark_lines_read_the_same_and_as_literal_eval_says(tmp_path: Path) -> None:
    """The benchmark's realistic lines: both engines agree, and every kept title is what
    ``ast.literal_eval`` gives (cleaned)."""
    bench = _bench_module()
    path = tmp_path / "metadata_bench.json.gz"
    bench.generate(path, 3000, seed=3)
    fast = read_amazon2014(path, engine="c")
    slow = read_amazon2014(path, engine="python")
    pd.testing.assert_frame_equal(fast.table, slow.table)
    assert fast.report.to_dict() == slow.report.to_dict()
    titles = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                continue
            titles.setdefault(rec["asin"], C.clean_text(rec.get("title", "")))
    got = dict(zip(fast.table["id"], fast.table["title"], strict=True))
    assert len(got) > 2800 and all(titles[k] == v for k, v in got.items())


def test_engine_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_2014(tmp_path / "meta_X.json.gz", [repr(GOOD).encode()])
    with pytest.raises(ValueError, match="'auto', 'c', 'python'"):
        read_amazon2014(path, engine="rust")
    monkeypatch.setattr(C, "_c_scanner", lambda: None)
    with pytest.raises(CatalogError, match="pip install -e ."):
        read_amazon2014(path, engine="c")
    fallback = read_amazon2014(path, engine="auto")  # falls back to Python, and says so in the report
    assert list(fallback.table["id"]) == ["A1"] and any("not built" in n for n in fallback.report.notes)


# ----------------------------------------------------------------------------------------------------
# Decompression (zlib-ng or zlib) and the garbage collector
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inflate", ["zlib", "zlib_ng"])
def test_gzip_blocks_with_either_inflater(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inflate: str) -> None:
    if inflate == "zlib_ng":
        zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
        monkeypatch.setattr(C, "_inflate_module", lambda: zlib_ng)
    else:
        monkeypatch.setattr(C, "_inflate_module", lambda: zlib)
    data = b"".join(f"line {i} ".encode() * 30 + b"\n" for i in range(5000))
    two = gzip.compress(data[:70_000]) + gzip.compress(data[70_000:]) + b"\x00" * 8  # two members + padding
    path = tmp_path / "x.gz"
    path.write_bytes(two)
    with open(path, "rb") as fh:
        assert b"".join(C._gzip_blocks(fh)) == data
    path.write_bytes(two[:-40])  # cut inside the second member
    with open(path, "rb") as fh, pytest.raises(EOFError):
        got = []
        for block in C._gzip_blocks(fh):
            got.append(block)
    assert data.startswith(b"".join(got)) and len(b"".join(got)) > 70_000
    corrupt = bytearray(two)
    corrupt[200:260] = b"\x07" * 60
    path.write_bytes(bytes(corrupt))
    with open(path, "rb") as fh, pytest.raises(C._ZLIB_ERRORS):
        b"".join(C._gzip_blocks(fh))


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_garbage_collector_is_paused_only_while_rows_are_made(tmp_path: Path, engine: str) -> None:
    path = write_2014(tmp_path / "meta_G.json.gz", [repr(dict(GOOD, asin=f"G{i}")).encode() for i in range(50)])
    assert gc.isenabled()
    seen = []
    for chunk in iter_amazon2014(path, chunk_size=10, engine=engine):
        seen.append(gc.isenabled())  # the caller's code runs with the collector as it left it
        assert len(chunk) <= 10
    assert seen == [True] * 5 and gc.isenabled()
    it = iter_amazon2014(path, chunk_size=10, engine=engine)
    next(it)
    gc.disable()  # a caller that turns it off keeps it off, also when it abandons the stream
    try:
        next(it)
        assert not gc.isenabled()
        it.close()
        assert not gc.isenabled()
    finally:
        gc.enable()
    rep = ReadReport("x")
    with pytest.raises(RuntimeError, match="consumer"):  # an error in the caller's code leaves it on
        for _ in iter_amazon2014(path, chunk_size=10, engine=engine, report=rep):
            raise RuntimeError("consumer failed")
    assert gc.isenabled()
