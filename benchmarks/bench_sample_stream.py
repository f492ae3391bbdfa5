"""Benchmark: the streaming sample of the 2014 reader (``read_amazon2014(..., sample=N)``, what notebook 01 of the
``full`` profile does) on generated 2014 files of growing size: peak memory must not grow with the file, time
should grow linearly.

Writes (or reuses) gzip files in the 2014 format with ``bench_read_2014.generate`` (realistic lines: also_bought
lists, HTML, escapes, duplicated ids, malformed lines), then reads each in a fresh process with the paper's filters
(title, description, image URL) and prints lines, sampled products, wall and CPU seconds (CPU time is what to
compare on a shared machine), lines per CPU second and peak RSS.

    .venv/bin/python benchmarks/bench_sample_stream.py [--lines 500000,2000000] [--sample 119063] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_read_2014 import generate  # noqa: E402 (the same generated lines as the reader benchmark)


def read(path: str, sample: int, workers: int) -> None:
    """In a fresh process: draw the sample while streaming, print one JSON line of figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from prodlib.catalog import read_amazon2014

    start = time.perf_counter()
    res = read_amazon2014(path, require_title=True, require_description=True, require_image=True,
                          sample=sample or None, seed=42, workers=workers)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"records": res.report.records_read, "sampled": len(res.table), "seconds": seconds,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "notes": [n for n in res.report.notes if n.startswith("seeded sample")],
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", default="500000,2000000", help="comma-separated file sizes in lines")
    ap.add_argument("--sample", type=int, default=119_063,
                    help="products to sample (the paper's 119,063); 0: the whole table (no sample)")
    ap.add_argument("--workers", type=int, default=1, help="parser processes (1: the peak RSS is the whole cost)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the files are kept")
    ap.add_argument("--read", nargs=3, metavar=("FILE", "SAMPLE", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read:
        return read(args.read[0], int(args.read[1]), int(args.read[2]))
    print(f"{'lines':>10} {'records':>10} {'sampled':>8} {'seconds':>8} {'CPU s':>7} {'lines/CPU s':>11} "
          f"{'RSS MiB':>8} {'worker RSS MiB':>14}  note")
    for n in (int(x) for x in args.lines.split(",")):
        path = args.dir / f"prodlib_bench_2014_{n}.json.gz"
        if not path.exists():
            generate(path, n)
        out = subprocess.run([sys.executable, __file__, "--read", str(path), str(args.sample), str(args.workers)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{n:>10,} {r['records']:>10,} {r['sampled']:>8,} {r['seconds']:>8.1f} {r['cpu_seconds']:>7.1f} "
              f"{n / r['cpu_seconds']:>11,.0f} {r['rss_mib']:>8.0f} {r['worker_rss_mib']:>14.0f}  "
              f"{'; '.join(r['notes'])}", flush=True)


if __name__ == "__main__":
    main()
