"""Benchmark: the per-sample training rates the *Reproduce it yourself* chapter computes the ``full`` profile's time
from: title and description Kim-CNNs (text samples/s) and the image model at 224 px (images/s), at the profile's
settings (sequence lengths, embedding width, filters, batch sizes, trainable layers, mixed precision on a GPU),
on synthetic inputs so that no data is needed. The machine is named in the result.

    KERAS_BACKEND=jax python benchmarks/bench_rates.py [--profile full] [--text-samples 4096] [--images 256]
        [--save benchmarks/rates.json]     # adds (or replaces) this machine's entry

Each rate is the mean of ``--epochs`` timed epochs after one warm-up epoch (compilation). Weights do not change
the speed, so the image backbone starts from random weights (no download).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def machine() -> str:
    """``<GPU names>; <CPU model> (<n> cores)``."""
    from prodlib.colab import detect_gpus
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpus = ", ".join(detect_gpus()) or "no GPU"
    return f"{gpus}; {cpu} ({os.cpu_count()} cores)"


def rate(model, x: np.ndarray, y: np.ndarray, batch: int, epochs: int) -> float:
    """Samples per second of ``model.fit`` on ``x``, after one warm-up epoch on two batches."""
    import keras
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    return len(x) * epochs / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--text-samples", type=int, default=4096)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--classes", type=int, default=122, help="output classes (the paper's 122)")
    ap.add_argument("--save", type=Path, default=None, help="JSON file of measured machines to update")
    args = ap.parse_args()

    import keras

    from prodlib.accelerate import configure_accelerators
    from prodlib.config import get_profile
    from prodlib.models.image_cnn import build_image_model
    from prodlib.models.kim_cnn import kim_cnn_from_profile
    from prodlib.train import set_seed

    prof = get_profile(args.profile)
    notes = configure_accelerators(prof)  # mixed precision where the profile asks and a GPU is present
    set_seed(0)
    rng = np.random.default_rng(0)
    rates: dict[str, float] = {}
    for name, seq_len in (("title", prof.title_len), ("description", prof.desc_len)):
        x = rng.integers(2, prof.max_vocab, size=(args.text_samples, seq_len)).astype("int32")
        y = (rng.random((args.text_samples, args.classes)) < 0.03).astype("float32")
        model = kim_cnn_from_profile(prof, prof.max_vocab, seq_len, args.classes)
        rates[f"{name}_samples_per_s"] = rate(model, x, y, prof.text_batch_size, args.epochs)
        print(f"{name}: {rates[f'{name}_samples_per_s']:,.1f} samples/s", flush=True)
    size = prof.image_size
    x = rng.normal(0, 60, size=(args.images, size, size, 3)).astype("float32")
    y = (rng.random((args.images, args.classes)) < 0.03).astype("float32")
    model, _ = build_image_model(args.classes, size, backbone_name=prof.image_backbone, weights="none",
                                 trainable_layers=prof.trainable_layers, download=False)
    rates[f"images_per_s_{size}px"] = rate(model, x, y, prof.image_batch_size, args.epochs)
    print(f"images at {size} px: {rates[f'images_per_s_{size}px']:,.2f} images/s", flush=True)
    entry = {"machine": machine(), "backend": keras.backend.backend(), "keras": keras.__version__,
             "profile": prof.name, "measured": date.today().isoformat(), "accelerators": str(notes),
             "rates": {k: round(v, 2) for k, v in rates.items()}}
    print(json.dumps(entry, indent=1))
    if args.save:
        saved = json.loads(args.save.read_text()) if args.save.exists() else []
        saved = [e for e in saved if (e["machine"], e["backend"]) != (entry["machine"], entry["backend"])] + [entry]
        args.save.write_text(json.dumps(saved, indent=1) + "\n")
        print(f"saved to {args.save}")


if __name__ == "__main__":
    main()
