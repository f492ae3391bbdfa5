"""The ResNet-50 image classifier (prodlib.models.resnet): layer freezing, weights fallback, the cached
frozen/tail split, training through prodlib.train with bad images, and the JAX backend without TensorFlow."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodlib.config import get_profile
from prodlib.dataset import Dataset

keras = pytest.importorskip("keras")
R = pytest.importorskip("prodlib.models.resnet")
CL = pytest.importorskip("prodlib.classifiers")

SIZE = 32
N_CLASSES = 3


@pytest.fixture(scope="module")
def model():
    from prodlib.train import set_seed

    set_seed(0)
    m, info = R.build_image_model(N_CLASSES, SIZE, weights="none")
    assert not info.pretrained and "random init" in info.source
    return m


def test_shapes_and_trainable_counts(model):
    backbone = R.backbone_layers(model)
    assert len(backbone) == 176 and model.output.shape[-1] == N_CLASSES
    x = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    p = np.asarray(model.predict(x, verbose=0))
    assert p.shape == (2, N_CLASSES) and np.all((p > 0) & (p < 1))
    assert R.set_trainable_layers(model, 0) == 0
    assert [w.name for w in model.trainable_weights] == ["kernel", "bias"]  # only the head
    assert R.set_trainable_layers(model, 40) == 40
    assert sum(layer.trainable for layer in backbone) == 40
    assert backbone[-40].name == "conv4_block6_2_conv" and not backbone[-41].trainable
    table = R.trainable_layer_table(model)
    assert len(table) == 40 and table["has_weights"].sum() == 24
    assert set(table["block"]) == {"conv4_block6", "conv5_block1", "conv5_block2", "conv5_block3", "avg_pool"}
    assert len(model.trainable_weights) == 2 * 24 + 2
    assert R.set_trainable_layers(model, "all") == 176
    assert len(model.trainable_weights) == len([w for w in model.weights if "moving" not in w.path])
    with pytest.raises(ValueError, match="0..176"):
        R.set_trainable_layers(model, 500)
    with pytest.raises(ValueError, match="'all'"):
        R.set_trainable_layers(model, "most")
    R.set_trainable_layers(model, 40)


def test_cut_points_are_block_boundaries(model):
    cuts = {k: R.cut_layer_name(model, k) for k in (40, 37, 33, 10, 1, 0)}
    assert cuts == {40: "conv4_block5_out", 37: "conv4_block5_out", 33: "conv4_block6_out",
                    10: "conv5_block2_out", 1: "conv5_block3_out", 0: "avg_pool"}


@pytest.mark.parametrize("k", [40, 0])
def test_cached_tail_equals_full_model(model, k):
    frozen, tail = R.split_frozen_tail(model, k)
    assert not frozen.trainable_weights
    assert len(tail.trainable_weights) == len(model.trainable_weights)
    x = np.random.default_rng(1).normal(0, 50, size=(4, SIZE, SIZE, 3)).astype("float32")
    full = np.asarray(model.predict(x, verbose=0))
    feats = R.cached_features(frozen, x)
    assert np.allclose(np.asarray(tail.predict(feats, verbose=0)), full, atol=1e-5)
    R.set_trainable_layers(model, 40)


def test_all_trainable_has_no_frozen_part(model):
    with pytest.raises(ValueError, match="no frozen part"):
        R.split_frozen_tail(model, "all")
    R.set_trainable_layers(model, 40)


def test_weights_file_is_loaded(model, tmp_path, monkeypatch):
    """Save random weights in Keras's legacy .h5 layout (the layout of the ImageNet file) and load them."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    backbone = keras.applications.ResNet50(include_top=False, pooling="avg", weights=None,
                                           input_shape=(SIZE, SIZE, 3))
    path = tmp_path / R.IMAGENET_FILE
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, backbone)
    m, info = R.build_image_model(N_CLASSES, SIZE, weights="imagenet", weights_path=path, download=False)
    assert info.pretrained and info.path == str(path) and "weights_path" in info.source
    w_loaded = m.get_layer("conv1_conv").get_weights()[0]
    assert np.array_equal(w_loaded, backbone.get_layer("conv1_conv").get_weights()[0])
    # the environment variable and the Keras cache are found the same way
    monkeypatch.setenv(R.WEIGHTS_ENV, str(path))
    assert R.find_imagenet_weights(download=False) == (path, f"configured file (${R.WEIGHTS_ENV})")
    monkeypatch.delenv(R.WEIGHTS_ENV)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    (tmp_path / "kh" / "models").mkdir(parents=True)
    os.link(path, tmp_path / "kh" / "models" / R.IMAGENET_FILE)
    assert R.find_imagenet_weights(download=False)[1] == "Keras cache"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        R.find_imagenet_weights(tmp_path / "nope.h5")


class _Hang(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - never answers within the client's timeout
        time.sleep(3)


def test_weights_fallback_without_network_is_quick(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv(R.WEIGHTS_ENV, raising=False)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        t0 = time.perf_counter()
        path, why = R.find_imagenet_weights(timeout=0.3, url=f"http://127.0.0.1:{srv.server_address[1]}/w.h5")
        assert path is None and "no answer within" in why.lower() and time.perf_counter() - t0 < 2.5
    finally:
        srv.shutdown()
        srv.server_close()
    # a refused connection (the usual offline case) is just as harmless, and build_image_model falls back
    path, why = R.find_imagenet_weights(None, download=True, timeout=0.5, url="http://127.0.0.1:9/none.h5")
    assert path is None and "could not download" in why
    assert not list((tmp_path / "empty" / "models").glob("*.part"))  # no half-written file left behind
    _, info = R.build_image_model(N_CLASSES, SIZE, trainable_layers=0, weights="imagenet", download=False)
    assert not info.pretrained and info.source.startswith("random init (ImageNet weights unavailable")
    assert ":::{warning}" in info.admonition() and "admonition warning" in info._repr_html_()


def _tiny_dataset(tmp_path: Path, n: int = 36) -> Dataset:
    """Two visual classes (red / blue images) plus a constant class; some images missing or corrupt."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        red = i % 2 == 0
        path = tmp_path / f"p{i}.jpg"
        arr = np.full((40, 40, 3), (220, 20, 20) if red else (20, 20, 220), np.uint8)
        arr = np.clip(arr + rng.integers(-20, 20, arr.shape), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(path)
        image: str | None = str(path)
        if i in (3, 10):
            path.write_bytes(path.read_bytes()[:150])  # truncated after notebook 01 validated it
        if i in (5, 12, 31):
            image = None
        if i == 7:
            image = str(tmp_path / "vanished.jpg")
        labels = ["Red" if red else "Blue", "All"]
        rows.append({"id": f"p{i}", "title": "", "description": "", "category_paths": [labels], "image": image,
                     "source": "test", "labels": labels})
    table = pd.DataFrame(rows).set_index("id", drop=False)
    ids = list(table.index)
    splits = {"train": ids[:20], "val": ids[20:28], "test": ids[28:]}
    return Dataset(table=table, classes=["All", "Blue", "Red"], splits=splits, profile="smoke")


def test_training_skips_bad_images_and_fills_prevalence(tmp_path):
    ds = _tiny_dataset(tmp_path)
    profile = get_profile("smoke", image_size=SIZE, image_epochs=1, image_batch_size=8, trainable_layers=1,
                          image_weights="none")
    run = CL.train_image_classifier(ds, profile, verbose=0, progress=False)
    assert run.mode.startswith("cached") and run.cut == "conv5_block3_out"
    assert run.missing == {"train": ["p3", "p5", "p7", "p10", "p12"], "val": [], "test": ["p31"]}
    assert run.n_images == {"train": 15, "val": 8, "test": 7}
    assert run.p_val.shape == (8, 3) and run.p_test.shape == (8, 3)
    prior = ds.y("train").mean(axis=0)
    assert np.allclose(run.p_test[3], prior)  # p31 has no image: the stated neutral value
    assert run.features["test"].shape == (8, 2048)
    assert not run.features["test"][3].any() and run.features["test"][0].any()
    assert run.result.epochs_run == 1 and np.isfinite(run.result.history["loss"]).all()


def test_end_to_end_with_augmentation(tmp_path):
    ds = _tiny_dataset(tmp_path)
    profile = get_profile("smoke", image_size=SIZE, image_epochs=1, image_batch_size=8, trainable_layers=0,
                          image_weights="none", augment=True)
    run = CL.train_image_classifier(ds, profile, verbose=0, progress=False, with_features=False)
    assert run.mode == "end to end" and run.cut is None and run.features == {}
    assert np.all((run.p_test >= 0) & (run.p_test <= 1))


JAX_SCRIPT = textwrap.dedent("""
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("tensorflow is blocked in this test")
    sys.meta_path.insert(0, Block())
    import numpy as np, keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_image_model import _tiny_dataset
    from prodlib.config import get_profile
    from prodlib.models import resnet as R
    from prodlib import classifiers as CL
    ds = _tiny_dataset(Path({tmp!r}))
    profile = get_profile("smoke", image_size=32, image_epochs=1, image_batch_size=8, trainable_layers=1,
                          image_weights="none")
    run = CL.train_image_classifier(ds, profile, verbose=0, progress=False, with_features=False)
    frozen, tail = R.split_frozen_tail(run.model, 1)
    from prodlib.image_input import ImageSequence, split_images
    from prodlib.train import predict_proba
    ids, paths, _ = split_images(ds.part("test"))
    seq = ImageSequence(paths, image_size=32, batch_size=8)
    via_tail = predict_proba(tail, R.cached_features(frozen, seq, progress=False))
    rows = [ds.splits["test"].index(i) for i in ids]
    assert np.allclose(via_tail, run.p_test[rows], atol=1e-5)
    assert "tensorflow" not in sys.modules
    print("JAX-OK", run.p_test.shape, run.mode)
""")


def test_runs_on_jax_without_tensorflow(tmp_path):
    pytest.importorskip("jax")
    script = JAX_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "JAX-OK (8, 3) cached" in proc.stdout
