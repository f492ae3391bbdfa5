#!/usr/bin/env bash
# Time the image model's training step at the paper's 224 px on a GPU machine WITHOUT TensorFlow
# (KERAS_BACKEND=jax): end-to-end fine-tuning of the last 40 layers vs the cached tail, synthetic images so that
# no data needs to travel. Prints images/s of each path; nothing else is written. Notebook 04, section 4.4.
#   bash benchmarks/gpu_image_step.sh            # needs jax[cuda], keras, pillow, prodlib importable
set -euo pipefail
export KERAS_BACKEND=jax
python - <<'PY'
import sys, time, importlib.abc

class _NoTF(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("tensorflow deliberately unavailable")

sys.meta_path.insert(0, _NoTF())
import numpy as np, jax, keras
from prodlib.models import resnet as R
from prodlib.train import set_seed

print("backend", keras.backend.backend(), "devices", jax.devices())
size, n, batch, k, n_classes = 224, 1024, 64, 40, 122
rng = np.random.default_rng(0)
x = rng.normal(0, 60, size=(n, size, size, 3)).astype("float32")
y = (rng.random((n, n_classes)) < 0.03).astype("float32")

def timed_fit(model, inputs, label):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(inputs[:batch * 2], y[:batch * 2], batch_size=batch, epochs=1, verbose=0)  # compile
    t = time.perf_counter()
    model.fit(inputs, y, batch_size=batch, epochs=2, verbose=0)
    dt = (time.perf_counter() - t) / 2
    print(f"{label}: {n / dt:,.0f} images/s ({dt:.2f} s per epoch of {n})")
    return dt

set_seed(0)
model, _ = R.build_image_model(n_classes, size, trainable_layers=k, weights="none")
naive = timed_fit(model, x, "end to end (K=40)")
frozen, tail = R.split_frozen_tail(model, k)
t = time.perf_counter()
feats = R.cached_features(frozen, x, progress=False)
cache = time.perf_counter() - t
print(f"caching the frozen part: {n / cache:,.0f} images/s ({cache:.2f} s once)")
cached = timed_fit(tail, feats, "cached tail (K=40)")
print(f"per-epoch speed-up {naive / cached:.1f}x")
PY
