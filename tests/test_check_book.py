"""Tests of the book's quality tools: tools/check_book.py (headless Chromium) and the Sphinx extension
book/_ext/prodlib_book.py (notebook tidying, the profile table), and the Reproduce chapter's quoted values."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from prodlib.config import PROFILES

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):  # noqa: ANN202 (a module)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check_book = _load("check_book", ROOT / "tools" / "check_book.py")
book_ext = _load("prodlib_book", ROOT / "book" / "_ext" / "prodlib_book.py")


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _page(body: str, title: str = "t") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{body}</body></html>"


needs_chromium = pytest.mark.skipif(
    shutil.which(check_book.DEFAULT_CHROMIUM) is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium); CI installs it, so there this test fails instead",
)


@pytest.fixture()
def clean_site(tmp_path: Path) -> Path:
    site = tmp_path / "clean"
    (site / "book").mkdir(parents=True)
    (site / "_images").mkdir()
    (site / "_images" / "fig.png").write_bytes(_png_bytes())
    (site / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />')
    (site / "book" / "intro.html").write_text(_page(
        '<h1 id="top">Intro</h1><img src="../_images/fig.png" alt="a figure">'
        '<a href="other.html#sec">other</a><a href="https://colab.research.google.com/x">colab</a>'
        '<script>console.log("fine")</script>'))
    (site / "book" / "other.html").write_text(_page('<h2 id="sec">Section</h2><a href="intro.html#top">back</a>'))
    return site


@needs_chromium
def test_clean_site_passes_and_is_screenshot(clean_site: Path, tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    report = check_book.check_book(clean_site, screenshots=shots, shots={"intro": "book/intro.html"})
    assert report.problems == []
    assert report.ok
    assert [p.page for p in report.pages] == ["book/intro.html", "book/other.html", "index.html"]
    assert (shots / "intro.png").stat().st_size > 1000
    assert report.screenshots == {"intro": shots / "intro.png"}


@needs_chromium
def test_js_error_broken_image_and_dead_link_fail(clean_site: Path) -> None:
    (clean_site / "book" / "bad.html").write_text(_page(
        '<img src="../_images/missing.png" alt="gone"><a href="nowhere.html">dead</a>'
        '<a href="other.html#no-such-anchor">dead anchor</a>'
        '<script>console.error("logged failure")</script>'
        '<script>throw new Error("boom from the page")</script>'))
    (clean_site / "book" / "undecodable.html").write_text(_page('<img src="../_images/bad.png" alt="x">'))
    (clean_site / "_images" / "bad.png").write_bytes(b"not a png at all")
    report = check_book.check_book(clean_site)
    assert not report.ok
    bad = next(p for p in report.pages if p.page == "book/bad.html").problems
    text = "\n".join(bad)
    assert "boom from the page" in text
    assert "logged failure" in text
    assert "missing.png" in text
    assert "nowhere.html (no such file)" in text
    assert "no-such-anchor (no such anchor)" in text
    undecodable = next(p for p in report.pages if p.page == "book/undecodable.html").problems
    assert any("image not displayed: ../_images/bad.png" in m for m in undecodable)
    clean = [p for p in report.pages if p.page in ("book/intro.html", "book/other.html")]
    assert all(not p.problems for p in clean)


@needs_chromium
def test_cli_exit_status(clean_site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_book.main([str(clean_site), "--screenshots", str(tmp_path / "s")]) == 0
    (clean_site / "book" / "intro.html").write_text(_page("<script>undefinedFunction()</script>"))
    assert check_book.main([str(clean_site), "--screenshots", str(tmp_path / "s")]) == 1
    assert "undefinedFunction" in capsys.readouterr().out


def test_missing_browser_or_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(check_book.CheckBookError, match="build the book first"):
        check_book.check_book(tmp_path / "absent")
    with pytest.raises(check_book.CheckBookError, match="apt-get install chromium"):
        check_book.check_book(tmp_path, chromium=str(tmp_path / "no-chromium"))


# --- the Sphinx extension ---------------------------------------------------------------------------
def _nb(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(outputs: list[dict], **meta: object) -> dict:
    return {"cell_type": "code", "metadata": dict(meta), "outputs": outputs, "source": "x", "execution_count": 1}


def test_tidy_notebook_hides_injected_parameters_and_trims() -> None:
    long_text = "".join(f"line {i}\n" for i in range(500))
    nb = _nb(_code([], tags=["injected-parameters"]),
             _code([{"output_type": "stream", "name": "stdout", "text": long_text}]))
    problems, trimmed = book_ext.tidy_notebook(nb, hide_tags={"injected-parameters"}, max_lines=40,
                                               require_captions=True)
    assert problems == [] and trimmed == 1
    assert nb["cells"][0]["metadata"]["tags"] == ["injected-parameters", "remove-cell"]
    text = nb["cells"][1]["outputs"][0]["text"]
    assert len(text.splitlines()) == 40
    assert text.startswith("line 0\n") and text.endswith("line 499\n") and "lines trimmed" in text


def test_tidy_notebook_reports_errors_tracebacks_and_uncaptioned_figures() -> None:
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}, "metadata": {}}
    nb = _nb(_code([{"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}]),
             _code([{"output_type": "stream", "name": "stdout", "text": "Traceback (most recent call last):\n"}]),
             _code([png]),
             _code([png], mystnb={"figure": {"caption": "A caption", "name": "fig-x"}}),
             _code([png], tags=["remove-output"]),
             _code([{**png, "metadata": {"scrapbook": {"name": "glued"}}}]))
    problems, _ = book_ext.tidy_notebook(nb, hide_tags=set(), max_lines=60, require_captions=True)
    assert len(problems) == 3
    assert "cell 1: error output ValueError: bad" in problems[0]
    assert "cell 2: a traceback" in problems[1]
    assert "cell 3: a figure without a caption" in problems[2]


def test_training_notebooks_include_the_gpu_note_in_their_title_cell() -> None:
    assert (ROOT / "book" / "_snippets" / "gpu.md").exists()
    for name in ("02_title_classifier", "03_description_classifier", "04_image_classifier"):
        cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        title = next(c for c in cells if c["cell_type"] == "markdown")
        assert "```{include} ../book/_snippets/gpu.md" in "".join(title["source"]), name


def test_profile_table_reads_the_profiles() -> None:
    table = book_ext.profile_table_markdown(["catalog", "n_products", "k_sweep", "fusion_search"])
    lines = table.splitlines()
    assert lines[0] == "| field | `smoke` | `sample` | `full` |"
    assert lines[2] == "| `catalog` | demo | env | amazon2014 |"
    assert lines[3] == (f"| `n_products` | all | {PROFILES['sample'].n_products:,} | "
                        f"{PROFILES['full'].n_products:,} |")
    assert lines[4].startswith("| `k_sweep` | — |")
    with pytest.raises(ValueError, match="not a field"):
        book_ext.profile_table_markdown(["no_such_field"])


# --- the Reproduce chapter quotes the profiles correctly ---------------------------------------------
def test_reproduce_chapter_matches_the_profiles() -> None:
    text = (ROOT / "book" / "reproduce.md").read_text()
    for name in PROFILES:
        assert f"`{name}`" in text, f"profile {name} is not described"
    fields = re.search(r":fields: (.+)", text).group(1).replace(",", " ").split()
    book_ext.profile_table_markdown(fields)  # every field named in the table exists
    full = PROFILES["full"]
    assert f"{full.n_products:,}-product" in text
    assert f"at least {full.label_min_count} products" in text
    assert f"ResNet-50 at {full.image_size} px" in text and full.image_weights == "imagenet"
    assert full.mixed_precision and "`mixed_precision`" in text
    assert PROFILES["smoke"].catalog == "demo" and PROFILES["sample"].catalog == "env"
    exercises = (ROOT / "book" / "exercises.md").read_text()
    assert PROFILES["smoke"].image_backbone == "auto" == PROFILES["sample"].image_backbone
    assert "`image_backbone=auto`" in text and "image_weights=none" in exercises and full.image_backbone == "resnet50"
    for variable in ("PRODLIB_AMAZON2014", "PRODLIB_GLOVE", "PRODLIB_WORD2VEC", "PRODLIB_IMAGE_WEIGHTS"):
        assert variable in text
        assert any(variable in p.read_text() for p in (ROOT / "prodlib").rglob("*.py")), f"{variable} unused"


def test_the_full_estimate_is_computed_from_measured_rates() -> None:
    full = PROFILES["full"]
    rates = [{"machine": "GPU X | CPU Y (8 cores)", "backend": "jax", "measured": "2026-01-01",
              "rates": {"title_samples_per_s": 2000.0, "description_samples_per_s": 500.0,
                        f"images_per_s_{full.image_size}px": 100.0}}]
    row = book_ext.estimate_markdown(rates, "full").splitlines()[2]
    n_train = full.n_products - full.test_size
    title = full.text_epochs * n_train / 2000 / 3600
    desc = full.text_epochs * n_train / 500 / 3600
    image = full.image_epochs * n_train * len({full.trainable_layers, *full.k_sweep}) / 100 / 3600
    assert row == (f"| GPU X \\| CPU Y (8 cores) (jax, 2026-01-01) | {title:,.1f} h | {desc:,.1f} h | {image:,.1f} h "
                   f"| {title + desc + image:,.1f} h |")
    with pytest.raises(ValueError, match="no fixed number"):
        book_ext.estimate_markdown(rates, "smoke")
    measured = json.loads((ROOT / "benchmarks" / "rates.json").read_text())  # what the book reads
    assert measured and book_ext.estimate_markdown(measured, "full").count("\n") == len(measured) + 2
