"""The Kim-CNN builder (prodlib.models.kim_cnn): shapes, embedding initialisation, a finite loss, and that it
learns a separable task."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from prodlib.config import get_profile
from prodlib.metrics import micro_f1
from prodlib.models.kim_cnn import build_kim_cnn, kim_cnn_from_profile
from prodlib.train import feature_extractor, fit_classifier, predict_proba, set_seed


def separable(n: int, seq_len: int = 16, vocab: int = 60, n_classes: int = 4, seed: int = 0):
    """Class c is present iff token 10 + c occurs somewhere in the sequence (other tokens from 20..vocab)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(20, vocab, size=(n, seq_len)).astype("int32")
    y = rng.random((n, n_classes)) < 0.3
    for i, j in zip(*np.nonzero(y), strict=True):
        x[i, rng.integers(seq_len)] = 10 + j
    y = np.stack([(x == 10 + c).any(axis=1) for c in range(n_classes)], axis=1).astype("float32")
    return x, y


def test_shapes_layers_and_embedding_init():
    matrix = np.random.default_rng(0).normal(size=(30, 6)).astype("float32")
    model = build_kim_cnn(30, 12, 5, embedding_matrix=matrix, filters=7, windows=(2, 3), trainable=False)
    assert model.output_shape == (None, 5)
    assert [lay.name for lay in model.layers if lay.name.startswith("conv_")] == ["conv_2", "conv_3"]
    emb = model.get_layer("embedding")
    np.testing.assert_allclose(emb.get_weights()[0], matrix)
    assert not emb.trainable
    feats = feature_extractor(model)
    assert feats.output_shape == (None, 14)  # 2 windows x 7 filters
    with pytest.raises(ValueError, match="no layer 'nope'"):
        feature_extractor(model, "nope")
    config = model.get_config()
    assert "Constant" not in str(config)  # the matrix is a weight, not copied into the saved config


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="raise title_len"):
        build_kim_cnn(10, 3, 2, windows=(3, 4, 5))
    with pytest.raises(ValueError, match="expected \\(10, d\\)"):
        build_kim_cnn(10, 8, 2, embedding_matrix=np.zeros((9, 4)))


def test_profile_builder_uses_profile_fields():
    profile = get_profile("smoke")
    model = kim_cnn_from_profile(profile, 50, profile.title_len, 3)
    assert model.get_layer("embedding").output_dim == profile.embedding_dim
    assert feature_extractor(model).output_shape == (None, profile.kim_filters * len(profile.kim_windows))


def test_finite_loss_and_probabilities_on_a_tiny_batch():
    set_seed(0)
    x, y = separable(8)
    model = build_kim_cnn(60, 16, 4, embedding_dim=8, filters=4)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    loss = model.train_on_batch(x, y)
    assert np.isfinite(float(np.asarray(loss).ravel()[0]))
    p = predict_proba(model, x)
    assert p.shape == (8, 4) and p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1


def test_learns_a_separable_task():
    x, y = separable(900, seed=1)
    model = build_kim_cnn(60, 16, 4, embedding_dim=16, filters=16, name="learner")
    fit_classifier(model, x[:600], y[:600], x[600:750], y[600:750], epochs=12, batch_size=32,
                   learning_rate=5e-3, patience=4, seed=0, verbose=0)
    f1 = micro_f1(y[750:], predict_proba(model, x[750:]))
    assert f1 >= 0.8, f"micro-F1 {f1:.3f} on a separable task"


def test_prior_bias_starts_outputs_at_class_frequencies():
    from prodlib.models.kim_cnn import prior_bias

    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype="float32")
    bias = prior_bias(y)
    np.testing.assert_allclose(1 / (1 + np.exp(-bias[:2])), [0.75, 0.25], rtol=1e-5)
    assert bias[2] < -6  # an absent class is clipped, not -inf
    model = kim_cnn_from_profile(get_profile("smoke"), 20, 8, 3, y_train=y)
    np.testing.assert_allclose(model.get_layer("probs").get_weights()[1], bias, rtol=1e-6)
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        build_kim_cnn(20, 8, 3, output_bias=np.zeros(2))
