"""Benchmark: streaming parse of the Amazon 2014 metadata format (``prodlib.catalog.iter_amazon2014``).

Generates a gzipped file of ``--lines`` (default 1,000,000) lines in the 2014 format (Python dict literals
as Python's ``repr`` writes them) with realistic variety: single and double quotes, escaped quotes,
unicode (raw and as ``\\x``/``\\u`` escapes), ``also_bought`` lists of up to 100 ids, nested category
paths, missing fields, "no-img" placeholder URLs, duplicated ids and some malformed lines. Then it times
the streaming reader on one core, each configuration in a fresh process so that peak memory
(``ru_maxrss``) is that run's own, and prints a table:

* the default configuration (C record scanner, ``zlib-ng`` inflater when installed, chunks of 50,000)
  ``--repeats`` times, then the pure-Python scanner and plain ``zlib`` for comparison, on the same file;
* records/s and peak RSS for several chunk sizes (memory should follow the chunk size, not the file);
* the same chunk size on a file 1/4 as long (memory should not grow with the file);
* which parse path the lines took (C scanner, regex scanner, else the exact full parse) and the scanners
  alone against ``ast.literal_eval`` (they build only the five fields the reader needs);
* a side-effect check of the inflater: the regex scanner's speed before and after one inflate call with
  it (``isal`` halved it for the rest of the process on an AVX-512 Xeon, which is why it is not used).

Usage: ``python benchmarks/bench_parse_2014.py [--lines N] [--out FILE] [--repeats 3]
[--chunk-sizes 10000,50000,200000]``. Target: >= 50,000 records/s on one core.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("soft cotton classic stainless steel kitchen knife set of 4 premium quality durable lightweight "
         "portable wide 3.5mm easy to clean dishwasher safe BPA-free great gift for him her the and with "
         "a of in for your this is perfect design made from high quality material fits most sizes colour "
         "black white blue red green large small medium pack new original").split() + [
    "women's", "men's", "kids'", "it's", "don't", "you'll", "café", "naïve", "crème", "brûlée", "日本",
    "true", "—", "’s"]
RARE = ['12"', '"ultra"', "<b>", "</b>", "&amp;", "\\", "\t", "😀"]
ROOTS = ("Clothing, Shoes & Jewelry", "Home & Kitchen", "Sports & Outdoors", "Books", "Electronics",
         "Toys & Games", "Beauty", "Kids' Electronics", "Men's Fashion")
NODES = ("Women", "Men", "Girls", "Boys", "Kitchen & Dining", "Cutlery & Knife Accessories", "Dance",
         "Other Sports", "Literature & Fiction", "Camera & Photo", "Women's Watches", "Accessories",
         "Handbags & Wallets", "Baby", "Novelty & More", "Clothing")


def _asin(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(10))


def _text(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    if words and rng.random() < 0.15:  # double quotes, markup, backslashes, emoji in some texts
        words[rng.randrange(len(words))] = rng.choice(RARE)
    return " ".join(words)


def _path_pool(n: int = 3000, seed: int = 7) -> list[list[str]]:
    """A category tree's root-to-node paths (real catalogs repeat a few thousand paths)."""
    rng = random.Random(seed)
    pool = []
    for _ in range(n):
        path = [rng.choice(ROOTS)]
        for _ in range(rng.randint(0, 4)):
            path.append(rng.choice(NODES) if rng.random() < 0.7 else _text(rng, 1, 3).title())
        pool.append(path)
    return pool


POOL = _path_pool()


def make_record(rng: random.Random, i: int) -> dict:
    rec: dict = {"asin": f"B{i:09d}"}
    if rng.random() < 0.8:
        rel = {"also_bought": [_asin(rng) for _ in range(rng.randint(0, 100))]}
        if rng.random() < 0.6:
            rel["also_viewed"] = [_asin(rng) for _ in range(rng.randint(0, 40))]
        if rng.random() < 0.3:
            rel["bought_together"] = [_asin(rng) for _ in range(rng.randint(1, 3))]
        rec["related"] = rel
    if rng.random() < 0.85:
        rec["title"] = _text(rng, 2, 14)
    if rng.random() < 0.7:
        rec["price"] = round(rng.uniform(0.5, 500), 2)
    if rng.random() < 0.75:
        rec["salesRank"] = {rng.choice(ROOTS): rng.randint(1, 3_000_000)}
    if rng.random() < 0.95:
        rec["imUrl"] = (f"http://ecx.images-amazon.com/images/I/{_asin(rng)}._SY300_.jpg" if rng.random() < 0.97
                        else "http://g-ecx.images-amazon.com/images/G/01/x-site/icons/no-img-sm._CB192198896_.gif")
    if rng.random() < 0.4:
        rec["brand"] = _text(rng, 1, 2)
    rec["categories"] = [list(POOL[min(int(rng.paretovariate(1.0)) - 1, len(POOL) - 1)]
                              if rng.random() < 0.5 else rng.choice(POOL))
                         for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.6:
        desc = _text(rng, 5, 120)
        if rng.random() < 0.1:
            desc = "<p>" + desc + "</p><br/>Features:\n\t- " + _text(rng, 3, 10)
        rec["description"] = desc
    return rec


def make_line(rng: random.Random, i: int) -> str:
    r = rng.random()
    if r < 0.004:  # malformed: cut in the middle
        line = repr(make_record(rng, i))
        return line[: rng.randint(1, max(2, len(line) - 1))]
    if r < 0.006:
        return "{'asin': 'B" + str(i) + "', 'title': oops}"
    line = repr(make_record(rng, i))
    if r < 0.05:  # Python 2 style: non-ASCII as escapes
        line = line.encode("ascii", "backslashreplace").decode("ascii")
    return line


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` lines to ``path`` (through a temporary name, so an interrupted run leaves no file)."""
    rng = random.Random(seed)
    part = path.with_name(path.name + ".part")
    with gzip.open(part, "wt", encoding="utf-8", compresslevel=1) as fh:
        for i in range(n):
            j = i if rng.random() > 0.002 else max(0, i - rng.randint(1, 50))  # a few duplicated ids
            fh.write(make_line(rng, j))
            fh.write("\n")
    part.replace(path)


def worker(path: str, chunk_size: int, engine: str, inflate: str) -> dict:
    from prodlib import catalog as C
    from prodlib.catalog import ReadReport, iter_amazon2014

    if inflate == "zlib":
        C._inflate_module = lambda: zlib
    rep = ReadReport("bench")
    c0 = time.process_time()
    t0 = time.perf_counter()
    rows = 0
    for chunk in iter_amazon2014(path, chunk_size=chunk_size, report=rep, engine=engine):
        rows += len(chunk)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"records": rep.records_read, "kept": rep.kept, "rows": rows, "seconds": dt, "cpu": cpu,
            "records_per_s": rep.records_read / dt, "inflate": C._inflate_module().__name__,
            "records_per_cpu_s": rep.records_read / cpu, "maxrss_mb": maxrss_kb / 1024,
            "skipped": dict(rep.skipped), "consistent": rep.consistent}


def run_worker(path: Path, chunk_size: int, engine: str = "auto", inflate: str = "auto") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", str(path), "--chunk", str(chunk_size), "--engine", engine,
           "--inflate", inflate]
    cmd = ["taskset", "-c", "0", *cmd] if shutil.which("taskset") else cmd  # one core
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_paths(path: Path, n: int) -> tuple[Counter, dict[str, float]]:
    from prodlib.catalog import _c_scanner, _fast_2014, _parse_literal

    scan = _fast_2014().fullmatch
    raw = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            raw.append(line)
            if len(raw) >= n:
                break
    lines = [r.decode("utf-8").strip() for r in raw]
    paths: Counter = Counter()
    rates: dict[str, float] = {}
    mod = _c_scanner()
    if mod is not None:
        buf = b"".join(raw)
        t0 = time.process_time()
        items, _ = mod.scan(buf, True)
        rates["C scanner"] = len(lines) / (time.process_time() - t0)
        paths["C scanner"] = sum(1 for f in items[::6] if f != -1)
    t0 = time.process_time()
    for line in lines:
        if scan(line) is not None:  # the record scanner: validates the line, captures the five fields
            paths["regex scanner"] += 1
            continue
        try:
            paths["exact " + _parse_literal(line)[2]] += 1
        except (ValueError, SyntaxError):
            paths["malformed"] += 1
    rates["regex scanner (+ exact path for the rest)"] = len(lines) / (time.process_time() - t0)
    t0 = time.process_time()
    for line in lines:
        try:
            ast.literal_eval(line)
        except (ValueError, SyntaxError):
            pass
    rates["ast.literal_eval"] = len(lines) / (time.process_time() - t0)
    return paths, rates


def inflater_side_effect(path: Path, n: int = 5000, modules: tuple[str, ...] = ("zlib_ng.zlib_ng", "isal.isal_zlib")
                         ) -> None:
    """The regex scanner's speed before and after one inflate call with each module, in a fresh process."""
    for name in modules:
        code = f"""
import gzip, importlib, sys, time
sys.path.insert(0, {str(ROOT)!r})
from prodlib.catalog import _fast_2014
try:
    mod = importlib.import_module({name!r})
except ImportError:
    print("not installed"); raise SystemExit
with gzip.open({str(path)!r}, "rt", encoding="utf-8") as fh:
    lines = [next(fh).strip() for _ in range({n})]
fm = _fast_2014().fullmatch
def t():
    best = 9.0
    for _ in range(3):
        t0 = time.process_time()
        for line in lines:
            fm(line)
        best = min(best, time.process_time() - t0)
    return best
before = t()
mod.decompressobj(wbits=31).decompress(open({str(path)!r}, "rb").read(1 << 20))
print(f"{{t() / before:.2f}}x the time after one call")
"""
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        print(f"  regex scanner after inflating with {name}: {out.stdout.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=None, help="write the generated file here (kept)")
    ap.add_argument("--chunk-sizes", default="10000,50000,200000")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the default configuration")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=50_000, help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--inflate", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.chunk, args.engine, args.inflate)))
        return

    tmp = tempfile.TemporaryDirectory()
    big = args.out or Path(tmp.name) / "metadata_bench.json.gz"
    small = Path(tmp.name) / "metadata_bench_quarter.json.gz"
    t0 = time.perf_counter()
    if not big.exists():
        generate(big, args.lines)
    generate(small, args.lines // 4, seed=1)
    print(f"generated {args.lines:,} + {args.lines // 4:,} lines in {time.perf_counter() - t0:.0f} s "
          f"({big.stat().st_size / 1e6:.0f} MB gz)")

    paths, rates = parse_paths(big, 20_000)  # CPU time of this process
    print("parse paths on the first 20,000 lines: " + ", ".join(f"{k} {v / 20_000:.1%}" for k, v in paths.items()))
    print("scanners alone (no decompression, no table), lines/CPU-s: "
          + ", ".join(f"{k} {v:,.0f}" for k, v in rates.items()))

    print("inflater side effect on the rest of the process (1.00x: none):")
    inflater_side_effect(big)

    rows = []
    for i in range(args.repeats):
        rows.append((f"C, default #{i + 1}", args.lines, 50_000, run_worker(big, 50_000)))
    rows.append(("Python scanner", args.lines, 50_000, run_worker(big, 50_000, engine="python")))
    rows.append(("C, zlib", args.lines, 50_000, run_worker(big, 50_000, inflate="zlib")))
    rows.append(("Python, zlib", args.lines, 50_000, run_worker(big, 50_000, engine="python", inflate="zlib")))
    for cs in [int(c) for c in args.chunk_sizes.split(",")]:
        if cs != 50_000:
            rows.append(("C, default", args.lines, cs, run_worker(big, cs)))
    rows.append(("C, default", args.lines // 4, 50_000, run_worker(small, 50_000)))
    print(f"\n{'configuration':<16} {'inflate':>8} {'lines':>10} {'chunk':>8} {'kept':>10} {'wall s':>7} "
          f"{'records/s':>10} {'rec/CPU-s':>10} {'peak RSS MB':>12}")
    for name, n, cs, r in rows:
        print(f"{name:<16} {r['inflate'].split('.')[-1]:>8} {n:>10,} {cs:>8,} {r['kept']:>10,} {r['seconds']:>7.1f} "
              f"{r['records_per_s']:>10,.0f} {r['records_per_cpu_s']:>10,.0f} {r['maxrss_mb']:>12.0f}")
    default = sorted(r["records_per_s"] for name, _, _, r in rows if name.startswith("C, default #"))
    py = next(r for name, _, _, r in rows if name == "Python scanner")
    print(f"\nC scanner, default configuration: median {default[len(default) // 2]:,.0f} records/s "
          f"(min {default[0]:,.0f}, max {default[-1]:,.0f}); pure-Python scanner {py['records_per_s']:,.0f} "
          f"records/s ({default[len(default) // 2] / py['records_per_s']:.1f}x)")
    r = rows[0][3]
    same = all(x[3]["kept"] == r["kept"] and x[3]["skipped"] == r["skipped"] for x in rows if x[1] == args.lines)
    print(f"skipped (first run): {r['skipped']}; kept + skipped == read: {r['consistent']}; "
          f"every configuration kept and skipped the same records: {same}")
    print(f"target: >= 50,000 records/s on one core (each run pinned to CPU 0); load average during the runs: "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (rec/CPU-s is the process's own time)")
    tmp.cleanup()


if __name__ == "__main__":
    main()
