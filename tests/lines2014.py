"""Lines in the Amazon 2014 format for the tests: hand-made bad records and a random generator that
exercises the record scanners' grammar (shared by test_catalog.py and test_scan2014.py)."""

from __future__ import annotations

import gzip
import random
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


PIECES_2014 = ["a", " ", "  ", "é", "日", "😀", '"', "'", "\\x41", "\\xe9", "\\x27", "\\u00e9", "\\u2019", "\\ud83d",
                "\\U0001f600", "\\U00110000", "\\'", '\\"', "\\\\", "\\n", "\\t", "\\q", "\\N{BULLET}", "\\0", "\\777",
                "\t", "\x0b", "\x0c", "\x85", "\u2028", "\xa0", "\r", "\\\xe9", "&amp;", "<b>", "x</b>", "no-img", "]",
                "[", "}", "{", ",", ":", "true", "Ã©"]


def random_string_2014(rng: random.Random) -> str:
    q = rng.choice(["'", "'", '"'])
    body = "".join(rng.choice(PIECES_2014) for _ in range(rng.randint(0, 6)))
    return rng.choice(["", "", "", "u", "b", "r"]) + q + body + q


def random_value_2014(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > 3 or r < 0.5:
        return rng.choice([random_string_2014(rng), random_string_2014(rng), str(rng.randint(-99, 10**6)), "1.5e3",
                           "-0.25", "True", "None", "NaN", "007", "1_0", "'a' 'b'", "(1, 2)", "{1, 2}", "-True"])
    items = [random_value_2014(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if r < 0.8:
        return "[" + ", ".join(items) + rng.choice(["", "", ","]) + "]"
    keys = [rng.choice([random_string_2014(rng), "'k'", "3", "None", "[1]"]) for _ in items]
    return "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items, strict=True)) + "}"


def random_line_2014(rng: random.Random) -> str:
    keys = ["'asin'", "'title'", "'description'", "'categories'", "'imUrl'", "'related'", "'price'", "'brand'",
            "'salesRank'", '"title"', "u'asin'", "'t\\x69tle'", "'titles'", "5", "'title\"'"]
    items = []
    for _ in range(rng.randint(0, 8)):
        key = rng.choice(keys)
        r = rng.random()
        if r < 0.4:
            value = random_string_2014(rng)
        elif r < 0.6:
            value = "[" + ", ".join("[" + ", ".join(random_string_2014(rng) for _ in range(rng.randint(0, 3))) + "]"
                                    for _ in range(rng.randint(0, 3))) + "]"
        elif r < 0.7:
            value = "{'also_bought': [" + ", ".join(f"'B{rng.randint(0, 10**8):09d}'" for _ in range(rng.randint(0, 5)))
            value += "]}"
        else:
            value = random_value_2014(rng)
        items.append(f"{key}:{rng.choice([' ', '', '  ', chr(9)])}{value}")
    line = "{" + rng.choice([", ", ",", " , "]).join(items) + rng.choice(["", "", ", ", ","]) + "}"
    r = rng.random()
    if r < 0.05:
        line = line[: rng.randint(0, len(line))]
    elif r < 0.08:
        line = line.replace(",", "", 1)
    return line
