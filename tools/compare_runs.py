"""Compare the numbers of two run folders of one profile: every value of Tables 1 and 3 (F1, intervals, tuned
F1, seeds), each classifier's validation/test micro-F1 and best epoch, the test micro-F1 (threshold 0.5) and
the probability sum of every saved prediction file, and notebook 06's wrong-product counts.

    python tools/compare_runs.py RUNS_A RUNS_B PROFILE      # e.g. /tmp/before/runs runs sample

Used to check that a refactoring leaves a run's numbers unchanged. Exit status 1 when an F1 value differs.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from prodlib.labels import label_matrix


def numbers(root: str, profile: str) -> dict[str, float]:
    run = Path(root) / profile
    out: dict[str, float] = {}
    fusion = json.loads((run / "05_fusion" / "metrics.json").read_text())
    for table in ("table1", "table3"):
        for row in fusion[table]:
            out.update({f"{table}.{row['model']}.{k}": v for k, v in row.items() if isinstance(v, int | float)})
    for stage in ("02_title", "03_description", "04_image"):
        m = json.loads((run / stage / "metrics.json").read_text())
        out.update({f"{stage}.test_f1": m["test"]["micro_f1"], f"{stage}.val_f1": m["val"]["micro_f1"],
                    f"{stage}.best_epoch": m["best_epoch"]})
    catalog = pd.read_json(run / "01_data" / "catalog.jsonl", lines=True, dtype={"id": str}).set_index("id")
    classes = json.loads((run / "01_data" / "classes.json").read_text())
    for path in sorted(run.glob("0[2-5]*/predictions_*.npz")):
        with np.load(path) as data:
            y = label_matrix(catalog.loc[data["ids"].tolist(), "labels"], classes) > 0
            pred = data["probs"] >= 0.5
            tp, fp, fn = (pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum()
            out[f"{path.parent.name}/{path.name}.f1"] = float(2 * tp / (2 * tp + fp + fn))
            out[f"{path.parent.name}/{path.name}.sum"] = float(np.asarray(data["probs"], np.float64).sum())
    errors = run / "06_errors" / "metrics.json"
    if errors.exists():
        out.update({f"06.wrong.{k}": v for k, v in json.loads(errors.read_text())["wrong_products"].items()})
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    a, b = numbers(argv[0], argv[2]), numbers(argv[1], argv[2])
    differ = [k for k in sorted(set(a) | set(b)) if not (a.get(k) == b.get(k) or (
        isinstance(a.get(k), float) and isinstance(b.get(k), float) and math.isnan(a[k]) and math.isnan(b[k])))]
    for key in differ:
        print(f"differs: {key}: {a.get(key)} -> {b.get(key)}")
    print(f"{len(set(a) | set(b))} values compared, {len(differ)} differ")
    return 1 if any(not k.endswith(".sum") for k in differ) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
