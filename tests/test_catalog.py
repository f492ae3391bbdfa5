"""prodlib.catalog: readers on the real shared data and on hand-made bad records in each format."""

from __future__ import annotations

import ast
import csv
import gzip
import json
import os
import random
import re
import warnings
import zlib
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from lines2014 import GOOD, bad_2014_lines, write_2014

from prodlib.catalog import (
    CATALOG_COLUMNS,
    CatalogError,
    CatalogResult,
    ReadReport,
    amazon2014,
    catalog_from_env,
    detect_format,
    iter_amazon2014,
    open_catalog,
    read_amazon2014,
    read_amazon2018,
    read_amazon2023,
    read_catalog,
    read_flipkart,
    read_generic,
)
from prodlib.config import get_profile
from prodlib.dataset import build_dataset, check_catalog
from prodlib.demo import DEMO_SOURCE
from prodlib.text import strip_html

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRODLIB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def shared() -> Path:
    """The real data beside the repository (``../shared/data``): skipped without it, except on CI."""
    if not (SHARED / "flipkart1050").is_dir() or not (SHARED / "amazon2018").is_dir():
        why = (f"the shared real data is missing at {SHARED} (expected flipkart1050/ and amazon2018/); "
               "set PRODLIB_SHARED_DATA to the folder holding them")
        if os.environ.get("CI"):
            pytest.fail(why + " (CI must provide it)")
        pytest.skip(why)
    return SHARED


def _contract(table: pd.DataFrame) -> None:
    assert tuple(table.columns) == CATALOG_COLUMNS
    check_catalog(table)
    assert table["id"].is_unique
    for paths in table["category_paths"]:
        assert isinstance(paths, list) and all(isinstance(p, list) and p for p in paths)
        assert all(isinstance(n, str) and n and n == " ".join(n.split()) for p in paths for n in p)
    assert all(isinstance(t, str) for t in table["title"]) and all(isinstance(d, str) for d in table["description"])
    assert all(i is None or isinstance(i, str) for i in table["image"])


# ----------------------------------------------------------------------------------------------------
# Real data
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flipkart(shared: Path) -> CatalogResult:
    return read_flipkart(shared / "flipkart1050")


def test_flipkart_real(flipkart: CatalogResult, shared: Path) -> None:
    table, rep = flipkart
    _contract(table)
    assert len(table) == 1050 and rep.records_read == 1050 and rep.consistent
    with_image = table["image"].notna()
    assert with_image.sum() == 1047
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table.loc[with_image, "image"])
    assert rep.cleaned["no image file"] == 3
    assert table["category_paths"].map(lambda ps: ps[0][0]).nunique() == 7
    assert not any(n.endswith("...") for ps in table["category_paths"] for p in ps for n in p)
    # the truncated product names, counted independently from the raw CSV
    with open(shared / "flipkart1050" / "flipkart_com-ecommerce_sample_1050.csv", encoding="utf-8") as fh:
        raw = {r["uniq_id"]: json.loads(r["product_category_tree"])[0].split(" >> ") for r in csv.DictReader(fh)}
    truncated = sum(1 for elems in raw.values() if elems[-1].strip().endswith("..."))
    assert truncated > 0 and rep.cleaned["truncated product name removed from category path"] == truncated
    row = table.set_index("id").loc["55b85ea15a1536d46b7190ad6fff8ce7"]
    assert row["category_paths"] == [["Home Furnishing", "Curtains & Accessories", "Curtains"]]
    assert row["title"] == "Elegance Polyester Multicolor Abstract Eyelet Door Curtain"
    assert set(table["source"]) == {"flipkart"}


def test_flipkart_by_csv_path_and_specs(shared: Path, flipkart: CatalogResult) -> None:
    folder = shared / "flipkart1050"
    by_csv = read_flipkart(folder / "flipkart_com-ecommerce_sample_1050.csv", limit=10)
    assert len(by_csv.table) == 10 and "limit" in " ".join(by_csv.report.notes)
    pd.testing.assert_frame_equal(by_csv.table, flipkart.table.head(10))
    for spec in (str(folder), f"flipkart:{folder}", folder):
        assert len(read_catalog(spec, limit=5).table) == 5
    needs_image = read_flipkart(folder, require_image=True)
    assert len(needs_image.table) == 1047 and needs_image.report.skipped["no image"] == 3


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.mark.parametrize("name", ["meta_Gift_Cards.json.gz", "meta_Magazine_Subscriptions.json.gz"])
def test_amazon2018_real_counts_are_consistent(shared: Path, name: str) -> None:
    path = shared / "amazon2018" / name
    table, rep = read_amazon2018(path)
    _contract(table)
    recs = _lines(path)
    assert rep.records_read == len(recs) and rep.consistent and rep.kept == len(table)
    # independently: which records have a category, and how many of those repeat an asin
    with_cat = [r for r in recs if r["category"]]
    assert rep.skipped["no category"] == len(recs) - len(with_cat)
    assert rep.duplicates == rep.skipped.get("duplicate id (first kept)", 0)
    assert rep.duplicates == len(with_cat) - len({r["asin"] for r in with_cat})
    # HTML titles: every raw title with a tag or an entity is cleaned or, when nothing is left, "no title"
    with_html = sum(1 for r in recs if strip_html(r["title"]) != r["title"])
    assert with_html > 0
    assert rep.cleaned["HTML removed from title"] + rep.cleaned["title was only HTML (treated as missing)"] == with_html
    assert not any("<" in t or "&amp;" in t for t in table["title"])
    assert not any("&amp;" in n or "<" in n or len(n) > 60 for ps in table["category_paths"] for p in ps for n in p)
    assert rep.source == "amazon2018:" + name.removeprefix("meta_").removesuffix(".json.gz")
    # images: the high-resolution URL first
    hi = {r["asin"]: r["imageURLHighRes"][0] for r in recs if r.get("imageURLHighRes")}
    for pid, img in zip(table["id"], table["image"], strict=True):
        if pid in hi:
            assert img == hi[pid]
    assert str(rep).startswith(rep.source) and f"kept {rep.kept:,}" in str(rep)


def test_amazon2018_gift_card_bullets_are_dropped_and_counted(shared: Path) -> None:
    table, rep = read_amazon2018(shared / "amazon2018" / "meta_Gift_Cards.json.gz")
    paths = Counter(tuple(p) for ps in table["category_paths"] for p in ps)
    assert set(paths) == {("Gift Cards", "Gift Cards"), ("Gift Cards", "Gift Card Accessories")}
    recs = _lines(shared / "amazon2018" / "meta_Gift_Cards.json.gz")
    dropped = sum(len(r["category"]) - 2 for r in recs if len(r["category"]) > 2)
    assert rep.cleaned["feature bullet / markup in category path dropped"] == dropped
    examples = rep.examples["feature bullet / markup in category path dropped"]
    assert 1 <= len(examples) <= 3 and all(e.split(": ", 1)[1] not in {"Gift Cards"} for e in examples)


def test_amazon2018_magazine_titles_and_duplicates(shared: Path) -> None:
    table, rep = read_amazon2018(shared / "amazon2018" / "meta_Magazine_Subscriptions.json.gz")
    assert rep.duplicates > 1000 and rep.cleaned["title was only HTML (treated as missing)"] > 3000
    assert (table["title"] == "").sum() > 0 and any("no title" in n for n in rep.notes)
    assert "Magazine Subscriptions" in {p[0] for ps in table["category_paths"] for p in ps}
    strict = read_amazon2018(shared / "amazon2018" / "meta_Magazine_Subscriptions.json.gz", require_title=True)
    assert strict.report.skipped["no title"] > 0 and (strict.table["title"] != "").all() and strict.report.consistent
    frame = rep.to_frame()
    assert list(frame.columns) == ["kind", "reason", "count", "example"]
    assert int(frame.loc[frame["reason"] == "duplicate id (first kept)", "count"].iloc[0]) == rep.duplicates
    json.dumps(rep.to_dict())


def test_read_catalog_detects_real_formats(shared: Path) -> None:
    assert detect_format(shared / "flipkart1050") == "flipkart"
    assert detect_format(shared / "amazon2018" / "meta_Gift_Cards.json.gz") == "amazon2018"
    res = read_catalog(shared / "amazon2018" / "meta_Gift_Cards.json.gz", limit=3)
    assert len(res.table) == 3 and res.table["source"].iloc[0] == "amazon2018:Gift_Cards"


# ----------------------------------------------------------------------------------------------------
# Amazon 2014: Python literals, hand-made bad records
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["meta_Toys.json.gz", "metadata.json"])
def test_amazon2014_bad_records_are_counted(tmp_path: Path, name: str) -> None:
    path = write_2014(tmp_path / name, bad_2014_lines())
    table, rep = read_amazon2014(path)
    _contract(table)
    rows = table.set_index("id")
    assert rep.records_read == 17 and rep.consistent  # the empty line is not a record
    assert rep.skipped["malformed line (not a Python literal)"] == 2
    assert rep.skipped["line is not a dict"] == 1 and rep.skipped["no asin"] == 1
    assert rep.skipped["duplicate id (first kept)"] == 1 and rep.duplicates == 1
    assert rep.skipped["no category"] == 1
    assert rows.loc["A1", "title"] == GOOD["title"] and rows.loc["A1", "category_paths"] == GOOD["categories"]
    assert rows.loc["A1", "description"] == "A tutu. For dance."
    assert rows.loc["A1", "image"] == GOOD["imUrl"]
    assert rows.loc["A2", "title"] == "Men's \"Pro\" 12\" Ruler"
    assert rows.loc["A2", "description"] == "It's great & sturdy"
    assert rows.loc["A2", "category_paths"] == [["Men's Fashion"]]
    assert rows.loc["A3", "title"] == "Caf\u00e9 \u2019s mug \U0001f600"
    assert rows.loc["A4", "title"] == "Caf\u00e9"
    assert rep.cleaned["UTF-8 bytes read as Latin-1 (mojibake) repaired"] == 1
    assert rows.loc["A7", "image"] is None and rep.cleaned["placeholder image URL dropped"] == 1
    assert "\ufffd" in rows.loc["A8", "title"] and rep.cleaned["non-UTF-8 bytes replaced"] == 1
    assert rows.loc["A9", "title"] == "1984" and rows.loc["A9", "category_paths"] == [["Books"]]
    assert rep.cleaned["title was a number (kept as text)"] == 1
    assert rows.loc["A11", "category_paths"] == [["X"]] and rep.cleaned["category element with wrong type dropped"] == 2
    assert rows.loc["A12", "title"] == "nulbyte" and rep.cleaned["NUL bytes removed"] == 1
    assert rows.loc["A13", "title"] == "" and rep.cleaned["title was only HTML (treated as missing)"] == 1
    assert rows.loc["A14", "title"] == "py2 unicode"
    assert len(rep.examples["malformed line (not a Python literal)"]) == 2
    assert rep.source == ("amazon2014:Toys" if name.startswith("meta_") else "amazon2014:all")
    assert detect_format(path) == "amazon2014"


def test_amazon2014_reads_each_line_as_literal_eval_does(tmp_path: Path) -> None:
    """Each line of lines2014 is the value ``ast.literal_eval`` gives it: rejected, not a dict, or a record."""
    lines = [repr(GOOD).encode(), *bad_2014_lines()]
    malformed = not_dict = 0
    titles: dict[str, object] = {}
    for raw in lines:
        text = raw.decode("utf-8", "replace").replace("\x00", "").strip()
        if not text:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                malformed += 1
                continue
        if not isinstance(value, dict):
            not_dict += 1
        elif "asin" in value:
            titles.setdefault(value["asin"], value.get("title"))  # the first of a duplicated id is kept
    table, rep = read_amazon2014(write_2014(tmp_path / "meta_L.json.gz", lines), require_category=False)
    assert rep.skipped["malformed line (not a Python literal)"] == malformed == 2
    assert rep.skipped["line is not a dict"] == not_dict == 1
    assert list(table["id"]) == list(titles)
    for pid, title in titles.items():
        got = table.set_index("id").loc[pid, "title"]
        if isinstance(title, str) and "<" not in title and "Ã" not in title and "\ufffd" not in title:
            assert got == " ".join(title.split()), pid


def test_amazon2014_filters_and_limit(tmp_path: Path) -> None:
    path = write_2014(tmp_path / "m.json.gz", bad_2014_lines())
    strict = read_amazon2014(path, require_title=True, require_description=True, require_image=True)
    assert list(strict.table["id"]) == ["A1"] and strict.report.consistent
    assert strict.report.skipped["no description"] == 9 and strict.report.skipped["no image"] == 1
    assert sum(strict.report.skipped.values()) == strict.report.records_read - 1
    first = read_amazon2014(path, limit=2)
    assert list(first.table["id"]) == ["A1", "A2"] and first.report.records_read == 2


def _realistic_lines(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        pid = f"P{i if rng.random() > 0.1 else rng.randrange(max(i, 1))}"  # some ids repeat, across chunks too
        rec = {"asin": pid, "title": f"item {i} it's \"{i}\"", "categories": [[f"C{i % 7}", f"D{i % 3}"]]}
        if i % 5:
            rec["imUrl"] = f"http://x/{i}.jpg"
        if i % 9 == 0:
            rec["description"] = rng.choice(["<b>bold</b> text", "a &amp; b", "Caf\u00c3\u00a9", ["two", "parts"]])
        lines.append(repr(rec).encode())
    return lines


def test_amazon2014_streaming_chunks_match_whole_read(tmp_path: Path) -> None:
    lines = _realistic_lines(230, seed=3)
    path = write_2014(tmp_path / "meta_S.json.gz", lines)
    whole = read_amazon2014(path)
    rep = ReadReport("stream")
    chunks = list(iter_amazon2014(path, chunk_size=16, report=rep))
    assert len(chunks) > 5 and all(len(c) <= 16 for c in chunks)
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(streamed.drop(columns="source"), whole.table.drop(columns="source"))
    ids = [ast.literal_eval(x.decode())["asin"] for x in lines]
    assert rep.duplicates == len(ids) - len(set(ids)) == whole.report.duplicates
    assert list(streamed["id"]) == list(dict.fromkeys(ids))  # first occurrence kept, order preserved
    assert rep.consistent


def test_amazon2014_two_workers_equal_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process pool gives the same table and the same report as reading in this process."""
    started = []

    class Pool(amazon2014.ProcessPoolExecutor):
        def __init__(self, workers: int) -> None:
            started.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(amazon2014, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(amazon2014, "BATCH", 50)  # many batches from a small file
    lines = _realistic_lines(600, seed=5) + bad_2014_lines() * 3 + _realistic_lines(400, seed=6)
    path = write_2014(tmp_path / "meta_W.json.gz", lines)
    one = read_amazon2014(path, workers=1, chunk_size=100)
    assert started == []
    two = read_amazon2014(path, workers=2, chunk_size=100)
    assert started == [2]
    pd.testing.assert_frame_equal(one.table, two.table)
    assert one.report.to_dict() == two.report.to_dict() and one.report.records_read == len(lines) - 3
    limited = [read_amazon2014(path, workers=w, limit=120, chunk_size=50) for w in (1, 2)]
    pd.testing.assert_frame_equal(limited[0].table, limited[1].table)
    assert limited[0].report.to_dict() == limited[1].report.to_dict() and limited[0].report.records_read < 200
    with pytest.raises(ValueError, match="workers"):
        read_amazon2014(path, workers=0)


def test_amazon2014_cache_is_used_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_2014(tmp_path / "meta_C.json.gz", bad_2014_lines())
    cache = tmp_path / "cache"
    first = read_amazon2014(path, cache_dir=cache)
    assert len(list(cache.glob("*.pkl"))) == 1 and not any("cache" in n for n in first.report.notes)

    def no_parse(*args: object, **kw: object) -> None:
        raise AssertionError("parsed although the cache holds this file")

    with monkeypatch.context() as m:
        m.setattr(amazon2014, "iter_amazon2014", no_parse)
        again = read_amazon2014(path, cache_dir=cache)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert any("read from the cache" in n for n in again.report.notes)
    assert {k: v for k, v in again.report.to_dict().items() if k != "notes"} == \
        {k: v for k, v in first.report.to_dict().items() if k != "notes"}
    other = read_amazon2014(path, cache_dir=cache, require_image=True)  # other options: parsed, own cache file
    assert len(other.table) == 1 and len(list(cache.glob("*.pkl"))) == 2

    write_2014(path, [repr(GOOD).encode()])  # the file changes: parsed again
    os.utime(path, ns=(1, 1))
    changed = read_amazon2014(path, cache_dir=cache)
    assert list(changed.table["id"]) == ["A1"] and not any("cache" in n for n in changed.report.notes)


def test_amazon2014_never_evaluates_code(tmp_path: Path) -> None:
    marker = tmp_path / "hacked"
    lines = [f"{{'asin': 'X1', 'title': __import__('os').system('touch {marker}'), 'categories': [['A']]}}".encode(),
             b"{'asin': 'X2', 'title': (lambda: 1)(), 'categories': [['A']]}",
             b"{'asin': 'X3', 'title': 'ok', 'price': [1, -2.5, 'x'], 'categories': [['A']]}"]
    table, rep = read_amazon2014(write_2014(tmp_path / "meta_E.json", lines))
    assert not marker.exists() and list(table["id"]) == ["X3"]
    assert rep.skipped["malformed line (not a Python literal)"] == 2


def test_multi_member_gzip_and_plain_files_read_fully(tmp_path: Path) -> None:
    recs = [repr({"asin": f"M{i}", "title": f"t{i}", "categories": [["X"]]}).encode() for i in range(5000)]
    path = tmp_path / "meta_M.json.gz"
    path.write_bytes(gzip.compress(b"\n".join(recs[:2500]) + b"\n") + gzip.compress(b"\n".join(recs[2500:])))
    table, rep = read_amazon2014(path)
    assert list(table["id"]) == [f"M{i}" for i in range(5000)] and rep.consistent and not rep.skipped
    plain = tmp_path / "meta_M.json"
    plain.write_bytes(b"\r\n".join(recs))  # Windows line ends, no final newline
    assert list(read_amazon2014(plain).table["id"]) == list(table["id"])


def test_truncated_gzip_fails_loudly_unless_partial_input_is_allowed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_2014(tmp_path / "cut.json.gz", [repr(GOOD).encode()] * 2000)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 20])  # drop the gzip trailer and the end of the stream
    with pytest.raises(CatalogError, match="cut short after .*PRODLIB_PARTIAL_INPUT=1"):
        read_amazon2014(path)
    monkeypatch.setenv("PRODLIB_PARTIAL_INPUT", "1")
    table, rep = read_amazon2014(path)
    assert rep.skipped["partial line at damage in the compressed file"] == 1
    assert "cut short" in rep.damage and rep.damage in rep.notes and rep.consistent
    assert len(table) == 1 and rep.duplicates == rep.records_read - 2  # every complete line before the cut
    assert rep.records_read > 1900


def test_damaged_gzip_keeps_every_record_before_the_damage_and_says_where(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODLIB_PARTIAL_INPUT", "1")
    n = 40_000  # issue 17: a 40,000-record file lost 1,060 records, reported as one skipped line
    lines = [repr({"asin": f"Z{i}", "title": f"t{i} {random.Random(i).random()}", "categories": [["X"]]}).encode()
             for i in range(n)]
    first, second = (gzip.compress(b"\n".join(part) + b"\n") for part in (lines[:30_000], lines[30_000:]))
    path = tmp_path / "meta_Z.json.gz"
    path.write_bytes(first + second[:2] + b"\x09" + second[3:])  # the second member's header is damaged
    monkeypatch.delenv("PRODLIB_PARTIAL_INPUT")
    with pytest.raises(CatalogError, match="30,000 products were read before the damage") as err:
        read_amazon2014(path, workers=1)
    at = int(re.search(r"damaged at compressed byte ([\d,]+) of", str(err.value)).group(1).replace(",", ""))
    assert 0 <= at - len(first) <= 10  # zlib notices a bad header byte a few bytes on
    monkeypatch.setenv("PRODLIB_PARTIAL_INPUT", "1")
    table, rep = read_amazon2014(path, workers=1)
    assert list(table["id"]) == [f"Z{i}" for i in range(30_000)] and rep.consistent and not rep.skipped
    lost, size = len(first) + len(second) - at, len(first) + len(second)
    assert f"the {lost:,} bytes after it ({lost / size:.1%}) could not be read" in rep.damage
    # zeros inside a deflate stream decode to garbage that only the CRC check catches: every record before the
    # damage is kept, the garbled ones are counted as skipped, and the report says the file is corrupt
    raw = gzip.compress(b"\n".join(lines) + b"\n")
    at = len(raw) * 3 // 4
    path.write_bytes(raw[:at] + bytes(64) + raw[at + 64:])
    table, rep = read_amazon2014(path, workers=1)
    ids = list(table["id"])
    assert ids == [f"Z{i}" for i in range(len(ids))] and rep.consistent
    before = zlib.decompressobj(wbits=31).decompress(raw[:at]).count(b"\n")  # the lines wholly before the damage
    assert before - 1 <= len(ids) < n and rep.n_skipped > 0 and "part of it is corrupt" in rep.damage


def test_gzip_with_a_bad_crc_keeps_all_records(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = shared / "amazon2018" / "meta_Gift_Cards.json.gz"
    raw = bytearray(src.read_bytes())
    raw[-8] ^= 1  # one bit of the CRC-32: the data itself is intact
    path = tmp_path / src.name
    path.write_bytes(bytes(raw))
    with pytest.raises(CatalogError, match="part of it is corrupt"):
        read_catalog(str(path))  # was: "read 1 records, kept 0"
    monkeypatch.setenv("PRODLIB_PARTIAL_INPUT", "1")
    table, rep = read_catalog(str(path))
    good = read_catalog(str(src))
    assert rep.records_read == good.report.records_read == 1547 and len(table) == len(good.table)


def test_unterminated_csv_quote_is_reported_with_its_line_and_the_rows_after_it_kept(tmp_path: Path) -> None:
    from prodlib.catalog.records import csv_records

    rows = ["id,title,category"] + [f"p{i},title {i},A" for i in range(100)]
    rows[13] = 'p12,"title 12 never closed,A'  # issue 17: swallowed 88 of 100 rows into one field
    path = tmp_path / "c.csv"
    path.write_text("\n".join(rows) + "\n")
    rep = ReadReport("test")
    got = [r["id"] for r in csv_records(path, rep)]
    assert got == [f"p{i}" for i in range(100) if i != 12]
    assert rep.records_read == 100 and rep.skipped == {"unterminated quote (its line skipped, the lines after it read "
                                                       "again)": 1}
    assert "line 14" in rep.examples[next(iter(rep.skipped))][0] and any("line 14" in n for n in rep.notes)
    multiline = tmp_path / "m.csv"  # a quoted field over two lines is a legitimate row
    multiline.write_text('id,title,category\np1,"two\nlines",A\np2,t,B\n')
    assert [r["title"] for r in csv_records(multiline, ReadReport("m"))] == ["two\nlines", "t"]


def test_amazon2014_id_with_a_lone_surrogate_is_repaired(tmp_path: Path) -> None:
    """A ``\\ud83d`` escape in an asin once crashed the duplicate check (pandas cannot hash it)."""
    lines = [b"{'asin': 'S\\ud83d1', 'title': 't', 'categories': [['X']]}", repr(GOOD).encode(),
             b"{'asin': 'S\\ud83d1', 'title': 'again', 'categories': [['X']]}"]
    table, rep = read_amazon2014(write_2014(tmp_path / "meta_S.json.gz", lines))
    assert list(table["id"]) == ["S\ufffd1", "A1"] and rep.duplicates == 1 and rep.consistent
    assert rep.cleaned["surrogate escapes repaired in id"] == 2


# ----------------------------------------------------------------------------------------------------
# Amazon 2023 and generic catalogs
# ----------------------------------------------------------------------------------------------------


def test_amazon2023_records(tmp_path: Path) -> None:
    recs = [
        {"parent_asin": "P1", "main_category": "All Beauty", "title": "Lip balm", "description": ["Soft", "lips"],
         "categories": ["Beauty & Personal Care", "Skin Care", "Lips"],
         "images": [{"thumb": "t1.jpg", "large": "l1.jpg", "hi_res": None, "variant": "PT01"},
                    {"thumb": "t0.jpg", "large": "l0.jpg", "hi_res": "h0.jpg", "variant": "MAIN"}]},
        {"parent_asin": "P2", "main_category": "All Beauty", "title": "Comb", "description": [], "categories": [],
         "images": [{"thumb": "t2.jpg", "large": "l2.jpg", "hi_res": None, "variant": "MAIN"}]},
        {"parent_asin": "P3", "main_category": None, "title": "Nothing", "categories": [], "images": []},
        {"title": "no id", "categories": ["X"]},
        {"parent_asin": "P1", "title": "dup", "categories": ["X"]},
    ]
    lines = [json.dumps(r) for r in recs] + ["{not json", "[1, 2]"]
    path = tmp_path / "meta_All_Beauty.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert detect_format(path) == "amazon2023"
    table, rep = read_catalog(path)
    _contract(table)
    rows = table.set_index("id")
    assert list(rows.index) == ["P1", "P2"] and rep.records_read == 7 and rep.consistent
    assert rows.loc["P1", "category_paths"] == [["Beauty & Personal Care", "Skin Care", "Lips"]]
    assert rows.loc["P1", "image"] == "h0.jpg" and rows.loc["P1", "description"] == "Soft lips"
    assert rows.loc["P2", "category_paths"] == [["All Beauty"]] and rows.loc["P2", "image"] == "l2.jpg"
    assert rep.cleaned["empty categories: main_category used as the path"] == 1
    assert rep.skipped["no category"] == 1 and rep.skipped["no parent_asin"] == 1
    assert rep.skipped["malformed line (not JSON)"] == 1 and rep.skipped["line is not a JSON object"] == 1
    assert rep.duplicates == 1 and rep.source == "amazon2023:All_Beauty"
    assert len(read_amazon2023(path, require_description=True).table) == 1


def test_generic_csv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(b"jpg")
    csv_path = tmp_path / "shop.csv"
    csv_path.write_text(
        "sku,name,blurb,cat,pic\n"
        "1,Chef knife,<p>Sharp</p>,Home > Kitchen > Knives|Gifts > For cooks,img/a.jpg\n"
        "2,Mug,,Home > Kitchen,img/missing.jpg\n"
        "3,Poster,Nice,,https://example.org/p.jpg\n"
        "1,Again,dup,Home,\n"
        "4,short row\n", encoding="utf-8")
    cols = {"id": "sku", "title": "name", "description": "blurb", "category": "cat", "image": "pic"}
    table, rep = read_generic(csv_path, columns=cols)
    _contract(table)
    rows = table.set_index("id")
    assert list(rows.index) == ["1", "2"] and rep.records_read == 5 and rep.consistent
    assert rows.loc["1", "category_paths"] == [["Home", "Kitchen", "Knives"], ["Gifts", "For cooks"]]
    assert rows.loc["1", "description"] == "Sharp" and rows.loc["1", "image"] == str((tmp_path / "img/a.jpg").resolve())
    assert rows.loc["2", "image"] is None and rep.cleaned["no image file"] == 1
    assert rep.skipped["no category"] == 1 and rep.skipped["duplicate id (first kept)"] == 1
    assert rep.skipped["CSV row with 2 fields instead of 5"] == 1
    with pytest.raises(CatalogError, match="'blurbs'"):
        read_generic(csv_path, columns={**cols, "description": "blurbs"})
    with pytest.raises(CatalogError, match="category"):
        read_generic(csv_path, columns={"id": "sku", "title": "name"})
    assert len(read_catalog(f"generic:{csv_path}", columns=cols).table) == 2

    jl = tmp_path / "shop.jsonl"
    jl.write_text(json.dumps({"id": 7, "name": "Lamp", "path": ["Home", "Lighting"], "pic": "http://x/7.jpg"}) + "\n"
                  + json.dumps({"id": 8, "name": "Rug", "path": [["Home", "Rugs"], ["Sale"]],
                                "pic": "https://x/images/no-image-available.gif"}) + "\n")
    t2, r2 = read_generic(jl, columns={"id": "id", "title": "name", "category": "path", "image": "pic"}, path_sep="/")
    assert list(t2["id"]) == ["7", "8"] and t2["category_paths"].iloc[1] == [["Home", "Rugs"], ["Sale"]]
    assert list(t2["image"]) == ["http://x/7.jpg", None] and r2.cleaned["placeholder image URL dropped"] == 1
    assert r2.consistent


# ----------------------------------------------------------------------------------------------------
# Dispatch: read_catalog, the environment variable, open_catalog
# ----------------------------------------------------------------------------------------------------


def test_read_catalog_errors_say_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist.*accepted"):
        read_catalog(tmp_path / "nope.json.gz")
    with pytest.raises(CatalogError, match="unknown catalog format 'amazon1999'.*amazon2014"):
        read_catalog(f"amazon1999:{tmp_path}")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CatalogError, match="generic"):
        read_catalog(tmp_path / "x.csv")
    with pytest.raises(CatalogError, match="cannot tell"):
        read_catalog(tmp_path)


def test_a_wrong_format_prefix_names_the_format_the_file_looks_like(shared: Path, tmp_path: Path) -> None:
    fk = shared / "flipkart1050" / "flipkart_com-ecommerce_sample_1050.csv"
    gift = shared / "amazon2018" / "meta_Gift_Cards.json.gz"
    with pytest.raises(CatalogError, match=f"does not fit the format amazon2018: it looks like flipkart; use the spec "
                                           f"flipkart:{re.escape(str(fk))}"):
        read_catalog(f"amazon2018:{fk}")  # was: an empty table, then "lower label_min_count"
    with pytest.raises(CatalogError, match=f"looks like amazon2018; use the spec amazon2018:{re.escape(str(gift))}"):
        read_catalog(f"amazon2023:{gift}")
    with pytest.raises(CatalogError, match="looks like amazon2018"):
        read_catalog(f"flipkart:{gift}")
    mine = tmp_path / "mine.csv"
    mine.write_text("id,title,category\n1,Mug,Home\n")
    with pytest.raises(CatalogError, match="looks like generic; use the spec generic:.*mapping"):
        read_catalog(f"amazon2014:{mine}")
    assert len(read_catalog(f"amazon2018:{gift}", limit=2).table) == 2  # the right prefix still reads
    with pytest.raises(ValueError, match="no product left to label.*wrong format"):
        build_dataset(read_amazon2018(fk).table, get_profile("sample"))


def test_catalog_from_env(monkeypatch: pytest.MonkeyPatch, shared: Path, tmp_path: Path) -> None:
    monkeypatch.delenv("PRODLIB_CATALOG", raising=False)
    with pytest.raises(CatalogError) as err:
        catalog_from_env()
    assert "PRODLIB_CATALOG=flipkart:../shared/data/flipkart1050 make book PROFILE=sample" in str(err.value)
    monkeypatch.setenv("PRODLIB_CATALOG", f"flipkart:{tmp_path / 'missing'}")
    with pytest.raises(CatalogError, match="(?s)cannot be read.*does not exist.*make book PROFILE=sample"):
        catalog_from_env()
    monkeypatch.setenv("PRODLIB_CATALOG", f"flipkart:{shared / 'flipkart1050'}")
    assert len(catalog_from_env(limit=4).table) == 4
    res = open_catalog(get_profile("sample"), tmp_path / "runs" / "sample" / "01_data")
    assert len(res.table) == 1050 and res.report.source == "flipkart"
    if SHARED.resolve() == (REPO.parent / "shared" / "data").resolve():  # the documented relative spec
        monkeypatch.chdir(tmp_path)  # notebooks run elsewhere; the path is also tried from the repo root
        monkeypatch.setenv("PRODLIB_CATALOG", "flipkart:../shared/data/flipkart1050")
        assert len(catalog_from_env(limit=2).table) == 2


def test_open_catalog_amazon2014_local_and_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = get_profile("full")
    work_dir = tmp_path / "runs" / "full" / "01_data"
    cache_dir = tmp_path / "runs" / ".cache"
    path = write_2014(tmp_path / "metadata.json.gz", bad_2014_lines())
    monkeypatch.setenv("PRODLIB_AMAZON2014", str(path))
    res = open_catalog(profile, work_dir)
    assert list(res.table["id"]) == ["A1"]  # the paper's filter: title, description and image
    assert res.report.skipped["no title"] == 1 and res.report.skipped["no description"] == 9
    assert isinstance(res.report, ReadReport) and list(cache_dir.glob("amazon2014-*.pkl"))
    monkeypatch.setenv("PRODLIB_AMAZON2014", str(tmp_path / "absent.json.gz"))
    with pytest.raises(CatalogError, match="PRODLIB_AMAZON2014"):
        open_catalog(profile, work_dir)

    monkeypatch.delenv("PRODLIB_AMAZON2014")
    calls = []
    (tmp_path / "dl").mkdir()
    other = write_2014(tmp_path / "dl" / "metadata.json.gz", bad_2014_lines()[:4])

    def fake_fetch(name: str, dest: Path, **kw: object) -> Path:
        calls.append((name, dest))
        return other

    monkeypatch.setattr("prodlib.download.fetch", fake_fetch)
    res = open_catalog(profile, work_dir)
    assert calls == [("amazon2014", cache_dir)]
    assert list(res.table["id"]) == ["A1"] and res.report.records_read == 4


def test_open_catalog_demo_returns_a_read_report(tmp_path: Path) -> None:
    work_dir = tmp_path / "runs" / "smoke" / "01_data"
    table, rep = open_catalog(get_profile("smoke", demo_products=40), work_dir)
    assert tuple(table.columns) == CATALOG_COLUMNS and table["id"].is_unique
    assert isinstance(rep, ReadReport) and rep.source == DEMO_SOURCE and set(table["source"]) == {DEMO_SOURCE}
    assert rep.records_read == rep.kept == len(table) == 40 and rep.consistent
    assert json.loads(json.dumps(rep.to_dict()))["kept"] == 40
    assert all(Path(p).parent == work_dir / "raw_images" for p in table["image"].dropna())


def test_report_is_never_silent() -> None:
    rep = ReadReport("x", records_read=3, kept=1)
    rep.skip("no title", "id1")
    rep.skip("no title", "id2")
    rep.fix("HTML removed from title", "<b>x</b>")
    assert rep.consistent and rep.n_skipped == 2
    d = rep.to_dict()
    assert d["skipped"] == {"no title": 2} and d["cleaned"] == {"HTML removed from title": 1}
    assert "2 no title" in str(rep) and "HTML removed from title (1)" in str(rep)
    assert rep.examples["no title"] == ["id1", "id2"]


def test_generic_spec_without_mapping_uses_our_column_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("id,title,description,category\n"
                    "a1,Red mug,A big red mug,Home > Kitchen > Mugs\n"
                    "a2,Blue shirt,,Clothing > Men > Shirts|Sale > Men\n")
    table, report = read_catalog(f"generic:{path}")
    assert table["category_paths"].tolist() == [[["Home", "Kitchen", "Mugs"]],
                                                 [["Clothing", "Men", "Shirts"], ["Sale", "Men"]]]
    assert table["image"].isna().all() and report.kept == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,cat\n1,x,A > B\n")
    with pytest.raises(CatalogError, match=r"lacks the columns \['id', 'title', 'category'\]"):
        read_catalog(f"generic:{bad}")




def test_byte_order_mark_keeps_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "meta_B.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"parent_asin": "B1", "title": "t", "categories": ["A"],
                                                 "main_category": "A"}).encode() + b"\n")
    table, rep = read_amazon2023(path)
    assert list(table["id"]) == ["B1"] and rep.cleaned["byte-order mark removed"] == 1
    old = write_2014(tmp_path / "meta_B.json", [repr(GOOD).encode()])
    old.write_bytes(b"\xef\xbb\xbf" + old.read_bytes())
    assert list(read_amazon2014(old).table["id"]) == ["A1"]


def test_product_id_cannot_lead_the_image_lookup_out_of_its_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "x.jpg").write_bytes(b"secret")  # ../x.jpg seen from images/
    (tmp_path / "flipkart_com-ecommerce_sample.csv").write_text(
        'uniq_id,product_name,product_category_tree\n../x,Shoe,"[""Footwear >> Shoes""]"\n')
    table, rep = read_flipkart(tmp_path)
    assert table["image"].tolist() == [None] and rep.cleaned["no image file"] == 1


# ----------------------------------------------------------------------------------------------------
# Bring your own catalog: the real Flipkart sample rewritten as a teacher's CSV, read through a mapping
# ----------------------------------------------------------------------------------------------------


def teacher_catalog(shared: Path, folder: Path) -> Path:
    """The Flipkart sample as a fashion-style CSV: ``sku,name,blurb,top,mid,low`` (the first three category nodes
    in three columns, no header quoting of commas needed) and ``images/<sku>.jpg`` beside it (a link)."""
    src = shared / "flipkart1050" / "flipkart_com-ecommerce_sample_1050.csv"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").symlink_to(shared / "flipkart1050" / "images")
    with open(src, newline="", encoding="utf-8") as fh, open(folder / "shop.csv", "w", newline="",
                                                             encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "name", "blurb", "top", "mid", "low"])
        for rec in csv.DictReader(fh):
            nodes = [n.strip() for n in json.loads(rec["product_category_tree"])[0].split(">>")]
            nodes = nodes[:-1][:3] if nodes[-1].endswith("...") else nodes[:3]  # a cut product name is no category
            writer.writerow([rec["uniq_id"], rec["product_name"], rec["description"], *nodes, *[""] * (3 - len(nodes))])
    return folder / "shop.csv"


@pytest.mark.parametrize("variant", ["titles+images", "titles+descriptions", "titles"])
def test_a_teachers_catalog_through_a_mapping_beside_it(shared: Path, tmp_path: Path, flipkart: CatalogResult,
                                                        variant: str) -> None:
    path = teacher_catalog(shared, tmp_path)
    mapping = {"id": "sku", "title": "name", "category": ["top", "mid", "low"]}
    if "images" in variant:
        mapping["image"] = "images/{sku}.jpg"
    if "descriptions" in variant:
        mapping["description"] = "blurb"
    (tmp_path / "shop.mapping.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in mapping.items()))
    assert detect_format(path) == "generic"
    table, rep = read_catalog(str(path))  # no prefix: the mapping beside the file says how to read it
    _contract(table)
    ref = flipkart.table.set_index("id")
    rows = table.set_index("id")
    assert rep.consistent and rep.records_read == 1050 and list(rows.index) == list(ref.index)
    assert (rows["title"] == ref["title"]).all()
    assert [p[0] for p in rows["category_paths"]] == [p[0][:3] for p in ref["category_paths"]]
    assert (rows["description"] == (ref["description"] if "descriptions" in variant else "")).all()
    if "images" in variant:
        assert rows["image"].notna().sum() == 1047 and rep.cleaned["no image file"] == 3
        assert (rows["image"].dropna() == ref["image"].dropna()).all()
    else:
        assert rows["image"].isna().all()
    used = build_dataset(table, get_profile("sample")).stats["modalities"]["present"]  # notebook 01's decision
    assert used == ["title", *(["description"] if "descriptions" in variant else []),
                    *(["image"] if "images" in variant else [])]
    again = read_catalog(f"generic:{path}?mapping=shop.mapping.yaml", limit=5)  # the mapping named in the spec
    assert again.table["title"].tolist() == table["title"].tolist()[:5]


def test_mapping_files_separators_and_unquoted_commas(tmp_path: Path) -> None:
    path = tmp_path / "fashion.csv"
    path.write_text("id,gender,master,sub,cat,name\n"
                    "1,Men,Apparel,Topwear,Apparel|Topwear|Shirts,Turtle Check Men Navy Blue Shirt\n"
                    "2,Women,Footwear,Shoes,Footwear/Shoes/Heels,Catwalk Women, Black Heels\n"
                    "3,Men,Apparel,Topwear,Apparel > Topwear,Plain, soft, warm tee\n")
    (tmp_path / "m.json").write_text(json.dumps({"id": "id", "title": "name", "category": "cat"}))
    table, rep = read_catalog(f"generic:{path}?mapping={tmp_path / 'm.json'}")
    rows = table.set_index("id")
    assert rows.loc["1", "category_paths"] == [["Apparel"], ["Topwear"], ["Shirts"]]  # split, but said so
    assert rep.cleaned["category split at '|' into 3 one-level paths (if it is one path, set category_sep: '|')"] == 1
    assert rows.loc["2", "category_paths"] == [["Footwear/Shoes/Heels"]]
    assert rep.cleaned["category without '>' holds '/' (read as one name; if it is a path, set category_sep: '/')"] == 1
    assert rows.loc["2", "title"] == "Catwalk Women, Black Heels" and rows.loc["3", "title"] == "Plain, soft, warm tee"
    assert rep.cleaned["unquoted commas in the last column 'name' (joined)"] == 2 and rep.consistent
    (tmp_path / "m.json").write_text(json.dumps({"id": "id", "title": "name", "category": "cat", "category_sep": "|",
                                                 "paths_sep": None}))
    table, _ = read_catalog(f"generic:{path}?mapping=m.json")
    assert table.set_index("id").loc["1", "category_paths"] == [["Apparel", "Topwear", "Shirts"]]
    (tmp_path / "m.json").write_text(json.dumps({"id": "id", "title": "name", "categroy": "cat"}))
    with pytest.raises(CatalogError, match=r"unknown keys: \['categroy'\]"):
        read_catalog(f"generic:{path}?mapping=m.json")
    (tmp_path / "m.json").write_text(json.dumps({"id": "id", "title": "name", "category": ["gender", "mastr"]}))
    with pytest.raises(CatalogError, match="no column.*'mastr'"):
        read_catalog(f"generic:{path}?mapping=m.json")


_VARIANTS = {  # a teacher's catalog as it comes: the mapping's fields, what notebook 01 keeps, the fused model
    "titles+images": ({"image": "images/{sku}.jpg"}, ["title", "image"], "image+title"),
    "titles+descriptions": ({"description": "blurb"}, ["title", "description"], "title+description"),
    "titles": ({}, ["title"], None),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(_VARIANTS))
def test_a_teachers_catalog_runs_end_to_end_with_the_modalities_it_has(shared: Path, tmp_path: Path, variant: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Flipkart sample rewritten as a teacher's CSV in three variants, through the runner (smoke-sized
    models): titles + images builds the whole book; the others stop after the notebooks."""
    from prodlib.pipeline import run

    extra, kept, main = _VARIANTS[variant]
    path = teacher_catalog(shared, tmp_path / "shop")
    (path.parent / "shop.mapping.yaml").write_text(
        "".join(f"{k}: {json.dumps(v)}\n" for k, v in {"id": "sku", "title": "name", "category": ["top", "mid", "low"],
                                                       **extra}.items()))
    monkeypatch.setenv("PRODLIB_CATALOG", str(path))
    monkeypatch.setenv("PRODLIB_OFFLINE", "1")
    lines: list[str] = []
    book = variant == "titles+images"
    res = run("smoke", run_dir=tmp_path / "runs", build_root=tmp_path, book=book, say=lines.append,
              overrides={"catalog": "env"}, name=variant.replace("+", "_"))
    status = {n["notebook"][:2]: n["status"] for n in res.notebooks}
    classifier = {"title": "02", "description": "03", "image": "04"}
    assert {n for n, st in status.items() if st == "executed"} == (
        {"01", "06", *(classifier[m] for m in kept)} | ({"05", "07"} if main else set()))
    assert any("modalities: title used" in line for line in lines)
    folder = next((tmp_path / "runs").rglob("05_fusion"), None)
    metrics = json.loads((folder / "metrics.json").read_text()) if main else None
    if main:  # Table 3 has the rows that exist, the main network first in the prose
        assert metrics["main"]["name"] == main
        rows = {r["model"] for r in metrics["table3"]}
        assert {"max", "mean", "ridge", main, "oracle"} <= rows and "trimodal" not in rows
        assert not [r for r in rows if "+" in r and r != main]  # no bi-modal network over a missing modality
        assert [r["blanked"] for r in metrics["robustness"]] == ["nothing", *kept]  # each modality blanked in turn
        assert all("f1 with mask" in r for r in metrics["missing_modalities"])  # the masked network too
        assert not {r["model"] for r in metrics["table1"]} - {*kept, "tfidf_title", "tfidf_description",
                                                              "tfidf_title+description"}
    else:
        assert folder is None or not (folder / "metrics.json").exists()
    errors = json.loads(next((tmp_path / "runs").rglob("06_errors/metrics.json")).read_text())
    assert errors["main"] == main
    if book:
        html = {p.name: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", p.read_text()))
                for p in (tmp_path / "_build" / "html").rglob("*.html")}
        assert "Not run: no description in this catalog" in html["03_description_classifier.html"]
        assert "The modalities of this run are title, image" in html["results.html"]
        assert "image+title policy network reaches" in html["results.html"]
        assert not any("Traceback (most recent call last)" in t for t in html.values())
