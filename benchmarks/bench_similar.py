"""Chunked cosine retrieval (``prodlib.similar.nearest``, notebook 07): time and peak memory at the ``full``
profile's index size, for several chunk budgets, against one unchunked similarity matrix.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_similar.py --queries 1000 --index 90000 --dim 448

Random unit vectors (the timing does not depend on the values); peak memory is what ``tracemalloc`` sees numpy
allocate during the call. Per-query time extrapolates to the full profile's ~24,000 test queries. Results are
printed and written to ``benchmarks/results/similar.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np

from prodlib.similar import nearest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--index", type=int, default=90_000)
    parser.add_argument("--dim", type=int, default=448)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--budgets-mb", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    q = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    x = rng.normal(size=(args.index, args.dim)).astype(np.float32)
    rows, reference = [], None
    full_mb = 4 * args.queries * args.index / 2**20
    for label, budget in [*((f"{mb} MB chunks", mb << 20) for mb in args.budgets_mb),
                          ("one matrix", 1 << 62)]:
        tracemalloc.start()
        t0 = time.perf_counter()
        pos, _ = nearest(q, x, args.k, max_bytes=budget)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        reference = pos if reference is None else reference
        rows.append({"setting": label, "seconds": round(seconds, 2), "peak_mb": round(peak, 1),
                     "ms_per_query": round(1000 * seconds / args.queries, 2),
                     "same_neighbours": bool((pos == reference).all())})
        print(f"{label:>14}: {seconds:6.2f} s, peak {peak:8.1f} MB, {rows[-1]['ms_per_query']} ms/query, "
              f"same neighbours as the first: {rows[-1]['same_neighbours']}")
    print(f"(the unchunked similarity matrix alone is {full_mb:.0f} MB for {args.queries:,} queries)")
    out = Path(__file__).parent / "results" / "similar.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
