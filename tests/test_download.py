"""prodlib.download against a local HTTP server on 127.0.0.1 (never the network)."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prodlib import download
from prodlib.download import SOURCES, DownloadError, Source, fetch

DATA = os.urandom(300_000) + b"the end"


class _Server:
    """Serves ``DATA`` at /file with Range support; switches emulate broken servers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str | None]] = []
        self.drop_after: int | None = None  # first request: send this many bytes, then hang up
        self.ignore_range = False
        self.body = DATA
        self.etag: str | None = '"v1"'  # validators of the served version (None: not sent)
        self.send_length = True
        self.if_range = True  # False: a server that ignores If-Range
        self.trickle = 0.0  # seconds between 64 KiB pieces (a slow server, for concurrent fetches)
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                srv.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                     "if_range": self.headers.get("If-Range")})
                if self.path != "/file":
                    self.send_error(404, "Not Found")
                    return
                body, start = srv.body, 0
                rng = self.headers.get("Range")
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if_range = self.headers.get("If-Range")
                if m and not srv.ignore_range and (if_range in (None, srv.etag) or not srv.if_range):
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                if srv.etag:
                    self.send_header("ETag", srv.etag)
                if srv.send_length:
                    self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if srv.drop_after is not None:
                    cut, srv.drop_after = srv.drop_after, None
                    self.wfile.write(chunk[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                for i in range(0, len(chunk), 1 << 16):
                    self.wfile.write(chunk[i: i + (1 << 16)])
                    time.sleep(srv.trickle)
                self.close_connection = not srv.send_length

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "_BACKOFF_S", 0.0)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_full_download_then_cached_without_network(server: _Server, tmp_path: Path) -> None:
    url = f"{server.url}/file"
    path = fetch(url, tmp_path, filename="data.bin", sha256=_sha(DATA), progress=False)
    assert path == tmp_path / "data.bin" and path.read_bytes() == DATA
    assert not (tmp_path / "data.bin.part").exists()
    assert len(server.requests) == 1 and server.requests[0]["range"] is None
    again = fetch(url, tmp_path, filename="data.bin", sha256=_sha(DATA), progress=False)
    assert again == path and len(server.requests) == 1  # no second request


def test_resume_after_interruption_uses_range(server: _Server, tmp_path: Path) -> None:
    server.drop_after = 100_000
    path = fetch(f"{server.url}/file", tmp_path, filename="d.bin", expected_size=len(DATA), progress=False)
    assert path.read_bytes() == DATA
    assert [r["range"] for r in server.requests] == [None, "bytes=100000-"]


def test_interrupted_download_keeps_part_and_next_call_resumes(server: _Server, tmp_path: Path) -> None:
    server.drop_after = 50_000
    with pytest.raises(DownloadError, match="resumes"):
        fetch(f"{server.url}/file", tmp_path, filename="d.bin", retries=1, progress=False)
    part = tmp_path / "d.bin.part"
    assert part.stat().st_size == 50_000 and not (tmp_path / "d.bin").exists()  # never a partial final file
    path = fetch(f"{server.url}/file", tmp_path, filename="d.bin", sha256=_sha(DATA), progress=False)
    assert path.read_bytes() == DATA and server.requests[-1]["range"] == "bytes=50000-"


def _interrupt(server: _Server, tmp_path: Path, cut: int = 50_000) -> Path:
    """A download cut after ``cut`` bytes: ``d.bin.part`` and its validators are left behind."""
    server.drop_after = cut
    with pytest.raises(DownloadError):
        fetch(f"{server.url}/file", tmp_path, filename="d.bin", retries=1, progress=False)
    server.requests.clear()
    return tmp_path / "d.bin.part"


def test_server_ignoring_range_restarts(server: _Server, tmp_path: Path) -> None:
    _interrupt(server, tmp_path)
    server.ignore_range = True
    path = fetch(f"{server.url}/file", tmp_path, filename="d.bin", sha256=_sha(DATA), progress=False)
    assert path.read_bytes() == DATA
    assert server.requests[0]["range"] == "bytes=50000-"  # asked to resume, got 200, restarted cleanly


def test_complete_part_file_is_finished_on_416(server: _Server, tmp_path: Path) -> None:
    part = _interrupt(server, tmp_path)
    part.write_bytes(DATA)  # as if the last bytes arrived just before the connection broke
    path = fetch(f"{server.url}/file", tmp_path, filename="d.bin", sha256=_sha(DATA), progress=False)
    assert path.read_bytes() == DATA and len(server.requests) == 1


def test_part_of_unknown_origin_is_never_resumed(server: _Server, tmp_path: Path) -> None:
    (tmp_path / "d.bin.part").write_bytes(b"x" * 1234)  # no validators saved beside it
    path = fetch(f"{server.url}/file", tmp_path, filename="d.bin", progress=False)
    assert path.read_bytes() == DATA and server.requests[0]["range"] is None


def test_stale_part_is_not_resumed_when_the_file_changed_on_the_server(server: _Server, tmp_path: Path) -> None:
    _interrupt(server, tmp_path)
    server.body, server.etag = os.urandom(200_000), '"v2"'  # a new version of the file at the same URL
    path = fetch(f"{server.url}/file", tmp_path, filename="d.bin", progress=False)
    assert path.read_bytes() == server.body  # not 50,000 bytes of v1 followed by the tail of v2
    assert server.requests[0] == {"path": "/file", "range": "bytes=50000-", "if_range": '"v1"'}


def test_stale_part_is_not_resumed_when_a_206_has_another_etag(server: _Server, tmp_path: Path) -> None:
    _interrupt(server, tmp_path)
    server.body, server.etag, server.if_range = os.urandom(300_007), '"v2"', False  # answers 206 for v2
    path = fetch(f"{server.url}/file", tmp_path, filename="d.bin", progress=False)
    assert path.read_bytes() == server.body  # the ETag of the 206 gave the change away: restarted
    assert [r["range"] for r in server.requests] == ["bytes=50000-", None]


def test_short_body_is_an_error_when_the_length_is_known(server: _Server, tmp_path: Path) -> None:
    server.send_length = False  # the body ends early and no Content-Length says so
    server.drop_after = 1000
    with pytest.raises(DownloadError, match=f"1,000 bytes, expected {len(DATA):,}"):
        fetch(f"{server.url}/file", tmp_path, filename="d.bin", expected_size=len(DATA), retries=1, progress=False)
    assert not (tmp_path / "d.bin").exists()


def test_concurrent_fetches_of_one_file_wait_for_each_other(server: _Server, tmp_path: Path) -> None:
    server.trickle = 0.01  # about 0.05 s for the whole body, so the two calls overlap
    results: list[object] = []

    def one() -> None:
        try:
            results.append(fetch(f"{server.url}/file", tmp_path, filename="d.bin", sha256=_sha(DATA), progress=False))
        except Exception as exc:  # noqa: BLE001 (reported below)
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / "d.bin"] * 3
    assert (tmp_path / "d.bin").read_bytes() == DATA  # used to be the body plus a second copy's bytes
    assert len(server.requests) == 1  # the others waited, then found the verified file


def test_checksum_marker_is_rechecked_when_the_file_changes(server: _Server, tmp_path: Path) -> None:
    url = f"{server.url}/file"
    path = fetch(url, tmp_path, filename="d.bin", sha256=_sha(DATA), progress=False)
    marker = (tmp_path / "d.bin.sha256").read_text().split()
    assert marker == [_sha(DATA), str(len(DATA)), str(path.stat().st_mtime_ns)]
    path.write_bytes(b"corrupt" + DATA[7:])  # same size, new content (and time)
    with pytest.raises(DownloadError, match="its sha256 is"):
        fetch(url, tmp_path, filename="d.bin", sha256=_sha(DATA), progress=False)
    assert len(server.requests) == 1


def test_404_names_url_homepage_and_local_alternative(server: _Server, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = Source(name="amazon2014", url=f"{server.url}/moved.json.gz", filename="metadata.json.gz",
                 homepage="https://example.org/amazon", note="The host has moved before.",
                 env="PRODLIB_AMAZON2014")
    monkeypatch.setitem(SOURCES, "amazon2014", src)
    with pytest.raises(DownloadError) as err:
        fetch("amazon2014", tmp_path, progress=False)
    msg = str(err.value)
    assert f"{server.url}/moved.json.gz" in msg and "404" in msg
    assert "https://example.org/amazon" in msg and "moved before" in msg
    assert "$PRODLIB_AMAZON2014" in msg and str(tmp_path / "metadata.json.gz") in msg
    assert len(server.requests) == 1  # a 404 is not retried
    assert not (tmp_path / "metadata.json.gz").exists()


def test_dead_host_raises_download_error(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    with pytest.raises(DownloadError, match=f"127.0.0.1:{port}/x.bin.*after 2 attempts"):
        fetch(f"http://127.0.0.1:{port}/x.bin", tmp_path, retries=2, timeout=2, progress=False)


def test_checksum_mismatch_leaves_no_file(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="checksum"):
        fetch(f"{server.url}/file", tmp_path, filename="d.bin", sha256="0" * 64, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["d.bin.lock"]  # only the (empty) lock file


def test_size_mismatch_leaves_no_file(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="expected 5"):
        fetch(f"{server.url}/file", tmp_path, filename="d.bin", expected_size=5, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["d.bin.lock"]  # only the (empty) lock file


def test_cached_file_with_wrong_size_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / "d.bin").write_bytes(b"short")
    with pytest.raises(DownloadError, match="delete it"):
        fetch("http://127.0.0.1:9/d.bin", tmp_path, expected_size=100, progress=False)


def test_registry_has_the_public_sources() -> None:
    assert SOURCES["amazon2014"].url == "https://snap.stanford.edu/data/amazon/productGraph/metadata.json.gz"
    assert SOURCES["glove"].url == "https://nlp.stanford.edu/data/glove.6B.zip"
    assert "word2vec-google-news-300" in SOURCES["word2vec"].note
    assert SOURCES["flipkart"].url is None and "kaggle" in SOURCES["flipkart"].homepage
    for src in SOURCES.values():
        assert src.homepage.startswith("https://") and src.note
        assert src.sha256 is None  # never invented
    cat = download.resolve_source("amazon2014:Clothing_Shoes_and_Jewelry")
    assert cat.url.endswith("/categoryFiles/meta_Clothing_Shoes_and_Jewelry.json.gz")
    assert download.resolve_source("amazon2018:Gift_Cards").url == (
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/metaFiles2/meta_Gift_Cards.json.gz")
    beauty = download.resolve_source("amazon2023:All_Beauty")
    assert beauty.url == ("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/meta_categories/"
                          "meta_All_Beauty.jsonl.gz") and beauty.filename == "meta_All_Beauty.jsonl.gz"


def test_a_user_overrides_a_moved_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRODLIB_URL_AMAZON2023", "https://mirror.example/a/meta_<Category>.jsonl.gz")
    src = download.resolve_source("amazon2023:All_Beauty")
    assert src.url == "https://mirror.example/a/meta_All_Beauty.jsonl.gz" and src.filename == "meta_All_Beauty.jsonl.gz"
    monkeypatch.setenv("PRODLIB_URL_GLOVE", "https://mirror.example/glove.zip")
    assert download.resolve_source("glove").url == "https://mirror.example/glove.zip"
    monkeypatch.setenv("PRODLIB_URL_AMAZON2018", "https://mirror.example/no-placeholder.json.gz")
    with pytest.raises(DownloadError, match="must contain <Category>"):
        download.resolve_source("amazon2018:Gift_Cards")
    with pytest.raises(DownloadError, match="should look like"):
        download.resolve_source("amazon2023:../etc")
    with pytest.raises(DownloadError, match="no per-category files"):
        download.resolve_source("glove:x")


def test_a_dead_category_link_says_where_to_get_the_file(server: _Server, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODLIB_URL_AMAZON2023", f"{server.url}/gone/meta_<Category>.jsonl.gz")
    with pytest.raises(DownloadError) as err:
        fetch("amazon2023:All_Beauty", tmp_path, retries=1, progress=False)
    msg = str(err.value)
    assert "HTTP 404" in msg and "https://amazon-reviews-2023.github.io/" in msg
    assert "PRODLIB_CATALOG=amazon2023:/path/meta_<Category>.jsonl.gz" in msg
    assert "set $PRODLIB_URL_AMAZON2023 to its new URL" in msg


def test_manual_sources_and_bad_names_explain(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="kaggle"):
        fetch("flipkart", tmp_path, progress=False)
    with pytest.raises(DownloadError, match="neither a known source"):
        fetch("no-such-thing", tmp_path)
    with pytest.raises(ValueError, match="retries"):
        fetch("glove", tmp_path, retries=0)
