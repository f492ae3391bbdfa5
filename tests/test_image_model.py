"""The image classifier (prodlib.models.image_cnn): backbones (ResNet-50, MobileNet), layer freezing, the weights
lookup and its fallbacks, the cached frozen/tail split, training with bad images, the K sweep, and the JAX backend
without TensorFlow."""

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
R = pytest.importorskip("prodlib.models.image_cnn")
R_input = pytest.importorskip("prodlib.image_input")
CL = pytest.importorskip("prodlib.classifiers")

SIZE = 32
N_CLASSES = 3


@pytest.fixture(scope="module")
def model():
    from prodlib.train import set_seed

    set_seed(0)
    m, info = R.build_image_model(N_CLASSES, SIZE, backbone_name="resnet50", weights="none")
    assert not info.pretrained and info.source == "random init" and "on purpose" in info.reason
    return m


def test_shapes_and_trainable_counts(model):
    backbone = R.backbone_layers(model)
    assert len(backbone) == R.BACKBONES["resnet50"].layers == 176 and model.output.shape[-1] == N_CLASSES
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


SHARED_MOBILENET = Path(__file__).resolve().parents[2] / "shared/assets/keras-models/mobilenet_2_5_224_tf_no_top.h5"


def test_mobilenet_counts_cuts_and_cached_tail_on_its_imagenet_weights():
    weights = SHARED_MOBILENET if SHARED_MOBILENET.is_file() else None  # the real file where there is one
    m, info = R.build_image_model(N_CLASSES, 64, backbone_name="mobilenet", trainable_layers=10,
                                  weights="imagenet" if weights else "none", weights_path=weights, download=False)
    assert info.backbone == "mobilenet" and info.label == "MobileNet (alpha 0.25)" and info.pretrained == bool(weights)
    layers = R.backbone_layers(m)
    assert len(layers) == R.BACKBONES["mobilenet"].layers == 87 and layers[-1].output.shape[-1] == 256
    assert layers[-10].name == "conv_pw_12" and R.trainable_layer_table(m)["block"].iloc[0] == "block_12"
    assert R.cut_layer_name(m, 10) == "conv_dw_12_relu"  # a plain chain: the cut is just before the first trainable
    frozen, tail = R.split_frozen_tail(m, 10)
    x = R_input.preprocess(np.random.default_rng(2).uniform(0, 255, size=(3, 64, 64, 3)), "mobilenet")
    assert x.min() >= -1 and x.max() <= 1  # MobileNet's own preprocessing, not ResNet's
    full = np.asarray(m.predict(x, verbose=0))
    assert np.allclose(np.asarray(tail.predict(R.cached_features(frozen, x), verbose=0)), full, atol=1e-5)
    with pytest.raises(ValueError, match="0.25, 0.5, 0.75, 1.0"):
        R.backbone("mobilenet", alpha=0.3)


def _legacy_h5(path: Path, net: keras.Model) -> Path:
    """Save weights in Keras's legacy .h5 layout (the layout of the ImageNet files)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, net)
    return path


def test_weights_lookup_order_path_then_cache_then_download(tmp_path, monkeypatch):
    resnet = R.BACKBONES["resnet50"]
    backbone = resnet.build(SIZE)
    path = _legacy_h5(tmp_path / resnet.weights_file, backbone)
    m, info = R.build_image_model(N_CLASSES, SIZE, backbone_name="resnet50", weights_path=path, download=False)
    assert info.pretrained and info.path == str(path) and "configured file" in info.reason
    assert np.array_equal(m.get_layer("conv1_conv").get_weights()[0], backbone.get_layer("conv1_conv").get_weights()[0])
    # the environment variable names a file too; it comes before the Keras cache
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    (tmp_path / "kh" / "models").mkdir(parents=True)
    os.link(path, tmp_path / "kh" / "models" / resnet.weights_file)
    monkeypatch.setenv(R.WEIGHTS_ENV, str(path))
    assert R.choose_backbone("resnet50", download=False)[2].endswith("from the configured file")
    monkeypatch.delenv(R.WEIGHTS_ENV)
    assert R.find_weights(resnet, download=False) == (tmp_path / "kh" / "models" / resnet.weights_file, "Keras cache")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        R.find_weights(resnet, tmp_path / "nope.h5")


class _Hang(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - never answers within the client's timeout
        time.sleep(3)


def test_download_refused_offline_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv(R.WEIGHTS_ENV, raising=False)
    resnet = R.BACKBONES["resnet50"]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        t0 = time.perf_counter()
        path, why = R.find_weights(resnet, timeout=0.3, url=f"http://127.0.0.1:{srv.server_address[1]}/w.h5")
        assert path is None and "no answer within" in why.lower() and time.perf_counter() - t0 < 2.5
    finally:
        srv.shutdown()
        srv.server_close()
    path, why = R.find_weights(resnet, timeout=0.5, url="http://127.0.0.1:9/none.h5")  # connection refused
    assert path is None and "could not download" in why
    monkeypatch.setenv("PRODLIB_OFFLINE", "1")
    t0 = time.perf_counter()
    assert R.find_weights(R.backbone("mobilenet", 0.5))[0] is None and time.perf_counter() - t0 < 1
    assert not list((tmp_path / "empty" / "models").glob("*.part"))  # no half-written file left behind


def test_auto_chooses_resnet_then_mobilenet_then_random(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.delenv(R.WEIGHTS_ENV, raising=False)
    cache = tmp_path / "kh" / "models"
    cache.mkdir(parents=True)
    bb, path, why, detail = R.choose_backbone("auto", download=False)
    assert bb.name == "resnet50" and path is None and why.endswith("no ImageNet weights could be had here")
    assert "ResNet-50: not in the Keras cache" in detail and "MobileNet (alpha 0.25): not in the Keras cache" in detail
    _, info = R.build_image_model(N_CLASSES, SIZE, backbone_name="auto", download=False)
    assert not info.pretrained and "admonition warning" in info._repr_html_() and "random weights" in info.message()
    mobilenet = R.BACKBONES["mobilenet"]
    _legacy_h5(cache / mobilenet.weights_file, mobilenet.build(64))
    bb, path, why, _ = R.choose_backbone("auto", download=False)
    assert bb.name == "mobilenet" and path == cache / mobilenet.weights_file
    assert why == "chosen automatically, ResNet-50's could not be had here; ImageNet weights from the Keras cache"
    resnet = R.BACKBONES["resnet50"]
    _legacy_h5(cache / resnet.weights_file, resnet.build(SIZE))
    assert R.choose_backbone("auto", download=False)[0].name == "resnet50"


def test_full_refuses_random_resnet_without_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv(R.WEIGHTS_ENV, raising=False)
    full = get_profile("full", image_size=SIZE)
    with pytest.raises(R.WeightsUnavailable, match="image_weights=none"):
        R.choose_backbone(full.image_backbone, weights=full.image_weights, download=False)
    _, info = R.image_model_from_profile(get_profile("full", image_size=SIZE, image_weights="none"), N_CLASSES)
    assert info.backbone == "resnet50" and not info.pretrained


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


def test_k_sweep_chooses_on_validation_and_reuses_the_base_run(tmp_path):
    ds = _tiny_dataset(tmp_path)
    profile = get_profile("smoke", image_size=SIZE, image_epochs=2, image_batch_size=8, trainable_layers=1,
                          k_sweep=(0,), image_weights="none")
    base = CL.train_image_classifier(ds, profile, verbose=0, progress=False)
    table, chosen = CL.k_sweep(ds, profile, base)
    assert table["K"].tolist() == [0, 1] and set(table["weights"]) == {"random"}  # no pretrained weights here
    assert (table["chosen"] == "yes").sum() == 1
    row = table[table["chosen"] == "yes"].iloc[0]
    assert row["val_f1"] == table["val_f1"].max()
    assert chosen.trainable_layers == row["K"]
    assert round(100 * chosen.metrics["val"]["micro_f1"], 1) == row["val_f1"]
    assert (chosen is base) == (row["K"] == 1) and chosen.features["test"].shape == (8, 2048)


def test_sweep_sentence_follows_the_numbers():
    from prodlib.results import sweep_numbers

    def table(random_val: float) -> pd.DataFrame:
        return pd.DataFrame({"K": [0, 10, 10], "weights": ["ImageNet", "ImageNet", "random"],
                             "val_f1": [60.0, 70.0, random_val], "test_f1": [61.0, 72.0, 40.0],
                             "chosen": ["", "yes", ""]})

    n = sweep_numbers(table(45.0))
    assert n["chosen_k"] == 10 and "25.0 points below the chosen pretrained run (70.0 %)." in n["pretraining_sentence"]
    assert "pretraining did not help" in sweep_numbers(table(71.0))["pretraining_sentence"]
    assert "no random-weights row" in sweep_numbers(table(45.0).iloc[:2])["pretraining_sentence"]


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
    from prodlib.models import image_cnn as R
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
