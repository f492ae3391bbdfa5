"""Product images: acquisition and validation (notebook 01) and the backend-neutral input pipeline of the
image classifier (notebook 04).

:func:`prepare_images` downloads or reads every product image, decodes it with Pillow, rejects what is not
a usable picture (broken downloads, placeholders, decompression bombs, text served as an image) and stores
the rest as normalised RGB JPEG files; every product gets one outcome in an :class:`ImageReport`.

:class:`ImageSequence` feeds those files to Keras on every backend (TensorFlow, JAX, PyTorch): Pillow
decoding in worker threads, resizing, ``resnet50.preprocess_input``, optional seeded flips. ``tf.data`` is
only an optional fast path (:func:`tf_image_dataset`) when TensorFlow is importable; this module never
imports TensorFlow at import time.

Products without a usable image are excluded from image training; at prediction time their image output
is the training-set label prevalence of each class (:func:`prevalence_probs`), and notebook 04 records
which validation and test products had no image (``missing_images.json``).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageFile, UnidentifiedImageError

from prodlib._lazy import keras_subclass

__all__ = [
    "ImageReport",
    "ImageSequence",  # noqa: F822 (made on first access, see __getattr__)
    "USABLE_OUTCOMES",
    "check_image_file",
    "is_placeholder_url",
    "load_image",
    "load_image_array",
    "prepare_images",
    "prediction_examples",
    "prevalence_probs",
    "preprocess",
    "split_images",
    "tf_image_dataset",
]

#: URL fragments of known placeholder images (Amazon's "no-img" GIF and similar).
PLACEHOLDER_PATTERNS = ("no-img", "no_img", "noimage", "no-image", "no_image", "placeholder")
#: Decoded images with a side shorter than this many pixels are placeholders (1×1 tracking GIFs, blanks).
MIN_SIDE = 8
#: Outcomes whose product keeps an image; every other outcome means "no usable image".
USABLE_OUTCOMES = ("ok",)  # plus every ``converted_<mode>`` outcome, see ImageReport.usable

_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}
_USER_AGENT = "prodlib-image-fetch/0.1 (+https://github.com/prodlib-study/prodlib)"


# ---------------------------------------------------------------------------------------------------
# Acquisition and validation
# ---------------------------------------------------------------------------------------------------

@dataclass
class ImageReport:
    """The outcome of :func:`prepare_images` for every product (explained in notebook 01).

    ``log`` has one row per product: ``id``, ``source`` (path or URL), ``outcome`` (``ok``,
    ``converted_<mode>``, ``missing``, ``file_not_found``, ``http_<status>``, ``timeout``,
    ``network_error``, ``not_image``, ``truncated``, ``too_large``, ``placeholder``, ``error``),
    ``detail``, ``path`` (the stored file or empty), ``attempts`` and ``resumed`` (reused from an earlier
    run).
    """

    log: pd.DataFrame
    out_dir: Path | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def is_usable(outcome: str) -> bool:
        """True for outcomes that leave the product with a stored image."""
        return outcome in USABLE_OUTCOMES or outcome.startswith("converted_")

    @property
    def counts(self) -> pd.Series:
        """Products per outcome, most frequent first."""
        return self.log["outcome"].value_counts()

    @property
    def n_usable(self) -> int:
        return int(self.log["outcome"].map(self.is_usable).sum())

    @property
    def n_total(self) -> int:
        return len(self.log)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON summary (counts per outcome, usable, resumed, seconds) for ``dataset_stats``."""
        return {
            "products": self.n_total,
            "usable": self.n_usable,
            "rejected": self.n_total - self.n_usable,
            "resumed": int(self.log["resumed"].sum()) if len(self.log) else 0,
            "outcomes": {str(k): int(v) for k, v in self.counts.items()},
            "seconds": round(self.seconds, 2),
            **self.extra,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the per-product outcome log as CSV (atomically)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self.log.to_csv(tmp, index=False)
        os.replace(tmp, path)
        return path

    def __str__(self) -> str:
        lines = [f"Images: {self.n_usable} of {self.n_total} products usable ({self.seconds:.1f} s)"]
        for outcome, n in self.counts.items():
            lines.append(f"  {outcome:<22} {n:>7}")
        resumed = int(self.log["resumed"].sum()) if len(self.log) else 0
        if resumed:
            lines.append(f"  ({resumed} reused from an earlier run)")
        return "\n".join(lines)


class _Reject(Exception):
    """An image that cannot be used: ``outcome`` names why."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(detail or outcome)
        self.outcome = outcome
        self.detail = detail


def is_placeholder_url(url: str) -> bool:
    """True for URLs of known placeholder images (Amazon's ``no-img`` GIFs and similar)."""
    low = url.lower()
    return any(p in low for p in PLACEHOLDER_PATTERNS)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _safe_name(pid: str) -> str:
    """A file name for product ``pid`` that is safe on every file system and unique per id."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", pid)[:80]
    if clean != pid or clean.startswith("."):
        clean = f"{clean.lstrip('.')}_{hashlib.sha1(pid.encode()).hexdigest()[:10]}"
    return clean + ".jpg"


def _fetch(url: str, timeout: float, retries: int, backoff: float) -> tuple[bytes, int]:
    """GET ``url``; retry timeouts, connection errors and 408/429/5xx with exponential backoff."""
    last: _Reject | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read(), attempt + 1
        except urllib.error.HTTPError as exc:
            last = _Reject(f"http_{exc.code}", str(exc.reason))
            if exc.code not in _RETRY_HTTP:
                last.detail = f"{exc.reason} (not retried)"
                raise last from None
        except TimeoutError as exc:
            last = _Reject("timeout", f"no answer within {timeout:g} s ({exc})")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                last = _Reject("timeout", f"no answer within {timeout:g} s")
            else:
                last = _Reject("network_error", str(exc.reason))
        except (OSError, ValueError) as exc:  # connection reset mid-body, invalid URL
            last = _Reject("network_error", f"{type(exc).__name__}: {exc}")
    assert last is not None
    last.detail = f"{last.detail} (after {retries + 1} attempts)"
    raise last


def _decode_error(fmt: str, exc: Exception) -> _Reject:
    msg = str(exc)
    low = msg.lower()
    outcome = "truncated" if "truncat" in low or "broken data stream" in low else "not_image"
    return _Reject(outcome, f"{fmt}: {msg}")


def _normalise(data: bytes | Path, max_side: int) -> tuple[Image.Image, str, str]:
    """Decode ``data`` and return an RGB image no larger than ``max_side``, its outcome and a detail."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a global someone set would let broken files through
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; prepare_images needs it False")
    fp: Any = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        im = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise _Reject("too_large", str(exc)) from None
    except UnidentifiedImageError:
        raise _Reject("not_image", "not a picture Pillow can decode") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a header cut short
        raise _decode_error("?", exc) from None
    with im:
        w, h = im.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit and w * h > limit:
            raise _Reject("too_large", f"{w}x{h} pixels exceed Image.MAX_IMAGE_PIXELS={limit}")
        fmt = im.format or "?"
        mode = im.mode
        frames = getattr(im, "n_frames", 1)
        try:
            im.seek(0)
            im.load()
        except Image.DecompressionBombError as exc:
            raise _Reject("too_large", str(exc)) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise _decode_error(fmt, exc) from None
        if min(w, h) < MIN_SIDE:
            raise _Reject("placeholder", f"{fmt} {w}x{h} is too small to be a product photo")
        detail = f"{fmt} {mode} {w}x{h}" + (f", first of {frames} frames" if frames > 1 else "")
        has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info)
        if has_alpha:
            rgba = im.convert("RGBA")
            out = Image.new("RGB", rgba.size, (255, 255, 255))
            out.paste(rgba, mask=rgba.getchannel("A"))
            detail += ", transparency composited on white"
        elif mode != "RGB":
            out = im.convert("RGB")
        else:
            out = im.copy()
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if fmt == "GIF" and mode == "P":
        outcome = "converted_GIF"
    else:
        outcome = "ok" if mode == "RGB" else f"converted_{mode}"
    return out, outcome, detail


def check_image_file(path: str | os.PathLike[str] | None) -> bool:
    """True when ``path`` exists and decodes completely (used before training, notebook 04)."""
    if path is None or (isinstance(path, float) and math.isnan(path)) or not str(path):
        return False
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:
        return False


def _process(pid: str, source: Any, out_dir: Path, max_side: int, timeout: float, retries: int,
             backoff: float, previous: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": pid, "source": "" if source is None else str(source), "outcome": "",
                           "detail": "", "path": "", "attempts": 0, "resumed": False}
    target = out_dir / _safe_name(pid)
    if source is None or (isinstance(source, float) and math.isnan(source)) or not str(source).strip():
        row.update(outcome="missing", detail="the catalog has no image for this product")
        return row
    source = str(source).strip()
    if target.exists() and check_image_file(target):  # resume: validated in an earlier run
        row.update(outcome=previous.get(pid, "ok"), path=str(target), resumed=True, detail="reused")
        return row
    try:
        if _is_url(source):
            if is_placeholder_url(source):
                raise _Reject("placeholder", "URL of a known placeholder image (not downloaded)")
            data, attempts = _fetch(source, timeout, retries, backoff)
            row["attempts"] = attempts
            image, outcome, detail = _normalise(data, max_side)
        else:
            local = Path(source)
            if not local.is_file():
                raise _Reject("file_not_found", f"{source} does not exist")
            image, outcome, detail = _normalise(local, max_side)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        image.save(tmp, format="JPEG", quality=90)
        os.replace(tmp, target)
        row.update(outcome=outcome, detail=detail, path=str(target))
    except _Reject as rej:
        row.update(outcome=rej.outcome, detail=rej.detail)
    except Exception as exc:  # anything unforeseen is counted, never fatal
        row.update(outcome="error", detail=f"{type(exc).__name__}: {exc}")
    return row


def prepare_images(images: pd.Series, out_dir: str | os.PathLike[str], *, max_side: int = 256, workers: int = 8,
                   timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
                   progress: bool = True) -> tuple[pd.Series, ImageReport]:
    """Acquire and validate the image of every product (notebook 01).

    ``images`` maps product id to a local path, an ``http(s)`` URL or ``None``. URLs are downloaded
    concurrently (``workers`` threads) with a ``timeout`` per attempt and ``retries`` retries
    (``backoff * 2**n`` seconds apart) for timeouts, connection errors and HTTP 408/429/5xx. Every image
    is decoded with Pillow; grayscale, CMYK, palette and GIF images are converted to RGB (transparency
    composited on white, first GIF frame); truncated files, non-images, decompression bombs (more than
    ``PIL.Image.MAX_IMAGE_PIXELS``) and placeholders are rejected. Kept images are stored as RGB JPEG
    (at most ``max_side`` pixels on the long side) atomically in ``out_dir``; a file validated by an
    earlier run is reused (resume).

    Returns ``(paths, report)``: ``paths`` maps each id to its stored file (``str``) or ``None``;
    ``report`` is the per-product :class:`ImageReport`, also written to ``out_dir/outcomes.csv``.
    """
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side={max_side} is too small; use at least {MIN_SIDE} (e.g. 256)")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous: dict[str, str] = {}
    log_path = out / "outcomes.csv"
    if log_path.exists():
        try:
            old = pd.read_csv(log_path, dtype={"id": str, "outcome": str}, keep_default_na=False)
            previous = {i: o for i, o in zip(old["id"], old["outcome"], strict=True) if ImageReport.is_usable(o)}
        except Exception:  # an unreadable old log only costs the outcome names of reused files
            previous = {}
    ids = [str(i) for i in images.index]
    if len(set(ids)) != len(ids):
        raise ValueError("images must be indexed by unique product ids")
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_process, pid, src, out, max_side, timeout, retries, backoff, previous)
                   for pid, src in zip(ids, images.tolist(), strict=True)]
        done = as_completed(futures)
        if progress:
            from tqdm.auto import tqdm

            done = tqdm(done, total=len(futures), desc="images", unit="img")
        for fut in done:
            rows.append(fut.result())
    log = pd.DataFrame(rows, columns=["id", "source", "outcome", "detail", "path", "attempts", "resumed"])
    log = log.set_index("id", drop=False).loc[ids].reset_index(drop=True)
    report = ImageReport(log=log, out_dir=out, seconds=time.perf_counter() - t0)
    report.save(log_path)
    paths = pd.Series([p or None for p in log["path"]], index=images.index, dtype=object, name="image")
    return paths, report


# ---------------------------------------------------------------------------------------------------
# Input pipeline (notebook 04)
# ---------------------------------------------------------------------------------------------------

def load_image(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode ``path`` into a ``size × size × 3`` float32 array of RGB values in 0–255.

    The image is letterboxed: scaled to fit, centred on a white square (product photos sit on white), so
    shapes are not distorted. Raises ``OSError``/``PIL.UnidentifiedImageError`` for unreadable files.
    """
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(im, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.float32)


def preprocess(x: np.ndarray) -> np.ndarray:
    """``keras.applications.resnet50.preprocess_input`` (RGB→BGR, ImageNet mean subtracted) on a copy."""
    from keras.applications.resnet50 import preprocess_input

    return np.asarray(preprocess_input(np.array(x, dtype=np.float32, copy=True)), dtype=np.float32)


def load_image_array(paths: Sequence[str], size: int, *, preprocessed: bool = False,
                     workers: int = 4) -> np.ndarray:
    """All of ``paths`` as one ``(n, size, size, 3)`` float32 array (for small sets and figures).

    Pixel values 0–255, or ResNet-50 inputs when ``preprocessed``. Decoding runs in ``workers`` threads.
    """
    paths = list(paths)
    out = np.empty((len(paths), size, size, 3), dtype=np.float32)

    def one(i: int) -> None:
        out[i] = load_image(paths[i], size)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(len(paths))))
    return preprocess(out) if preprocessed else out


class _ImageSequenceMixin:
    """Batches of preprocessed images (and labels) for Keras ``fit``/``predict`` on any backend (notebook 04).

    Pillow decodes in worker threads (``workers``; ``use_multiprocessing`` as in
    :class:`keras.utils.PyDataset`). ``augment`` flips images horizontally with probability ½; the flips
    and the per-epoch ``shuffle`` order are drawn from ``seed`` (and the epoch and batch numbers), so
    they do not depend on which worker decodes which batch. An image that cannot be decoded becomes a
    white image and its path is recorded in :attr:`failed` (with a warning) instead of stopping training.
    """

    def __init__(self, paths: Sequence[str], y: np.ndarray | None = None, *, image_size: int,
                 batch_size: int = 32, augment: bool = False, shuffle: bool = False, seed: int = 0,
                 workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,  # type: ignore[call-arg]
                         max_queue_size=max_queue_size)
        self.paths = [str(p) for p in paths]
        if y is not None:
            y = np.asarray(y, dtype=np.float32)
            if len(y) != len(self.paths):
                raise ValueError(f"{len(self.paths)} paths but {len(y)} label rows")
        if batch_size < 1 or image_size < 1:
            raise ValueError("batch_size and image_size must be positive")
        self.y = y
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.failed: list[str] = []
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        n = len(self.paths)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch_size)

    @property
    def num_batches(self) -> int:
        return len(self)

    def _load(self, path: str) -> np.ndarray:
        try:
            return load_image(path, self.image_size)
        except Exception as exc:
            import warnings

            self.failed.append(path)
            warnings.warn(f"could not decode {path} ({type(exc).__name__}: {exc}); a white image stands in",
                          stacklevel=2)
            return np.full((self.image_size, self.image_size, 3), 255.0, dtype=np.float32)

    def __getitem__(self, index: int) -> Any:
        if index < 0 or index >= len(self):
            raise IndexError(f"batch {index} out of range (0..{len(self) - 1})")
        idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        x = np.stack([self._load(self.paths[i]) for i in idx])
        if self.augment:
            flips = np.random.default_rng([self.seed, self.epoch, index]).random(len(idx)) < 0.5
            x[flips] = x[flips, :, ::-1, :]
        x = preprocess(x)
        if self.y is None:
            return x
        return x, self.y[idx]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._make_order()


def __getattr__(name: str) -> Any:
    # ``ImageSequence`` subclasses ``keras.utils.PyDataset``; it is made on first access so that notebook 01's
    # acquisition (``import prodlib.images``) imports no Keras and no TensorFlow.
    if name == "ImageSequence":
        return keras_subclass("ImageSequence", _ImageSequenceMixin, "utils.PyDataset", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tf_image_dataset(paths: Sequence[str], y: np.ndarray | None = None, *, image_size: int, batch_size: int = 32,
                     augment: bool = False, shuffle: bool = False, seed: int = 0) -> Any:
    """Optional ``tf.data`` fast path (TensorFlow backend only) with the same preprocessing as
    :class:`ImageSequence`; raises ``ImportError`` with advice when TensorFlow is absent.

    Decoding is ``tf.io.decode_jpeg`` and letterboxing ``tf.image.resize_with_pad`` (bilinear), so pixels
    differ slightly from Pillow's; the validated files of :func:`prepare_images` are all JPEG.
    """
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ImportError("tf_image_dataset needs TensorFlow; use ImageSequence on other backends") from exc
    from keras.applications.resnet50 import preprocess_input

    def load(path: Any) -> Any:
        img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        img = tf.cast(img, tf.float32)
        img = 255.0 - tf.image.resize_with_pad(255.0 - img, image_size, image_size)  # pad with white
        return img

    ds = tf.data.Dataset.from_tensor_slices(list(map(str, paths)))
    if y is not None:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(np.asarray(y, np.float32))))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def mapper(*item: Any) -> Any:
        img = load(item[0])
        if augment:
            img = tf.image.stateless_random_flip_left_right(img, seed=[seed, 0])
        img = preprocess_input(img)
        return (img, item[1]) if len(item) > 1 else img

    return ds.map(mapper, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def split_images(part: pd.DataFrame, column: str = "image") -> tuple[list[str], list[str], list[str]]:
    """Split the rows of one dataset split by image availability (notebook 04).

    Returns ``(ids_with_image, their_paths, ids_without_image)``; a path that is missing, empty or does
    not decode completely counts as *without image* (never an error), so corrupt files cannot break
    training.
    """
    with_ids: list[str] = []
    paths: list[str] = []
    without: list[str] = []
    values = part[column].tolist() if column in part.columns else [None] * len(part)
    for pid, path in zip(part.index.astype(str), values, strict=True):
        if isinstance(path, str) and path and check_image_file(path):
            with_ids.append(pid)
            paths.append(path)
        else:
            without.append(pid)
    return with_ids, paths, without


def prevalence_probs(y_train: np.ndarray, n: int) -> np.ndarray:
    """The image model's stated output for a product without an image: each class's training prevalence.

    A neutral value that carries no image evidence; fusion sees it for such products (notebooks 04, 05).
    """
    y_train = np.asarray(y_train, dtype=np.float64)
    if y_train.ndim != 2 or not len(y_train):
        raise ValueError("y_train must be a non-empty (products × classes) matrix")
    prior = y_train.mean(axis=0).astype(np.float32)
    return np.tile(prior, (n, 1))


def prediction_examples(ds: Any, probs: np.ndarray, *, split: str = "test", n: int = 12, per_row: int = 4,
                        seed: int = 0, threshold: float = 0.5) -> tuple[list[tuple[str, list[str]]], list[list[str]]]:
    """Rows and captions for :func:`prodlib.plots.image_grid`: ``n`` random products of ``split`` that have an
    image (drawn with ``seed``), captioned with their true and predicted labels (notebook 04)."""
    ids = list(ds.splits[split])
    part = ds.part(split)
    has = [i for i, pid in enumerate(ids) if isinstance(part["image"].iloc[i], str) and part["image"].iloc[i]]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(has, size=min(n, len(has)), replace=False).tolist()) if has else []
    y = ds.y(split)
    rows: list[tuple[str, list[str]]] = []
    captions: list[list[str]] = []
    for start in range(0, len(pick), per_row):
        chunk = pick[start:start + per_row]
        rows.append(("", [str(part["image"].iloc[i]) for i in chunk]))
        caps = []
        for i in chunk:
            true = [c for c, t in zip(ds.classes, y[i], strict=True) if t]
            pred = [c for c, p in zip(ds.classes, probs[i], strict=True) if p >= threshold]
            caps.append("true: " + _short(true) + "\npred: " + _short(pred))
        captions.append(caps)
    return rows, captions


def _short(labels: list[str], width: int = 34) -> str:
    import textwrap

    text = ", ".join(labels) if labels else "(none)"
    return "\n".join(textwrap.wrap(text, width)[:3])
