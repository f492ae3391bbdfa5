"""The image classifier (notebook 04): Keras ResNet-50 + sigmoid head, the last K backbone layers trainable (the
paper: K = 40), ImageNet weights when found. Keras counts every layer (input, Conv2D, BatchNormalization, ReLU, Add,
padding, pooling) as one: 176 without the top, so the last 40 start at ``conv4_block6_2_conv``. Skip connections allow
a cut only at a block's output: :func:`split_frozen_tail` cuts before the first trainable layer's block (K = 40:
``conv4_block5_out``), so the frozen part runs once (:func:`cached_features`). Keras is imported here, TensorFlow never.
"""

from __future__ import annotations

import html
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from prodlib.download import DownloadError, fetch
from prodlib.image_input import ImageSequence

__all__ = ["IMAGENET_FILE", "IMAGENET_MD5", "IMAGENET_URL", "WeightsInfo", "backbone_layers", "build_image_model",
           "cached_features", "cut_layer_name", "find_imagenet_weights", "set_trainable_layers", "split_frozen_tail",
           "trainable_layer_table"]

#: File name of Keras's ImageNet ResNet-50 weights without the top (as cached in ``~/.keras/models``).
IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_FILE
#: MD5 of that file (``keras.src.applications.resnet.WEIGHTS_HASHES["resnet50"][1]``).
IMAGENET_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
WEIGHTS_ENV = "PRODLIB_RESNET_WEIGHTS"  # names a weights file to use instead of Keras's cache
HEAD_NAME = "image_head"  # the classifier's head; every other layer belongs to the backbone
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
        return f":::{{{'note' if self.pretrained else 'warning'}}}\n{self.message()}\n:::"

    def _repr_html_(self) -> str:
        """The same admonition as HTML (a notebook output renders in Jupyter and in the book)."""
        kind, title = ("note", "Weights") if self.pretrained else ("warning", "Random initialisation")
        return (f'<div class="admonition {kind}"><p class="admonition-title">{title}</p>'
                f"<p>{html.escape(self.message())}</p></div>")


def find_imagenet_weights(weights_path: str | os.PathLike[str] | None = None, *, download: bool = True,
                          timeout: float = 5.0, url: str = IMAGENET_URL) -> tuple[Path | None, str]:
    """Locate ResNet-50 ImageNet weights (no top): ``weights_path``, ``$PRODLIB_RESNET_WEIGHTS``, Keras's cache
    (``$KERAS_HOME/models``), else an MD5-checked download into that cache (``timeout`` s per connect and read).
    Returns ``(path, how)`` or ``(None, why not)``; a missing network never raises. Notebook 04."""
    for given, label in ((weights_path, "weights_path"), (os.environ.get(WEIGHTS_ENV), f"${WEIGHTS_ENV}")):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"{label} points to {p}, which does not exist; fix the path or unset it")
            return p, f"configured file ({label})"
    cached = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / IMAGENET_FILE
    if cached.is_file():
        return cached, "Keras cache"
    if not download:
        return None, f"not in the Keras cache ({cached}) and downloads are off"
    if url not in _FAILED_DOWNLOADS:  # one failed download per process is enough (e.g. a sweep of K)
        try:
            return fetch(url, cached.parent, filename=IMAGENET_FILE, md5=IMAGENET_MD5 if url == IMAGENET_URL else None,
                         timeout=timeout, retries=1), "downloaded to the Keras cache"
        except DownloadError as exc:  # offline, proxy, DNS, timeout, bad file: all mean "no weights"
            _FAILED_DOWNLOADS[url] = str(exc)
    return None, _FAILED_DOWNLOADS[url]


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The ResNet-50 layers of a model made by :func:`build_image_model` (all but the head), in order."""
    return [layer for layer in model.layers if layer.name != HEAD_NAME]


def _resolve_k(model: keras.Model, trainable_layers: int | str) -> int:
    n = len(backbone_layers(model))
    if isinstance(trainable_layers, str) and trainable_layers != "all":
        raise ValueError(f"trainable_layers must be an integer 0..{n} or 'all', got {trainable_layers!r}")
    k = n if isinstance(trainable_layers, str) else int(trainable_layers)
    if not 0 <= k <= n:
        raise ValueError(f"trainable_layers={k} is outside 0..{n} (ResNet-50 here has {n} layers; 'all' trains all)")
    return k


def set_trainable_layers(model: keras.Model, trainable_layers: int | str) -> int:
    """Freeze all backbone layers but the last ``trainable_layers`` (an int or ``"all"``); the head always
    trains. Returns K as an integer. Notebook 04."""
    layers, k = backbone_layers(model), _resolve_k(model, trainable_layers)
    for i, layer in enumerate(layers):
        layer.trainable = i >= len(layers) - k
    model.get_layer(HEAD_NAME).trainable = True
    return k


def build_image_model(n_classes: int, image_size: int, *, trainable_layers: int | str = 40,
                      weights: str | None = "imagenet", weights_path: str | os.PathLike[str] | None = None,
                      name: str = "image_resnet50", download: bool = True,
                      download_timeout: float = 5.0) -> tuple[keras.Model, WeightsInfo]:
    """ResNet-50 (no top, average pooling) + ``Dense(n_classes, sigmoid)`` named ``image_head``, all but the last
    ``trainable_layers`` backbone layers frozen (notebook 04). ``weights="imagenet"`` falls back to random
    initialisation when :func:`find_imagenet_weights` finds none; the :class:`WeightsInfo` says which happened."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    if image_size < 32:
        raise ValueError(f"image_size={image_size} is too small for ResNet-50; use at least 32 (the paper: 224)")
    if weights not in ("imagenet", "none", None):
        raise ValueError(f"weights must be 'imagenet' or 'none', got {weights!r}")
    backbone = keras.applications.ResNet50(include_top=False, pooling="avg", weights=None,
                                           input_shape=(image_size, image_size, 3))
    path, how = (find_imagenet_weights(weights_path, download=download, timeout=download_timeout)
                 if weights == "imagenet" else (None, "requested"))
    if path is not None:
        backbone.load_weights(str(path))
        info = WeightsInfo(source=f"ImageNet ({how})", pretrained=True, path=str(path), detail=how)
    elif weights == "imagenet":
        info = WeightsInfo(source=f"random init (ImageNet weights unavailable: {how})", pretrained=False, detail=how)
    else:
        info = WeightsInfo(source="random init (image_weights='none' in the profile)", pretrained=False, detail=how)
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
    k = sum(layer.trainable for layer in layers) if trainable_layers is None else _resolve_k(model, trainable_layers)
    rows = [{"position": i, "from_end": len(layers) - i, "layer": layers[i].name, "type": type(layers[i]).__name__,
             "block": _block_of(layers[i].name),
             "params": int(sum(int(np.prod(w.shape)) for w in layers[i].weights)),
             "has_weights": bool(layers[i].weights)} for i in range(len(layers) - k, len(layers))]
    return pd.DataFrame(rows, columns=["position", "from_end", "layer", "type", "block", "params", "has_weights"])


def _inbound_names(obj: Any) -> set[str]:
    """Names of the layers whose outputs a layer reads, from (part of) its functional config's inbound nodes."""
    if isinstance(obj, dict):
        found = {str(obj["keras_history"][0])} if obj.get("keras_history") is not None else set()
        return found.union(*(_inbound_names(v) for v in obj.values()))
    return set().union(*(_inbound_names(v) for v in obj)) if isinstance(obj, (list, tuple)) else set()


def cut_layer_name(model: keras.Model, trainable_layers: int | str) -> str:
    """The layer whose output :func:`split_frozen_tail` cuts at for ``trainable_layers``: the latest layer
    before the first trainable one whose output alone feeds everything after it (a block boundary)."""
    layers, k = backbone_layers(model), _resolve_k(model, trainable_layers)
    if k == len(layers):
        raise ValueError("with every layer trainable there is no frozen part to cache; train end to end")
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    consumers = [(order[c["name"]], {order[s] for s in _inbound_names(c.get("inbound_nodes", []))})
                 for c in model.get_config()["layers"]]
    for j in range(len(layers) - k - 1, 0, -1):  # from just before the first trainable backbone layer
        if all(min(srcs, default=j) >= j for pos, srcs in consumers if pos > j):  # nothing after j reads before j
            return model.layers[j].name
    raise ValueError("no single-tensor cut exists before the first trainable layer")


def split_frozen_tail(model: keras.Model, trainable_layers: int | str) -> tuple[keras.Model, keras.Model]:
    """Split ``model`` at :func:`cut_layer_name` into ``frozen`` and ``tail`` sharing its layers, so
    ``tail(frozen(x)) == model(x)`` and fitting ``tail`` trains ``model``; the cut block's frozen layers stay
    in the tail, frozen. ``trainable_layers`` is also applied to ``model``. Notebook 04."""
    set_trainable_layers(model, trainable_layers)
    cut = cut_layer_name(model, trainable_layers)
    cut_tensor = model.get_layer(cut).output
    frozen = keras.Model(model.inputs, cut_tensor, name=f"{model.name}_frozen")
    return frozen, keras.Model(cut_tensor, model.outputs, name=f"{model.name}_tail")


def cached_features(frozen: keras.Model, images: Any, *, progress: bool = True) -> np.ndarray:
    """The frozen part's activations for every image of ``images`` (an ``ImageSequence``, decoded a few
    batches ahead in threads, or an array of preprocessed images), computed once. Notebook 04."""
    if not isinstance(images, ImageSequence):
        return np.asarray(frozen.predict(np.asarray(images, dtype=np.float32), verbose=0, batch_size=64),
                          dtype=np.float32)
    if images.shuffle or images.augment:
        raise ValueError("cache features from an ImageSequence without shuffle or augmentation "
                         "(augmented inputs change every epoch; train end to end instead)")
    n = len(images)
    if n == 0:
        return np.zeros((0, *frozen.output.shape[1:]), dtype=np.float32)
    parts: list[np.ndarray] = []
    ahead = max(1, int(getattr(images, "workers", 1) or 1)) + 1  # batches in flight
    with (ThreadPoolExecutor(max_workers=ahead - 1) as pool,
          tqdm(total=n, desc="caching frozen ResNet-50 activations", unit="batch", disable=not progress) as bar):
        pending = deque(pool.submit(images.__getitem__, i) for i in range(min(ahead, n)))
        for i in range(n):
            item = pending.popleft().result()
            if i + ahead < n:
                pending.append(pool.submit(images.__getitem__, i + ahead))
            parts.append(np.asarray(frozen.predict_on_batch(item[0] if isinstance(item, tuple) else item),
                                    dtype=np.float32))
            bar.update(1)
    return np.concatenate(parts)
