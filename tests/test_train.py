"""The training loops (prodlib.train) and the classifier recipes (prodlib.classifiers): the micro-F1 callback,
early stopping with best weights restored, the fusion loop, the metrics schema, stage outputs, and a JAX run
that never imports TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from prodlib import classifiers as CL
from prodlib import train as TR
from prodlib.artifacts import StageOutput, load_stage, start_stage
from prodlib.config import get_profile
from prodlib.dataset import Dataset
from prodlib.metrics import micro_f1
from prodlib.models.kim_cnn import build_kim_cnn
from prodlib.publish import glue_numbers
from prodlib.results import missed_beside_paper

ROOT = Path(__file__).resolve().parent.parent


def data(n: int, seed: int = 0, seq_len: int = 12, n_classes: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.integers(10, 40, size=(n, seq_len)).astype("int32")
    for i in range(n):
        for c in rng.choice(n_classes, size=rng.integers(1, 3), replace=False):
            x[i, rng.integers(seq_len)] = 2 + c
    y = np.stack([(x == 2 + c).any(axis=1) for c in range(n_classes)], axis=1).astype("float32")
    return x, y


def small_model(name: str = "m") -> keras.Model:
    TR.set_seed(0)
    return build_kim_cnn(40, 12, 3, embedding_dim=8, filters=8, windows=(2, 3), name=name)


def test_callback_value_equals_metrics_micro_f1():
    x, y = data(64)
    model = small_model()
    cb = TR.MicroF1Callback(x, y, batch_size=16, threshold=0.5)
    assert isinstance(cb, keras.callbacks.Callback)
    cb.set_model(model)
    logs: dict = {}
    cb.on_epoch_end(0, logs)
    probs = TR.predict_proba(model, x)
    assert logs["val_micro_f1"] == pytest.approx(micro_f1(y, probs), abs=1e-12)
    np.testing.assert_allclose(probs, model.predict(x, verbose=0), atol=1e-5)  # the direct calls match predict
    assert logs["val_loss"] == pytest.approx(TR.binary_crossentropy(y, probs), rel=1e-6)
    bad = TR.MicroF1Callback(x, y[:10])
    bad.set_model(model)
    with pytest.raises(ValueError, match="same products"):
        bad.on_epoch_end(0, {})


def test_binary_crossentropy_matches_keras():
    y = np.array([[1, 0], [0, 1]], dtype="float32")
    p = np.array([[0.9, 0.2], [0.0, 0.7]], dtype="float32")
    expected = float(np.mean(keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(y, p))))
    assert TR.binary_crossentropy(y, p) == pytest.approx(expected, rel=1e-4)


def test_fit_restores_best_weights_and_reports_history():
    x, y = data(400, seed=1)
    xv, yv = data(120, seed=2)
    model = small_model()
    first = TR.fit_classifier(model, x, y, xv, yv, epochs=4, batch_size=32, learning_rate=5e-3, seed=0, verbose=0)
    assert first.history["val_micro_f1"].iloc[-1] > 0.5
    # Now train on inverted labels: validation micro-F1 can only fall, so the best epoch is the first
    res = TR.fit_classifier(model, x, 1 - y, xv, yv, epochs=4, batch_size=32, learning_rate=2e-3, patience=10,
                            seed=0, verbose=0)
    h = res.history
    assert list(h.columns) == ["epoch", "loss", "val_loss", "val_micro_f1"]
    assert h["epoch"].tolist() == [1, 2, 3, 4] and res.epochs_run == 4
    assert res.best_epoch == int(h["val_micro_f1"].idxmax()) + 1
    assert h["val_micro_f1"].iloc[res.best_epoch - 1] > h["val_micro_f1"].iloc[-1]
    restored = micro_f1(yv, TR.predict_proba(model, xv))
    assert restored == pytest.approx(h["val_micro_f1"].iloc[res.best_epoch - 1], abs=1e-9)
    assert res.samples_per_s > 0 and res.seconds > 0


def test_early_stopping_and_pydataset_inputs():
    class Batches(keras.utils.PyDataset):
        def __init__(self, x, y, batch=32):
            super().__init__()
            self.x, self.y, self.batch = x, y, batch

        def __len__(self):
            return int(np.ceil(len(self.x) / self.batch))

        def __getitem__(self, i):
            sl = slice(i * self.batch, (i + 1) * self.batch)
            return self.x[sl], self.y[sl]

    x, y = data(200, seed=3)
    xv, yv = data(60, seed=4)
    model = small_model()
    res = TR.fit_classifier(model, Batches(x, y), y, Batches(xv, yv), yv, epochs=30, batch_size=32,
                            learning_rate=0.3, patience=1, seed=0, verbose=0)
    assert res.epochs_run < 30  # a learning rate this large stalls validation F1 and stopping kicks in
    assert res.epochs_run <= res.best_epoch + 1


def test_train_small_stops_early_and_restores_the_best_weights():
    rng = np.random.default_rng(0)
    x = rng.random((200, 4)).astype("float32")
    y = (x[:, :2] > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="sigmoid")])
    hist = TR.train_small(model, x[:150], y[:150], x[150:], y[150:], epochs=400, batch_size=32, learning_rate=0.5,
                          patience=3, seed=0)
    assert hist["epochs_run"] < 400 and hist["epochs_run"] - hist["best_epoch"] == 3
    assert TR.binary_crossentropy(y[150:], TR.predict_proba(model, x[150:])) == pytest.approx(hist["best_loss"],
                                                                                          rel=1e-4)


def tiny_dataset(n_train=60, n_val=30, n_test=30) -> Dataset:
    n = n_train + n_val + n_test
    ids = [f"p{i}" for i in range(n)]
    table = pd.DataFrame({"id": ids, "title": "t", "description": "d", "category_paths": [[["a"]]] * n,
                          "image": None, "source": "test",
                          "labels": [["a", "b"] if i % 2 else ["c"] for i in range(n)]}).set_index("id", drop=False)
    splits = {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}
    return Dataset(table=table, classes=["a", "b", "c"], splits=splits, profile="smoke")


def test_text_classifier_run_metrics_schema_and_saved_stage(tmp_path):
    from types import SimpleNamespace

    ds = tiny_dataset()
    td = SimpleNamespace(x={s: data(len(ds.splits[s]), seed=k)[0] for k, s in enumerate(("train", "val", "test"))})
    profile = get_profile("smoke", text_epochs=2, text_batch_size=16)
    model = small_model()
    run = CL.train_text_classifier(model, td, ds, profile, verbose=0)
    m = run.metrics
    assert set(m) == {"test", "val", "tuned_threshold", "test_micro_f1_tuned", "best_epoch", "epochs_run",
                      "train_seconds", "samples_per_s", "history"}
    assert "per_class" in m["test"] and "per_class" not in m["val"]
    assert m["test"]["micro_f1"] == pytest.approx(micro_f1(ds.y("test"), run.p_test))
    assert m["test_micro_f1_tuned"] == pytest.approx(micro_f1(ds.y("test"), run.p_test, m["tuned_threshold"]))
    assert len(m["history"]) == run.result.epochs_run and set(run.features) == {"train", "val", "test"}
    assert run.features["val"].shape == (30, 16) and run.p_train.shape == (60, 3)

    out = StageOutput(profile, "02_title", fingerprint=ds.fingerprint, run_dir=tmp_path)
    CL.save_stage(out, ds, run)
    out.finish()
    stage = load_stage(profile, "02_title", tmp_path, fingerprint=ds.fingerprint)
    assert stage.predictions("test").ids.tolist() == ds.splits["test"]
    np.testing.assert_allclose(stage.predictions("val").probs, run.p_val)
    np.testing.assert_allclose(stage.predictions("train").probs, run.p_train)
    assert json.loads((stage.path / "metrics.json").read_text())["best_epoch"] == run.result.best_epoch
    assert stage.features("train")[1].shape == (60, 16)
    reloaded = keras.saving.load_model(stage.path / "model.keras")
    np.testing.assert_allclose(TR.predict_proba(reloaded, td.x["test"]), run.p_test, atol=1e-5)

    numbers = CL.classifier_numbers(m, "title")
    assert numbers["paper_f1"] == 82.7 and numbers["test_f1"] == pytest.approx(100 * m["test"]["micro_f1"])
    assert glue_numbers("title", numbers)["epochs"] == run.result.epochs_run
    table = missed_beside_paper(ds.y("test"), run.p_test, ds.classes, "title", k=2)
    assert list(table.columns) == ["ours (missed/support)", "paper (missed/support)"] and len(table) == 5


def test_plots_return_figures():
    from prodlib import plots

    hist = pd.DataFrame({"epoch": [1, 2], "loss": [0.6, 0.4], "val_loss": [0.5, 0.45], "val_micro_f1": [0.3, 0.5]})
    assert len(plots.plot_history(hist).axes) == 2
    metrics_test = {"micro_f1": 0.5, "per_class": [{"class": "a", "f1": 0.4, "support": 3},
                                                   {"class": "b", "f1": 0.9, "support": 5}]}
    assert len(plots.plot_per_class_f1(metrics_test).axes[0].patches) == 2
    assert plots.plot_length_histogram(np.array([1, 5, 9]), 6).axes


JAX_SCRIPT = textwrap.dedent("""
    import sys

    class BlockTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("tensorflow is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())
    import numpy as np
    from prodlib import embeddings, text, train
    from prodlib.models.kim_cnn import build_kim_cnn
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    texts = ["red shirt", "blue mug", "red mug", "blue shirt"] * 4
    vocab = text.Vocabulary.fit(texts, max_size=20)
    matrix, info = embeddings.text_embeddings(vocab, "word2vec", 8, 0, texts, allow_download=False)
    x = vocab.encode(texts, 6)
    y = np.stack([[("shirt" in t), ("mug" in t)] for t in texts]).astype("float32")
    model = build_kim_cnn(len(vocab), 6, 2, embedding_matrix=matrix, filters=4, windows=(2, 3))
    res = train.fit_classifier(model, x, y, x, y, epochs=2, batch_size=8, seed=0, verbose=0)
    p = train.predict_proba(model, x)
    assert p.shape == (16, 2) and res.epochs_run == 2 and np.isfinite(res.history["loss"]).all()
    assert not any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)
    print("JAX-OK", info.source)
""")


def test_jax_backend_without_tensorflow():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PRODLIB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "JAX-OK word2vec trained on training split" in proc.stdout


def test_start_stage_reads_dataset_and_json_overrides(tmp_path, capsys):
    from prodlib.dataset import save_dataset

    ds = tiny_dataset()
    profile = get_profile("smoke")
    data_out = StageOutput(profile, "01_data", fingerprint=ds.fingerprint, run_dir=tmp_path)
    save_dataset(ds, data_out)
    data_out.finish()
    prof, loaded, out = start_stage("02_title", "smoke", tmp_path, '{"text_epochs": 2}')
    assert prof.text_epochs == 2 and loaded.fingerprint == ds.fingerprint
    assert out.path == tmp_path / "smoke" / "02_title" and out.inputs == ["01_data"]
    assert "120 products, 3 classes" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not a JSON object"):
        start_stage("02_title", "smoke", tmp_path, "text_epochs=2")
