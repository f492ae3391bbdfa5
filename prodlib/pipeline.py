"""The runner of ``python -m prodlib run`` (``make book``): the notebooks of ``_toc.yml`` in order with papermill,
unchanged ones skipped, then the book by :mod:`prodlib.publish`. Chapter *Reproduce it yourself*."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from prodlib.artifacts import CLASSIFIER_STAGES, repo_root, run_root
from prodlib.catalog.generic import mapping_beside
from prodlib.config import Profile, ProfileError, get_profile, validate_profile

__all__ = ["NotebookFailed", "PipelineError", "RunResult", "file_fingerprints", "input_key", "run", "run_name",
           "toc_notebooks"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_say = partial(print, flush=True)


class PipelineError(RuntimeError):
    """The pipeline could not run (a missing notebook, a bad TOC, a failed book build)."""


class NotebookFailed(PipelineError):
    """A notebook raised; the message names the notebook, the cell and the error."""

    def __init__(self, notebook: Path, cell: int | None, ename: str, evalue: str, output: Path) -> None:
        self.notebook, self.cell, self.ename, self.evalue, self.output = notebook, cell, ename, evalue, output
        where = f"cell {cell} of the source notebook" if cell is not None else "a cell"
        super().__init__(f"{notebook} failed in {where}: {ename}: {evalue}\n"
                         f"  the executed notebook with the traceback is {output}\n"
                         f"  the kernel's own log is {output.with_suffix('.kernel.log')}")


def _walk_toc(node: Any) -> Iterable[str]:
    if isinstance(node, list):
        for child in node:
            yield from _walk_toc(child)
    elif isinstance(node, Mapping):
        yield from (str(node[key]) for key in ("root", "file") if key in node)
        for key in ("parts", "chapters", "sections"):
            yield from _walk_toc(node.get(key) or [])


def toc_notebooks(root: Path) -> list[Path]:
    """The notebooks listed in ``root/_toc.yml``, in book order (paths relative to ``root``)."""
    import yaml
    if not (toc_path := root / "_toc.yml").exists():
        raise PipelineError(f"{toc_path} not found; run from the repository root")
    out: list[Path] = []
    for entry in _walk_toc(yaml.safe_load(toc_path.read_text())):
        if (rel := Path(entry)).parts and rel.parts[0] == "notebooks":
            path = rel if rel.suffix == ".ipynb" else rel.with_suffix(".ipynb")
            if not (root / path).exists():
                raise PipelineError(f"_toc.yml lists {entry} but {root / path} does not exist")
            out.append(path)
    return out


_FULL_HASH = 64 << 20  # larger files are fingerprinted by their first and last MiB (with size and mtime)


def file_fingerprints(specs: Iterable[str | None]) -> dict[str, Any]:
    """Size, modification time and a content hash of each file a catalog spec names (``[format:]path``); for a
    folder, its top-level files so, and the names, sizes and times of the files below (a Flipkart folder's images)."""
    def one(path: Path, content: bool) -> list[Any]:
        st = path.stat()
        if not content:
            return [st.st_size, st.st_mtime_ns]
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            h.update(fh.read() if st.st_size <= _FULL_HASH else fh.read(1 << 20))
            if st.st_size > _FULL_HASH:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
        return [st.st_size, st.st_mtime_ns, h.hexdigest()]

    out: dict[str, Any] = {}
    for spec in filter(None, specs):
        file, _, mapping = spec.partition("?mapping=")
        for cand in (file, file.split(":", 1)[-1]):
            if (path := Path(cand).expanduser()).is_file():
                out[spec] = one(path, True)
                given = path.parent / mapping if (path.parent / mapping).is_file() else Path(mapping).expanduser()
                if (m := given if mapping else mapping_beside(path)) and m.is_file():  # a generic catalog's mapping
                    out[f"{spec} mapping"] = one(m, True)
            elif path.is_dir():
                out[spec] = {str(f.relative_to(path)): one(f, f.parent == path)
                             for f in sorted(path.rglob("*")) if f.is_file()}
            else:
                continue
            break
    return out


def input_key(notebook: Path, params: Mapping[str, Any], previous: str, env: Mapping[str, str],
              files: Mapping[str, Any] | None = None) -> str:
    """What a notebook's result depends on: its source, the parameters, prodlib's code, the catalog and
    weights named in the environment, the catalog files' :func:`file_fingerprints` and the previous notebook's
    key (so upstream reruns propagate)."""
    code = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        code.update(str(path.name).encode())
        code.update(path.read_bytes())
    names = ("PRODLIB_CATALOG", "PRODLIB_AMAZON2014", "KERAS_BACKEND", "PRODLIB_GLOVE", "PRODLIB_WORD2VEC",
             "PRODLIB_IMAGE_WEIGHTS", "PRODLIB_PARTIAL_INPUT")
    payload = {"notebook": hashlib.sha256(notebook.read_bytes()).hexdigest(), "params": params,
               "code": code.hexdigest(), "env": {k: env.get(k) for k in names}, "previous": previous,
               "files": dict(files or {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class RunResult:
    """What :func:`run` did: per notebook ``executed``/``skipped``/``absent`` (the classifier of a modality that
    notebook 01 left out, replaced by a short page) and seconds, and the book's path."""

    profile: str
    notebooks: list[dict[str, Any]] = field(default_factory=list)
    book: Path | None = None
    seconds: float = 0.0


def _execute(nb: Path, out: Path, params: dict[str, Any], cwd: Path, progress: bool) -> None:
    """Run ``nb`` into ``out``; the kernel's stderr (C++ and TensorFlow logs) goes to ``out``'s kernel log."""
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    (log := out.with_suffix(".kernel.log")).unlink(missing_ok=True)
    bar: bool | dict[str, Any] = (
        {"file": sys.stdout, "desc": f"  {nb.stem}", "mininterval": 1.0, "leave": False} if progress else False)
    backend = os.environ.pop("MPLBACKEND", None)  # kernels must use their inline backend, or figures vanish
    sys.stderr.flush()
    saved = os.dup(2)  # file descriptor 2 is inherited by the kernel
    with open(log, "ab") as fh:
        os.dup2(fh.fileno(), 2)
    try:
        pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(cwd), kernel_name="python3",
                            progress_bar=bar, log_output=False, request_save_on_cell_execute=True)
    except PapermillExecutionError as exc:  # name the cell as numbered in the source (no injected cell)
        cell = next((n for n, c in enumerate(nbformat.read(nb, as_version=4).cells, 1)
                     if c.cell_type == "code" and c.source.strip() == str(exc.source).strip()), None)
        raise NotebookFailed(nb, cell, exc.ename, _ANSI.sub("", str(exc.evalue)), out) from None
    except Exception as exc:  # kernel death, missing kernel, bad parameters...
        raise NotebookFailed(nb, None, type(exc).__name__, _ANSI.sub("", str(exc)), out) from None
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if backend is not None:
            os.environ["MPLBACKEND"] = backend


def run_name(overrides: Mapping[str, Any], name: str | None = None) -> str | None:
    """The folder of an experiment under ``runs/experiments``: ``name`` (checked), else one made from the
    overrides (``text_epochs=2``); ``None`` for the default run. Chapter *Reproduce it yourself*."""
    if name is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,79}", name):
            raise ProfileError(f"--run-name {name!r}: use up to 80 letters, digits and . _ = + - "
                               "(starting with a letter or digit)")
        return name
    if not overrides:
        return None
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "-", "+".join(f"{k}={v}" for k, v in sorted(overrides.items())))
    digest = hashlib.sha256(json.dumps(dict(overrides), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return slug if len(slug) <= 60 else f"{slug[:50]}-{digest}"


def _modalities(stats: Path) -> str:
    """The runner's line on notebook 01's decision of which modalities the study uses."""
    try:
        decided = json.loads(stats.read_text())["modalities"]
        return "  modalities: " + "; ".join(f"{m} {'used' if m in decided['present'] else 'LEFT OUT'} ({why})"
                                          for m, why in decided["why"].items())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"  modalities: not recorded ({type(exc).__name__}: {exc})"


FUSION_NOTEBOOKS = ("05", "07")  # they combine modalities: with one there is nothing to run
FUSION_TAG = "needs-fusion"  # cells of a notebook that read the fused model (dropped with one modality)


def _decided(stats: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(stats.read_text())["modalities"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no decision recorded: the notebook runs (and start_stage says what is wrong)


def _absent(stem: str, stats: Path) -> tuple[str, str] | None:
    """``(what, why)`` when notebook ``stem`` cannot run on this catalog: the classifier of a modality that notebook
    01 left out (``what`` is the modality), or a fusion notebook when it kept one modality (``what`` is
    ``fusion``)."""
    modality = next((m for m, stage in CLASSIFIER_STAGES.items() if stem.startswith(stage)), None)
    if (decided := _decided(stats)) is None or not (modality or stem.startswith(FUSION_NOTEBOOKS)):
        return None
    if modality:
        return None if modality in decided.get("present", [modality]) else (
            modality, str(decided.get("why", {}).get(modality, "no reason recorded")))
    if len(present := decided.get("present", CLASSIFIER_STAGES)) >= 2:
        return None
    return "fusion", f"notebook 01 kept only the {present[0]}, so there is nothing to fuse"


def _absent_page(source: Path, out: Path, what: str, why: str) -> None:
    """The short page the book shows instead of a notebook that cannot run on this catalog (see :func:`_absent`):
    the chapter's title and why it did not run (no network trained, no F1)."""
    import nbformat
    nb = nbformat.read(source, as_version=4)
    title = next((line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                  if line.startswith("# ")), f"# {source.stem}")
    if what == "fusion":
        head, text = "Not run: one modality, nothing to fuse", (
            f"This chapter combines the modalities of a product, and {why}. The single classifier's own chapter "
            "reports its F1 and the classes it misses most; chapter 6 analyses its errors. To fuse, use a catalog "
            "with a second modality (titles with descriptions or images), or lower `min_modality_share`.")
    else:
        head, text = f"Not run: no {what} in this catalog", (
            f"Notebook 01 left the {what} out of this study: {why}. A {what} classifier without its input would "
            "only learn the class priors, so this chapter was not run: no network was trained and no F1 is "
            f"reported. To include the {what}, set the profile's `modalities` or `min_modality_share` (e.g. "
            "`--set modalities=...`), or use a catalog that carries it.")
    page = nbformat.v4.new_notebook(metadata=nb.metadata)
    page.cells = [nbformat.v4.new_markdown_cell(
        f"{title}\n\n```{{admonition}} {head}\n:class: warning\n\n{text}\n```\n")]
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(page, out)


def _without_fusion(source: Path, dest: Path, why: str) -> Path:
    """A copy of ``source`` without its cells tagged :data:`FUSION_TAG` (they read the fused model, and one
    modality has none), with a note where they were; ``source`` itself when it has none."""
    import nbformat
    nb = nbformat.read(source, as_version=4)
    if not any(FUSION_TAG in c.metadata.get("tags", []) for c in nb.cells):
        return source
    note = nbformat.v4.new_markdown_cell("```{admonition} One modality: no fused model\n:class: warning\n\n"
                                         f"The sections on the fused model are not run: {why}.\n```\n")
    cells = [c for c in nb.cells if FUSION_TAG not in c.metadata.get("tags", [])]
    first = next(n for n, c in enumerate(nb.cells) if FUSION_TAG in c.metadata.get("tags", []))
    nb.cells = cells[:first] + [note] + cells[first:]
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def run(profile: str | Profile, *, root: Path | None = None, run_dir: Path | None = None,
        build_root: Path | None = None, force: bool = False, overrides: Mapping[str, Any] | None = None,
        book: bool = True, only: Iterable[str] = (), progress: bool | None = None, name: str | None = None,
        say: Callable[[str], None] = _say) -> RunResult:
    """Execute the TOC's notebooks for ``profile`` into ``run_dir/<profile>/notebooks``, then build the book
    into ``build_root/_build/html`` (default: the repository root). With ``overrides`` or a ``name`` the run
    lives in ``run_dir/experiments/<name>/<profile>`` (:func:`run_name`), never in the default run's folder. A
    notebook is skipped when its :func:`input_key` and executed copy are those of its last success (``force``
    reruns everything)."""
    overrides = dict(overrides or {})
    prof = validate_profile(get_profile(profile, **overrides))  # name, fields and ranges, before anything runs
    experiment = run_name(overrides, name)
    root, runs = (root or repo_root()).resolve(), run_root(run_dir).resolve()
    runs = runs / "experiments" / experiment if experiment else runs
    out_dir, state_dir = runs / prof.name / "notebooks", runs / prof.name / ".pipeline"
    state_dir.mkdir(parents=True, exist_ok=True)
    if not (notebooks := toc_notebooks(root)):
        raise PipelineError("_toc.yml lists no notebooks")
    only, total = set(only), len(notebooks)
    if only and not any(rel.stem.startswith(o) for rel in notebooks for o in only):
        raise PipelineError(f"--only {', '.join(sorted(only))} matches no notebook of _toc.yml "
                            f"({', '.join(rel.stem for rel in notebooks)})")
    progress = sys.stdout.isatty() if progress is None else progress
    params = {"PROFILE": prof.name, "RUN_DIR": str(runs), "OVERRIDES": overrides}
    result, t_all, previous = RunResult(profile=prof.name), time.perf_counter(), ""
    files = file_fingerprints([os.environ.get("PRODLIB_CATALOG"), os.environ.get("PRODLIB_AMAZON2014"), prof.catalog])
    last = max(n for n, rel in enumerate(notebooks, 1) if not only or any(rel.stem.startswith(o) for o in only))
    say(f"prodlib: profile {prof.name!r} — {total} notebooks → {out_dir}")
    for n, rel in enumerate(notebooks, 1):
        nb, out, state = root / rel, out_dir / rel.name, state_dir / f"{rel.stem}.json"
        key = previous = input_key(nb, params, previous, os.environ, files)
        selected = not only or any(rel.stem.startswith(o) for o in only)
        try:  # a state file that cannot be read means "not finished"
            finished = json.loads(state.read_text()).get("key") if state.exists() and out.exists() else None
        except (OSError, ValueError, AttributeError):
            finished = None
        done, needed = finished == key, not selected and finished is None and n < last  # upstream of a selected one
        if (done and not force) or (not selected and not needed):
            left_out = _absent(rel.stem, runs / prof.name / "01_data" / "dataset_stats.json") if done else None
            say(f"[{n}/{total}] {rel.stem}: skipped ({'unchanged' if done else 'not selected'}"
                f"{f'; not run: {left_out[1]}' if left_out and left_out[0] == 'fusion' else ''}"
                f"{f'; not run, the {left_out[0]} is left out' if left_out and left_out[0] != 'fusion' else ''})")
            result.notebooks.append({"notebook": rel.stem, "status": "skipped", "seconds": 0.0})
            continue
        state.unlink(missing_ok=True)
        if absent := _absent(rel.stem, runs / prof.name / "01_data" / "dataset_stats.json"):
            _absent_page(nb, out, *absent)  # the book shows why, instead of an F1 of a network without input
            state.write_text(json.dumps({"key": key, "seconds": 0.0, "absent": absent[0], "why": absent[1],
                                         "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
            say(f"[{n}/{total}] {rel.stem}: not run, " + (f"{absent[1]}" if absent[0] == "fusion" else
                f"the {absent[0]} is left out ({absent[1]})") + "; the book shows a short page saying why")
            result.notebooks.append({"notebook": rel.stem, "status": "absent", "seconds": 0.0})
            continue
        say(f"[{n}/{total}] {rel.stem}: running{' (a later notebook needs it, no result yet)' if needed else ''} …")
        t0 = time.perf_counter()
        decided = _decided(runs / prof.name / "01_data" / "dataset_stats.json") or {}
        if len(present := decided.get("present", CLASSIFIER_STAGES)) < 2:
            nb = _without_fusion(nb, state_dir / rel.name, f"notebook 01 kept only the {present[0]}")
        _execute(nb, out, params, root, progress)
        seconds = time.perf_counter() - t0
        state.write_text(json.dumps({"key": key, "seconds": round(seconds, 2),
                                     "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        say(f"[{n}/{total}] {rel.stem}: done in {seconds:.1f} s")
        if rel.stem.startswith("01"):
            say(_modalities(runs / prof.name / "01_data" / "dataset_stats.json"))
        result.notebooks.append({"notebook": rel.stem, "status": "executed", "seconds": round(seconds, 2)})
    if book:
        from prodlib.publish import build_book, stage_book
        build_root = (build_root or root).resolve()
        stage = stage_book(root, prof, runs, build_root / "_build")
        t0 = time.perf_counter()
        say(f"building the book from {stage} …")
        result.book = build_book(stage, build_root)
        say(f"book built in {time.perf_counter() - t0:.1f} s: {result.book / 'index.html'}")
    result.seconds = time.perf_counter() - t_all
    say(f"prodlib: finished in {result.seconds:.1f} s")
    return result
