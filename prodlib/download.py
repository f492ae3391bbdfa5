"""Downloads of the study's public sources: cached, resumable, atomic, verified, and honest when a link died.

:data:`SOURCES` is the one registry of where each catalog and pretrained asset comes from (URL,
homepage, what to do when the host has moved). :func:`fetch` downloads into a folder: a file that is
already there is returned without touching the network; an interrupted download continues from
``<file>.part`` with an HTTP ``Range`` request (or restarts when the server ignores ``Range``); the final
name appears only once the size and checksum are verified. A dead link raises :class:`DownloadError`
naming the URL, the source's homepage and how to use a local copy instead. Explained in notebook 01
(*Data exploration*) and the *Reproduce it yourself* chapter.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SOURCES", "DownloadError", "Source", "amazon2014_category", "fetch", "sha256_of"]

_CHUNK = 1 << 20
_BACKOFF_S = 0.5
_USER_AGENT = "prodlib (reproducible product-classification study)"


class DownloadError(RuntimeError):
    """A download that cannot be completed; the message says where the data lives and what to do."""


@dataclass(frozen=True)
class Source:
    """One public source: where its file is (``url`` may be ``None`` when only a manual download works)."""

    name: str
    url: str | None
    filename: str
    size: int | None = None
    sha256: str | None = None
    homepage: str = ""
    note: str = ""
    env: str | None = None
    """Environment variable that points at a local copy instead (read by the caller, e.g. ``catalog``)."""


_SNAP = "http://snap.stanford.edu/data/amazon/productGraph"

SOURCES: dict[str, Source] = {
    "amazon2014": Source(
        name="amazon2014",
        url=f"{_SNAP}/metadata.json.gz",
        filename="metadata.json.gz",
        homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html",
        note=("Amazon product metadata, McAuley et al. (SIGIR 2015 / WWW 2016): 9.4 M products, about 3 GB "
              "compressed, one Python dict literal per line. The paper used it. The files have moved between "
              "hosts before (snap.stanford.edu, then jmcauley.ucsd.edu); the homepage gives the current "
              "links and access terms, and a copy you already have can always be used."),
        env="PRODLIB_AMAZON2014",
    ),
    "amazon2018": Source(
        name="amazon2018",
        url=None,
        filename="meta_<Category>.json.gz",
        homepage="https://nijianmo.github.io/amazon/index.html",
        note=("Amazon review data 2018 (Ni, Li, McAuley, EMNLP 2019): per-category metadata files "
              "meta_<Category>.json.gz, JSON lines. Download the category you want from the homepage "
              "(access form) and read it with PRODLIB_CATALOG=amazon2018:/path/meta_<Category>.json.gz."),
        env="PRODLIB_CATALOG",
    ),
    "amazon2023": Source(
        name="amazon2023",
        url=None,
        filename="meta_<Category>.jsonl.gz",
        homepage="https://amazon-reviews-2023.github.io/",
        note=("Amazon Reviews 2023 (Hou et al., 2024): per-category item metadata meta_<Category>.jsonl, "
              "keyed by parent_asin. Download from the homepage (or the Hugging Face dataset "
              "McAuley-Lab/Amazon-Reviews-2023) and read it with PRODLIB_CATALOG=amazon2023:/path/file."),
        env="PRODLIB_CATALOG",
    ),
    "flipkart": Source(
        name="flipkart",
        url=None,
        filename="flipkart_com-ecommerce_sample.csv",
        homepage="https://www.kaggle.com/datasets/PromptCloudHQ/flipkart-products",
        note=("Flipkart products (PromptCloud crawl, 2016): a CSV of 20,000 products with image URLs. Kaggle "
              "needs a login, so download it by hand; a folder with the CSV and images/<uniq_id>.jpg is read "
              "with PRODLIB_CATALOG=flipkart:/path/to/folder."),
        env="PRODLIB_CATALOG",
    ),
    "glove": Source(
        name="glove",
        url="https://nlp.stanford.edu/data/glove.6B.zip",
        filename="glove.6B.zip",
        homepage="https://nlp.stanford.edu/projects/glove/",
        note=("GloVe 6B (Wikipedia 2014 + Gigaword 5) word vectors, 50/100/200/300 dimensions, about 822 MB "
              "zipped; the paper's title model uses the 300-d vectors. A local glove.6B.300d.txt works too."),
    ),
    "word2vec": Source(
        name="word2vec",
        url=None,
        filename="GoogleNews-vectors-negative300.bin.gz",
        homepage="https://code.google.com/archive/p/word2vec/",
        note=("GoogleNews word2vec, 300-d, 3 M words (about 1.6 GB). Google no longer serves a direct link; "
              "gensim's downloader has it as 'word2vec-google-news-300' "
              "(python -m gensim.downloader --download word2vec-google-news-300), or use a local .bin(.gz)."),
    ),
}


def amazon2014_category(category: str) -> Source:
    """The 2014 per-category metadata file ``meta_<Category>.json.gz`` (e.g. ``Clothing_Shoes_and_Jewelry``)."""
    if not re.fullmatch(r"[A-Za-z0-9_&,-]+", category):
        raise ValueError(f"category {category!r} should look like 'Clothing_Shoes_and_Jewelry' (the file name part)")
    base = SOURCES["amazon2014"]
    return Source(name=f"amazon2014:{category}", url=f"{_SNAP}/categoryFiles/meta_{category}.json.gz",
                  filename=f"meta_{category}.json.gz", homepage=base.homepage,
                  note="Per-category slice of the 2014 metadata. " + base.note, env=base.env)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _resolve(source_or_url: str) -> Source:
    if source_or_url in SOURCES:
        return SOURCES[source_or_url]
    if source_or_url.startswith("amazon2014:"):
        return amazon2014_category(source_or_url.split(":", 1)[1])
    parsed = urllib.parse.urlparse(source_or_url)
    if parsed.scheme in ("http", "https", "ftp", "file") and (parsed.netloc or parsed.scheme == "file"):
        name = Path(urllib.parse.unquote(parsed.path)).name or "download"
        return Source(name=name, url=source_or_url, filename=name)
    raise DownloadError(f"{source_or_url!r} is neither a known source ({', '.join(SOURCES)}, amazon2014:<Category>) "
                        "nor an http(s) URL")


def _local_hint(src: Source, dest: Path) -> str:
    hint = f"To use a local copy instead, put the file at {dest} (it is then used as is)"
    if src.env:
        hint += f" or point ${src.env} at it"
    return hint + "."


def _explain(src: Source, url: str | None, dest: Path, why: str) -> DownloadError:
    parts = [f"could not download {src.name} from {url}: {why}." if url else f"{src.name}: {why}."]
    if src.homepage:
        parts.append(f"Homepage: {src.homepage}.")
    if src.note:
        parts.append(src.note)
    parts.append(_local_hint(src, dest))
    return DownloadError(" ".join(parts))


class _Interrupted(Exception):
    """The connection ended before the file did (resume from the .part file)."""


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from ``Content-Range: bytes start-end/total`` (or ``bytes */total``)."""
    if not value:
        return None, None
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=not enabled, leave=False)


def _attempt(url: str, part: Path, timeout: float, progress: bool, desc: str) -> int | None:
    """One HTTP request into ``part`` (resuming when it exists); returns the total size when the server said.

    Raises ``_Interrupted`` when the body ended early and ``urllib.error.HTTPError`` for HTTP errors.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            _, total = _content_range(e.headers.get("Content-Range"))
            if total is not None and total == offset:
                return total  # the .part file is already complete
            part.unlink()  # a stale .part the server cannot continue: start over
            raise _Interrupted(f"server refused to resume at byte {offset}; restarting") from e
        raise
    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        length_i = int(length) if length and length.isdigit() else None
        if status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Interrupted(f"server resumed at byte {start}, not {offset}; restarting")
            mode = "ab"
            if total is None and length_i is not None:
                total = offset + length_i
        else:  # 200: the whole file, whatever Range said
            offset, mode, total = 0, "wb", length_i
        received = 0
        with open(part, mode) as fh, _progress_bar(total, offset, desc, progress) as bar:
            while True:
                try:
                    block = resp.read(_CHUNK)
                except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as e:
                    raise _Interrupted(f"connection lost after {offset + received:,} bytes ({e})") from e
                if not block:
                    break
                fh.write(block)
                received += len(block)
                bar.update(len(block))
        expected_body = length_i
        if expected_body is not None and received < expected_body:
            raise _Interrupted(f"connection closed after {offset + received:,} of {offset + expected_body:,} bytes")
        return total


def fetch(source_or_url: str, dest_dir: str | os.PathLike[str], *, filename: str | None = None,
          expected_size: int | None = None, sha256: str | None = None, timeout: float = 30.0,
          retries: int = 3, progress: bool = True) -> Path:
    """Download a registered source (``"amazon2014"``, ``"glove"``, ...) or a URL into ``dest_dir``.

    Cached: an existing ``dest_dir/filename`` is returned without network access (its size, and its
    checksum when one is known, are checked). Resumable: an interrupted download continues from
    ``<file>.part``; a server that ignores ``Range`` makes it start over. Atomic: the final name appears
    only after the size and SHA-256 are verified; a mismatch deletes the download and raises. Dead links
    (404, DNS failure, timeout) raise :class:`DownloadError` saying where else the data lives.
    Explained in notebook 01.
    """
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    src = _resolve(source_or_url)
    dest_dir = Path(dest_dir).expanduser()
    dest = dest_dir / (filename or src.filename)
    if "<" in dest.name:
        raise DownloadError(f"{src.name} has no single file ({src.filename}); pass filename= and a URL, or "
                            f"download it by hand. Homepage: {src.homepage}. {src.note}")
    size = expected_size if expected_size is not None else src.size
    digest = (sha256 or src.sha256 or "").lower() or None

    if dest.is_file():
        _verify_cached(dest, size, digest, src)
        return dest
    if not src.url:
        raise _explain(src, None, dest, "there is no direct download link (manual download)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(retries):
        try:
            total = _attempt(src.url, part, timeout, progress, dest.name)
        except urllib.error.HTTPError as e:
            if e.code in (408, 425, 429) or e.code >= 500:
                last_error = f"HTTP {e.code} {e.reason}"
            else:
                raise _explain(src, src.url, dest, f"HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            last_error = f"{e.reason}"
            if isinstance(e.reason, socket.gaierror):  # DNS failure: the host is gone, retrying will not help
                raise _explain(src, src.url, dest, f"host not found ({e.reason})") from e
        except (_Interrupted, TimeoutError, ConnectionError, http.client.HTTPException) as e:
            last_error = str(e) or type(e).__name__
        else:
            _finish(part, dest, size if size is not None else total, digest, src)
            return dest
        if attempt + 1 < retries:
            time.sleep(_BACKOFF_S * 2**attempt)
    kept = f" ({part.stat().st_size:,} bytes kept in {part.name}; the next call resumes)" if part.exists() else ""
    raise _explain(src, src.url, dest, f"gave up after {retries} attempt(s): {last_error}{kept}")


def _verify_cached(dest: Path, size: int | None, digest: str | None, src: Source) -> None:
    actual = dest.stat().st_size
    if size is not None and actual != size:
        raise DownloadError(f"{dest} exists but has {actual:,} bytes, not the expected {size:,}: delete it to "
                            f"download {src.name} again, or replace it with a complete copy")
    if digest:
        marker = dest.with_name(dest.name + ".sha256")
        known = marker.read_text().strip() if marker.is_file() else sha256_of(dest)
        if known != digest:
            raise DownloadError(f"{dest} exists but its SHA-256 is {known}, not {digest}: delete it to download "
                                f"{src.name} again, or replace it with a verified copy")


def _finish(part: Path, dest: Path, size: int | None, digest: str | None, src: Source) -> None:
    actual = part.stat().st_size if part.exists() else 0
    if size is not None and actual != size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"download of {src.name} has {actual:,} bytes, expected {size:,}; removed it. "
                            f"{_local_hint(src, dest)}")
    if digest:
        got = sha256_of(part)
        if got != digest:
            part.unlink(missing_ok=True)
            raise DownloadError(f"download of {src.name} failed its checksum (SHA-256 {got}, expected {digest}); "
                                f"removed it. {_local_hint(src, dest)}")
        dest.with_name(dest.name + ".sha256").write_text(digest + "\n")
    os.replace(part, dest)
