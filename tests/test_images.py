"""Image acquisition, validation and the input pipeline (prodlib.images); never the real network."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodlib import image_input as P
from prodlib import images as I


def _jpeg(color=(200, 30, 30), size=(60, 40), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="JPEG")
    return buf.getvalue()


def _png_palette_alpha() -> bytes:
    im = Image.new("P", (30, 30), 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    for x in range(10, 20):
        for y in range(30):
            im.putpixel((x, y), 1)
    buf = io.BytesIO()
    im.save(buf, format="PNG", transparency=0)  # index 0 transparent -> white after compositing
    return buf.getvalue()


def _gif(frames=2, size=(24, 24)) -> bytes:
    ims = [Image.new("P", size, i + 1) for i in range(frames)]
    for im in ims:
        im.putpalette([0, 0, 0, 10, 200, 10, 200, 10, 10] + [0] * 759)
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:])
    return buf.getvalue()


def _tiny_gif() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (1, 1), 0).save(buf, format="GIF")
    return buf.getvalue()


class _Server:
    """A local HTTP server on 127.0.0.1 serving canned responses; counts requests per path."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes]], slow: float = 0.0) -> None:
        self.routes = routes
        self.hits: dict[str, int] = {}
        self.flaky_left = 1
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path == "/slow.jpg":
                    time.sleep(slow)
                if self.path == "/flaky.jpg" and server.flaky_left > 0:
                    server.flaky_left -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                status, ctype, body = server.routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    good = _jpeg()
    cmyk = _jpeg(color=(0, 255, 255, 0), mode="CMYK")
    gray = _jpeg(color=128, mode="L")
    routes = {
        "/good.jpg": (200, "image/jpeg", good),
        "/slow.jpg": (200, "image/jpeg", good),
        "/flaky.jpg": (200, "image/jpeg", good),
        "/truncated.jpg": (200, "image/jpeg", good[: len(good) // 2]),
        "/cmyk.jpg": (200, "image/jpeg", cmyk),
        "/gray.jpg": (200, "image/jpeg", gray),
        "/palette.png": (200, "image/png", _png_palette_alpha()),
        "/anim.gif": (200, "image/gif", _gif()),
        "/text.jpg": (200, "image/jpeg", b"<html>Sorry, this product is gone</html>"),
        "/bomb.png": (200, "image/png", _png_bomb()),
        "/pixel.gif": (200, "image/gif", _tiny_gif()),
        "/big.jpg": (200, "image/jpeg", _jpeg(size=(120, 40))),
    }
    srv = _Server(routes, slow=1.5)
    yield srv
    srv.close()


def _png_bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (200, 200), 0).save(buf, format="PNG")  # 40,000 px; the test sets the limit to 10,000
    return buf.getvalue()


def test_prepare_images_outcomes_and_resume(server, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    local_good = tmp_path / "local.jpg"
    local_good.write_bytes(_jpeg(color=(0, 0, 200)))
    u = server.url
    sources = {
        "good": f"{u}/good.jpg", "missing404": f"{u}/gone.jpg", "slow": f"{u}/slow.jpg",
        "flaky": f"{u}/flaky.jpg", "trunc": f"{u}/truncated.jpg", "cmyk": f"{u}/cmyk.jpg",
        "gray": f"{u}/gray.jpg", "palette": f"{u}/palette.png", "gif": f"{u}/anim.gif",
        "text": f"{u}/text.jpg", "bomb": f"{u}/bomb.png", "pixel": f"{u}/pixel.gif",
        "noimg": "http://ecx.images-amazon.com/images/G/01/x-site/icons/no-img-sm._CB192198896_.gif",
        "none": None, "local": str(local_good), "nofile": str(tmp_path / "absent.jpg"), "big": f"{u}/big.jpg",
    }
    series = pd.Series(sources)
    out = tmp_path / "images"
    paths, report = I.prepare_images(series, out, max_side=64, workers=4, timeout=0.5, retries=1, backoff=0.05,
                                     progress=False)
    outcome = report.log.set_index("id")["outcome"].to_dict()
    assert outcome == {
        "good": "ok", "missing404": "http_404", "slow": "timeout", "flaky": "ok", "trunc": "truncated",
        "cmyk": "converted_CMYK", "gray": "converted_L", "palette": "converted_P", "gif": "converted_GIF",
        "text": "not_image", "bomb": "too_large", "pixel": "placeholder", "noimg": "placeholder",
        "none": "missing", "local": "ok", "nofile": "file_not_found", "big": "ok",
    }
    usable = {k for k, v in outcome.items() if I.ImageReport.is_usable(v)}
    assert set(paths.dropna().index) == usable
    assert paths.index.tolist() == series.index.tolist()
    # stored files are RGB JPEGs no larger than max_side
    for pid in usable:
        with Image.open(paths[pid]) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and max(im.size) <= 64
    with Image.open(paths["big"]) as im:
        assert im.size == (64, 21)
    # transparency composited on white: the transparent left column is white, the opaque stripe blue
    with Image.open(paths["palette"]) as im:
        left, mid = im.getpixel((2, 15)), im.getpixel((15, 15))
    assert min(left) > 240 and mid[2] > 200 and mid[0] < 40
    # retry: the flaky URL failed once (503) then succeeded; 404 was not retried
    assert server.hits["/flaky.jpg"] == 2 and server.hits["/gone.jpg"] == 1
    assert "/no-img" not in "".join(server.hits)  # placeholders are never fetched
    # report: counts, dict and outcomes.csv
    d = report.to_dict()
    assert d["products"] == len(sources) and d["usable"] == len(usable)
    assert d["outcomes"]["placeholder"] == 2
    assert (out / "outcomes.csv").exists() and "usable" in str(report)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*tmp"))

    # resume: a second run fetches nothing already validated and keeps the outcome names
    before = dict(server.hits)
    paths2, report2 = I.prepare_images(series, out, max_side=64, workers=4, timeout=0.5, retries=0,
                                       progress=False)
    assert server.hits["/good.jpg"] == before["/good.jpg"] and server.hits["/cmyk.jpg"] == before["/cmyk.jpg"]
    log2 = report2.log.set_index("id")
    assert bool(log2.loc["good", "resumed"]) and log2.loc["cmyk", "outcome"] == "converted_CMYK"
    assert paths2.dropna().to_dict() == paths.dropna().to_dict()


def test_prepare_images_rejects_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="max_side"):
        I.prepare_images(pd.Series({"a": None}), tmp_path, max_side=2, progress=False)
    with pytest.raises(ValueError, match="unique"):
        I.prepare_images(pd.Series([None, None], index=["a", "a"]), tmp_path, progress=False)


def _write_images(folder: Path, n: int, size=(40, 30)) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"{i}.jpg"
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[:, : size[0] // 2] = (255, 0, 0)  # left half red, right half black
        Image.fromarray(arr).save(p, quality=95)
        out.append(str(p))
    return out


def test_load_image_letterbox_and_preprocess(tmp_path):
    (path,) = _write_images(tmp_path, 1, size=(40, 20))
    x = P.load_image(path, 32)
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
    assert np.allclose(x[0, 16], 255, atol=2)  # letterbox band on top is white
    assert x[16, 4, 0] > 200 and x[16, 28, 0] < 40  # left red, right black
    arr = P.load_image_array([path, path], 32, preprocessed=True)
    # preprocess_input (caffe): BGR order, ImageNet mean subtracted
    assert arr.shape == (2, 32, 32, 3)
    assert np.isclose(arr[0, 16, 28, 0], 0 - 103.939, atol=3)
    assert np.isclose(arr[0, 16, 4, 2], x[16, 4, 0] - 123.68, atol=1e-3)


def test_image_sequence_batches_flips_and_bad_files(tmp_path):
    paths = _write_images(tmp_path, 5)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    y = np.eye(6, 3, dtype=np.float32)
    seq = P.ImageSequence([*paths, str(bad)], y, image_size=32, batch_size=4, augment=True, seed=3)
    assert len(seq) == 2
    with pytest.warns(UserWarning, match="white image"):
        xb, yb = seq[1]
    assert xb.shape == (2, 32, 32, 3) and np.array_equal(yb, y[4:6])
    assert seq.failed == [str(bad)]
    x0, _ = seq[0]
    again, _ = P.ImageSequence([*paths, str(bad)], y, image_size=32, batch_size=4, augment=True, seed=3)[0]
    assert np.array_equal(x0, again)  # seeded flips are reproducible
    plain = P.load_image_array(paths[:4], 32, preprocessed=True)
    flipped = [not np.allclose(x0[i], plain[i]) for i in range(4)]
    for i in range(4):
        ref = plain[i][:, ::-1] if flipped[i] else plain[i]
        assert np.allclose(x0[i], ref)
    seq_shuffled = P.ImageSequence(paths, image_size=32, batch_size=5, shuffle=True, seed=1)
    first = seq_shuffled._order.copy()
    seq_shuffled.on_epoch_end()
    assert sorted(first) == list(range(5)) and seq_shuffled.epoch == 1
    with pytest.raises(ValueError, match="label rows"):
        P.ImageSequence(paths, y, image_size=32)


def test_split_images_and_prevalence(tmp_path):
    paths = _write_images(tmp_path, 2)
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(Path(paths[0]).read_bytes()[:200])
    part = pd.DataFrame({"image": [paths[0], None, str(trunc), str(tmp_path / "gone.jpg"), paths[1]]},
                        index=["a", "b", "c", "d", "e"])
    with_ids, with_paths, without = P.split_images(part)
    assert with_ids == ["a", "e"] and with_paths == [paths[0], paths[1]] and without == ["b", "c", "d"]
    y = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]])
    p = P.prevalence_probs(y, 3)
    assert p.shape == (3, 3) and np.allclose(p[0], [0.75, 0.25, 0.25])


class _FaultServer:
    """Serves one good JPEG under fault paths: /huge announces 50 MB, /trickle sends a byte every 0.1 s, /cut
    closes the first connection halfway through the body."""

    def __init__(self, body: bytes) -> None:
        self.hits: dict[str, int] = {}
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                srv.hits[self.path] = n = srv.hits.get(self.path, 0) + 1
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(50_000_000 if self.path == "/huge" else len(body)))
                self.end_headers()
                try:
                    if self.path == "/trickle":
                        for i in range(len(body)):
                            self.wfile.write(body[i: i + 1])
                            self.wfile.flush()
                            time.sleep(0.1)
                    elif self.path == "/cut" and n == 1:
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                    else:
                        self.wfile.write(body * (1000 if self.path == "/huge" else 1))
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_size_cap_deadline_and_a_connection_broken_mid_body(tmp_path):
    srv = _FaultServer(_jpeg())
    try:
        series = pd.Series({k: f"{srv.url}/{k}" for k in ("huge", "trickle", "cut")})
        t0 = time.perf_counter()
        _, report = I.prepare_images(series, tmp_path, timeout=0.5, retries=1, backoff=0.01, max_bytes=100_000,
                                     deadline=1.0, progress=False)
        took = time.perf_counter() - t0
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
    outcome = report.log.set_index("id")["outcome"].to_dict()
    # before: the 50 MB body was buffered whole, the trickle took the whole body's time, the cut body counted as
    # truncated without a retry
    assert outcome == {"huge": "too_large", "trickle": "timeout", "cut": "ok"}
    assert srv.hits["/cut"] == 2 and srv.hits["/trickle"] == 1 and took < 3.0


def test_sixteen_bit_greyscale_and_exif_orientation(tmp_path):
    grey = (np.arange(64 * 64).reshape(64, 64) * 8).astype(np.uint16)  # 0..32,760 of 65,535: mid grey
    Image.fromarray(grey).save(tmp_path / "g16.png")
    tall = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = tall.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    tall.save(tmp_path / "turned.jpg", exif=exif.tobytes())
    sources = pd.Series({"g16": str(tmp_path / "g16.png"), "turned": str(tmp_path / "turned.jpg")})
    paths, report = I.prepare_images(sources, tmp_path / "out", progress=False)
    with Image.open(paths["g16"]) as im:
        assert abs(np.asarray(im, np.float64).mean() - grey.mean() / 257) < 2  # was about 255: almost white
    with Image.open(paths["turned"]) as im:
        assert im.size == (20, 40)
    assert "EXIF" in report.log.set_index("id").loc["turned", "detail"]


def test_a_failed_write_is_a_failure_not_ok(tmp_path):
    import subprocess
    import sys

    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")  # its JPEG is far larger than the file-size limit below
    code = ("import resource, signal, pandas as pd\nfrom prodlib import images as I\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nresource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))\n"
            f"_, r = I.prepare_images(pd.Series({{'a': {str(tmp_path / 'noise.png')!r}}}), {str(tmp_path / 'out')!r}, "
            "progress=False)\nprint(r.log.loc[0, 'outcome'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "write_failed", done.stderr
    assert not list((tmp_path / "out").glob("*.jpg"))


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_offline_and_unreachable_image_urls_cost_seconds_not_minutes(server, tmp_path, monkeypatch):
    local = tmp_path / "local.jpg"
    local.write_bytes(_jpeg())
    dead = f"http://127.0.0.1:{_closed_port()}"
    sources = pd.Series({**{f"p{i}": f"{dead}/{i}.jpg" for i in range(40)}, "local": str(local)})
    monkeypatch.setenv("PRODLIB_OFFLINE", "1")
    _, report = I.prepare_images(pd.Series({"a": f"{server.url}/good.jpg", "local": str(local)}), tmp_path / "off",
                                 retries=2, progress=False)
    assert report.log.set_index("id")["outcome"].to_dict() == {"a": "offline", "local": "ok"}
    assert not server.hits and "PRODLIB_OFFLINE is set" in str(report)
    monkeypatch.delenv("PRODLIB_OFFLINE")
    calls = []
    real = I.http_get
    monkeypatch.setattr(I, "http_get", lambda url, **kw: calls.append(url) or real(url, **kw))
    paths, report = I.prepare_images(sources, tmp_path / "dead", retries=2, backoff=0.01, progress=False)
    counts = report.to_dict()["outcomes"]
    assert counts == {"unreachable": 37, "network_error": I.N_PROBES, "ok": 1} and len(calls) == I.N_PROBES
    assert "no image URL can be reached (3 probes" in str(report) and report.seconds < 5
    assert paths.dropna().index.tolist() == ["local"]
    # one host dead, another answering: every URL is tried
    mixed = pd.Series({"d1": f"{dead}/1.jpg", "d2": f"{dead}/2.jpg", "g": f"{server.url}/good.jpg"})
    _, report = I.prepare_images(mixed, tmp_path / "mixed", retries=0, progress=False)
    assert report.log.set_index("id")["outcome"].to_dict() == {"d1": "network_error", "d2": "network_error",
                                                               "g": "ok"}
