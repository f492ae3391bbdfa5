"""The shared training loop of every single-modality classifier (title, description, image) and the
stage outputs they write.

``fit_classifier`` compiles a Keras model with Adam and binary cross-entropy and fits it with two Keras
callbacks: :class:`MicroF1Callback` (validation micro-F1, the paper's metric, at every epoch end) and
``keras.callbacks.EarlyStopping`` on it, restoring the best epoch's weights. ``classifier_metrics`` and
``save_classifier_stage`` give notebooks 02, 03 and 04 one ``metrics.json`` schema and one folder layout.
Explained in notebook 02 (*Title classifier*); reused in notebooks 03 and 04.

Keras is imported inside the functions, so ``import prodlib.train`` works without TensorFlow
(``KERAS_BACKEND=jax``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prodlib import metrics as M
from prodlib import paper
from prodlib._lazy import keras_subclass

if TYPE_CHECKING:
    import keras

    from prodlib.artifacts import StageOutput
    from prodlib.config import Profile
    from prodlib.dataset import Dataset
    from prodlib.text import TextData

__all__ = [
    "ClassifierRun",
    "MicroF1Callback",  # noqa: F822 (made on first access, see __getattr__)
    "TrainResult",
    "binary_crossentropy",
    "classifier_metrics",
    "classifier_numbers",
    "evaluate_and_save",
    "evaluate_classifier",
    "feature_extractor",
    "fit_classifier",
    "fit_text_classifier",
    "glue_numbers",
    "missed_beside_paper",
    "predict_proba",
    "save_classifier_stage",
    "set_seed",
    "start_stage",
]

_EPS = 1e-7


def start_stage(stage: str, profile: str | Profile | None = None, run_dir: str | os.PathLike[str] | None = None,
                overrides: Mapping[str, Any] | str | None = None) -> tuple[Profile, Dataset, StageOutput]:
    """The first lines of every classifier notebook: the profile (with ``overrides``, a mapping or its JSON
    text, as ``papermill -p`` passes it), the seed set, the dataset notebook 01 saved and the stage's output
    folder (input: ``01_data``). Notebooks 02, 03 and 04."""

    from prodlib.accelerate import configure_accelerators
    from prodlib.artifacts import StageOutput
    from prodlib.config import profile_from_params
    from prodlib.dataset import DATA_STAGE, load_dataset

    prof = profile_from_params(profile, overrides)
    set_seed(prof.seed)
    accel = configure_accelerators(prof)
    ds = load_dataset(prof, run_dir)
    out = StageOutput(prof, stage, fingerprint=ds.fingerprint, run_dir=run_dir, inputs=[DATA_STAGE])
    out.notes["accelerators"] = accel
    sizes = ", ".join(f"{split} {len(ids):,}" for split, ids in ds.splits.items())
    print(f"profile {prof.name!r}: {len(ds.table):,} products, {ds.n_classes} classes ({sizes}); "
          f"seed {prof.seed}; writing {out.path}")
    return prof, ds, out


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend (``keras.utils.set_random_seed``) with ``seed``."""
    import keras

    keras.utils.set_random_seed(int(seed))
    np.random.seed(int(seed))


def binary_crossentropy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [1e-7, 1 - 1e-7], as Keras does)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _is_dataset(x: Any) -> bool:
    import keras

    return isinstance(x, keras.utils.PyDataset)


def _inputs(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


class _MicroF1Mixin:
    """Keras callback: validation micro-F1 (``prodlib.metrics.micro_f1`` at ``threshold``) into
    ``logs["val_micro_f1"]`` at every epoch end, plus ``val_loss`` from the same predictions when Keras did
    not compute one (so validation data are predicted once per epoch) and the epoch's wall time in
    ``logs["seconds"]``. Put it before ``EarlyStopping(monitor="val_micro_f1", mode="max")``. Notebook 02."""

    def __init__(self, x_val: Any, y_val: np.ndarray, *, batch_size: int = 256, threshold: float = 0.5) -> None:
        super().__init__()  # type: ignore[call-arg]
        self.x_val = _inputs(x_val)
        self.y_val = np.asarray(y_val)
        self.batch_size = batch_size
        self.threshold = threshold
        self.last_probs: np.ndarray | None = None
        self._t0 = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs if logs is not None else {}
        probs = predict_proba(self.model, self.x_val, batch_size=self.batch_size)  # type: ignore[attr-defined]
        if len(probs) != len(self.y_val):
            raise ValueError(f"validation input gave {len(probs)} predictions for {len(self.y_val)} label rows; "
                             "x_val and y_val must list the same products in the same order")
        self.last_probs = probs
        logs["val_micro_f1"] = M.micro_f1(self.y_val, probs, self.threshold)
        if "val_loss" not in logs:
            logs["val_loss"] = binary_crossentropy(self.y_val, probs)
        logs["seconds"] = time.perf_counter() - self._t0


def _micro_f1_callback_class() -> type:
    return keras_subclass("MicroF1Callback", _MicroF1Mixin, "callbacks.Callback", __name__)


def __getattr__(name: str) -> Any:
    # ``MicroF1Callback`` subclasses ``keras.callbacks.Callback``; it is made on first access so that importing
    # this module imports no Keras (and so no TensorFlow).
    if name == "MicroF1Callback":
        return _micro_f1_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class TrainResult:
    """What :func:`fit_classifier` reports: one history row per epoch and the speed of training."""

    history: pd.DataFrame
    best_epoch: int
    epochs_run: int
    seconds: float
    samples_per_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def _sample_weights(y: np.ndarray, class_weight: Mapping[int, float]) -> np.ndarray:
    """Per-product weight for multi-label data: the largest weight among its true classes (1 when none)."""
    w = np.ones(y.shape[1], dtype=np.float64)
    for c, v in class_weight.items():
        if not 0 <= int(c) < y.shape[1]:
            raise ValueError(f"class_weight names class {c}, but there are {y.shape[1]} classes (0-based)")
        w[int(c)] = float(v)
    weighted = np.where(np.asarray(y) > 0, w[None, :], 0.0).max(axis=1)
    return np.where(np.asarray(y).sum(axis=1) > 0, weighted, 1.0).astype(np.float32)


def fit_classifier(model: keras.Model, x_train: Any, y_train: np.ndarray, x_val: Any, y_val: np.ndarray, *,
                   epochs: int, batch_size: int, learning_rate: float = 1e-3, patience: int = 3, seed: int = 0,
                   verbose: str | int = "auto", class_weight: Mapping[int, float] | None = None) -> TrainResult:
    """Compile ``model`` (Adam(``learning_rate``), binary cross-entropy) and fit it with
    :class:`MicroF1Callback` + ``EarlyStopping(monitor="val_micro_f1", mode="max", patience,
    restore_best_weights=True)``; the model ends with its best epoch's weights.

    ``x_*`` are arrays, tuples of arrays (multi-input) or ``keras.utils.PyDataset`` (then ``y_train`` is only
    used to count samples, and ``x_val`` must yield the products of ``y_val`` in order). ``class_weight``
    ({class index: weight}) becomes per-product weights (the largest of its true classes); arrays only.
    Progress: Keras' bar (``verbose=1``) or one line per epoch (``verbose=2``). Notebook 02.
    """
    import keras

    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be at least 1")
    y_train = np.asarray(y_train, dtype=np.float32)
    set_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    f1 = _micro_f1_callback_class()(x_val, y_val, batch_size=max(batch_size, 1024))
    stop = keras.callbacks.EarlyStopping(monitor="val_micro_f1", mode="max", patience=patience,
                                         restore_best_weights=True)
    kwargs: dict[str, Any] = {}
    if _is_dataset(x_train):
        if class_weight:
            raise ValueError("class_weight is supported for array inputs only; weight samples in the PyDataset")
    else:
        kwargs.update(y=y_train, batch_size=batch_size, shuffle=True)
        if class_weight:
            kwargs["sample_weight"] = _sample_weights(y_train, class_weight)
    t0 = time.perf_counter()
    hist = model.fit(_inputs(x_train), epochs=epochs, callbacks=[f1, stop], verbose=verbose, **kwargs)
    seconds = time.perf_counter() - t0
    logs = hist.history
    n_epochs = len(logs.get("loss", []))
    history = pd.DataFrame({
        "epoch": np.arange(1, n_epochs + 1),
        "loss": logs.get("loss", [np.nan] * n_epochs),
        "val_loss": logs.get("val_loss", [np.nan] * n_epochs),
        "val_micro_f1": logs.get("val_micro_f1", [np.nan] * n_epochs),
        "seconds": logs.get("seconds", [np.nan] * n_epochs),
    })
    best = int(np.argmax(history["val_micro_f1"].to_numpy())) + 1 if n_epochs else 0
    n_train = len(y_train)
    return TrainResult(history=history, best_epoch=best, epochs_run=n_epochs, seconds=seconds,
                       samples_per_s=n_train * n_epochs / seconds if seconds > 0 else float("nan"))


def _forward(model: keras.Model, x: Any, batch_size: int) -> np.ndarray:
    """``model``'s outputs on ``x``: arrays go through direct calls on chunks of ``batch_size`` (less per-call
    overhead than ``model.predict``, which matters once per epoch in :class:`MicroF1Callback`); a PyDataset
    goes through ``model.predict``."""
    import keras

    if _is_dataset(x):
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


def predict_proba(model: keras.Model, x: Any, batch_size: int = 256) -> np.ndarray:
    """Sigmoid outputs of ``model`` on ``x`` as ``float32`` in [0, 1] (quietly, in batches)."""
    probs = np.asarray(_forward(model, x, batch_size), dtype=np.float32)
    if not np.all(np.isfinite(probs)):
        raise FloatingPointError("the model produced non-finite outputs; lower the learning rate or check inputs")
    return np.clip(probs, 0.0, 1.0)


def feature_extractor(model: keras.Model, layer: str = "features") -> keras.Model:
    """A model from ``model``'s inputs to the output of ``layer`` (the penultimate activations early fusion
    uses)."""
    import keras

    try:
        target = model.get_layer(layer)
    except ValueError:
        names = ", ".join(lay.name for lay in model.layers)
        raise ValueError(f"model {model.name!r} has no layer {layer!r}; its layers are: {names}") from None
    return keras.Model(model.input, target.output, name=f"{model.name}_{layer}")


def classifier_metrics(y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray, p_test: np.ndarray,
                       classes: Sequence[str], result: TrainResult, threshold: float = 0.5) -> dict[str, Any]:
    """The ``metrics.json`` of every single-modality stage: test metrics at ``threshold`` (with per-class
    rows), validation metrics (without), a global threshold tuned on validation only and the test micro-F1
    at it, and the training summary."""
    val = M.evaluate(y_val, p_val, classes, threshold)
    val.pop("per_class")
    tuned = M.tune_threshold(y_val, p_val)
    return {
        "test": M.evaluate(y_test, p_test, classes, threshold),
        "val": val,
        "tuned_threshold": tuned,
        "test_micro_f1_tuned": M.micro_f1(y_test, p_test, tuned),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": result.seconds,
        "samples_per_s": result.samples_per_s,
        "history": result.history.to_dict(orient="records"),
    }


def save_classifier_stage(out: StageOutput, ds: Dataset, model: keras.Model, p_val: np.ndarray,
                          p_test: np.ndarray, metrics: Mapping[str, Any], *,
                          features: Mapping[str, np.ndarray] | None = None,
                          p_train: np.ndarray | None = None) -> None:
    """Write ``predictions_{val,test}.npz`` (ids from ``ds.splits``), ``metrics.json``, ``model.keras`` and,
    when given, ``features_<split>.npz`` and ``predictions_train.npz`` (the base model's outputs on its own
    training products: only notebook 05's *naive fusion* warning uses them) into ``out``'s folder."""
    out.save_predictions("val", ds.splits["val"], p_val, ds.classes)
    out.save_predictions("test", ds.splits["test"], p_test, ds.classes)
    if p_train is not None:
        out.save_predictions("train", ds.splits["train"], p_train, ds.classes)
    out.save_metrics(metrics)
    model.save(out.path / "model.keras")
    for split, feats in (features or {}).items():
        out.save_features(split, ds.splits[split], feats)


def fit_text_classifier(model: keras.Model, td: TextData, ds: Dataset, profile: Profile,
                        verbose: str | int = 2) -> TrainResult:
    """:func:`fit_classifier` on a prepared text field (``td.x``) with the profile's text settings
    (``text_epochs``, ``text_batch_size``, ``learning_rate``, ``patience``, ``seed``). Notebooks 02 and 03."""
    return fit_classifier(model, td.x["train"], ds.y("train"), td.x["val"], ds.y("val"),
                          epochs=profile.text_epochs, batch_size=profile.text_batch_size,
                          learning_rate=profile.learning_rate, patience=profile.patience, seed=profile.seed,
                          verbose=verbose)


@dataclass
class ClassifierRun:
    """A trained classifier's validation/test probabilities, ``metrics.json`` content and features."""

    p_val: np.ndarray
    p_test: np.ndarray
    metrics: dict[str, Any]
    features: dict[str, np.ndarray]
    p_train: np.ndarray | None = None


def evaluate_classifier(model: keras.Model, ds: Dataset, x: Mapping[str, Any], result: TrainResult, *,
                        threshold: float = 0.5, feature_layer: str | None = "features",
                        batch_size: int = 256) -> ClassifierRun:
    """Predict validation and test (``x[split]``), compute :func:`classifier_metrics` and, unless
    ``feature_layer`` is ``None``, the ``feature_layer`` activations of every split in ``x``. Notebooks 02–04."""
    p_val = predict_proba(model, x["val"], batch_size)
    p_test = predict_proba(model, x["test"], batch_size)
    p_train = predict_proba(model, x["train"], batch_size) if "train" in x else None
    metrics = classifier_metrics(ds.y("val"), p_val, ds.y("test"), p_test, ds.classes, result, threshold)
    features: dict[str, np.ndarray] = {}
    if feature_layer is not None:
        extractor = feature_extractor(model, feature_layer)
        features = {s: predict_proba_raw(extractor, xs, batch_size) for s, xs in x.items()}
    return ClassifierRun(p_val=p_val, p_test=p_test, metrics=metrics, features=features, p_train=p_train)


def evaluate_and_save(out: StageOutput, ds: Dataset, model: keras.Model, x: Mapping[str, Any],
                      result: TrainResult, *, threshold: float = 0.5,
                      feature_layer: str | None = "features") -> ClassifierRun:
    """:func:`evaluate_classifier`, then :func:`save_classifier_stage` of its outputs into ``out``.
    Notebooks 02–04."""
    run = evaluate_classifier(model, ds, x, result, threshold=threshold, feature_layer=feature_layer)
    save_classifier_stage(out, ds, model, run.p_val, run.p_test, run.metrics, features=run.features,
                          p_train=run.p_train)
    return run


def predict_proba_raw(model: keras.Model, x: Any, batch_size: int = 256) -> np.ndarray:
    """Outputs of ``model`` on ``x`` as ``float32`` without clipping (feature activations)."""
    return np.asarray(_forward(model, x, batch_size), dtype=np.float32)


def missed_beside_paper(y_test: np.ndarray, p_test: np.ndarray, classes: Sequence[str], model: str, *,
                        k: int = 5, threshold: float = 0.5) -> pd.DataFrame:
    """Our ``k`` most-missed test classes in the paper's ``Name (missed/support)`` form beside the paper's
    Table 2 column for ``model`` (``title``, ``description`` or ``image``)."""
    ours = M.most_missed(y_test, p_test, classes, k=k, threshold=threshold)
    theirs = paper.missed_table(model)
    rank = range(1, max(len(ours), len(theirs)) + 1)
    return pd.DataFrame({
        "ours (missed/support)": [ours["label"].get(i, "") for i in rank],
        "paper (missed/support)": [theirs["label"].get(i, "") for i in rank],
    }, index=pd.Index(rank, name="rank"))


def classifier_numbers(metrics: Mapping[str, Any], model: str) -> dict[str, float | int]:
    """The numbers a single-modality chapter quotes: ours (percent) beside the paper's, epochs and speed."""
    return {
        "test_f1": 100 * metrics["test"]["micro_f1"],
        "paper_f1": paper.SINGLE[model],
        "gap_f1": 100 * metrics["test"]["micro_f1"] - paper.SINGLE[model],
        "val_f1": 100 * metrics["val"]["micro_f1"],
        "macro_f1": 100 * metrics["test"]["macro_f1"],
        "tuned_threshold": metrics["tuned_threshold"],
        "test_f1_tuned": 100 * metrics["test_micro_f1_tuned"],
        "epochs": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "train_seconds": metrics["train_seconds"],
        "samples_per_s": metrics["samples_per_s"],
        "n_test": metrics["test"]["n_products"],
    }


def glue_numbers(prefix: str, numbers: Mapping[str, Any]) -> pd.Series:
    """Glue every ``numbers[key]`` as ``<prefix>_<key>`` for the book (myst-nb) and return them as a series
    for display. Outside a Jupyter kernel (or without myst-nb) nothing is glued."""
    try:
        from myst_nb import glue
    except ImportError:  # e.g. a bare Colab runtime: the numbers still show in the returned table
        glue = None
    for key, value in numbers.items():
        if glue is not None:
            glue(f"{prefix}_{key}", value, display=False)
    return pd.Series(dict(numbers), name=prefix, dtype=object)
