"""End to end: the smoke profile runs every notebook of the TOC and the book builds with warnings as
errors; then the HTML is checked as a reader would see it."""

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from prodlib.artifacts import repo_root
from prodlib.pipeline import run, toc_notebooks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    result = run("smoke", run_dir=tmp / "runs", build_root=tmp, say=print)
    return tmp, result


def test_every_notebook_ran_and_the_book_exists(built):
    tmp, result = built
    assert result.book == tmp / "_build" / "html"
    assert (result.book / "index.html").exists()
    assert all(n["status"] == "executed" for n in result.notebooks)
    assert len(result.notebooks) == len(toc_notebooks(repo_root()))


def test_notebook_pages_have_figures_and_no_errors(built):
    tmp, result = built
    for rel in toc_notebooks(repo_root()):
        page = result.book / rel.with_suffix(".html")
        assert page.exists(), f"{page} missing"
        html = page.read_text()
        assert "Traceback (most recent call last)" not in html, f"traceback on {page.name}"
        assert 'class="output error"' not in html and "ansi-red-fg" not in html, f"error output on {page.name}"
        images = re.findall(r'<img[^>]+src="([^"]+)"', html)
        figures = [src for src in images if "_images/" in src]
        assert figures, f"no figure on {page.name}"
        for src in figures:
            assert (page.parent / src).resolve().exists(), f"{page.name} links a missing image {src}"


def test_glued_numbers_are_rendered_from_the_run(built):
    tmp, result = built
    stats = json.loads((tmp / "runs" / "smoke" / "01_data" / "dataset_stats.json").read_text())
    page = (result.book / "notebooks" / "01_data_exploration.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)
    products = stats["labels"]["after"]["products"]
    classes = stats["labels"]["after"]["classes"]
    assert f"{products} products carry {classes} classes" in re.sub(r"\s+", " ", text)


def test_intro_shows_the_synthetic_banner_and_colab_links_point_at_sources(built):
    tmp, result = built
    intro = (result.book / "book" / "intro.html").read_text()
    assert "Synthetic demo data" in intro
    page = (result.book / "notebooks" / "01_data_exploration.html").read_text()
    assert "colab.research.google.com/github/" in page
    assert "/blob/main/notebooks/01_data_exploration.ipynb" in page


def test_manifests_record_profile_and_fingerprint(built):
    tmp, _ = built
    manifests = [json.loads(p.read_text()) for p in Path(tmp / "runs" / "smoke").glob("*/manifest.json")]
    assert manifests
    assert {m["profile"] for m in manifests} == {"smoke"}
    assert len({m["data_fingerprint"] for m in manifests}) == 1


def test_reproduce_page_quotes_the_measured_run_times(built):
    tmp, result = built
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", (result.book / "book" / "reproduce.html").read_text()))
    for rel in toc_notebooks(repo_root()):
        seconds = json.loads((tmp / "runs" / "smoke" / ".pipeline" / f"{rel.stem}.json").read_text())["seconds"]
        assert f"{rel.stem} {seconds:.1f} s" in text


def test_published_pages_and_notebooks_show_no_path_of_the_build_machine(built):
    tmp, result = built
    machine = {str(tmp), str(tmp.resolve()), str(repo_root()), sys.prefix, sys.base_prefix, str(Path.home())}
    for page in [*result.book.rglob("*.html"), *result.book.rglob("*.ipynb")]:
        text = page.read_text(errors="replace")
        for path in machine:
            assert not re.search(re.escape(path) + r"(?=[/\\\"'\s:<]|$)", text), f"{path} in {page}"
    text = re.sub(r"<[^>]+>", "", (result.book / "book" / "reproduce.html").read_text())
    url = yaml.safe_load((repo_root() / "_config.yml").read_text())["repository"]["url"]
    assert "{{ repository_url }}" not in text and f"git clone {url}" in text  # read from _config.yml
