"""The runner on a tiny throwaway book: order, skip/force, failure reporting (the book build is covered by
the end-to-end test)."""

import json
from pathlib import Path

import nbformat
import pytest

from prodlib.config import ProfileError
from prodlib.pipeline import NotebookFailed, PipelineError, run, toc_notebooks


def _notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("PROFILE = None\nRUN_DIR = None\nOVERRIDES = {}")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _log(name: str) -> str:
    return (f"import pathlib\np = pathlib.Path(RUN_DIR) / 'log.txt'\n"
            f"p.write_text((p.read_text() if p.exists() else '') + '{name} ' + PROFILE + '\\n')")


@pytest.fixture
def book(tmp_path):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    _notebook(root / "notebooks" / "01_a.ipynb", _log("a"))
    _notebook(root / "notebooks" / "02_b.ipynb", _log("b"))
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "- file: notebooks/01_a\n- file: notebooks/02_b\n")
    return root


def test_toc_order_and_missing_file(book):
    assert [p.name for p in toc_notebooks(book)] == ["01_a.ipynb", "02_b.ipynb"]
    (book / "notebooks" / "02_b.ipynb").unlink()
    with pytest.raises(PipelineError, match="02_b"):
        toc_notebooks(book)


def test_runs_in_order_then_skips_unchanged_then_force(book, tmp_path):
    runs = tmp_path / "runs"
    lines = []
    res = run("smoke", root=book, run_dir=runs, book=False, say=lines.append)
    assert [n["status"] for n in res.notebooks] == ["executed", "executed"]
    assert (runs / "log.txt").read_text() == "a smoke\nb smoke\n"
    assert (runs / "smoke" / "notebooks" / "02_b.ipynb").exists()
    assert any("[2/2] 02_b: done in" in line for line in lines)

    res = run("smoke", root=book, run_dir=runs, book=False, say=lines.append)
    assert [n["status"] for n in res.notebooks] == ["skipped", "skipped"]

    # changing the second notebook reruns only it; changing the first reruns both (its key feeds the next)
    _notebook(book / "notebooks" / "02_b.ipynb", _log("b2"))
    res = run("smoke", root=book, run_dir=runs, book=False, say=lines.append)
    assert [n["status"] for n in res.notebooks] == ["skipped", "executed"]
    res = run("smoke", root=book, run_dir=runs, book=False, force=True, say=lines.append)
    assert [n["status"] for n in res.notebooks] == ["executed", "executed"]
    res = run("smoke", root=book, run_dir=runs, book=False, overrides={"text_epochs": 1}, say=lines.append)
    assert [n["status"] for n in res.notebooks] == ["executed", "executed"]


def test_failure_names_notebook_cell_and_error_and_resumes(book, tmp_path):
    runs = tmp_path / "runs"
    _notebook(book / "notebooks" / "02_b.ipynb", "x = 1\nraise ValueError('broken input: 42')")
    with pytest.raises(NotebookFailed) as info:
        run("smoke", root=book, run_dir=runs, book=False, say=lambda _: None)
    msg = str(info.value)
    assert "02_b.ipynb" in msg and "cell 2" in msg and "ValueError: broken input: 42" in msg
    assert not (runs / "smoke" / ".pipeline" / "02_b.json").exists()
    # the finished notebook is not redone after the fix (an interrupted run resumes)
    _notebook(book / "notebooks" / "02_b.ipynb", _log("b"))
    res = run("smoke", root=book, run_dir=runs, book=False, say=lambda _: None)
    assert [n["status"] for n in res.notebooks] == ["skipped", "executed"]
    state = json.loads((runs / "smoke" / ".pipeline" / "02_b.json").read_text())
    assert state["seconds"] > 0


def test_bad_profile_fails_before_running(book, tmp_path):
    with pytest.raises(ProfileError, match="smoke, sample, full"):
        run("huge", root=book, run_dir=tmp_path / "runs", book=False)
    assert not (tmp_path / "runs").exists()


def test_source_notebooks_are_committed_without_outputs():
    # the pre-commit hook (nbstripout) strips them; CI does not run hooks, so check the files themselves
    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        for n, cell in enumerate(nbformat.read(path, as_version=4).cells, 1):
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {n} has outputs"


def test_overrides_run_in_their_own_folder_never_the_default_one(book, tmp_path):
    runs = tmp_path / "runs"
    run("smoke", root=book, run_dir=runs, book=False, say=lambda _: None)
    default = (runs / "smoke" / "notebooks" / "02_b.ipynb").stat().st_mtime_ns
    run("smoke", root=book, run_dir=runs, book=False, overrides={"text_epochs": "1"}, say=lambda _: None)
    assert (runs / "experiments" / "text_epochs=1" / "smoke" / "notebooks" / "02_b.ipynb").exists()
    run("smoke", root=book, run_dir=runs, book=False, overrides={"text_epochs": "1"}, name="short",
        say=lambda _: None)
    assert (runs / "experiments" / "short" / "smoke" / "notebooks" / "02_b.ipynb").exists()
    assert (runs / "smoke" / "notebooks" / "02_b.ipynb").stat().st_mtime_ns == default
    # an experiment's first --only run also runs the notebooks before it that have no result in its folder yet
    res = run("smoke", root=book, run_dir=runs, book=False, overrides={"text_epochs": "2"}, only=["02"],
              say=lambda _: None)
    assert [n["status"] for n in res.notebooks] == ["executed", "executed"]
    res = run("smoke", root=book, run_dir=runs, book=False, overrides={"text_epochs": "2"}, only=["02"], force=True,
              say=lambda _: None)
    assert [n["status"] for n in res.notebooks] == ["skipped", "executed"]
    (runs / "smoke" / ".pipeline" / "01_a.json").write_text("{not json")  # unreadable state: not finished
    res = run("smoke", root=book, run_dir=runs, book=False, say=lambda _: None)
    assert [n["status"] for n in res.notebooks] == ["executed", "skipped"]
    with pytest.raises(PipelineError, match="matches no notebook"):
        run("smoke", root=book, run_dir=runs, book=False, only=["07"], say=lambda _: None)


def test_replacing_the_catalog_file_at_the_same_path_reruns(book, tmp_path, monkeypatch):
    import os

    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"id": 1}\n' * 1050)
    monkeypatch.setenv("PRODLIB_CATALOG", f"amazon2023:{catalog}")
    runs = tmp_path / "runs"
    run("smoke", root=book, run_dir=runs, book=False, say=lambda _: None)
    res = run("smoke", root=book, run_dir=runs, book=False, say=lambda _: None)
    assert [n["status"] for n in res.notebooks] == ["skipped", "skipped"]
    stat = catalog.stat()
    catalog.write_text('{"id": 2}\n' * 1050)  # same size, same time: only the content differs
    os.utime(catalog, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    res = run("smoke", root=book, run_dir=runs, book=False, say=lambda _: None)
    assert [n["status"] for n in res.notebooks] == ["executed", "executed"]


def test_a_generic_catalogs_mapping_is_an_input_of_the_run(tmp_path):
    from prodlib.pipeline import file_fingerprints

    (cat := tmp_path / "shop.csv").write_text("sku,name,cat\n1,Mug,Home\n")
    (beside := tmp_path / "shop.mapping.yaml").write_text("id: sku\ntitle: name\ncategory: cat\n")
    (other := tmp_path / "other.json").write_text('{"id": "sku", "title": "name", "category": "cat"}')
    before = file_fingerprints([f"generic:{cat}", f"generic:{cat}?mapping=other.json"])
    assert set(before) == {f"generic:{cat}", f"generic:{cat} mapping", f"generic:{cat}?mapping=other.json",
                           f"generic:{cat}?mapping=other.json mapping"}
    beside.write_text("id: sku\ntitle: name\ncategory: [cat]\n")
    other.write_text('{"id": "sku", "title": ["name"], "category": "cat"}')
    after = file_fingerprints([f"generic:{cat}", f"generic:{cat}?mapping=other.json"])
    assert all(after[k] != before[k] for k in before if k.endswith("mapping"))
    assert all(after[k] == before[k] for k in before if not k.endswith("mapping"))


def test_the_runner_says_which_modalities_notebook_01_kept(tmp_path):
    from prodlib.pipeline import _modalities

    stats = tmp_path / "dataset_stats.json"
    stats.write_text(json.dumps({"modalities": {"present": ["title"], "why": {
        "title": "1,050 of 1,050 products (100.0%), at least min_modality_share 20%",
        "image": "0 of 1,050 products (0.0%), below min_modality_share 20%"}}}))
    line = _modalities(stats)
    assert "title used (1,050 of 1,050" in line and "image LEFT OUT (0 of 1,050 products (0.0%), below" in line
    assert "not recorded (FileNotFoundError" in _modalities(tmp_path / "absent.json")


def test_the_classifier_of_a_left_out_modality_is_replaced_by_a_page_saying_why(tmp_path):
    from prodlib.config import get_profile
    from prodlib.publish import _banner, _run_times

    root, runs = tmp_path / "repo", tmp_path / "runs"
    (root / "notebooks").mkdir(parents=True)
    why = "0 of 1,050 products (0.0%), below min_modality_share 20%"
    decision = {"present": ["title", "image"], "why": {"title": "1,050 of 1,050 products (100.0%)",
                                                        "description": why, "image": "1,047 of 1,050"}}
    _notebook(root / "notebooks" / "01_data_exploration.ipynb",
              "import json, pathlib\nd = pathlib.Path(RUN_DIR) / PROFILE / '01_data'\nd.mkdir(parents=True)\n"
              f"(d / 'dataset_stats.json').write_text(json.dumps({{'modalities': {decision!r}}}))")
    _notebook(root / "notebooks" / "02_title_classifier.ipynb", _log("title"))
    _notebook(root / "notebooks" / "03_description_classifier.ipynb", "raise RuntimeError('must not run')")
    nb = nbformat.read(root / "notebooks" / "03_description_classifier.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("# 3. Description classifier\n\nDescriptions say more."))
    nbformat.write(nb, root / "notebooks" / "03_description_classifier.ipynb")
    _notebook(root / "notebooks" / "04_image_classifier.ipynb", _log("image"))
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n" + "".join(
        f"- file: notebooks/{p.stem}\n" for p in sorted((root / "notebooks").glob("*.ipynb"))))

    lines: list[str] = []
    res = run("smoke", root=root, run_dir=runs, book=False, say=lines.append)
    assert [n["status"] for n in res.notebooks] == ["executed", "executed", "absent", "executed"]
    assert (runs / "log.txt").read_text() == "title smoke\nimage smoke\n"
    assert any("03_description_classifier: not run, the description is left out (0 of 1,050" in ln for ln in lines)
    page = nbformat.read(runs / "smoke" / "notebooks" / "03_description_classifier.ipynb", as_version=4)
    assert [c.cell_type for c in page.cells] == ["markdown"]
    assert page.cells[0].source.startswith("# 3. Description classifier\n\n```{admonition} Not run: no description")
    assert why in page.cells[0].source and "no F1 is reported" in page.cells[0].source

    res = run("smoke", root=root, run_dir=runs, book=False, say=lines.append)  # unchanged: still said
    assert [n["status"] for n in res.notebooks] == ["skipped"] * 4
    assert "[3/4] 03_description_classifier: skipped (unchanged; not run, the description is left out)" in lines
    assert "| `03_description_classifier` | not run (no description) |" in _run_times(root, get_profile("smoke"), runs)
    banner = _banner(get_profile("smoke"), runs)
    assert f"Modalities used: title, image; description left out ({why}) (notebook 01 decides)." in banner


def test_with_one_modality_fusion_chapters_are_pages_and_fusion_cells_are_left_out(tmp_path):
    from prodlib.config import get_profile
    from prodlib.publish import _run_times, stage_book

    root, runs = tmp_path / "repo", tmp_path / "runs"
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    for name in ("_config.yml", "book/results.md"):
        (root / name).write_text("title: t\n" if name.endswith("yml") else "# Results\n\nTable 3 …\n")
    decision = {"present": ["title"], "why": {"title": "all", "description": "none", "image": "none"}}
    _notebook(root / "notebooks" / "01_data_exploration.ipynb",
              "import json, pathlib\nd = pathlib.Path(RUN_DIR) / PROFILE / '01_data'\nd.mkdir(parents=True)\n"
              f"(d / 'dataset_stats.json').write_text(json.dumps({{'modalities': {decision!r}}}))")
    _notebook(root / "notebooks" / "02_title_classifier.ipynb", _log("title"))
    _notebook(root / "notebooks" / "05_fusion.ipynb", "raise RuntimeError('must not run')")
    _notebook(root / "notebooks" / "06_error_analysis.ipynb", _log("errors"))
    nb = nbformat.read(root / "notebooks" / "06_error_analysis.ipynb", as_version=4)
    fused = nbformat.v4.new_code_cell("raise RuntimeError('reads the fused model')")
    fused.metadata["tags"] = ["needs-fusion"]
    nb.cells.insert(2, fused)
    nb.cells.append(nbformat.v4.new_code_cell(_log("saved")))
    nbformat.write(nb, root / "notebooks" / "06_error_analysis.ipynb")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/results\nchapters:\n" + "".join(
        f"- file: notebooks/{p.stem}\n" for p in sorted((root / "notebooks").glob("*.ipynb"))))

    lines: list[str] = []
    res = run("smoke", root=root, run_dir=runs, book=False, say=lines.append)
    assert [n["status"] for n in res.notebooks] == ["executed", "executed", "absent", "executed"]
    assert (runs / "log.txt").read_text() == "title smoke\nerrors smoke\nsaved smoke\n"  # the tagged cell left out
    assert any("05_fusion: not run, notebook 01 kept only the title, so there is nothing to fuse" in ln for ln in lines)
    page = nbformat.read(runs / "smoke" / "notebooks" / "05_fusion.ipynb", as_version=4)
    assert "Not run: one modality, nothing to fuse" in page.cells[0].source
    executed = nbformat.read(runs / "smoke" / "notebooks" / "06_error_analysis.ipynb", as_version=4)
    assert not any("needs-fusion" in c.metadata.get("tags", []) for c in executed.cells)
    assert any("One modality: no fused model" in c.source for c in executed.cells if c.cell_type == "markdown")
    assert "| `05_fusion` | not run (one modality, nothing to fuse) |" in _run_times(root, get_profile("smoke"), runs)
    stage = stage_book(root, get_profile("smoke"), runs, tmp_path / "_build")
    assert (stage / "book" / "results.md").read_text().startswith("# Results: one modality, nothing to fuse")
