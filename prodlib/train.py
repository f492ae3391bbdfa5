"""The study's two training loops, one seed function and one loss: :func:`fit_classifier` (Keras ``fit`` with
the validation micro-F1 and early stopping; notebook 02, reused by 03 and 04) and :func:`train_small` (the
tiny fusion networks' ``train_on_batch`` loop; notebook 05). Imports Keras, never TensorFlow."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pandas as pd

from prodlib.metrics import micro_f1

__all__ = ["MicroF1Callback", "TrainResult", "binary_crossentropy", "feature_extractor", "fit_classifier",
           "predict_proba", "set_seed", "train_small"]

_EPS = 1e-7


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend: the one seed function of prodlib."""
    keras.utils.set_random_seed(int(seed))
    np.random.seed(int(seed))


def binary_crossentropy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [1e-7, 1 - 1e-7], as Keras does)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _inputs(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


class MicroF1Callback(keras.callbacks.Callback):
    """The validation micro-F1 (:func:`prodlib.metrics.micro_f1`) in ``logs["val_micro_f1"]`` after every epoch,
    and ``val_loss`` from the same predictions, for ``EarlyStopping``. Keras' ``F1Score`` metric gives the same
    value but also runs on every training batch: 27 % slower training (``benchmarks/bench_text_train.py``)."""

    def __init__(self, x_val: Any, y_val: np.ndarray, *, batch_size: int = 1024, threshold: float = 0.5) -> None:
        super().__init__()
        self.x_val, self.y_val = _inputs(x_val), np.asarray(y_val)
        self.batch_size, self.threshold = batch_size, threshold

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        probs = predict_proba(self.model, self.x_val, self.batch_size)
        if len(probs) != len(self.y_val):
            raise ValueError(f"validation input gave {len(probs)} predictions for {len(self.y_val)} label rows; "
                             "x_val and y_val must list the same products in the same order")
        logs["val_micro_f1"] = micro_f1(self.y_val, probs, self.threshold)
        logs.setdefault("val_loss", binary_crossentropy(self.y_val, probs))


@dataclass
class TrainResult:
    """What :func:`fit_classifier` reports: one history row per epoch and the speed of training."""

    history: pd.DataFrame
    best_epoch: int
    epochs_run: int
    seconds: float
    samples_per_s: float


def fit_classifier(model: keras.Model, x_train: Any, y_train: np.ndarray, x_val: Any, y_val: np.ndarray, *,
                   epochs: int, batch_size: int, learning_rate: float = 1e-3, patience: int = 3, seed: int = 0,
                   threshold: float = 0.5, verbose: str | int = "auto") -> TrainResult:
    """Compile ``model`` (Adam, binary cross-entropy) and fit it with :class:`MicroF1Callback` and Keras'
    ``EarlyStopping`` on the validation micro-F1, restoring the best epoch's weights. ``x_*`` are arrays, tuples of
    arrays or ``keras.utils.PyDataset`` (``x_train`` yielding ``(x, y)``, ``x_val`` yielding ``x``). Notebook 02."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be at least 1")
    y_train = np.asarray(y_train, dtype=np.float32)
    set_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    callbacks = [MicroF1Callback(x_val, y_val, batch_size=max(batch_size, 1024), threshold=threshold),
                 keras.callbacks.EarlyStopping(monitor="val_micro_f1", mode="max", patience=patience,
                                               restore_best_weights=True)]
    kwargs = {} if isinstance(x_train, keras.utils.PyDataset) else {"y": y_train, "batch_size": batch_size,
                                                                     "shuffle": True}
    t0 = time.perf_counter()
    logs = model.fit(_inputs(x_train), epochs=epochs, callbacks=callbacks, verbose=verbose, **kwargs).history
    seconds = time.perf_counter() - t0
    history = pd.DataFrame({"epoch": np.arange(1, len(logs["loss"]) + 1), "loss": logs["loss"],
                            "val_loss": logs["val_loss"], "val_micro_f1": logs["val_micro_f1"]})
    n_epochs = len(history)
    return TrainResult(history=history, best_epoch=int(np.argmax(history["val_micro_f1"].to_numpy())) + 1,
                       epochs_run=n_epochs, seconds=seconds,
                       samples_per_s=len(y_train) * n_epochs / seconds if seconds > 0 else float("nan"))


def train_small(model: keras.Model, x: np.ndarray, y: np.ndarray, x_stop: np.ndarray | None,
                y_stop: np.ndarray | None, *, epochs: int, batch_size: int, learning_rate: float, patience: int,
                seed: int) -> dict[str, Any]:
    """Adam + binary cross-entropy in seeded mini-batches; with a stopping set, early stopping on its loss and the
    best weights restored. Returns ``epochs_run``, ``best_epoch``, ``best_loss`` and per-epoch ``loss``."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be at least 1")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    best, best_epoch, best_weights, losses = np.inf, 0, None, []
    epoch = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        train_loss = [float(np.asarray(model.train_on_batch(x[b], y[b])).ravel()[0])
                      for b in np.array_split(order, max(1, int(np.ceil(len(x) / batch_size))))]
        if x_stop is None or y_stop is None or not len(x_stop):
            losses.append(float(np.mean(train_loss)))
            continue
        loss = binary_crossentropy(y_stop, model.predict_on_batch(np.asarray(x_stop, dtype=np.float32)))
        losses.append(loss)
        if loss < best - 1e-6:
            best, best_epoch, best_weights = loss, epoch, model.get_weights()
        elif epoch - best_epoch >= patience:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    else:
        best_epoch = epoch
    return {"epochs_run": epoch, "best_epoch": best_epoch, "best_loss": float(np.min(losses)), "loss": losses}


def _forward(model: keras.Model, x: Any, batch_size: int) -> np.ndarray:
    """Arrays through direct calls on chunks (less overhead than ``predict``), a PyDataset through ``predict``."""
    if isinstance(x, keras.utils.PyDataset):
        return np.asarray(model.predict(x, verbose=0))
    x = _inputs(x)
    if isinstance(x, Mapping):
        n = len(next(iter(x.values())))
        chunks = ({k: v[i:i + batch_size] for k, v in x.items()} for i in range(0, n, batch_size))
    elif isinstance(x, list):
        n = len(x[0])
        chunks = ([a[i:i + batch_size] for a in x] for i in range(0, n, batch_size))
    else:
        n = len(x)
        chunks = (x[i:i + batch_size] for i in range(0, n, batch_size))
    if n == 0:
        return np.asarray(model.predict(x, verbose=0))
    return np.concatenate([keras.ops.convert_to_numpy(model(c, training=False)) for c in chunks])


def predict_proba(model: keras.Model, x: Any, batch_size: int = 256, *, clip: bool = True) -> np.ndarray:
    """Outputs of ``model`` on ``x`` as ``float32``: probabilities checked finite and clipped to [0, 1], or
    activations as they are with ``clip=False``."""
    out = np.asarray(_forward(model, x, batch_size), dtype=np.float32)
    if not clip:
        return out
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("the model produced non-finite outputs; lower the learning rate or check inputs")
    return np.clip(out, 0.0, 1.0)


def feature_extractor(model: keras.Model, layer: str = "features") -> keras.Model:
    """A model from ``model``'s inputs to ``layer``'s output (the penultimate activations early fusion uses)."""
    try:
        target = model.get_layer(layer)
    except ValueError:
        names = ", ".join(lay.name for lay in model.layers)
        raise ValueError(f"model {model.name!r} has no layer {layer!r}; its layers are: {names}") from None
    return keras.Model(model.input, target.output, name=f"{model.name}_{layer}")
