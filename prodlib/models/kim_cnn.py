"""Kim (2014)'s sentence CNN, the paper's title and description classifier (notebooks 02 and 03): embedding →
Conv1D windows (3, 4, 5) × 100 filters, ReLU → max-over-time pooling → concatenation (layer ``features``, read by
early fusion) → dropout 0.5 → Dense(n_classes, sigmoid). Keras 3, any backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

if TYPE_CHECKING:
    from prodlib.config import Profile

__all__ = ["build_kim_cnn", "kim_cnn_from_profile", "prior_bias"]


def build_kim_cnn(vocab_size: int, seq_len: int, n_classes: int, *, embedding_matrix: np.ndarray | None = None,
                  embedding_dim: int = 300, trainable: bool = True, windows: Sequence[int] = (3, 4, 5),
                  filters: int = 100, dropout: float = 0.5, output_bias: np.ndarray | None = None,
                  name: str = "kim_cnn") -> keras.Model:
    """A multi-label Kim-CNN on ``int32`` token ids ``(batch, seq_len)``. ``embedding_matrix`` (``vocab_size × d``)
    initialises the embedding and sets its width; ``trainable=False`` freezes it (Kim's *static* variant).
    ``output_bias`` (per class, e.g. :func:`prior_bias`) starts the sigmoids at the class priors instead of 0.5."""
    windows = tuple(int(w) for w in windows)
    if not windows:
        raise ValueError("windows must hold at least one window size, e.g. (3, 4, 5)")
    if seq_len < max(windows):
        raise ValueError(f"seq_len={seq_len} is shorter than the widest window {max(windows)}; "
                         "raise title_len/desc_len or use smaller kim_windows")
    if embedding_matrix is not None:
        embedding_matrix = np.asarray(embedding_matrix, dtype="float32")
        if embedding_matrix.ndim != 2 or embedding_matrix.shape[0] != vocab_size:
            raise ValueError(f"embedding_matrix has shape {embedding_matrix.shape}; expected ({vocab_size}, d)")
        embedding_dim = int(embedding_matrix.shape[1])
    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="tokens")
    embed = keras.layers.Embedding(vocab_size, embedding_dim, trainable=trainable, name="embedding")
    x, pooled = embed(tokens), []
    for w in windows:
        conv = keras.layers.Conv1D(filters, w, activation="relu", name=f"conv_{w}")(x)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"maxpool_{w}")(conv))
    features = (keras.layers.Concatenate(name="features")(pooled) if len(pooled) > 1
                else keras.layers.Identity(name="features")(pooled[0]))
    h = keras.layers.Dropout(dropout, name="dropout")(features)
    if output_bias is not None:
        output_bias = np.asarray(output_bias, dtype="float32")
        if output_bias.shape != (n_classes,):
            raise ValueError(f"output_bias has shape {output_bias.shape}; expected ({n_classes},)")
    bias_init = "zeros" if output_bias is None else keras.initializers.Constant(output_bias.tolist())
    probs = keras.layers.Dense(n_classes, activation="sigmoid", bias_initializer=bias_init, name="probs",
                               dtype="float32")(h)  # float32 outputs under mixed precision
    model = keras.Model(tokens, probs, name=name)
    if embedding_matrix is not None:  # set after building: a Constant initializer would put it in the config
        embed.set_weights([embedding_matrix])
    return model


def prior_bias(y_train: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Log-odds of each class's training frequency (clipped to [eps, 1 - eps]): an output-layer bias that
    starts every sigmoid at its class's prior instead of 0.5."""
    prior = np.clip(np.asarray(y_train, dtype="float64").mean(axis=0), eps, 1 - eps)
    return np.log(prior / (1 - prior)).astype("float32")


def kim_cnn_from_profile(profile: Profile, vocab_size: int, seq_len: int, n_classes: int, *,
                         embedding_matrix: np.ndarray | None = None, y_train: np.ndarray | None = None,
                         name: str = "kim_cnn") -> keras.Model:
    """:func:`build_kim_cnn` with the profile's filters, windows, dropout, width and trainability; given
    ``y_train``, the output bias starts at the classes' training priors (:func:`prior_bias`)."""
    return build_kim_cnn(vocab_size, seq_len, n_classes, embedding_matrix=embedding_matrix,
                         embedding_dim=profile.embedding_dim, trainable=profile.embeddings_trainable,
                         windows=profile.kim_windows, filters=profile.kim_filters, dropout=profile.dropout,
                         output_bias=None if y_train is None else prior_bias(y_train), name=name)
