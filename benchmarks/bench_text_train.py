"""Training throughput of ``prodlib.train.fit_classifier`` against a bare Keras ``model.fit`` (issue 4).

Same Kim-CNN, same title-like arrays (57 tokens), same epochs; the two run in alternating order ``--repeats``
times within one process (CPU speed drifts between runs on a shared machine, so only within-run ratios
mean anything). ``fit_classifier`` adds a validation prediction and micro-F1 per epoch plus early stopping;
the bare fit is measured both without validation and with ``validation_data`` (which Keras evaluates once per
epoch, as fit_classifier predicts once per epoch). Target: ratio >= 0.9.

    python benchmarks/bench_text_train.py [--samples 4000] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def make_data(n: int, seq_len: int, vocab: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(2, vocab, size=(n, seq_len)).astype("int32")
    y = np.stack([(x % (c + 7) == 0).sum(axis=1) > seq_len // (c + 7) for c in range(n_classes)], 1)
    return x, y.astype("float32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--val", type=int, default=600)
    ap.add_argument("--seq-len", type=int, default=57)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import keras

    from prodlib.models.kim_cnn import build_kim_cnn
    from prodlib.train import fit_classifier, set_seed

    x, y = make_data(args.samples, args.seq_len, args.vocab, args.classes)
    xv, yv = make_data(args.val, args.seq_len, args.vocab, args.classes, seed=1)

    def fresh():
        set_seed(0)
        return build_kim_cnn(args.vocab, args.seq_len, args.classes, embedding_dim=100, filters=100)

    def bare(validate: bool) -> float:
        model = fresh()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, shuffle=True,
                  validation_data=(xv, yv) if validate else None)
        return args.samples * args.epochs / (time.perf_counter() - t0)

    def ours() -> float:
        model = fresh()
        # patience > epochs: every run trains all epochs, like the bare fit
        res = fit_classifier(model, x, y, xv, yv, epochs=args.epochs, batch_size=args.batch_size,
                             patience=args.epochs + 1, verbose=0)
        return res.samples_per_s

    order = [("bare fit", lambda: bare(False)), ("bare fit + validation_data", lambda: bare(True)),
             ("fit_classifier", ours)]
    speeds: dict[str, list[float]] = {name: [] for name, _ in order}
    print(f"backend {keras.backend.backend()}, {args.samples} samples x {args.seq_len} tokens, {args.val} val, "
          f"{args.epochs} epochs, batch {args.batch_size}, {args.repeats} repeats (alternating order)")
    for rep in range(args.repeats):
        seq = order if rep % 2 == 0 else order[::-1]
        for name, fn in seq:
            speeds[name].append(fn())
            print(f"  repeat {rep + 1}: {name:<28} {speeds[name][-1]:8.0f} samples/s", flush=True)
    med = {name: statistics.median(v) for name, v in speeds.items()}
    print("\nmedian samples/s")
    for name, v in med.items():
        print(f"  {name:<28} {v:8.0f}")
    print(f"ratio fit_classifier / bare fit                 = {med['fit_classifier'] / med['bare fit']:.3f}")
    print(f"ratio fit_classifier / bare fit + validation    = "
          f"{med['fit_classifier'] / med['bare fit + validation_data']:.3f}")


if __name__ == "__main__":
    main()
