"""The recipes of the single-modality chapters, the same for text and images: train (fit, then predict every
split) with :func:`train_text_classifier` (notebooks 02, 03) or :func:`train_image_classifier` (notebook 04),
then :func:`save_stage`. Explained in notebook 02."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import pandas as pd

from prodlib import metrics as M
from prodlib import paper
from prodlib.models.kim_cnn import prior_bias
from prodlib.train import TrainResult, feature_extractor, fit_classifier, predict_proba, set_seed

if TYPE_CHECKING:
    from prodlib.artifacts import StageOutput
    from prodlib.config import Profile
    from prodlib.dataset import Dataset
    from prodlib.models.image_cnn import WeightsInfo
    from prodlib.text import TextData

__all__ = ["ClassifierRun", "ImageRun", "classifier_metrics", "classifier_numbers", "cross_fit", "image_oof",
           "k_sweep", "repeat_seeds", "save_stage", "text_oof", "train_image_classifier", "train_text_classifier"]

SPLITS = ("train", "val", "test")


@dataclass
class ClassifierRun:
    """A trained classifier: model, training, probabilities (one row per product of the split),
    ``metrics.json`` content and penultimate features."""

    model: keras.Model
    result: TrainResult
    p_val: np.ndarray
    p_test: np.ndarray
    metrics: dict[str, Any]
    features: dict[str, np.ndarray] = field(default_factory=dict)
    p_train: np.ndarray | None = None
    """The model's outputs on its own training products, used only by notebook 05's *naive fusion* warning."""
    files: dict[str, Any] = field(default_factory=dict)
    """Other JSON files of the stage folder (name -> content)."""
    p_oof: np.ndarray | None = None
    """Out-of-fold probabilities of the training products (:func:`cross_fit`), for notebook 05's ``oof`` fit."""


def classifier_metrics(y_val: np.ndarray, p_val: np.ndarray, y_test: np.ndarray, p_test: np.ndarray,
                       classes: Sequence[str], result: TrainResult, threshold: float = 0.5) -> dict[str, Any]:
    """``metrics.json`` of a single-modality stage: test (with per-class rows) and validation metrics, a global
    threshold tuned on validation only with the test micro-F1 at it, and the training summary."""
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


def train_text_classifier(model: keras.Model, td: TextData, ds: Dataset, profile: Profile, *,
                          verbose: str | int = 2, batch_size: int = 256, with_features: bool = True) -> ClassifierRun:
    """Fit ``model`` on a prepared text field (``td.x``) with the profile's text settings, then predict every
    split and take the ``features`` layer's activations. Notebooks 02 and 03."""
    result = fit_classifier(model, td.x["train"], ds.y("train"), td.x["val"], ds.y("val"),
                            epochs=profile.text_epochs, batch_size=profile.text_batch_size,
                            learning_rate=profile.learning_rate, patience=profile.patience, seed=profile.seed,
                            threshold=profile.threshold, verbose=verbose)
    p = {s: predict_proba(model, td.x[s], batch_size) for s in SPLITS}
    extractor = feature_extractor(model) if with_features else None
    features = {s: predict_proba(extractor, td.x[s], batch_size, clip=False) for s in SPLITS} if extractor else {}
    metrics = classifier_metrics(ds.y("val"), p["val"], ds.y("test"), p["test"], ds.classes, result,
                                 profile.threshold)
    return ClassifierRun(model, result, p["val"], p["test"], metrics, features, p["train"])


def save_stage(out: StageOutput, ds: Dataset, run: ClassifierRun) -> None:
    """Write a run into its stage folder: predictions and features per split, ``metrics.json``, ``model.keras``
    and the run's other JSON files. Notebooks 02–04."""
    out.save_predictions("val", ds.splits["val"], run.p_val, ds.classes)
    out.save_predictions("test", ds.splits["test"], run.p_test, ds.classes)
    if run.p_train is not None:
        out.save_predictions("train", ds.splits["train"], run.p_train, ds.classes)
    if run.p_oof is not None:
        out.save_predictions("oof", ds.splits["train"], run.p_oof, ds.classes)
    out.save_metrics(run.metrics)
    run.model.save(out.path / "model.keras")
    for split, feats in run.features.items():
        out.save_features(split, ds.splits[split], feats)
    for name, content in run.files.items():
        out.save_json(name, content)


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


def cross_fit(ds: Dataset, profile: Profile, train_fold: Callable[[Dataset, np.ndarray, np.ndarray], ClassifierRun],
              *, progress: bool = True) -> np.ndarray:
    """Out-of-fold probabilities of every training product, for stacking (``fusion_fit_on="oof"``): the training
    products are cut into ``profile.oof_folds`` seeded folds and, per fold, ``train_fold(fold_ds, fit_rows,
    held_rows)`` trains a fresh model on the other folds (validation still stops it early) and predicts the held-out
    fold as ``fold_ds``'s test split, so no product is predicted by a model that saw it. Notebooks 02–04."""
    from tqdm.auto import tqdm

    from prodlib.splits import product_folds
    train = list(ds.splits["train"])
    oof = np.zeros((len(train), ds.n_classes), np.float32)
    for fit, held in tqdm(product_folds(len(train), profile.oof_folds, profile.seed), desc="out-of-fold models",
                          disable=not progress):
        fold = replace(ds, splits={"train": [train[i] for i in fit], "val": list(ds.splits["val"]),
                                   "test": [train[i] for i in held]})
        oof[held] = train_fold(fold, fit, held).p_test
    return oof


def repeat_seeds(train: Callable[[Profile], ClassifierRun], profile: Profile, first: ClassifierRun,
                 *, progress: bool = True) -> dict[int, float]:
    """Test micro-F1 by seed: ``first`` (the run with ``profile.seed``) and the same recipe retrained by
    ``train(profile with another seed)`` for each of ``profile.classifier_seeds``, for Table 1's mean ± sd: what the
    seed alone moves. Notebooks 02–04."""
    from tqdm.auto import tqdm
    out = {int(profile.seed): float(first.metrics["test"]["micro_f1"])}
    for seed in tqdm(profile.classifier_seeds, desc="extra seeds", disable=not progress):
        set_seed(int(seed))
        out[int(seed)] = float(train(replace(profile, seed=int(seed))).metrics["test"]["micro_f1"])
    return out


def text_oof(make_model: Callable[[Dataset], keras.Model], td: TextData, ds: Dataset, profile: Profile) -> np.ndarray:
    """:func:`cross_fit` of a text classifier; ``make_model(fold_ds)`` builds a fresh network (its output bias from
    the fold's training labels). The vocabulary and embeddings stay those of the whole training split: they see
    texts, never labels. Notebooks 02 and 03."""
    def fold(fds: Dataset, fit: np.ndarray, held: np.ndarray) -> ClassifierRun:
        x = {"train": td.x["train"][fit], "val": td.x["val"], "test": td.x["train"][held]}
        return train_text_classifier(make_model(fds), replace(td, x=x), fds, profile, verbose=0, with_features=False)
    return cross_fit(ds, profile, fold)


# --------------------------------------------------------------------------------------------------------
# Images (notebook 04)
# --------------------------------------------------------------------------------------------------------

@dataclass
class ImageRun(ClassifierRun):
    """A trained image classifier and how it was trained. Products without a usable image (``missing``) get the
    training-set label prevalence as probabilities and zeros as features."""

    weights: WeightsInfo | None = None
    missing: dict[str, list[str]] = field(default_factory=dict)
    n_images: dict[str, int] = field(default_factory=dict)
    mode: str = ""
    trainable_layers: int = 0
    cut: str | None = None
    cache_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Plain-JSON facts for ``metrics.json`` and the manifest."""
        return {"mode": self.mode, "trainable_layers": self.trainable_layers, "cut_at": self.cut,
                "cache_seconds": round(self.cache_seconds, 2), "images": self.n_images,
                "missing_images": {k: len(v) for k, v in self.missing.items()},
                "weights": self.weights.to_dict() if self.weights else None}


def train_image_classifier(ds: Dataset, profile: Profile, *, trainable_layers: int | str | None = None,
                           model: tuple[keras.Model, WeightsInfo] | None = None, with_features: bool = True,
                           workers: int = 2, verbose: str | int = 2, progress: bool = True) -> ImageRun:
    """Train the image classifier as ``profile`` says (``trainable_layers`` overrides its K; ``model`` is a pair
    from :func:`prodlib.models.image_cnn.image_model_from_profile`): with ``image_cache`` and no augmentation only
    the tail trains on the frozen part's cached activations, else images stream end to end. Notebook 04."""
    from prodlib import image_input as I
    from prodlib.models import image_cnn as C

    k_req = profile.trainable_layers if trainable_layers is None else trainable_layers
    size, bs, seed = profile.image_size, profile.image_batch_size, profile.seed
    parts = {s: I.split_images(ds.part(s)) for s in SPLITS}  # (ids with image, their paths, ids without)
    ys = {}
    for s, (ids, _, _) in parts.items():
        pos = {pid: n for n, pid in enumerate(ds.splits[s])}
        ys[s] = ds.y(s)[[pos[i] for i in ids]] if ids else np.zeros((0, ds.n_classes), np.float32)
    for s in ("train", "val"):
        if not parts[s][0]:
            raise ValueError(f"no product of the {s} split has a usable image; check notebook 01's image "
                             "report (dataset_stats.json) before training the image model")
    set_seed(seed)
    net_full, info = model if model is not None else C.image_model_from_profile(profile, ds.n_classes,
                                                                               trainable_layers=k_req)
    k = C.set_trainable_layers(net_full, k_req)
    head = net_full.get_layer(C.HEAD_NAME)  # each sigmoid starts at its class's training frequency, as for text
    head.set_weights([head.get_weights()[0], prior_bias(ys["train"])])
    cached = bool(profile.image_cache) and not profile.augment and k < len(C.backbone_layers(net_full))
    cut, cache_seconds, pooled = None, 0.0, head.input

    def images(s: str, **kw: Any) -> Any:
        return I.ImageSequence(parts[s][1], image_size=size, backbone=info.backbone, workers=workers, **kw)

    if cached:
        frozen, net = C.split_frozen_tail(net_full, k)
        cut = C.cut_layer_name(net_full, k)
        t0 = time.perf_counter()
        x = {s: C.cached_features(frozen, images(s, batch_size=64), progress=progress) for s in SPLITS}
        cache_seconds = time.perf_counter() - t0
        x_fit, feat_input = x["train"], net_full.get_layer(cut).output
    else:
        net, x = net_full, {s: images(s, batch_size=bs) for s in SPLITS}
        x_fit = images("train", y=ys["train"], batch_size=bs, augment=profile.augment, shuffle=True, seed=seed)
        feat_input = net_full.inputs
    at_pool = cached and cut == C.backbone_layers(net_full)[-1].name  # the cached activations are the features
    feat_model = keras.Model(feat_input, pooled) if with_features and not at_pool else None
    result = fit_classifier(net, x_fit, ys["train"], x["val"], ys["val"], epochs=profile.image_epochs,
                            batch_size=bs, learning_rate=profile.learning_rate, patience=profile.patience,
                            seed=seed, threshold=profile.threshold, verbose=verbose)
    probs, features = {}, {}
    prior = ds.y("train")
    for s in SPLITS if with_features else ("val", "test"):
        order = {pid: n for n, pid in enumerate(ds.splits[s])}
        rows = [order[i] for i in parts[s][0]]
        probs[s] = I.prevalence_probs(prior, len(ds.splits[s]))
        if rows:
            probs[s][rows] = predict_proba(net, x[s])
        if with_features:
            features[s] = np.zeros((len(ds.splits[s]), pooled.shape[-1]), np.float32)
            if rows:
                features[s][rows] = x[s] if feat_model is None else np.asarray(feat_model.predict(x[s], verbose=0))
    metrics = classifier_metrics(ds.y("val"), probs["val"], ds.y("test"), probs["test"], ds.classes, result,
                                 profile.threshold)
    run = ImageRun(net_full, result, probs["val"], probs["test"], metrics, features, probs.get("train"),
                   weights=info, missing={s: parts[s][2] for s in SPLITS},
                   n_images={s: len(parts[s][0]) for s in SPLITS},
                   mode="cached frozen part, tail trained" if cached else "end to end", trainable_layers=k,
                   cut=cut, cache_seconds=cache_seconds)
    metrics["image"] = run.summary()
    run.files["missing_images"] = {"policy": "no usable image: excluded from training; predicted as the "
                                             "training-set prevalence of each class",
                                   "val": run.missing["val"], "test": run.missing["test"]}
    return run


def image_oof(ds: Dataset, profile: Profile, run: ImageRun) -> np.ndarray:
    """:func:`cross_fit` of the image classifier with ``run``'s backbone, weights and K. Notebook 04."""
    from prodlib.models.image_cnn import image_model_from_profile

    assert run.weights is not None
    info = run.weights

    def fold(fds: Dataset, fit: np.ndarray, held: np.ndarray) -> ClassifierRun:
        set_seed(profile.seed)
        built = image_model_from_profile(profile, ds.n_classes, trainable_layers=run.trainable_layers,
                                         backbone_name=info.backbone, weights="imagenet" if info.pretrained else "none")
        return train_image_classifier(fds, profile, trainable_layers=run.trainable_layers, model=built,
                                      with_features=False, verbose=0, progress=False)
    return cross_fit(ds, profile, fold)


def k_sweep(ds: Dataset, profile: Profile, base: ImageRun, *, verbose: str | int = 0) -> tuple[pd.DataFrame, ImageRun]:
    """Train the image model for each K of ``profile.k_sweep`` and ``base``'s (reused) from the same seed and
    backbone, choose the K with the best **validation** micro-F1 (test shown for reference only), and add the
    same backbone from random weights at ``base``'s K when ``profile.image_random_baseline``. Returns the table
    and the chosen run, which the later chapters use. Notebook 04."""
    from prodlib.models.image_cnn import image_model_from_profile

    assert base.weights is not None
    own = "ImageNet" if base.weights.pretrained else "random"
    kinds = [(k, own) for k in sorted({*profile.k_sweep, base.trainable_layers})]
    if profile.image_random_baseline and own == "ImageNet":
        kinds.append((base.trainable_layers, "random"))
    runs: list[ImageRun] = []
    for k, kind in kinds:
        if (k, kind) == (base.trainable_layers, own):
            runs.append(base)
            continue
        set_seed(profile.seed)
        built = image_model_from_profile(profile, ds.n_classes, trainable_layers=k, backbone_name=base.weights.backbone,
                                         weights="imagenet" if kind == "ImageNet" else "none")
        runs.append(train_image_classifier(ds, profile, trainable_layers=k, model=built, verbose=verbose,
                                           progress=False))
    rows = [{"K": r.trainable_layers, "weights": kind, "cut_at": r.cut or "-",
             "params_m": round(sum(int(np.prod(w.shape)) for w in r.model.trainable_weights) / 1e6, 2),
             "epochs": r.result.epochs_run, "seconds": round(r.result.seconds + r.cache_seconds, 1),
             "val_f1": round(100 * r.metrics["val"]["micro_f1"], 1),
             "test_f1": round(100 * r.metrics["test"]["micro_f1"], 1)}
            for r, (_, kind) in zip(runs, kinds, strict=True)]
    # the best validation micro-F1 (the smaller K on a tie) with the backbone's own weights; the random row compares
    pick = max((i for i, (_, kind) in enumerate(kinds) if kind == own),
               key=lambda i: (runs[i].metrics["val"]["micro_f1"], -i))
    table = pd.DataFrame(rows)
    table["chosen"] = ["yes" if i == pick else "" for i in range(len(rows))]
    return table, runs[pick]
