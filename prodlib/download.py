"""Downloads of the study's public sources: cached, resumable, atomic, verified, and honest when a link died
(notebook 01, *Reproduce it yourself*). :data:`SOURCES` registers where each catalog and pretrained asset comes
from; :func:`fetch` resumes ``<file>.part`` with HTTP ``Range`` and names the final file only once verified; a dead
link raises :class:`DownloadError` saying where else the data lives. Every HTTP request of prodlib goes through here."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = ["SOURCES", "DownloadError", "HttpFailure", "Source", "fetch", "http_get", "offline", "reachable",
           "resolve_source", "url_env"]

_CHUNK = 1 << 20
_BACKOFF_S = 0.5
_USER_AGENT = "prodlib (reproducible product-classification study)"
OFFLINE_ENV = "PRODLIB_OFFLINE"
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A download that cannot be completed; the message says where the data lives and what to do."""


@dataclass(frozen=True)
class Source:
    """One public source: where its file is (``url`` is ``None`` when only a manual download works) and ``env``,
    the environment variable that points at a local copy instead (read by the caller, e.g. ``catalog``)."""

    name: str
    url: str | None
    filename: str
    size: int | None = None
    sha256: str | None = None
    homepage: str = ""
    note: str = ""
    env: str | None = None
    per_category: str | None = None
    """The URL of one category's file, ``<Category>`` standing for its name (``release:<Category>`` sources)."""


_SNAP = "https://snap.stanford.edu/data/amazon/productGraph"
_CATEGORY = re.compile(r"[A-Za-z0-9_&,-]+")  # the <Category> part of a per-category file name

SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("amazon2014", f"{_SNAP}/metadata.json.gz", "metadata.json.gz", env="PRODLIB_AMAZON2014",
           per_category=f"{_SNAP}/categoryFiles/meta_<Category>.json.gz",
           homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon/links.html",
           note="Amazon product metadata, McAuley et al. (SIGIR 2015 / WWW 2016), the paper's data: 9.4 M products, "
                "about 3 GB compressed, one Python dict literal per line. It has moved between hosts before "
                "(snap.stanford.edu, jmcauley.ucsd.edu); the homepage has the current links and access terms."),
    Source("amazon2018", None, "meta_<Category>.json.gz", env="PRODLIB_CATALOG",
           per_category="https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/metaFiles2/meta_<Category>.json.gz",
           homepage="https://nijianmo.github.io/amazon/index.html",
           note="Amazon review data 2018 (Ni, Li, McAuley, EMNLP 2019): per-category JSON-lines metadata; "
                "the homepage lists the categories. A local copy: "
                "PRODLIB_CATALOG=amazon2018:/path/meta_<Category>.json.gz."),
    Source("amazon2023", None, "meta_<Category>.jsonl.gz", env="PRODLIB_CATALOG",
           per_category="https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/meta_categories/"
                        "meta_<Category>.jsonl.gz",
           homepage="https://amazon-reviews-2023.github.io/",
           note="Amazon Reviews 2023 (Hou et al., 2024): per-category item metadata (also the Hugging Face "
                "dataset McAuley-Lab/Amazon-Reviews-2023). A local copy: "
                "PRODLIB_CATALOG=amazon2023:/path/meta_<Category>.jsonl.gz."),
    Source("flipkart", None, "flipkart_com-ecommerce_sample.csv", env="PRODLIB_CATALOG",
           homepage="https://www.kaggle.com/datasets/PromptCloudHQ/flipkart-products",
           note="Flipkart products (PromptCloud, 2016): 20,000 products with image URLs; Kaggle needs a login. Read a "
                "folder with the CSV and images/<uniq_id>.jpg with PRODLIB_CATALOG=flipkart:/path/to/folder."),
    Source("glove", "https://nlp.stanford.edu/data/glove.6B.zip", "glove.6B.zip",
           homepage="https://nlp.stanford.edu/projects/glove/",
           note="GloVe 6B word vectors (Wikipedia 2014 + Gigaword 5), 50-300 dimensions, about 822 MB zipped; the "
                "paper's title model uses the 300-d ones. A local glove.6B.300d.txt works too."),
    Source("word2vec", None, "GoogleNews-vectors-negative300.bin.gz",
           homepage="https://code.google.com/archive/p/word2vec/",
           note="GoogleNews word2vec, 300-d, 3 M words (1.6 GB), no direct link: use a local .bin(.gz) or gensim "
                "(python -m gensim.downloader --download word2vec-google-news-300)."),
]}


def url_env(name: str) -> str:
    """The environment variable that replaces source ``name``'s URL (``PRODLIB_URL_AMAZON2023``): hosts move."""
    return "PRODLIB_URL_" + re.sub(r"\W", "_", name).upper()


def resolve_source(spec: str) -> Source:
    """The registered source ``spec`` or, for ``release:<Category>`` (``amazon2023:All_Beauty``), that category's file;
    ``$PRODLIB_URL_<NAME>`` (:func:`url_env`) replaces the registered URL (a per-category one with ``<Category>``)."""
    name, sep, category = spec.partition(":")
    base, override = SOURCES[name], os.environ.get(url_env(name), "").strip()
    if not sep:
        return replace(base, url=override or base.url)
    if not base.per_category:
        raise DownloadError(f"{name} has no per-category files; use {name!r} alone")
    if not _CATEGORY.fullmatch(category):
        raise DownloadError(f"category {category!r} should look like 'All_Beauty' (the <Category> of the file name)")
    if "<Category>" not in (template := override or base.per_category):
        raise DownloadError(f"${url_env(name)}={override!r} must contain <Category>, where the category name goes")
    filename = base.per_category.rsplit("/", 1)[1].replace("<Category>", category)
    return replace(base, name=spec, url=template.replace("<Category>", category), filename=filename,
                   note=f"Per-category file of {name}. {base.note}")


def _resolve(source_or_url: str) -> Source:
    if source_or_url.partition(":")[0] in SOURCES:
        return resolve_source(source_or_url)
    parsed = urllib.parse.urlparse(source_or_url)
    if parsed.scheme in ("http", "https", "ftp", "file") and (parsed.netloc or parsed.scheme == "file"):
        name = Path(urllib.parse.unquote(parsed.path)).name or "download"
        return Source(name=name, url=source_or_url, filename=name)
    raise DownloadError(f"{source_or_url!r} is neither a known source ({', '.join(SOURCES)}, <release>:<Category>) "
                        "nor an http(s) URL")


def _local_hint(src: Source, dest: Path) -> str:
    env = f" or point ${src.env} at it" if src.env else ""
    moved = f" If the file has moved, set ${url_env(src.name.partition(':')[0])} to its new URL." if src.url else ""
    return f"To use a local copy instead, put the file at {dest} (it is then used as is){env}.{moved}"


def _explain(src: Source, url: str | None, dest: Path, why: str) -> DownloadError:
    parts = [f"could not download {src.name} from {url}: {why}." if url else f"{src.name}: {why}.",
             f"Homepage: {src.homepage}." if src.homepage else "", src.note, _local_hint(src, dest)]
    return DownloadError(" ".join(p for p in parts if p))


class HttpFailure(DownloadError):
    """A request that failed: ``kind`` is ``http_<status>``, ``timeout``, ``host_not_found``,
    ``network_error`` or ``offline``; ``retry`` says whether trying again may help."""

    def __init__(self, kind: str, detail: str, retry: bool) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.retry = kind, detail, retry


def offline() -> bool:
    """``$PRODLIB_OFFLINE`` is set (``1``/``true``/``yes``): prodlib then never tries the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _request(url: str, timeout: float, headers: dict[str, str] | None = None) -> Any:
    if offline():
        raise HttpFailure("offline", f"${OFFLINE_ENV} is set: the network is not tried", retry=False)
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except Exception as exc:
        raise _failure(exc, timeout) from exc


def _failure(exc: BaseException, timeout: float) -> HttpFailure:
    """What went wrong, and whether a retry may help (timeouts, broken connections, 408/425/429/5xx)."""
    if isinstance(exc, HttpFailure):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        return HttpFailure(f"http_{exc.code}", f"HTTP {exc.code} {exc.reason}", exc.code in _RETRY_HTTP)
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):  # DNS failure: the host is gone, retrying will not help
        return HttpFailure("host_not_found", f"host not found ({reason})", retry=False)
    if isinstance(reason, TimeoutError):
        return HttpFailure("timeout", f"no answer within {timeout:g} s", retry=True)
    return HttpFailure("network_error", f"{type(reason).__name__}: {reason}", retry=True)


def _retrying(action: Any, retries: int, backoff: float) -> Any:
    """``action()``, retried up to ``retries`` times, ``backoff * 2**n`` s apart, while a retry may help."""
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:
            failure = _failure(exc, 0)
            if not failure.retry or attempt == retries:
                if attempt:
                    failure.detail += f" (after {attempt + 1} attempts)"
                raise failure from exc
        time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def http_get(url: str, *, timeout: float = 10.0, retries: int = 2, backoff: float = 0.5,
             max_bytes: int | None = None, deadline: float | None = None) -> bytes:
    """The body of a small download (a product image), retried like :func:`fetch` (a connection closed mid-body
    too); raises :class:`HttpFailure`, of kind ``too_large`` past ``max_bytes`` and ``timeout`` when the whole
    download, retries included, takes longer than ``deadline`` seconds (a server that trickles bytes)."""
    start = time.monotonic()

    def once() -> bytes:
        with _request(url, timeout) as resp:
            length = int(n) if (n := resp.headers.get("Content-Length")) and n.isdigit() else None
            body = bytearray()
            while True:
                if max_bytes is not None and max(len(body), length or 0) > max_bytes:
                    raise HttpFailure("too_large", f"more than {max_bytes:,} bytes", retry=False)
                if deadline is not None and time.monotonic() - start > deadline:
                    raise HttpFailure("timeout", f"not complete within {deadline:g} s", retry=False)
                try:
                    if not (block := resp.read1(_CHUNK)):
                        break
                except Exception as exc:  # connection reset mid-body
                    raise _failure(exc, timeout) from exc
                body += block
            if length is not None and len(body) < length:
                raise HttpFailure("network_error", f"connection closed after {len(body):,} of {length:,} bytes",
                                  retry=True)
            return bytes(body)

    return _retrying(once, retries, backoff)


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds (DNS included: the probe runs in a
    daemon thread, so a hanging resolver cannot block the caller); ``False`` at once when :func:`offline`."""
    if offline():
        return False
    result: list[bool] = []

    def probe() -> None:
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


class _Interrupted(Exception):
    """The connection ended before the file did (resume from the .part file)."""


def _drop(part: Path) -> None:
    """Remove a ``.part`` file and the validators saved beside it."""
    part.unlink(missing_ok=True)
    part.with_name(part.name + ".json").unlink(missing_ok=True)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from ``Content-Range: bytes start-end/total`` (or ``bytes */total``)."""
    if not (m := re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")):
        return None, None
    return (int(m.group(1)) if m.group(1) is not None else None), (int(m.group(2)) if m.group(2) != "*" else None)


def _validators(url: str, headers: Any, total: int | None) -> dict[str, Any]:
    """What identifies one version of the file: the URL, a strong ETag, Last-Modified and the total length."""
    etag = headers.get("ETag") or ""
    return {"url": url, "etag": "" if etag.startswith("W/") else etag, "modified": headers.get("Last-Modified") or "",
            "length": total}


def _attempt(url: str, part: Path, timeout: float, progress: bool, desc: str) -> int | None:
    """One HTTP request into ``part``, resuming it only when the validators saved beside it (``.part.json``) say it
    is the same version of the file (``If-Range``); returns the total size when the server said. Raises
    ``_Interrupted`` when the body ended early and :class:`HttpFailure` when the request failed."""
    from tqdm.auto import tqdm
    meta_path = part.with_name(part.name + ".json")
    try:
        saved = json.loads(meta_path.read_text()) if part.exists() else {}
    except (OSError, ValueError):
        saved = {}
    if saved.get("url") != url or not (saved.get("etag") or saved.get("modified") or saved.get("length")):
        _drop(part)  # a .part of unknown origin is never resumed
        saved = {}
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    if offset and (tag := saved.get("etag") or saved.get("modified")):
        headers["If-Range"] = tag  # the server sends the whole file (200) if it changed
    try:
        resp = _request(url, timeout, headers)
    except HttpFailure as e:
        if e.kind == "http_416" and offset and isinstance(e.__cause__, urllib.error.HTTPError):
            if _content_range(e.__cause__.headers.get("Content-Range"))[1] == offset == saved.get("length"):
                return offset  # the .part file is already complete
            _drop(part)  # a stale .part the server cannot continue: start over
            raise _Interrupted(f"server refused to resume at byte {offset}; restarting") from e
        raise
    with resp:
        length_i = int(length) if (length := resp.headers.get("Content-Length")) and length.isdigit() else None
        if getattr(resp, "status", 200) == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            now = _validators(url, resp.headers, total)
            changed = [k for k in ("etag", "modified", "length") if saved.get(k) and now[k] and now[k] != saved[k]]
            if start != offset or changed:
                _drop(part)
                why = f"the file changed on the server ({', '.join(changed)})" if changed else f"resumed at {start}"
                raise _Interrupted(f"cannot resume at byte {offset}: {why}; restarting")
            mode = "ab"
            if total is None and length_i is not None:
                total = offset + length_i
        else:  # 200: the whole file, whatever Range said
            offset, mode, total = 0, "wb", length_i
            meta_path.write_text(json.dumps(_validators(url, resp.headers, total)))
        received = 0
        with open(part, mode) as fh, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=desc, disable=not progress, leave=False) as bar:
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
        if length_i is not None and received < length_i:
            raise _Interrupted(f"connection closed after {offset + received:,} of {offset + length_i:,} bytes")
        return total


def fetch(source_or_url: str, dest_dir: str | os.PathLike[str], *, filename: str | None = None,
          expected_size: int | None = None, sha256: str | None = None, md5: str | None = None,
          timeout: float = 30.0, retries: int = 3, progress: bool = True) -> Path:
    """Download a registered source (``"amazon2014"``, ``"glove"``, ...) or a URL into ``dest_dir``. An existing
    ``dest_dir/filename`` is returned without the network (size and checksum checked); an interrupted download
    resumes from ``<file>.part``; the final name appears only once the size and checksum (``sha256`` or ``md5``) are
    verified, a mismatch deletes the download. Dead links raise :class:`DownloadError`. Notebook 01."""
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    src = _resolve(source_or_url)
    dest_dir = Path(dest_dir).expanduser()
    dest = dest_dir / (filename or src.filename)
    if "<" in dest.name:
        raise DownloadError(f"{src.name} has no single file ({src.filename}); pass filename= and a URL, or "
                            f"download it by hand. Homepage: {src.homepage}. {src.note}")
    size = expected_size if expected_size is not None else src.size
    digest = ("sha256", want.lower()) if (want := sha256 or src.sha256) else ("md5", md5.lower()) if md5 else None
    if dest.is_file():
        _verify_cached(dest, size, digest, src)
        return dest
    if not src.url:
        raise _explain(src, None, dest, "there is no direct download link (manual download)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(dest.with_name(dest.name + ".lock")):  # a second fetch of this file waits, then finds it
        if dest.is_file():
            _verify_cached(dest, size, digest, src)
            return dest
        return _download(src, src.url, dest, size, digest, timeout, retries, progress)


def _download(src: Source, url: str, dest: Path, size: int | None, digest: tuple[str, str] | None, timeout: float,
              retries: int, progress: bool) -> Path:
    part = dest.with_name(dest.name + ".part")

    def once() -> int | None:
        try:
            return _attempt(url, part, timeout, progress, dest.name)
        except (_Interrupted, http.client.HTTPException) as e:
            raise HttpFailure("network_error", str(e) or type(e).__name__, retry=True) from e

    try:
        total = _retrying(once, retries - 1, _BACKOFF_S)
    except HttpFailure as e:
        kept = f" ({part.stat().st_size:,} bytes kept in {part.name}; the next call resumes)" if part.exists() else ""
        raise _explain(src, url, dest, f"{e.detail}{kept}") from e
    _finish(part, dest, size if size is not None else total, digest, src)
    return dest


def _hash_of(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _marker(dest: Path) -> str:
    """``size mtime_ns`` of ``dest``: a checksum marker holds the hash and this, trusted only while they agree."""
    st = dest.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _verify_cached(dest: Path, size: int | None, digest: tuple[str, str] | None, src: Source) -> None:
    if size is not None and (actual := dest.stat().st_size) != size:
        raise DownloadError(f"{dest} exists but has {actual:,} bytes, not the expected {size:,}: delete it to "
                            f"download {src.name} again, or replace it with a complete copy")
    if digest:
        algorithm, expected = digest
        marker = dest.with_name(f"{dest.name}.{algorithm}")
        if marker.is_file() and marker.read_text().split() == [expected, *_marker(dest).split()]:
            return  # hashed before, and the file has not changed since
        if (known := _hash_of(dest, algorithm)) != expected:
            raise DownloadError(f"{dest} exists but its {algorithm} is {known}, not {expected}: delete it to "
                                f"download {src.name} again, or replace it with a verified copy")
        marker.write_text(f"{expected} {_marker(dest)}\n")


def _finish(part: Path, dest: Path, size: int | None, digest: tuple[str, str] | None, src: Source) -> None:
    actual = part.stat().st_size if part.exists() else 0
    if size is not None and actual != size:
        _drop(part)
        raise DownloadError(f"download of {src.name} has {actual:,} bytes, expected {size:,}; removed it. "
                            f"{_local_hint(src, dest)}")
    if digest:
        algorithm, expected = digest
        if (got := _hash_of(part, algorithm)) != expected:
            _drop(part)
            raise DownloadError(f"download of {src.name} failed its checksum ({algorithm} {got}, expected "
                                f"{expected}); removed it. {_local_hint(src, dest)}")
    os.replace(part, dest)
    part.with_name(part.name + ".json").unlink(missing_ok=True)
    if digest:
        dest.with_name(f"{dest.name}.{digest[0]}").write_text(f"{digest[1]} {_marker(dest)}\n")
