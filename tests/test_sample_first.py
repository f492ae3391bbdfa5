"""Sample first, then fetch: the seeded sample is drawn while the catalog streams, and only the sampled products'
images are requested; real catalogs by ``release:<Category>`` from a local 127.0.0.1 server (never the network)."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from prodlib import download
from prodlib.artifacts import repo_root
from prodlib.catalog import read_amazon2014, read_catalog
from prodlib.catalog.fields import Row
from prodlib.catalog.records import sample_rows
from prodlib.catalog.report import ReadReport
from prodlib.images import prepare_images


class Files:
    """Serves ``files`` (path -> bytes) with Range support; records every request; ``drop_once`` cuts the first
    response of that path after 1,000 bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_once: set[str] = set()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                srv.requests.append((self.path, self.headers.get("Range")))
                if (body := srv.files.get(self.path)) is None:
                    self.send_error(404, "Not Found")
                    return
                start = int(m.group(1)) if (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")) else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path in srv.drop_once:
                    srv.drop_once.discard(self.path)
                    self.wfile.write(body[start:start + 1000])
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def image_requests(self) -> list[str]:
        return [p.removeprefix("/img/").removesuffix(".png") for p, _ in self.requests if p.startswith("/img/")]


@pytest.fixture
def server() -> Iterator[Files]:
    srv = Files()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (i * 37 % 256, i * 91 % 256, 120)).save(buf, format="PNG")
    return buf.getvalue()


def _gz(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


def _products(server: Files, n: int) -> list[dict]:
    """``n`` products with image URLs on ``server``; every 5th lacks a description, every 7th has a placeholder."""
    cats = [["Home", "Kitchen"], ["Home", "Bath"], ["Toys", "Games"], ["Toys", "Puzzles"]]
    out = []
    for i in range(n):
        pid = f"P{i:04d}"
        server.files[f"/img/{pid}.png"] = _png(i)
        image = f"{server.url}/img/no-img-sm.gif" if i % 7 == 3 else f"{server.url}/img/{pid}.png"
        out.append({"id": pid, "title": f"product {i} title", "description": "" if i % 5 == 2 else f"about {i}",
                    "cats": cats[i % 4], "image": image})
    return out


def _rows(n: int) -> list[Row]:
    return [Row(f"id{i}", "t", "d", [["A"]], None) for i in range(n)]


def test_the_streamed_sample_is_seeded_uniform_in_file_order_and_order_free() -> None:
    rows = _rows(1000)
    a = sample_rows(iter(rows), ReadReport("x"), 100, seed=7)
    assert len(a) == 100 and len({r.id for r in a}) == 100
    assert [r.id for r in a] == sorted((r.id for r in a), key=lambda s: int(s[2:]))  # file order
    assert [r.id for r in sample_rows(iter(rows), ReadReport("x"), 100, seed=7)] == [r.id for r in a]
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert {r.id for r in sample_rows(iter(shuffled), ReadReport("x"), 100, seed=7)} == {r.id for r in a}
    assert {r.id for r in sample_rows(iter(rows), ReadReport("x"), 100, seed=8)} != {r.id for r in a}
    # uniform: over many seeds, the first and the second half of the file are drawn about equally often
    first_half = sum(int(r.id[2:]) < 500 for s in range(40) for r in sample_rows(iter(rows), ReadReport("x"), 50, s))
    assert 800 < first_half < 1200  # of 2,000 draws; a biased reservoir would fail this
    rep = ReadReport("x")
    assert len(sample_rows(iter(rows[:30]), rep, 100, seed=7)) == 30 and "30 of 30 eligible" in rep.notes[-1]


def test_a_repeated_id_keeps_its_first_record_and_is_counted_when_sampled() -> None:
    rows = _rows(50)
    dup = Row("id3", "second copy", "d", [["B"]], None)
    rep = ReadReport("x")
    got = sample_rows(iter(rows + [dup]), rep, 50, seed=0)
    assert len(got) == 50 and next(r for r in got if r.id == "id3").title == "t"
    assert rep.duplicates == 1 and rep.skipped["duplicate id (first kept)"] == 1


def test_the_2014_reader_filters_while_streaming_and_samples(tmp_path: Path) -> None:
    lines = [repr({"asin": f"A{i}", "title": f"t{i}", "categories": [["X", "Y"]], "imUrl": f"http://h/{i}.jpg",
                   **({"description": f"d{i}"} if i % 3 else {})}) for i in range(600)]
    (path := tmp_path / "meta_X.json.gz").write_bytes(_gz(lines))
    res = read_amazon2014(path, require_title=True, require_description=True, require_image=True, sample=50,
                          seed=3, workers=1)
    assert len(res.table) == 50 and all(int(pid[1:]) % 3 for pid in res.table["id"])  # never a product without one
    assert res.report.skipped["no description"] == 200 and res.report.kept == 50
    again = read_amazon2014(path, require_title=True, require_description=True, require_image=True, sample=50,
                            seed=3, workers=2)
    assert again.table["id"].tolist() == res.table["id"].tolist()  # workers do not change the sample


def _serve_2018(server: Files, products: list[dict], name: str) -> None:
    lines = [json.dumps({"asin": p["id"], "title": p["title"], "description": [p["description"]],
                         "category": p["cats"], "imageURLHighRes": [p["image"]]}) for p in products]
    server.files[f"/v2/meta_{name}.json.gz"] = _gz(lines)


def _serve_2023(server: Files, products: list[dict], name: str) -> None:
    lines = [json.dumps({"parent_asin": p["id"], "title": p["title"], "description": [p["description"]],
                         "main_category": p["cats"][0], "categories": p["cats"],
                         "images": [{"variant": "MAIN", "hi_res": p["image"], "large": p["image"]}]})
             for p in products]
    server.files[f"/2023/meta_{name}.jsonl.gz"] = _gz(lines)


@pytest.mark.parametrize("release", ["amazon2018", "amazon2023"])
def test_a_category_downloads_resumes_samples_and_gets_images_for_the_sample(
        release: str, server: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "_BACKOFF_S", 0.0)
    products = _products(server, 300)
    if release == "amazon2018":
        _serve_2018(server, products, "Home_Toys")
        path, template = "/v2/meta_Home_Toys.json.gz", f"{server.url}/v2/meta_<Category>.json.gz"
    else:
        _serve_2023(server, products, "Home_Toys")
        path, template = "/2023/meta_Home_Toys.jsonl.gz", f"{server.url}/2023/meta_<Category>.jsonl.gz"
    monkeypatch.setenv(download.url_env(release), template)
    server.drop_once.add(path)  # the first response breaks after 1,000 bytes: the download resumes
    res = read_catalog(f"{release}:Home_Toys", cache_dir=tmp_path / "cache", sample=40, seed=5,
                       require_image=True, require_description=True)
    file_requests = [r for r in server.requests if r[0] == path]
    assert file_requests == [(path, None), (path, "bytes=1000-")]
    assert (tmp_path / "cache" / Path(path).name).read_bytes() == server.files[path]
    assert len(res.table) == 40 and res.report.source == f"{release}:Home_Toys"
    eligible = {p["id"] for i, p in enumerate(products) if i % 5 != 2 and i % 7 != 3}
    assert set(res.table["id"]) <= eligible
    paths, report = prepare_images(res.table.set_index("id")["image"], tmp_path / "images", progress=False)
    assert sorted(server.image_requests()) == sorted(res.table["id"])  # the sample's images, nothing else
    assert report.n_usable == 40 and paths.notna().all()
    again = read_catalog(f"{release}:Home_Toys", cache_dir=tmp_path / "cache", sample=40, seed=5,
                         require_image=True, require_description=True)
    assert len([r for r in server.requests if r[0] == path]) == 2  # cached: no new download
    pd.testing.assert_frame_equal(again.table, res.table)


def test_a_missing_category_says_where_to_get_it(server: Files, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "_BACKOFF_S", 0.0)
    monkeypatch.setenv("PRODLIB_URL_AMAZON2018", f"{server.url}/v2/meta_<Category>.json.gz")
    from prodlib.catalog import CatalogError
    with pytest.raises(CatalogError, match=r"HTTP 404.*nijianmo.*amazon2018:/path/meta_<Category>.json.gz"):
        read_catalog("amazon2018:No_Such", cache_dir=tmp_path)


def test_full_profile_notebook_01_requests_exactly_the_sampled_images(server: Files, tmp_path: Path) -> None:
    products = _products(server, 400)
    lines = [repr({"asin": p["id"], "title": p["title"], "categories": [p["cats"]], "imUrl": p["image"],
                   **({"description": p["description"]} if p["description"] else {})}) for p in products]
    (meta := tmp_path / "metadata.json.gz").write_bytes(_gz(lines))
    run_dir = tmp_path / "runs"
    env = {**os.environ, "PRODLIB_AMAZON2014": str(meta), "PYTHONPATH": str(repo_root()), "PRODLIB_OFFLINE": ""}
    cmd = [sys.executable, "-m", "prodlib", "run", "--profile", "full", "--only", "01", "--no-book",
           "--run-dir", str(run_dir), "--run-name", "small-full", "--set", "n_products=60",
           "--set", "label_min_count=5", "--set", "test_size=12"]
    done = subprocess.run(cmd, env=env, cwd=repo_root(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stage = run_dir / "experiments" / "small-full" / "full" / "01_data"  # a run with --set is an experiment
    outcomes = pd.read_csv(stage / "images" / "outcomes.csv", dtype={"id": str})
    assert len(outcomes) == 60  # the sample, not the 400 products of the file
    assert sorted(server.image_requests()) == sorted(outcomes["id"])  # exactly the sampled products' images
    eligible = {p["id"] for i, p in enumerate(products) if i % 5 != 2 and i % 7 != 3}
    assert set(outcomes["id"]) <= eligible  # filters applied while streaming: description and a real image
    kept = pd.read_json(stage / "catalog.jsonl", lines=True, dtype={"id": str})
    assert set(kept["id"]) <= set(outcomes["id"])
