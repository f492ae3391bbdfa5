"""Lines in the Amazon 2014 format for the tests: a good record and hand-made bad ones."""

from __future__ import annotations

import gzip
from pathlib import Path

GOOD = {"asin": "A1", "title": "Girls Ballet Tutu Zebra Hot Pink", "price": 3.17,
        "imUrl": "http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg",
        "related": {"also_bought": ["B1", "B2"]}, "salesRank": {"Toys & Games": 211836},
        "categories": [["Sports & Outdoors", "Other Sports", "Dance"], ["Clothing, Shoes & Jewelry", "Girls"]],
        "description": "A tutu.\nFor dance."}


def write_2014(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def bad_2014_lines() -> list[bytes]:
    r = repr
    return [
        r(GOOD).encode(),
        r({"asin": "A2", "title": "Men's \"Pro\" 12\" Ruler", "categories": [["Men's Fashion"]],
           "description": "It's <b>great</b> &amp; sturdy"}).encode(),
        # Python 2 style escapes (as the 2014 dump has them) and a UTF-8 title read as Latin-1
        b"{'asin': 'A3', 'title': 'Caf\\xe9 \\u2019s mug \\U0001f600', 'categories': [['Home & Kitchen']]}",
        r({"asin": "A4", "title": "Caf\u00c3\u00a9", "categories": [["Home & Kitchen"]]}).encode(),
        b"{'asin': 'A5', 'title': 'broken', 'categories': [['X']",  # malformed: cut short
        b"{'asin': 'A6', 'title': oops}",  # malformed: a name, never evaluated
        b"['not', 'a', 'dict']",
        r({"title": "no asin", "categories": [["X"]]}).encode(),
        r({"asin": "A7", "title": "no image", "categories": [["X"]],
           "imUrl": "http://g-ecx.images-amazon.com/images/G/01/x-site/icons/no-img-sm._CB192198896_.gif"}).encode(),
        b"{'asin': 'A8', 'title': 'bad \xff\xfe bytes', 'categories': [['X']]}",  # not UTF-8
        r({"asin": "A9", "title": 1984, "categories": "Books"}).encode(),  # number title, string categories
        r({"asin": "A1", "title": "duplicate of A1", "categories": [["X"]]}).encode(),
        r({"asin": "A10", "title": "no categories"}).encode(),
        r({"asin": "A11", "title": "flag", "categories": [["X", 5, None]], "price": None, "gift": True}).encode(),
        b"{'asin': 'A12', 'title': 'nul\x00byte', 'categories': [['X']]}",
        r({"asin": "A13", "title": "<span class=\"a-size-medium\"", "categories": [["X"]]}).encode(),
        b"",
        b"{'asin': u'A14', 'title': u'py2 unicode', 'categories': [[u'X']]}",
    ]

