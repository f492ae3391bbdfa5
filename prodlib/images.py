"""Product images (notebook 01): :func:`prepare_images` downloads or reads every product image, rejects unusable ones
(broken downloads, placeholders, decompression bombs, text served as an image) and stores the rest as RGB JPEG files,
one outcome per product in an :class:`ImageReport`. Model input: :mod:`prodlib.image_input`."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from prodlib.artifacts import atomic_write
from prodlib.download import OFFLINE_ENV, HttpFailure, http_get, offline

__all__ = ["ImageReport", "USABLE_OUTCOMES", "check_image_file", "is_placeholder_url", "prepare_images"]

#: URL fragments of known placeholder images (Amazon's "no-img" GIF and similar).
PLACEHOLDER_PATTERNS = ("no-img", "no_img", "noimage", "no-image", "no_image", "placeholder")
N_PROBES = 3  # image URLs tried first; when none answers, the others are not tried (notebook 01)
_DEAD = ("network_error", "timeout", "offline")  # outcomes that say nothing answered
MIN_SIDE = 8  # decoded images with a shorter side (in pixels) are placeholders: 1×1 tracking GIFs, blanks
#: Outcomes whose product keeps an image; every other outcome means "no usable image".
USABLE_OUTCOMES = ("ok",)  # plus every ``converted_<mode>`` outcome, see ImageReport.is_usable


@dataclass
class ImageReport:
    """The outcome of :func:`prepare_images` for every product (notebook 01). ``log`` has one row per product:
    ``id``, ``source``, ``outcome`` (``ok``, ``converted_<mode>``, ``missing``, ``file_not_found``, ``http_<status>``,
    ``timeout``, ``network_error``, ``offline`` / ``unreachable`` (not tried), ``not_image``, ``truncated``,
    ``too_large``, ``placeholder``, ``write_failed``, ``error``),
    ``detail``, ``path`` (the stored file or empty) and ``resumed`` (reused from an earlier run)."""

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

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON summary (counts per outcome, usable, resumed, seconds) for ``dataset_stats``."""
        return {"products": len(self.log), "usable": self.n_usable, "rejected": len(self.log) - self.n_usable,
                "resumed": int(self.log["resumed"].sum()) if len(self.log) else 0,
                "outcomes": {str(k): int(v) for k, v in self.counts.items()}, "seconds": round(self.seconds, 2),
                **self.extra}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the per-product outcome log as CSV (atomically)."""
        with atomic_write(path) as tmp:
            self.log.to_csv(tmp, index=False)
        return Path(path)

    def __str__(self) -> str:
        lines = [f"Images: {self.n_usable} of {len(self.log)} products usable ({self.seconds:.1f} s)"]
        lines += [f"  {outcome:<22} {n:>7}" for outcome, n in self.counts.items()]
        if resumed := self.to_dict()["resumed"]:
            lines.append(f"  ({resumed} reused from an earlier run)")
        if why := self.extra.get("network"):
            lines.append(f"  {why}")
        return "\n".join(lines)


class _Reject(Exception):
    """An image that cannot be used: ``outcome`` names why."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(detail or outcome)
        self.outcome, self.detail = outcome, detail


def is_placeholder_url(url: str) -> bool:
    """True for URLs of known placeholder images (Amazon's ``no-img`` GIFs and similar)."""
    return any(p in url.lower() for p in PLACEHOLDER_PATTERNS)


def _safe_name(pid: str) -> str:
    """A file name for product ``pid`` that is safe on every file system and unique per id."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", pid)[:80]
    if clean != pid or clean.startswith("."):
        clean = f"{clean.lstrip('.')}_{hashlib.sha1(pid.encode()).hexdigest()[:10]}"
    return clean + ".jpg"


def _decode_error(fmt: str, exc: Exception) -> _Reject:
    if isinstance(exc, Image.DecompressionBombError):
        return _Reject("too_large", str(exc))
    low = str(exc).lower()
    return _Reject("truncated" if "truncat" in low or "broken data stream" in low else "not_image", f"{fmt}: {exc}")


def _normalise(data: bytes | Path, max_side: int) -> tuple[Image.Image, str, str]:
    """Decode ``data`` and return an RGB image no larger than ``max_side``, its outcome and a detail."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a global someone set would let broken files through
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; prepare_images needs it False")
    try:
        im = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    except UnidentifiedImageError:
        raise _Reject("not_image", "not a picture Pillow can decode") from None
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:  # too large, a header cut short
        raise _decode_error("?", exc) from None
    with im:
        (w, h), limit = im.size, Image.MAX_IMAGE_PIXELS
        if limit and w * h > limit:
            raise _Reject("too_large", f"{w}x{h} pixels exceed Image.MAX_IMAGE_PIXELS={limit}")
        fmt, mode, frames = im.format or "?", im.mode, getattr(im, "n_frames", 1)
        try:
            im.seek(0)
            im.load()
        except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
            raise _decode_error(fmt, exc) from None
        if min(w, h) < MIN_SIDE:
            raise _Reject("placeholder", f"{fmt} {w}x{h} is too small to be a product photo")
        detail = f"{fmt} {mode} {w}x{h}" + (f", first of {frames} frames" if frames > 1 else "")
        if im.getexif().get(0x0112, 1) != 1:  # the EXIF Orientation tag
            im, detail = ImageOps.exif_transpose(im), detail + ", turned by its EXIF orientation"
        im = _eight_bit(im)
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            out = Image.new("RGB", rgba.size, (255, 255, 255))
            out.paste(rgba, mask=rgba.getchannel("A"))
            detail += ", transparency composited on white"
        else:
            out = im.convert("RGB") if mode != "RGB" else im.copy()
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    outcome = "converted_GIF" if fmt == "GIF" and mode == "P" else "ok" if mode == "RGB" else f"converted_{mode}"
    return out, outcome, detail


def _eight_bit(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale scaled to 8 bits (Pillow's own conversion clips them: almost white)."""
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return im
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        top = 1.0 if a.max() <= 1 else 255.0
    else:  # I;16 is 16-bit; I (32-bit, how Pillow may open a 16-bit PNG) is judged by its values
        top = 255.0 if im.mode == "I" and a.max() <= 255 else 65535.0
    return Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def check_image_file(path: str | os.PathLike[str] | None) -> bool:
    """True when ``path`` exists and decodes completely (used before training, notebook 04)."""
    try:
        with Image.open(path) as im:  # None, NaN and "" raise here too
            im.load()
        return True
    except Exception:
        return False


def _process(pid: str, source: Any, out_dir: Path, max_side: int, timeout: float, retries: int,
             backoff: float, previous: dict[str, str], max_bytes: int, deadline: float,
             no_network: tuple[str, str] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": pid, "source": "" if source is None else str(source), "outcome": "",
                           "detail": "", "path": "", "resumed": False}
    target = out_dir / _safe_name(pid)
    if source is None or (isinstance(source, float) and math.isnan(source)) or not str(source).strip():
        return {**row, "outcome": "missing", "detail": "the catalog has no image for this product"}
    source = str(source).strip()
    if target.exists() and check_image_file(target):  # resume: validated in an earlier run
        return {**row, "outcome": previous.get(pid, "ok"), "path": str(target), "resumed": True, "detail": "reused"}
    try:
        if source.startswith(("http://", "https://")):
            if is_placeholder_url(source):
                raise _Reject("placeholder", "URL of a known placeholder image (not downloaded)")
            if no_network:
                raise _Reject(*no_network)
            try:
                data: bytes | Path = http_get(source, timeout=timeout, retries=retries, backoff=backoff,
                                              max_bytes=max_bytes, deadline=deadline)
            except HttpFailure as failure:
                raise _Reject("network_error" if failure.kind == "host_not_found" else failure.kind,
                              failure.detail) from None
        elif not (data := Path(source)).is_file():
            raise _Reject("file_not_found", f"{source} does not exist")
        elif data.stat().st_size > max_bytes:
            raise _Reject("too_large", f"{data.stat().st_size:,} bytes, more than {max_bytes:,}")
        image, outcome, detail = _normalise(data, max_side)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        try:  # a full disk must not leave a cut file recorded as ok
            with atomic_write(target) as tmp:
                if (written := tmp.write_bytes(buf.getvalue())) != buf.tell() or tmp.stat().st_size != written:
                    raise OSError(f"{written:,} of {buf.tell():,} bytes written")
        except OSError as exc:
            raise _Reject("write_failed", f"{target}: {exc}") from None
        row.update(outcome=outcome, detail=detail, path=str(target))
    except _Reject as rej:
        row.update(outcome=rej.outcome, detail=rej.detail)
    except Exception as exc:  # anything unforeseen is counted, never fatal
        row.update(outcome="error", detail=f"{type(exc).__name__}: {exc}")
    return row


def prepare_images(images: pd.Series, out_dir: str | os.PathLike[str], *, max_side: int = 256, workers: int = 8,
                   timeout: float = 10.0, retries: int = 2, backoff: float = 0.5, max_bytes: int = 20 << 20,
                   deadline: float = 60.0, progress: bool = True) -> tuple[pd.Series, ImageReport]:
    """Acquire and validate the image of every product (notebook 01). ``images`` maps product id to a local path,
    an ``http(s)`` URL or ``None``; URLs are fetched in ``workers`` threads (``timeout`` per attempt, ``retries``
    retries ``backoff * 2**n`` s apart, at most ``max_bytes`` and ``deadline`` seconds per image). Images become RGB
    JPEG files in ``out_dir`` (EXIF orientation applied, 16-bit scaled to 8, transparency on white, first GIF frame,
    at most ``max_side`` pixels long); files validated by an earlier run are reused. The first ``N_PROBES`` URLs are
    tried first (at most 5 s per attempt): when none answers (or ``$PRODLIB_OFFLINE`` is set), no other URL is
    tried. Returns ``(paths, report)``: each id's stored file or ``None``, and the :class:`ImageReport`, also in
    ``out_dir/outcomes.csv``."""
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side={max_side} is too small; use at least {MIN_SIDE} (e.g. 256)")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path, previous = out / "outcomes.csv", {}
    with contextlib.suppress(Exception):  # no or an unreadable old log only costs the outcome names of reused files
        old = pd.read_csv(log_path, dtype={"id": str, "outcome": str}, keep_default_na=False)
        previous = {i: o for i, o in zip(old["id"], old["outcome"], strict=True) if ImageReport.is_usable(o)}
    ids = [str(i) for i in images.index]
    if len(set(ids)) != len(ids):
        raise ValueError("images must be indexed by unique product ids")
    t0 = time.perf_counter()
    sources = dict(zip(ids, images.tolist(), strict=True))
    urls = {pid: urlsplit(src.strip()).netloc for pid, src in sources.items() if isinstance(src, str)
            and src.strip().startswith("http") and not is_placeholder_url(src) and not (out / _safe_name(pid)).exists()}
    first = {host: pid for pid, host in reversed(list(urls.items()))}  # the first URL of each host
    probes = sorted(first.values(), key=list(urls).index)[:N_PROBES]
    probes += [pid for pid in urls if pid not in probes][: N_PROBES - len(probes)]
    no_network: tuple[str, str] | None = None
    extra: dict[str, Any] = {}
    if probes and offline():
        no_network = ("offline", f"${OFFLINE_ENV} is set: image URLs are not tried")
        extra["network"], probes = f"${OFFLINE_ENV} is set: no image URL was tried", []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(lambda pid: _process(pid, sources[pid], out, max_side, min(timeout, 5.0), retries,
                                                  backoff, previous, max_bytes, deadline), probes))
        if rows and all(r["outcome"] in _DEAD for r in rows):  # nothing answers: do not wait on every other URL
            no_network = ("unreachable", f"not tried: none of the first {len(rows)} image URLs could be reached")
            extra["network"] = (f"no image URL can be reached ({len(rows)} probes: {rows[0]['detail']}); the others "
                                "were not tried")
        futures = [pool.submit(_process, pid, src, out, max_side, timeout, retries, backoff, previous, max_bytes,
                               deadline, no_network)
                   for pid, src in sources.items() if pid not in probes]
        done = as_completed(futures)
        if progress:
            from tqdm.auto import tqdm
            done = tqdm(done, total=len(futures), desc="images", unit="img")
        rows += [fut.result() for fut in done]
    log = pd.DataFrame(rows, columns=["id", "source", "outcome", "detail", "path", "resumed"])
    log = log.set_index("id", drop=False).loc[ids].reset_index(drop=True)
    report = ImageReport(log=log, out_dir=out, seconds=time.perf_counter() - t0, extra=extra)
    report.save(log_path)
    return pd.Series([p or None for p in log["path"]], index=images.index, dtype=object, name="image"), report
