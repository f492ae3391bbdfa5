"""The image classifier (notebook 04): a Keras application backbone + sigmoid head, the last K backbone layers
trainable (the paper: ResNet-50, K = 40). :data:`BACKBONES` says what differs between backbones; Keras counts
every layer (input, convolution, batch normalisation, activation, addition, padding, pooling) as one. A network
can be cut only where one tensor carries everything later layers need: :func:`split_frozen_tail` cuts before the
first trainable layer's block, so the frozen part runs once (:func:`cached_features`). Imports Keras, never
TensorFlow."""

from __future__ import annotations

import html
import os
import re
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

__all__ = ["BACKBONES", "Backbone", "WeightsInfo", "WeightsUnavailable", "backbone", "backbone_layers",
           "build_image_model", "cached_features", "choose_backbone", "cut_layer_name", "find_weights",
           "image_model_from_profile", "set_trainable_layers", "split_frozen_tail", "trainable_layer_table"]

WEIGHTS_ENV = "PRODLIB_IMAGE_WEIGHTS"  # names a weights file to use instead of Keras's cache
HEAD_NAME = "image_head"  # the classifier's head; every other layer belongs to the backbone
_KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_FAILED_DOWNLOADS: dict[str, str] = {}


class WeightsUnavailable(RuntimeError):
    """The profile asks for a backbone's ImageNet weights and none can be had; the message says what to do."""


@dataclass(frozen=True)
class Backbone:
    """One image backbone: its ``keras.applications`` builder (``name`` is the module of its ``preprocess_input``),
    its ImageNet weights as Keras caches them (file, URL, checksum), and how many layers Keras counts in it."""

    name: str
    label: str
    builder: str
    weights_file: str
    md5: str | None = None
    sha256: str | None = None
    alpha: float | None = None
    layers: int = 0

    @property
    def weights_url(self) -> str:
        return _KERAS_URL + ("resnet/" if self.name == "resnet50" else "mobilenet/") + self.weights_file

    def build(self, image_size: int) -> keras.Model:
        """The backbone without its top, global average pooling, random weights."""
        extra = {} if self.alpha is None else {"alpha": self.alpha}
        return getattr(keras.applications, self.builder)(include_top=False, pooling="avg", weights=None,
                                                         input_shape=(image_size, image_size, 3), **extra)


def _mobilenet(alpha: float) -> Backbone:
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}.get(alpha)
    if text is None:
        raise ValueError(f"mobilenet_alpha must be one of 0.25, 0.5, 0.75, 1.0 (Keras' ImageNet widths), got {alpha}")
    sha = "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf" if alpha == 0.25 else None
    return Backbone("mobilenet", f"MobileNet (alpha {alpha:g})", "MobileNet", f"mobilenet_{text}_224_tf_no_top.h5",
                    sha256=sha, alpha=alpha, layers=87)


#: What differs between the backbones (``mobilenet`` at width 0.25; see :func:`backbone`). ResNet-50's MD5 is
#: ``keras.src.applications.resnet.WEIGHTS_HASHES["resnet50"][1]``.
BACKBONES: dict[str, Backbone] = {
    "resnet50": Backbone("resnet50", "ResNet-50", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                         md5="4d473c1dd8becc155b73f8504c6f6626", layers=176),
    "mobilenet": _mobilenet(0.25),
}


def backbone(name: str, alpha: float = 0.25) -> Backbone:
    """The :class:`Backbone` called ``name`` (``resnet50`` or ``mobilenet`` of width ``alpha``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown image backbone {name!r}; choose auto, {', '.join(BACKBONES)}")
    return _mobilenet(alpha) if name == "mobilenet" else BACKBONES[name]


@dataclass(frozen=True)
class WeightsInfo:
    """Which backbone and weights the image model really started from, and why (recorded in the manifest,
    stated in notebook 04 and the results banner)."""

    source: str
    pretrained: bool
    path: str | None = None
    detail: str = ""
    backbone: str = "resnet50"
    label: str = "ResNet-50"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        """One paragraph for readers: which backbone and weights, why, and what random weights mean."""
        why = f" {self.reason[:1].upper()}{self.reason[1:]}." if self.reason else ""
        if self.pretrained:
            return f"{self.label} starts from {self.source} weights ({Path(self.path or '').name}).{why}"
        return (f"{self.label} starts from random weights, not ImageNet.{why} The image model's numbers therefore "
                "say little about the paper's pretrained model; put the Keras weights file in ~/.keras/models/ or "
                f"set {WEIGHTS_ENV} to use them.")

    def _repr_html_(self) -> str:
        """The same admonition as HTML (a notebook output renders in Jupyter and in the book)."""
        kind, title = ("note", "Weights") if self.pretrained else ("warning", "Random initialisation")
        return (f'<div class="admonition {kind}"><p class="admonition-title">{title}</p>'
                f"<p>{html.escape(self.message())}</p></div>")


def find_weights(bb: Backbone, weights_path: str | os.PathLike[str] | None = None, *, download: bool = True,
                 timeout: float = 5.0, url: str | None = None) -> tuple[Path | None, str]:
    """Locate ``bb``'s ImageNet weights: ``weights_path``, else Keras's cache (``$KERAS_HOME/models``, the official
    file name), else a checksum-verified download into that cache (``timeout`` s per connect and read). Returns
    ``(path, how)`` or ``(None, why not)``; a missing network never raises. Notebook 04."""
    if weights_path:
        p = Path(weights_path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"the image weights file {p} does not exist; fix the path or unset it")
        return p, "configured file"
    cached = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / bb.weights_file
    if cached.is_file():
        return cached, "Keras cache"
    if not download:
        return None, f"not in the Keras cache ({cached}) and downloads are off"
    url = url or bb.weights_url
    if url not in _FAILED_DOWNLOADS:  # one failed download per process is enough (e.g. a sweep of K)
        try:
            return fetch(url, cached.parent, filename=bb.weights_file, md5=bb.md5 if url == bb.weights_url else None,
                         sha256=bb.sha256 if url == bb.weights_url else None, timeout=timeout,
                         retries=1), "downloaded to the Keras cache"
        except DownloadError as exc:  # offline, proxy, DNS, timeout, bad file: all mean "no weights"
            _FAILED_DOWNLOADS[url] = str(exc)
    return None, _FAILED_DOWNLOADS[url]


def choose_backbone(name: str = "auto", *, alpha: float = 0.25, weights: str = "imagenet",
                    weights_path: str | os.PathLike[str] | None = None, download: bool = True,
                    timeout: float = 5.0) -> tuple[Backbone, Path | None, str, str]:
    """``(backbone, weights file or None, why in a few words, details)``. ``auto``: ResNet-50 with ImageNet weights
    when they can be had, else MobileNet with ImageNet weights, else ResNet-50 from random weights. A named
    backbone without its weights raises :class:`WeightsUnavailable` unless ``weights="none"``. Notebook 04."""
    weights_path = weights_path or os.environ.get(WEIGHTS_ENV) or None
    if weights not in ("imagenet", "none"):
        raise ValueError(f"image_weights must be 'imagenet' or 'none', got {weights!r}")
    if weights == "none":
        bb = backbone("resnet50" if name == "auto" else name, alpha)
        return bb, None, "random weights on purpose (image_weights='none' in the profile)", ""
    if name != "auto":
        bb = backbone(name, alpha)
        path, how = find_weights(bb, weights_path, download=download, timeout=timeout)
        if path is None:
            raise WeightsUnavailable(
                f"{bb.label}'s ImageNet weights cannot be had here ({how}). Put {bb.weights_file} in "
                f"~/.keras/models/, or point {WEIGHTS_ENV} (or the profile field image_weights_file) at it; to train "
                "from random weights anyway (hours on a GPU, numbers unlike the paper's), set image_weights=none")
        return bb, path, f"{bb.label} as the profile asks, ImageNet weights from the {how}", how
    missing: list[str] = []
    for bb in (BACKBONES["resnet50"], backbone("mobilenet", alpha)):
        path, how = find_weights(bb, weights_path if bb.name == "resnet50" else None, download=download,
                                 timeout=timeout)
        if path is not None:
            why = "chosen automatically, ResNet-50's could not be had here" if missing else "the paper's backbone"
            return bb, path, f"{why}; ImageNet weights from the {how}", "; ".join([*missing, how])
        missing.append(f"{bb.label}: {how}")
    return (BACKBONES["resnet50"], None, "chosen automatically, no ImageNet weights could be had here",
            "; ".join(missing))


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The backbone layers of a model made by :func:`build_image_model` (all but the head), in order."""
    return [layer for layer in model.layers if layer.name != HEAD_NAME]


def _resolve_k(model: keras.Model, trainable_layers: int | str) -> int:
    n = len(backbone_layers(model))
    if isinstance(trainable_layers, str) and trainable_layers != "all":
        raise ValueError(f"trainable_layers must be an integer 0..{n} or 'all', got {trainable_layers!r}")
    k = n if isinstance(trainable_layers, str) else int(trainable_layers)
    if not 0 <= k <= n:
        raise ValueError(f"trainable_layers={k} is outside 0..{n} (this backbone has {n} layers; 'all' trains all)")
    return k


def set_trainable_layers(model: keras.Model, trainable_layers: int | str) -> int:
    """Freeze all backbone layers but the last ``trainable_layers`` (an int or ``"all"``); the head always
    trains. Returns K as an integer. Notebook 04."""
    layers, k = backbone_layers(model), _resolve_k(model, trainable_layers)
    for i, layer in enumerate(layers):
        layer.trainable = i >= len(layers) - k
    model.get_layer(HEAD_NAME).trainable = True
    return k


def build_image_model(n_classes: int, image_size: int, *, backbone_name: str = "auto", alpha: float = 0.25,
                      trainable_layers: int | str = 40, weights: str = "imagenet",
                      weights_path: str | os.PathLike[str] | None = None, download: bool = True,
                      download_timeout: float = 5.0) -> tuple[keras.Model, WeightsInfo]:
    """The backbone :func:`choose_backbone` picks (no top, average pooling) + ``Dense(n_classes, sigmoid)`` named
    ``image_head``, all but the last ``trainable_layers`` backbone layers frozen; the :class:`WeightsInfo` says
    which backbone and weights, and why. Notebook 04."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    if image_size < 32:
        raise ValueError(f"image_size={image_size} is too small for the backbone; use at least 32 (the paper: 224)")
    bb, path, why, detail = choose_backbone(backbone_name, alpha=alpha, weights=weights, weights_path=weights_path,
                                            download=download, timeout=download_timeout)
    net = bb.build(image_size)
    if path is not None:
        net.load_weights(str(path))
    source = "ImageNet" if path is not None else "random init"
    info = WeightsInfo(source=source, pretrained=path is not None, path=None if path is None else str(path),
                       detail=detail, backbone=bb.name, label=bb.label, reason=why)
    out = keras.layers.Dense(n_classes, activation="sigmoid", name=HEAD_NAME, dtype="float32")(net.output)
    model = keras.Model(net.input, out, name=f"image_{bb.name}")
    set_trainable_layers(model, trainable_layers)
    return model, info


def image_model_from_profile(profile: Any, n_classes: int, **overrides: Any) -> tuple[keras.Model, WeightsInfo]:
    """:func:`build_image_model` with the profile's ``image_size``, ``image_backbone``, ``mobilenet_alpha``,
    ``trainable_layers``, ``image_weights`` and ``image_weights_file`` (keyword arguments override them)."""
    kw = {"backbone_name": profile.image_backbone, "alpha": profile.mobilenet_alpha,
          "trainable_layers": profile.trainable_layers, "weights": profile.image_weights,
          "weights_path": profile.image_weights_file or None, **overrides}
    return build_image_model(n_classes, profile.image_size, **kw)


def _block_of(name: str) -> str:
    """ResNet ``conv4_block6_2_conv`` → ``conv4_block6``; MobileNet ``conv_pw_12_bn`` → ``block_12``."""
    if m := re.match(r"(conv\d+_block\d+)_", name):
        return m.group(1)
    return f"block_{m.group(1)}" if (m := re.match(r"conv_(?:dw|pw|pad)_(\d+)", name)) else name


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
          tqdm(total=n, desc="caching the frozen part's activations", unit="batch", disable=not progress) as bar):
        pending = deque(pool.submit(images.__getitem__, i) for i in range(min(ahead, n)))
        for i in range(n):
            item = pending.popleft().result()
            if i + ahead < n:
                pending.append(pool.submit(images.__getitem__, i + ahead))
            parts.append(np.asarray(frozen.predict_on_batch(item[0] if isinstance(item, tuple) else item),
                                    dtype=np.float32))
            bar.update(1)
    return np.concatenate(parts)
