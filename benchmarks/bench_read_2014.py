"""Benchmark: the Amazon 2014 reader (``prodlib.catalog.iter_amazon2014``) with one and two worker processes.

Writes a realistic gzip file in the 2014 format (Python dict literals as ``repr`` writes them: quotes of
both kinds, escapes, HTML, ``also_bought`` lists of up to 100 ids, some duplicated ids and malformed lines),
or reuses it, then streams it once per worker count, each read in a fresh process, and prints records/s
and peak memory (the reading process, and the largest of its workers).

    .venv/bin/python benchmarks/bench_read_2014.py [--lines 1000000] [--file PATH] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("soft cotton classic stainless steel kitchen knife set of 4 premium quality durable lightweight portable "
         "easy to clean dishwasher safe great gift for him her the and with a of in for your this is perfect "
         "black white blue red large small pack new women's men's kids' it's café naïve 日本 — ’s").split()
RARE = ['12"', '"ultra"', "<b>", "</b>", "&amp;", "\\", "\t", "😀"]
ROOTS = ("Clothing, Shoes & Jewelry", "Home & Kitchen", "Sports & Outdoors", "Books", "Electronics",
         "Toys & Games", "Beauty", "Kids' Electronics", "Men's Fashion")
NODES = ("Women", "Men", "Girls", "Boys", "Kitchen & Dining", "Dance", "Other Sports", "Literature & Fiction",
         "Camera & Photo", "Women's Watches", "Accessories", "Handbags & Wallets", "Baby", "Clothing")


def _asin(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(10))


def _text(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    if words and rng.random() < 0.15:
        words[rng.randrange(len(words))] = rng.choice(RARE)
    return " ".join(words)


def _record(rng: random.Random, i: int, pool: list[list[str]]) -> dict:
    rec: dict = {"asin": f"B{i:09d}"}
    if rng.random() < 0.8:
        rec["related"] = {"also_bought": [_asin(rng) for _ in range(rng.randint(0, 100))],
                          "also_viewed": [_asin(rng) for _ in range(rng.randint(0, 40))]}
    if rng.random() < 0.85:
        rec["title"] = _text(rng, 2, 14)
    if rng.random() < 0.7:
        rec["price"] = round(rng.uniform(0.5, 500), 2)
    if rng.random() < 0.75:
        rec["salesRank"] = {rng.choice(ROOTS): rng.randint(1, 3_000_000)}
    if rng.random() < 0.95:
        rec["imUrl"] = (f"http://ecx.images-amazon.com/images/I/{_asin(rng)}._SY300_.jpg" if rng.random() < 0.97
                        else "http://g-ecx.images-amazon.com/images/G/01/x-site/icons/no-img-sm._CB192198896_.gif")
    rec["categories"] = [rng.choice(pool) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.6:
        rec["description"] = _text(rng, 5, 120) if rng.random() < 0.9 else f"<p>{_text(rng, 5, 60)}</p><br/>"
    return rec


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` lines to ``path`` (through a temporary name: an interrupted run leaves no file)."""
    rng = random.Random(seed)
    pool = [[rng.choice(ROOTS)] + [rng.choice(NODES) for _ in range(rng.randint(0, 4))] for _ in range(3000)]
    part = path.with_name(path.name + ".part")
    with gzip.open(part, "wt", encoding="utf-8", compresslevel=1) as fh:
        for i in range(n):
            j = i if rng.random() > 0.002 else max(0, i - rng.randint(1, 50))  # a few duplicated ids
            line = repr(_record(rng, j, pool))
            r = rng.random()
            if r < 0.004:  # malformed: cut short
                line = line[: rng.randint(1, len(line) - 1)]
            elif r < 0.05:  # Python 2 style: non-ASCII as escapes
                line = line.encode("ascii", "backslashreplace").decode("ascii")
            fh.write(line + "\n")
    part.replace(path)


def read(path: str, workers: int) -> None:
    """In a fresh process: stream the file, print one JSON line of figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from prodlib.catalog import ReadReport, iter_amazon2014

    rep = ReadReport("bench")
    start = time.perf_counter()
    rows = sum(len(chunk) for chunk in iter_amazon2014(path, report=rep, workers=workers))
    seconds = time.perf_counter() - start
    print(json.dumps({"workers": workers, "records": rep.records_read, "kept": rows, "seconds": seconds,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--file", type=Path, default=None, help="the 2014-format file (written when absent)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--read", nargs=2, metavar=("FILE", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read:
        return read(args.read[0], int(args.read[1]))
    path = args.file or Path(tempfile.gettempdir()) / f"prodlib_bench_2014_{args.lines}.json.gz"
    if not path.exists():
        start = time.perf_counter()
        generate(path, args.lines)
        print(f"wrote {path} ({args.lines:,} lines, {path.stat().st_size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - start:.0f} s")
    print(f"{'workers':>7} {'records':>10} {'kept':>9} {'seconds':>8} {'records/s':>10} {'RSS MiB':>8} "
          f"{'worker RSS MiB':>14}")
    for workers in (int(w) for w in args.workers.split(",")):
        out = subprocess.run([sys.executable, __file__, "--read", str(path), str(workers)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{workers:>7} {r['records']:>10,} {r['kept']:>9,} {r['seconds']:>8.1f} "
              f"{r['records'] / r['seconds']:>10,.0f} {r['rss_mib']:>8.0f} {r['worker_rss_mib']:>14.0f}")


if __name__ == "__main__":
    main()
