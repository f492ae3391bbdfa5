"""Naive end-to-end fine-tuning vs cached-tail training of the ResNet-50 image model (notebook 04, section 4.4).

Both start from the same (seeded) weights and train the same layers for the same number of epochs on the same
real product images (Flipkart sample); the cached path first computes the frozen part once per image. Reports
the one-time caching cost, per-epoch time and images/s of each path, the per-epoch speed-up and the validation
micro-F1 of both after equal epochs.

    .venv/bin/python benchmarks/bench_image_cache.py --n 256 --size 128 --epochs 3 --k 40
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_image_cache.py ...

Data: ``--csv`` (default ``$PRODLIB_FLIPKART`` or ``../shared/data/flipkart1050``) with ``images/<uniq_id>.jpg``.
Results are printed and written to ``benchmarks/results/image_cache.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _data(root: Path, n: int, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    from prodlib.labels import build_labels, label_matrix

    csv = next(root.glob("*.csv"))
    table = pd.read_csv(csv)
    table["path"] = [str(root / "images" / f"{u}.jpg") for u in table["uniq_id"]]
    table = table[[Path(p).is_file() for p in table["path"]]]
    table = table.sample(n=min(n, len(table)), random_state=seed)
    paths = table["product_category_tree"].str.strip('[]"').str.split(" >> ")
    # the first two levels (the leaf names are product titles in this catalog)
    cats = pd.Series([[p[:2]] for p in paths], index=table.index)
    result = build_labels(cats, "flat", 8)
    kept = result.labels.index
    return table.loc[kept, "path"].tolist(), label_matrix(result.labels, result.classes), result.classes


class _EpochTimer:
    def __init__(self) -> None:
        self.times: list[float] = []

    def make(self):  # a keras callback made lazily (keras imported after the backend is chosen)
        import keras

        timer = self

        class T(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.times.append(time.perf_counter() - self._t)

        return T()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "flipkart1050"
    default_root = os.environ.get("PRODLIB_FLIPKART", str(shared))
    ap.add_argument("--root", default=default_root)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--k", default="40", help="trainable layers K (an integer)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "image_cache.json"))
    args = ap.parse_args()

    import keras

    from prodlib import metrics as M
    from prodlib.image_input import ImageSequence
    from prodlib.models import image_cnn as R
    from prodlib.train import predict_proba, set_seed

    paths, y, classes = _data(Path(args.root), args.n, args.seed)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(paths))
    n_val = max(len(paths) // 5, 1)
    val_idx, tr_idx = order[:n_val], order[n_val:]
    p_tr, p_val = [paths[i] for i in tr_idx], [paths[i] for i in val_idx]
    y_tr, y_val = y[tr_idx].astype("float32"), y[val_idx]
    k = int(args.k)
    print(f"backend {keras.backend.backend()}; {len(p_tr)} train / {len(p_val)} val images, {len(classes)} classes, "
          f"{args.size} px, K={k}, {args.epochs} epochs, batch {args.batch}")

    def fresh():
        set_seed(args.seed)
        model, _ = R.build_image_model(len(classes), args.size, trainable_layers=k, weights="none")
        return model

    # --- naive: decode + full forward every epoch, backprop into the last K layers -----------------------
    model = fresh()
    w0 = model.get_layer("image_head").get_weights()[0].copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    seq = ImageSequence(p_tr, y_tr, image_size=args.size, batch_size=args.batch, shuffle=True, seed=args.seed,
                        workers=2)
    timer = _EpochTimer()
    model.fit(seq, epochs=args.epochs, callbacks=[timer.make()], verbose=0)
    naive_times = timer.times
    f1_naive = M.micro_f1(y_val, predict_proba(model, ImageSequence(p_val, image_size=args.size, batch_size=64)))

    # --- cached: frozen part once, then the tail only -------------------------------------------------------
    model = fresh()
    assert np.array_equal(w0, model.get_layer("image_head").get_weights()[0]), "the two runs must start equal"
    frozen, tail = R.split_frozen_tail(model, k)
    t0 = time.perf_counter()
    f_tr = R.cached_features(frozen, ImageSequence(p_tr, image_size=args.size, batch_size=64, workers=2),
                             progress=False)
    cache_s = time.perf_counter() - t0
    f_val = R.cached_features(frozen, ImageSequence(p_val, image_size=args.size, batch_size=64), progress=False)
    tail.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    timer = _EpochTimer()
    tail.fit(f_tr, y_tr, batch_size=args.batch, epochs=args.epochs, shuffle=True, callbacks=[timer.make()], verbose=0)
    cached_times = timer.times
    f1_cached = M.micro_f1(y_val, predict_proba(tail, f_val))

    def steady(times: list[float]) -> float:  # epochs after the first (which includes tracing/compilation)
        return float(np.mean(times[1:])) if len(times) > 1 else float(times[0])

    n = len(p_tr)
    res = {
        "backend": keras.backend.backend(), "images_train": n, "images_val": len(p_val), "size": args.size,
        "k": k, "cut_at": R.cut_layer_name(model, k), "epochs": args.epochs, "batch": args.batch,
        "cache_seconds": round(cache_s, 2), "cache_images_per_s": round(n / cache_s, 1),
        "naive_epoch_seconds": [round(t, 2) for t in naive_times],
        "cached_epoch_seconds": [round(t, 2) for t in cached_times],
        "naive_images_per_s": round(n / steady(naive_times), 1),
        "cached_images_per_s": round(n / steady(cached_times), 1),
        "per_epoch_speedup": round(steady(naive_times) / steady(cached_times), 2),
        "break_even_epochs": round(cache_s / max(steady(naive_times) - steady(cached_times), 1e-9), 2),
        "val_micro_f1_naive": round(100 * f1_naive, 1), "val_micro_f1_cached": round(100 * f1_cached, 1),
        "load_average": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    print(json.dumps(res, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps([*old, res], indent=2) + "\n")


if __name__ == "__main__":
    main()
