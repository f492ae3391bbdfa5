"""prodlib.catalog: readers on the real shared data and on hand-made bad records in each format."""

from __future__ import annotations

import ast
import csv
import gzip
import json
import os
import random
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from lines2014 import GOOD, bad_2014_lines, random_line_2014, random_string_2014, write_2014

from prodlib import catalog as C
from prodlib.catalog import (
    CATALOG_COLUMNS,
    CatalogError,
    ReadReport,
    catalog_from_env,
    iter_amazon2014,
    open_catalog,
    parse_python_literal,
    read_amazon2014,
    read_amazon2018,
    read_amazon2023,
    read_catalog,
    read_flipkart,
    read_generic,
)
from prodlib.dataset import check_catalog

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRODLIB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def shared() -> Path:
    if not (SHARED / "flipkart1050").is_dir() or not (SHARED / "amazon2018").is_dir():
        pytest.fail(f"the shared real data is missing at {SHARED} (expected flipkart1050/ and amazon2018/); "
                    "CI provides it: set PRODLIB_SHARED_DATA to the folder holding them")
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
def flipkart(shared: Path) -> C.CatalogResult:
    return read_flipkart(shared / "flipkart1050")


def test_flipkart_real(flipkart: C.CatalogResult, shared: Path) -> None:
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


def test_flipkart_by_csv_path_and_specs(shared: Path, flipkart: C.CatalogResult) -> None:
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
    # HTML titles: every raw title with a tag is either stripped or, when nothing is left, "no title"
    tagged = sum(1 for r in recs if C._TAG.search(r["title"]))
    assert rep.cleaned["HTML stripped from title"] + rep.cleaned["title was only HTML (treated as missing)"] == tagged
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
    assert C.detect_format(shared / "flipkart1050") == "flipkart"
    assert C.detect_format(shared / "amazon2018" / "meta_Gift_Cards.json.gz") == "amazon2018"
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
    assert rows.loc["A7", "image"] is None and rep.cleaned["no-img placeholder URL dropped"] == 1
    assert "\ufffd" in rows.loc["A8", "title"] and rep.cleaned["non-UTF-8 bytes replaced"] == 1
    assert rows.loc["A9", "title"] == "1984" and rows.loc["A9", "category_paths"] == [["Books"]]
    assert rep.cleaned["title was a number (kept as text)"] == 1
    assert rows.loc["A11", "category_paths"] == [["X"]] and rep.cleaned["category element with wrong type dropped"] == 2
    assert rows.loc["A12", "title"] == "nulbyte" and rep.cleaned["NUL bytes removed"] == 1
    assert rows.loc["A13", "title"] == "" and rep.cleaned["title was only HTML (treated as missing)"] == 1
    assert rows.loc["A14", "title"] == "py2 unicode"
    assert len(rep.examples["malformed line (not a Python literal)"]) == 2
    assert rep.source == ("amazon2014:Toys" if name.startswith("meta_") else "amazon2014:all")
    assert C.detect_format(path) == "amazon2014"


def test_amazon2014_filters_and_limit(tmp_path: Path) -> None:
    path = write_2014(tmp_path / "m.json.gz", bad_2014_lines())
    strict = read_amazon2014(path, require_title=True, require_description=True, require_image=True)
    assert list(strict.table["id"]) == ["A1"] and strict.report.consistent
    assert strict.report.skipped["no description"] == 9 and strict.report.skipped["no image"] == 1
    assert sum(strict.report.skipped.values()) == strict.report.records_read - 1
    first = read_amazon2014(path, limit=2)
    assert list(first.table["id"]) == ["A1", "A2"] and first.report.records_read == 2


def test_amazon2014_streaming_chunks_match_whole_read(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = []
    for i in range(230):
        pid = f"P{i if rng.random() > 0.1 else rng.randrange(max(i, 1))}"  # some ids repeat, across chunks too
        rec = {"asin": pid, "title": f"item {i} it's \"{i}\"", "categories": [[f"C{i % 7}", f"D{i % 3}"]]}
        if i % 5:
            rec["imUrl"] = f"http://x/{i}.jpg"
        lines.append(repr(rec).encode())
    path = write_2014(tmp_path / "meta_S.json.gz", lines)
    whole = read_amazon2014(path)
    rep = ReadReport("stream")
    chunks = list(iter_amazon2014(path, chunk_size=16, report=rep))
    assert len(chunks) > 5 and all(len(c) <= 16 for c in chunks)
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(streamed.drop(columns="source"), whole.table.drop(columns="source"))
    ids = [repr_id for repr_id in (ast.literal_eval(x.decode())["asin"] for x in lines)]
    assert rep.duplicates == len(ids) - len(set(ids)) == whole.report.duplicates
    assert list(streamed["id"]) == list(dict.fromkeys(ids))  # first occurrence kept, order preserved
    assert rep.consistent


def _random_literal(rng: random.Random, depth: int = 0) -> str:
    pieces = ["a", " ", "é", "日", "😀", '"', "'", "\\x41", "\\xe9", "\\x27", "\\x22", "\\u00e9", "\\u0027", "\\ud83d",
              "\\U0001f600", "\\'", '\\"', "\\\\", "\\n", "\\t", "\\/", "\\d", "\\0", "\t", "true", "null", "\\xZZ"]

    def lit() -> str:
        q = rng.choice(["'", '"'])
        return rng.choice(["", "", "u", "b"]) + q + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 5))) + q

    r = rng.random()
    if depth > 2 or r < 0.55:
        return rng.choice([lit(), lit(), str(rng.randint(-9, 99)), "1.5", "1e5", ".5", "True", "None", "true",
                           "NaN", "-0"])
    if r < 0.8:
        items = ", ".join(_random_literal(rng, depth + 1) for _ in range(rng.randint(0, 3)))
        return "[" + items + rng.choice(["", ",", ""]) + "]"
    items = ", ".join(lit() + ": " + _random_literal(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    return "{" + items + "}"


def test_fast_parser_equals_literal_eval() -> None:
    """The JSON fast path and the regex translator give exactly ast.literal_eval's value, or fail as it does."""
    rng = random.Random(0)
    samples = [_random_literal(rng) for _ in range(4000)]
    samples += [repr(GOOD), repr({"t": "both ' and \""}), repr({"t": "Men's"}), repr([{"a": "x'y", "b": 'q"'}])]
    paths: Counter = Counter()
    for text in samples:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected = ("ok", repr(ast.literal_eval(text)))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                expected = ("error", None)
        try:
            got = ("ok", repr(parse_python_literal(text)))
            paths[C._parse_literal(text)[2]] += 1
        except (ValueError, SyntaxError, TypeError):
            got = ("error", None)
        assert got == expected, text
    assert paths["fast"] > 500 and paths["tokens"] > 100  # every path is exercised


def test_parser_never_evaluates_code() -> None:
    with pytest.raises((ValueError, SyntaxError)):
        parse_python_literal("__import__('os').system('echo hacked')")
    with pytest.raises((ValueError, SyntaxError)):
        parse_python_literal("{'a': (lambda: 1)()}")
    assert parse_python_literal("{'a': [1, -2.5, 'x']}") == {"a": [1, -2.5, "x"]}


def test_multi_member_gzip_and_plain_files_read_fully(tmp_path: Path) -> None:
    recs = [repr({"asin": f"M{i}", "title": f"t{i}", "categories": [["X"]]}).encode() for i in range(5000)]
    path = tmp_path / "meta_M.json.gz"
    path.write_bytes(gzip.compress(b"\n".join(recs[:2500]) + b"\n") + gzip.compress(b"\n".join(recs[2500:])))
    table, rep = read_amazon2014(path)
    assert list(table["id"]) == [f"M{i}" for i in range(5000)] and rep.consistent and not rep.skipped
    plain = tmp_path / "meta_M.json"
    plain.write_bytes(b"\r\n".join(recs))  # Windows line ends, no final newline
    assert list(read_amazon2014(plain).table["id"]) == list(table["id"])


def test_truncated_gzip_is_reported(tmp_path: Path) -> None:
    path = write_2014(tmp_path / "cut.json.gz", [repr(GOOD).encode()] * 2000)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 20])  # drop the gzip trailer and the end of the stream
    table, rep = read_amazon2014(path)
    assert rep.skipped["file cut short (compressed stream ended early)"] == 1
    assert any("ends early" in n for n in rep.notes) and rep.consistent
    assert len(table) == 1 and rep.duplicates == rep.records_read - 2  # every complete line before the cut


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
    assert C.detect_format(path) == "amazon2023"
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
    jl.write_text(json.dumps({"id": 7, "name": "Lamp", "path": ["Home", "Lighting"]}) + "\n"
                  + json.dumps({"id": 8, "name": "Rug", "path": [["Home", "Rugs"], ["Sale"]]}) + "\n")
    t2, r2 = read_generic(jl, columns={"id": "id", "title": "name", "category": "path"}, path_sep="/")
    assert list(t2["id"]) == ["7", "8"] and t2["category_paths"].iloc[1] == [["Home", "Rugs"], ["Sale"]]
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
    assert len(open_catalog("env", cache_dir=tmp_path, limit=3).table) == 3
    if SHARED.resolve() == (REPO.parent / "shared" / "data").resolve():  # the documented relative spec
        monkeypatch.chdir(tmp_path)  # notebooks run elsewhere; the path is also tried from the repo root
        monkeypatch.setenv("PRODLIB_CATALOG", "flipkart:../shared/data/flipkart1050")
        assert len(catalog_from_env(limit=2).table) == 2


def test_open_catalog_amazon2014_local_and_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_2014(tmp_path / "metadata.json.gz", bad_2014_lines())
    monkeypatch.setenv("PRODLIB_AMAZON2014", str(path))
    res = open_catalog("amazon2014", cache_dir=tmp_path / "cache")
    assert list(res.table["id"]) == ["A1"]  # the paper's filter: title, description and image
    monkeypatch.setenv("PRODLIB_AMAZON2014", str(tmp_path / "absent.json.gz"))
    with pytest.raises(CatalogError, match="PRODLIB_AMAZON2014"):
        open_catalog("amazon2014", cache_dir=tmp_path)

    monkeypatch.delenv("PRODLIB_AMAZON2014")
    calls = []

    def fake_fetch(name: str, dest: Path, **kw: object) -> Path:
        calls.append((name, dest))
        return path

    monkeypatch.setattr("prodlib.download.fetch", fake_fetch)
    res = open_catalog("amazon2014", cache_dir=tmp_path / "cache", require_description=False, require_image=False)
    assert calls == [("amazon2014", tmp_path / "cache")]
    assert list(res.table["id"]) == ["A1", "A2", "A3", "A4", "A7", "A8", "A9", "A11", "A12", "A14"]
    assert res.report.skipped["no title"] == 1
    with pytest.raises(CatalogError, match="demo"):
        open_catalog("demo", cache_dir=tmp_path)


def test_report_is_never_silent() -> None:
    rep = ReadReport("x", records_read=3, kept=1)
    rep.skip("no title", "id1")
    rep.skip("no title", "id2")
    rep.fix("HTML stripped from title", "<b>x</b>")
    assert rep.consistent and rep.n_skipped == 2
    d = rep.to_dict()
    assert d["skipped"] == {"no title": 2} and d["cleaned"] == {"HTML stripped from title": 1}
    assert "2 no title" in str(rep) and "HTML stripped from title (1)" in str(rep)
    assert rep.examples["no title"] == ["id1", "id2"]


def test_generic_spec_without_mapping_uses_our_column_names(tmp_path):
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


# ----------------------------------------------------------------------------------------------------
# Amazon 2014: the record scanner (fast path) against ast.literal_eval and against the exact path
# ----------------------------------------------------------------------------------------------------

def test_record_scanner_equals_literal_eval() -> None:
    """Every line the scanner accepts is a dict literal, and each captured value is exactly Python's value."""
    rng = random.Random(2014)
    samples = [random_line_2014(rng) for _ in range(6000)] + [repr(GOOD), *(x.decode("utf-8", "replace")
                                                                for x in bad_2014_lines())]
    s = random_string_2014
    samples += [f"{{'asin': {s(rng)}, 'title': {s(rng)}, 'description': {s(rng)}, 'categories': [[{s(rng)}]]}}"
                for _ in range(3000)]
    fullmatch = C._fast_2014().fullmatch
    accepted = escaped = 0
    for text in samples:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                expected = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                expected = None
        m = fullmatch(text)
        if m is None:
            continue
        accepted += 1
        assert isinstance(expected, dict), text
        for name, token in zip(C._NAMES_2014, m.groups(), strict=True):
            assert (token is None) == (name not in expected), (name, text)
            if token is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # the fast decoding never relies on a tolerated bad escape
                    got = C._token_value(token)
                assert type(got) is type(expected[name]) and repr(got) == repr(expected[name]), (name, text)
                escaped += "\\" in token
    assert 500 < accepted < len(samples) - 1000 and escaped > 400  # both outcomes and the escapes are exercised


def test_amazon2014_fast_path_equals_exact_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same file read with and without the scanner: identical tables and identical reports."""
    rng = random.Random(7)
    lines = [random_line_2014(rng).encode("utf-8", "surrogatepass") for _ in range(3000)]
    lines += bad_2014_lines()
    for i in range(300):  # realistic records too, with duplicated ids and quotes/escapes/HTML in the fields
        rec = dict(GOOD, asin=f"R{i % 250}", title=rng.choice(["Men's \"Pro\"", "a\tb  c", "x &amp; <b>y</b>", "Café"]))
        rec["categories"] = [rng.choice([["Men's", "Shoes"], ["A", "B & C"], ["<i>x</i>"], ["", 5]])]
        lines.append(repr(rec).encode())
    path = write_2014(tmp_path / "meta_F.json.gz", lines)
    fast = read_amazon2014(path, chunk_size=500)
    assert fast.report.records_read > 3000 and fast.report.consistent and len(fast.table) > 200

    class _Never:
        def fullmatch(self, text: str) -> None:
            return None

    monkeypatch.setattr(C, "_fast_2014", lambda: _Never())
    exact = read_amazon2014(path, chunk_size=500)
    pd.testing.assert_frame_equal(fast.table, exact.table)
    assert fast.report.to_dict() == exact.report.to_dict()


def test_whitespace_shortcut_matches_split_join() -> None:
    """``_squash`` skips the split only when that is exact: every whitespace character but ' ' is non-printable."""
    import sys

    assert all(not chr(c).isprintable() for c in range(sys.maxunicode + 1) if chr(c).isspace() and c != 32)
    for text in ["", " ", "a b", " a", "a ", "a  b", "a\tb", "a\xa0b", "日本 語", "x\u2028y", "é"]:
        assert C._squash(text) == " ".join(text.split())


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_amazon2014_id_with_a_lone_surrogate_is_repaired(tmp_path: Path, engine: str) -> None:
    """A ``\\ud83d`` escape in an asin once crashed the duplicate check (pandas cannot hash it)."""
    lines = [b"{'asin': 'S\\ud83d1', 'title': 't', 'categories': [['X']]}", repr(GOOD).encode(),
             b"{'asin': 'S\\ud83d1', 'title': 'again', 'categories': [['X']]}"]
    table, rep = read_amazon2014(write_2014(tmp_path / "meta_S.json.gz", lines), engine=engine)
    assert list(table["id"]) == ["S\ufffd1", "A1"] and rep.duplicates == 1 and rep.consistent
    assert rep.cleaned["surrogate escapes repaired in id"] == 2
