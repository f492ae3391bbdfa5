"""The image classifier: Keras ResNet-50 with a sigmoid head, the last K backbone layers trainable (the paper:
K = 40), ImageNet weights when they can be found, and a frozen/tail split that caches the frozen part's
activations so that training on a CPU touches only the trainable tail. Explained in notebook 04.

**How Keras counts layers.** ``keras.applications.ResNet50(include_top=False, pooling="avg")`` has 176
layers: the ``InputLayer``, every ``Conv2D``, ``BatchNormalization``, ``Activation`` (ReLU), ``Add``,
``ZeroPadding2D``, ``MaxPooling2D`` and the final ``GlobalAveragePooling2D`` each count as one. "The last
40 layers" (``backbone.layers[-40:]``, as ``for layer in base.layers[:-40]: layer.trainable = False`` does)
therefore start at ``conv4_block6_2_conv`` — the middle of the last block of stage 4 — and cover all of
stage 5; 24 of them (Conv2D and BatchNormalization) carry weights. :func:`trainable_layer_table`
shows them.

**The cut.** ResNet blocks have skip connections, so the network can only be cut where a single tensor
carries everything later layers need: at a block's output. :func:`split_frozen_tail` cuts at the input of
the block that holds the first trainable layer (for K = 40: ``conv4_block5_out``); the frozen layers of that
block stay in the tail (frozen), so ``tail(frozen(x)) == model(x)`` and training the tail trains exactly the
layers the full model would train. Frozen ``BatchNormalization`` layers run in inference mode in Keras 3,
so without augmentation the frozen part's output is the same every epoch and can be computed once
(:func:`cached_features`).

Keras is imported at module level here (a model module); TensorFlow never is.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

__all__ = [
    "IMAGENET_FILE",
    "IMAGENET_MD5",
    "IMAGENET_URL",
    "ImageRun",
    "WeightsInfo",
    "backbone_layers",
    "build_image_model",
    "cached_features",
    "cut_layer_name",
    "find_imagenet_weights",
    "k_sweep",
    "set_trainable_layers",
    "split_frozen_tail",
    "trainable_layer_table",
    "train_image_classifier",
]

#: File name of Keras's ImageNet ResNet-50 weights without the top (as cached in ``~/.keras/models``).
IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_FILE
#: MD5 of that file (``keras.src.applications.resnet.WEIGHTS_HASHES["resnet50"][1]``).
IMAGENET_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
#: Environment variable naming a weights file to use instead of Keras's cache.
WEIGHTS_ENV = "PRODLIB_RESNET_WEIGHTS"
#: Prefix of the backbone's layers inside the classifier (the head is ``image_head``).
HEAD_NAME = "image_head"
_FAILED_DOWNLOADS: dict[str, str] = {}


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights the image model really started from (recorded in the manifest, stated in notebook 04)."""

    source: str
    pretrained: bool
    path: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        """One paragraph for readers: which weights, and what random initialisation means for the numbers."""
        if self.pretrained:
            return f"ResNet-50 starts from {self.source}: {self.path}."
        return (f"ResNet-50 starts from random weights, not ImageNet: {self.source}. The image model's numbers "
                "therefore say little about the paper's pretrained model. Put the Keras weights file "
                f"{IMAGENET_FILE} in ~/.keras/models/ or set {WEIGHTS_ENV} to use them.")

    def admonition(self) -> str:
        """MyST markdown: a ``warning`` admonition when the backbone is randomly initialised, else a note."""
        kind = "note" if self.pretrained else "warning"
        return f":::{{{kind}}}\n{self.message()}\n:::"

    def _repr_html_(self) -> str:
        """The same admonition as HTML (a notebook output renders in Jupyter and in the book)."""
        import html

        kind, title = ("note", "Weights") if self.pretrained else ("warning", "Random initialisation")
        return (f'<div class="admonition {kind}"><p class="admonition-title">{title}</p>'
                f"<p>{html.escape(self.message())}</p></div>")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def keras_cache_dir() -> Path:
    """Keras's model cache: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def find_imagenet_weights(weights_path: str | os.PathLike[str] | None = None, *, download: bool = True,
                          timeout: float = 5.0, url: str = IMAGENET_URL) -> tuple[Path | None, str]:
    """Locate ResNet-50 ImageNet weights (no top): ``weights_path``, else ``$PRODLIB_RESNET_WEIGHTS``, else
    Keras's cache, else a download (``timeout`` seconds to connect and per read; MD5-checked; stored in
    Keras's cache). Returns ``(path, how)`` or ``(None, why not)``; never raises for a missing network.
    Notebook 04.
    """
    for given, label in ((weights_path, "weights_path"), (os.environ.get(WEIGHTS_ENV), f"${WEIGHTS_ENV}")):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"{label} points to {p}, which does not exist; fix the path or unset it")
            return p, f"configured file ({label})"
    cached = keras_cache_dir() / IMAGENET_FILE
    if cached.is_file():
        return cached, "Keras cache"
    if not download:
        return None, f"not in the Keras cache ({cached}) and downloads are off"
    if url in _FAILED_DOWNLOADS:  # one timeout per process is enough (e.g. a sweep of K)
        return None, _FAILED_DOWNLOADS[url]
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cached.parent, suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, f, 1 << 20)
            if url == IMAGENET_URL and _md5(tmp) != IMAGENET_MD5:
                raise OSError("the downloaded file's MD5 does not match Keras's")
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
        return cached, "downloaded to the Keras cache"
    except Exception as exc:  # offline, proxy, DNS, timeout, bad file: all mean "no weights"
        _FAILED_DOWNLOADS[url] = f"download from {url} failed: {type(exc).__name__}: {exc}"
        return None, _FAILED_DOWNLOADS[url]


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The ResNet-50 layers of a model made by :func:`build_image_model` (all but the head), in order."""
    return [layer for layer in model.layers if layer.name != HEAD_NAME]


def _resolve_k(model: keras.Model, trainable_layers: int | str) -> int:
    n = len(backbone_layers(model))
    if isinstance(trainable_layers, str):
        if trainable_layers != "all":
            raise ValueError(f"trainable_layers must be an integer 0..{n} or 'all', got {trainable_layers!r}")
        return n
    k = int(trainable_layers)
    if not 0 <= k <= n:
        raise ValueError(f"trainable_layers={k} is outside 0..{n} (ResNet-50 here has {n} layers; 'all' trains all)")
    return k


def set_trainable_layers(model: keras.Model, trainable_layers: int | str) -> int:
    """Freeze all backbone layers but the last ``trainable_layers`` (an int or ``"all"``); the head always
    trains. Returns K as an integer. Notebook 04."""
    layers = backbone_layers(model)
    k = _resolve_k(model, trainable_layers)
    first = len(layers) - k
    for i, layer in enumerate(layers):
        layer.trainable = i >= first
    model.get_layer(HEAD_NAME).trainable = True
    return k


def build_image_model(n_classes: int, image_size: int, *, trainable_layers: int | str = 40,
                      weights: str | None = "imagenet", weights_path: str | os.PathLike[str] | None = None,
                      name: str = "image_resnet50", download: bool = True,
                      download_timeout: float = 5.0) -> tuple[keras.Model, WeightsInfo]:
    """ResNet-50 (no top, global average pooling) + ``Dense(n_classes, sigmoid)`` named ``image_head``,
    with all but the last ``trainable_layers`` backbone layers frozen (notebook 04).

    ``weights``: ``"imagenet"`` uses :func:`find_imagenet_weights` (``weights_path``, ``$PRODLIB_RESNET_WEIGHTS``,
    Keras's cache, a download with ``download_timeout``) and falls back to random initialisation with a
    :class:`WeightsInfo` that says why; ``"none"``/``None`` is random initialisation on purpose. Seed first
    (``prodlib.train.set_seed``) for reproducible initial weights.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    if image_size < 32:
        raise ValueError(f"image_size={image_size} is too small for ResNet-50; use at least 32 (the paper: 224)")
    if weights not in ("imagenet", "none", None):
        raise ValueError(f"weights must be 'imagenet' or 'none', got {weights!r}")
    backbone = keras.applications.ResNet50(include_top=False, pooling="avg", weights=None,
                                           input_shape=(image_size, image_size, 3))
    if weights == "imagenet":
        path, how = find_imagenet_weights(weights_path, download=download, timeout=download_timeout)
        if path is None:
            info = WeightsInfo(source=f"random init (ImageNet weights unavailable: {how})", pretrained=False,
                               detail=how)
        else:
            backbone.load_weights(str(path))
            info = WeightsInfo(source=f"ImageNet ({how})", pretrained=True, path=str(path), detail=how)
    else:
        info = WeightsInfo(source="random init (image_weights='none' in the profile)", pretrained=False,
                           detail="requested")
    out = keras.layers.Dense(n_classes, activation="sigmoid", name=HEAD_NAME, dtype="float32")(backbone.output)
    model = keras.Model(backbone.input, out, name=name)
    set_trainable_layers(model, trainable_layers)
    return model, info


def _block_of(name: str) -> str:
    parts = name.split("_")
    return "_".join(parts[:2]) if len(parts) >= 3 and parts[1].startswith("block") else name


def trainable_layer_table(model: keras.Model, trainable_layers: int | str | None = None) -> pd.DataFrame:
    """The backbone's last K layers (``trainable_layers``, default: the ones now trainable): position as
    Keras counts it, name, type, block, parameters and whether it carries weights. Notebook 04."""
    layers = backbone_layers(model)
    if trainable_layers is None:
        k = sum(layer.trainable for layer in layers)
    else:
        k = _resolve_k(model, trainable_layers)
    rows = []
    for i in range(len(layers) - k, len(layers)):
        layer = layers[i]
        rows.append({"position": i, "from_end": len(layers) - i, "layer": layer.name,
                     "type": type(layer).__name__, "block": _block_of(layer.name),
                     "params": int(sum(int(np.prod(w.shape)) for w in layer.weights)),
                     "has_weights": bool(layer.weights)})
    return pd.DataFrame(rows, columns=["position", "from_end", "layer", "type", "block", "params", "has_weights"])


def _inbound_names(layer_config: dict[str, Any]) -> set[str]:
    """Names of the layers whose outputs a layer consumes, from its functional config."""
    found: set[str] = set()

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            hist = obj.get("keras_history") if "keras_history" in obj else None
            if hist is not None:
                found.add(str(hist[0]))
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(layer_config.get("inbound_nodes", []))
    return found


def cut_layer_name(model: keras.Model, trainable_layers: int | str) -> str:
    """The layer whose output :func:`split_frozen_tail` cuts at for ``trainable_layers``: the latest layer
    before the first trainable one whose output alone feeds everything after it (a block boundary)."""
    layers = backbone_layers(model)
    k = _resolve_k(model, trainable_layers)
    if k == len(layers):
        raise ValueError("with every layer trainable there is no frozen part to cache; train end to end")
    first = len(layers) - k  # index of the first trainable backbone layer (== len(layers) when k == 0)
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    config = {c["name"]: c for c in model.get_config()["layers"]}
    consumers: list[tuple[int, set[int]]] = [
        (order[name], {order[s] for s in _inbound_names(c)}) for name, c in config.items()]
    for j in range(first - 1, 0, -1):
        # valid cut at j: no layer after j reads a tensor made before j
        if all(min(srcs, default=j) >= j for pos, srcs in consumers if pos > j):
            return model.layers[j].name
    raise ValueError("no single-tensor cut exists before the first trainable layer")


def split_frozen_tail(model: keras.Model, trainable_layers: int | str) -> tuple[keras.Model, keras.Model]:
    """Split ``model`` into ``frozen`` (input → the cut of :func:`cut_layer_name`) and ``tail`` (cut →
    output) sharing its layers, so ``tail(frozen(x)) == model(x)`` and fitting ``tail`` trains ``model``.

    The tail starts at the input of the block holding the first trainable layer; that block's frozen
    layers stay in the tail, frozen. ``trainable_layers`` is also applied to ``model``. Notebook 04.
    """
    set_trainable_layers(model, trainable_layers)
    cut = cut_layer_name(model, trainable_layers)
    cut_tensor = model.get_layer(cut).output
    frozen = keras.Model(model.inputs, cut_tensor, name=f"{model.name}_frozen")
    tail = keras.Model(cut_tensor, model.outputs, name=f"{model.name}_tail")
    if any(w.trainable for layer in frozen.layers for w in layer.weights if layer.trainable):
        raise AssertionError(f"the frozen part up to {cut} holds a trainable layer")  # pragma: no cover
    return frozen, tail


def cached_features(frozen: keras.Model, images: Any, *, progress: bool = True) -> np.ndarray:
    """The frozen part's activations for every image of ``images`` (an ``ImageSequence`` or an array of
    preprocessed images), computed once in batches. Notebook 04."""
    from prodlib.images import ImageSequence

    if isinstance(images, ImageSequence):
        if images.shuffle or images.augment:
            raise ValueError("cache features from an ImageSequence without shuffle or augmentation "
                             "(augmented inputs change every epoch; train end to end instead)")
        if len(images) == 0:
            return np.zeros((0, *frozen.output.shape[1:]), dtype=np.float32)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(images), desc="caching frozen ResNet-50 activations", unit="batch")
        parts: list[np.ndarray] = []
        ahead = max(1, int(getattr(images, "workers", 1) or 1)) + 1  # batches decoded ahead in threads
        with ThreadPoolExecutor(max_workers=ahead - 1 or 1) as pool:
            pending = deque(pool.submit(images.__getitem__, i) for i in range(min(ahead, len(images))))
            nxt = len(pending)
            while pending:
                item = pending.popleft().result()
                if nxt < len(images):
                    pending.append(pool.submit(images.__getitem__, nxt))
                    nxt += 1
                x = item[0] if isinstance(item, tuple) else item
                parts.append(np.asarray(frozen.predict_on_batch(x), dtype=np.float32))
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        return np.concatenate(parts)
    return np.asarray(frozen.predict(np.asarray(images, dtype=np.float32), verbose=0, batch_size=64),
                      dtype=np.float32)


@dataclass
class ImageRun:
    """Everything notebook 04 reports about one training of the image classifier.

    ``p_val``/``p_test`` have one row per product of the split (``ds.splits`` order): the model's output
    for products with an image, the training-set label prevalence (:func:`prodlib.images.prevalence_probs`)
    for the others, listed in ``missing``. ``features`` are the 2048 pooled ResNet-50 activations per
    product (zeros where there is no image).
    """

    model: keras.Model
    weights: WeightsInfo
    result: Any  # prodlib.train.TrainResult
    p_val: np.ndarray
    p_test: np.ndarray
    missing: dict[str, list[str]]
    n_images: dict[str, int]
    mode: str
    trainable_layers: int
    cut: str | None = None
    cache_seconds: float = 0.0
    features: dict[str, np.ndarray] | None = None
    p_train: np.ndarray | None = None
    """The model's outputs on the training products, kept (with features) for notebook 05's naive-fusion
    warning."""

    def summary(self) -> dict[str, Any]:
        """Plain-JSON facts for ``metrics.json`` and the manifest."""
        return {"mode": self.mode, "trainable_layers": self.trainable_layers, "cut_at": self.cut,
                "cache_seconds": round(self.cache_seconds, 2), "images": self.n_images,
                "missing_images": {k: len(v) for k, v in self.missing.items()},
                "weights": self.weights.to_dict()}


def train_image_classifier(ds: Any, profile: Any, *, trainable_layers: int | str | None = None,
                           cache: bool | None = None, augment: bool | None = None, epochs: int | None = None,
                           weights_path: str | os.PathLike[str] | None = None, with_features: bool = True,
                           model: tuple[keras.Model, WeightsInfo] | None = None,
                           workers: int = 2, verbose: str | int = 2, progress: bool = True) -> ImageRun:
    """Train the image classifier of notebook 04 on ``ds`` (a :class:`prodlib.dataset.Dataset`) as
    ``profile`` says (``image_size``, ``image_epochs``, ``image_batch_size``, ``trainable_layers``,
    ``image_cache``, ``augment``, ``image_weights``, ``learning_rate``, ``patience``, ``seed``); keyword
    arguments override the profile.

    Products without a usable image are left out of training (policy of :mod:`prodlib.images`). With
    ``cache`` (and no augmentation) the frozen part's activations are computed once and only the tail
    trains (:func:`split_frozen_tail`); otherwise images stream through :class:`prodlib.images.ImageSequence`
    end to end. Training is :func:`prodlib.train.fit_classifier` (early stopping on validation micro-F1).
    ``model`` takes a ``(model, weights_info)`` pair from :func:`build_image_model` to train instead of a
    fresh one.
    """
    from prodlib import images as I
    from prodlib.train import fit_classifier, predict_proba, set_seed

    k_req = profile.trainable_layers if trainable_layers is None else trainable_layers
    augment = profile.augment if augment is None else augment
    cache = profile.image_cache if cache is None else cache
    epochs = profile.image_epochs if epochs is None else epochs
    size, bs, seed = profile.image_size, profile.image_batch_size, profile.seed

    parts: dict[str, tuple[list[str], list[str], list[str]]] = {}
    ys: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        ids, paths, without = I.split_images(ds.part(split))
        parts[split] = (ids, paths, without)
        pos = {pid: n for n, pid in enumerate(ds.splits[split])}
        ys[split] = ds.y(split)[[pos[i] for i in ids]] if ids else np.zeros((0, ds.n_classes), np.float32)
    for split in ("train", "val"):
        if not parts[split][0]:
            raise ValueError(f"no product of the {split} split has a usable image; check notebook 01's image "
                             "report (dataset_stats.json) before training the image model")

    set_seed(seed)
    built = model if model is not None else build_image_model(
        ds.n_classes, size, trainable_layers=k_req, weights=profile.image_weights, weights_path=weights_path)
    net_full, info = built
    k = set_trainable_layers(net_full, k_req)
    use_cache = bool(cache) and not augment and k < len(backbone_layers(net_full))
    cut: str | None = None
    cache_seconds = 0.0
    feat_model: keras.Model | None = None
    if use_cache:
        import time

        frozen, tail = split_frozen_tail(net_full, k)
        cut = cut_layer_name(net_full, k)
        t0 = time.perf_counter()
        x = {s: cached_features(frozen, I.ImageSequence(parts[s][1], image_size=size, batch_size=64, workers=workers),
                                progress=progress) for s in parts}
        cache_seconds = time.perf_counter() - t0
        net = tail
        if with_features:
            feat_model = keras.Model(net_full.get_layer(cut).output, net_full.get_layer("avg_pool").output)
    else:
        x = {s: I.ImageSequence(parts[s][1], ys[s] if s == "train" else None, image_size=size, batch_size=bs,
                                augment=augment and s == "train", shuffle=s == "train", seed=seed, workers=workers)
             for s in parts}
        net = net_full
        if with_features:
            feat_model = keras.Model(net_full.inputs, net_full.get_layer("avg_pool").output)
    result = fit_classifier(net, x["train"], ys["train"], x["val"], ys["val"], epochs=epochs, batch_size=bs,
                            learning_rate=profile.learning_rate, patience=profile.patience, seed=seed,
                            verbose=verbose)
    y_train_all = ds.y("train")
    probs: dict[str, np.ndarray] = {}
    features: dict[str, np.ndarray] = {}
    for split in ("val", "test", "train"):
        if split == "train" and not with_features:
            continue
        ids = parts[split][0]
        order = {pid: n for n, pid in enumerate(ds.splits[split])}
        rows = [order[i] for i in ids]
        full = I.prevalence_probs(y_train_all, len(ds.splits[split]))
        if ids:
            full[rows] = predict_proba(net, _eval_input(x[split], use_cache, size))
        probs[split] = full
        if feat_model is not None:
            feats = np.zeros((len(ds.splits[split]), 2048), np.float32)
            if ids:
                feats[rows] = np.asarray(feat_model.predict(_eval_input(x[split], use_cache, size), verbose=0))
            features[split] = feats
    return ImageRun(model=net_full, weights=info, result=result, p_val=probs["val"], p_test=probs["test"],
                    p_train=probs.get("train"),
                    missing={s: parts[s][2] for s in parts}, n_images={s: len(parts[s][0]) for s in parts},
                    mode="cached frozen part, tail trained" if use_cache else "end to end", trainable_layers=k,
                    cut=cut, cache_seconds=cache_seconds, features=features or None)


def _eval_input(x: Any, cached: bool, size: int) -> Any:
    """Inputs for prediction: cached arrays as they are; an image sequence without labels, unshuffled."""
    if cached:
        return x
    from prodlib.images import ImageSequence

    return ImageSequence(x.paths, image_size=size, batch_size=x.batch_size, workers=x.workers)


def k_sweep(ds: Any, profile: Any, *, base: ImageRun | None = None, values: Iterable[int] | None = None,
            verbose: str | int = 0) -> pd.DataFrame:
    """Retrain the image model for each K in ``values`` (default ``profile.k_sweep``) from the same seed and
    report validation and test micro-F1 (notebook 04, section 4.9). ``base``, a run with one of the K values,
    is reused instead of retrained. An empty table when there is nothing to sweep."""
    from prodlib import metrics as M

    values = list(profile.k_sweep if values is None else values)
    rows = []
    for k in values:
        run = base if base is not None and base.trainable_layers == k else None
        if run is None:
            run = train_image_classifier(ds, profile, trainable_layers=k, with_features=False, verbose=verbose,
                                         progress=False)
        rows.append({"K": k, "cut_at": run.cut or "-", "mode": run.mode,
                     "trainable_params_m": round(sum(int(np.prod(w.shape)) for w in run.model.trainable_weights)
                                                 / 1e6, 2),
                     "epochs": run.result.epochs_run, "train_seconds": round(run.result.seconds, 1),
                     "val_micro_f1": round(100 * M.micro_f1(ds.y("val"), run.p_val, profile.threshold), 1),
                     "test_micro_f1": round(100 * M.micro_f1(ds.y("test"), run.p_test, profile.threshold), 1)})
    return pd.DataFrame(rows, columns=["K", "cut_at", "mode", "trainable_params_m", "epochs", "train_seconds",
                                       "val_micro_f1", "test_micro_f1"])
