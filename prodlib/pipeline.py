"""The pipeline runner: execute the notebooks of ``_toc.yml`` in order with papermill, skip those whose
inputs are unchanged, then stage the executed notebooks with the ``book/`` chapters and build the book
with execution off and warnings as errors.

``python -m prodlib run --profile smoke`` is what ``make book`` calls. Explained in the *Reproduce it
yourself* chapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prodlib.config import Profile, get_profile

__all__ = ["NotebookFailed", "PipelineError", "RunResult", "build_book", "input_key", "repo_root", "run",
           "stage_book", "strip_notebook", "toc_notebooks"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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


def repo_root() -> Path:
    """The repository root (the folder holding ``_toc.yml``)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "_toc.yml").exists():
        return here
    return Path.cwd()


def _walk_toc(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        if "file" in node:
            yield str(node["file"])
        for key in ("root",):
            if key in node:
                yield str(node[key])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                yield from _walk_toc(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk_toc(child)


def toc_notebooks(root: Path) -> list[Path]:
    """The notebooks listed in ``root/_toc.yml``, in book order (paths relative to ``root``)."""
    import yaml

    toc_path = root / "_toc.yml"
    if not toc_path.exists():
        raise PipelineError(f"{toc_path} not found; run from the repository root")
    toc = yaml.safe_load(toc_path.read_text())
    out: list[Path] = []
    for entry in _walk_toc(toc):
        rel = Path(entry)
        if rel.parts and rel.parts[0] == "notebooks":
            path = rel if rel.suffix == ".ipynb" else rel.with_suffix(".ipynb")
            if not (root / path).exists():
                raise PipelineError(f"_toc.yml lists {entry} but {root / path} does not exist")
            out.append(path)
    return out


def _tree_digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.name).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def input_key(notebook: Path, params: Mapping[str, Any], previous: str, env: Mapping[str, str]) -> str:
    """What a notebook's result depends on: its source, the parameters and profile, prodlib's code, the
    catalog named in the environment and the previous notebook's key (so upstream reruns propagate)."""
    code = _tree_digest(Path(__file__).resolve().parent.rglob("*.py"))
    payload = {
        "notebook": hashlib.sha256(notebook.read_bytes()).hexdigest(),
        "params": params,
        "code": code,
        "env": {k: env.get(k) for k in ("PRODLIB_CATALOG", "PRODLIB_AMAZON2014", "KERAS_BACKEND",
                                         "PRODLIB_GLOVE", "PRODLIB_WORD2VEC", "PRODLIB_RESNET_WEIGHTS")},
        "previous": previous,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class RunResult:
    """What :func:`run` did: per notebook ``executed``/``skipped`` and seconds, and the book's path."""

    profile: str
    notebooks: list[dict[str, Any]] = field(default_factory=list)
    book: Path | None = None
    seconds: float = 0.0


def _say(msg: str) -> None:
    print(msg, flush=True)


def _source_cell(nb: Path, source: str) -> int | None:
    """1-based number of the code cell holding ``source`` in the source notebook (papermill counts its
    injected cell too, which a reader of the source does not see)."""
    import nbformat

    cells = nbformat.read(nb, as_version=4).cells
    for n, cell in enumerate(cells, 1):
        if cell.cell_type == "code" and cell.source.strip() == str(source).strip():
            return n
    return None


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's file descriptor 2 (inherited by the kernel it starts) to ``path``: the kernel's
    C++ and TensorFlow log lines land in a log file instead of the console."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _execute(nb: Path, out: Path, params: dict[str, Any], cwd: Path, progress: bool) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log = out.with_suffix(".kernel.log")
    log.unlink(missing_ok=True)
    bar: bool | dict[str, Any] = (
        {"file": sys.stdout, "desc": f"  {nb.stem}", "mininterval": 1.0, "leave": False} if progress else False
    )
    backend = os.environ.pop("MPLBACKEND", None)  # kernels must use their inline backend, or figures vanish
    try:
        with _stderr_to(log):
            pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(cwd), kernel_name="python3",
                                progress_bar=bar, log_output=False, request_save_on_cell_execute=True)
    except PapermillExecutionError as exc:
        raise NotebookFailed(nb, _source_cell(nb, exc.source), exc.ename, _ANSI.sub("", str(exc.evalue)),
                             out) from None
    except Exception as exc:  # kernel death, missing kernel, bad parameters...
        raise NotebookFailed(nb, None, type(exc).__name__, _ANSI.sub("", str(exc)), out) from None
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend


def run(profile: str | Profile, *, root: Path | None = None, run_dir: Path | None = None,
        build_root: Path | None = None, force: bool = False, overrides: Mapping[str, Any] | None = None,
        book: bool = True, only: Iterable[str] = (), progress: bool | None = None,
        say: Callable[[str], None] = _say) -> RunResult:
    """Execute the TOC's notebooks for ``profile`` into ``run_dir/<profile>/notebooks`` and build the book
    into ``build_root/_build/html`` (``build_root`` defaults to the repository root).

    A notebook is skipped when its :func:`input_key` equals the one recorded by its last successful run and
    its executed copy exists (``force`` reruns everything). Stops at the first failure with
    :class:`NotebookFailed`.
    """
    overrides = dict(overrides or {})
    prof = get_profile(profile, **overrides)  # validates the name and overrides before anything runs
    root = (root or repo_root()).resolve()
    runs = Path(run_dir or os.environ.get("PRODLIB_RUN_DIR") or root / "runs").resolve()
    out_dir = runs / prof.name / "notebooks"
    state_dir = runs / prof.name / ".pipeline"
    state_dir.mkdir(parents=True, exist_ok=True)
    notebooks = toc_notebooks(root)
    if not notebooks:
        raise PipelineError("_toc.yml lists no notebooks")
    only = {o for o in only}
    progress = sys.stdout.isatty() if progress is None else progress
    params = {"PROFILE": prof.name, "RUN_DIR": str(runs), "OVERRIDES": overrides}
    result = RunResult(profile=prof.name)
    t_all = time.perf_counter()
    previous = ""
    say(f"prodlib: profile {prof.name!r} — {len(notebooks)} notebooks → {out_dir}")
    for n, rel in enumerate(notebooks, 1):
        nb = root / rel
        out = out_dir / rel.name
        state = state_dir / f"{rel.stem}.json"
        key = input_key(nb, params, previous, os.environ)
        previous = key
        selected = not only or any(rel.stem.startswith(o) or rel.stem == o for o in only)
        done = state.exists() and out.exists() and json.loads(state.read_text()).get("key") == key
        if (done and not force) or not selected:
            why = "unchanged" if done else "not selected"
            say(f"[{n}/{len(notebooks)}] {rel.stem}: skipped ({why})")
            result.notebooks.append({"notebook": rel.stem, "status": "skipped", "seconds": 0.0})
            continue
        say(f"[{n}/{len(notebooks)}] {rel.stem}: running …")
        state.unlink(missing_ok=True)
        t0 = time.perf_counter()
        _execute(nb, out, params, root, progress)
        seconds = time.perf_counter() - t0
        state.write_text(json.dumps({"key": key, "seconds": round(seconds, 2),
                                     "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        say(f"[{n}/{len(notebooks)}] {rel.stem}: done in {seconds:.1f} s")
        result.notebooks.append({"notebook": rel.stem, "status": "executed", "seconds": round(seconds, 2)})
    if book:
        build_root = (build_root or root).resolve()
        stage = stage_book(root, prof, runs, build_root / "_build")
        t0 = time.perf_counter()
        say(f"building the book from {stage} …")
        result.book = build_book(stage, build_root)
        say(f"book built in {time.perf_counter() - t0:.1f} s: {result.book / 'index.html'}")
    result.seconds = time.perf_counter() - t_all
    say(f"prodlib: finished in {result.seconds:.1f} s")
    return result


def _banner(prof: Profile, runs: Path) -> str:
    """The run banner of the intro and results pages, written from the run's own artifacts."""
    data = runs / prof.name / "01_data"
    manifest = json.loads((data / "manifest.json").read_text()) if (data / "manifest.json").exists() else {}
    stats = json.loads((data / "dataset_stats.json").read_text()) if (data / "dataset_stats.json").exists() else {}
    notes = manifest.get("notes", {})
    source = notes.get("catalog_source", prof.catalog)
    products = stats.get("labels", {}).get("after", {}).get("products", "?")
    classes = stats.get("labels", {}).get("after", {}).get("classes", "?")
    when = manifest.get("started", "?")
    commit = (manifest.get("git_commit") or "unknown")[:12]
    detail = (f"Profile **{prof.name}** ({prof.description}) — catalog `{source}`, {products} products, "
              f"{classes} classes; run started {when}, commit `{commit}`, data fingerprint "
              f"`{str(manifest.get('data_fingerprint', '?'))[:12]}`.")
    if prof.catalog == "demo":
        return ("```{admonition} Synthetic demo data\n:class: warning\n\n"
                "Every number and figure in this build comes from the **embedded synthetic demo catalog**, "
                "generated by `prodlib.demo`, not from real products. It shows that the pipeline runs end to "
                "end; it says nothing about how well the paper's methods work on Amazon. See "
                "{doc}`reproduce` to rebuild the book on real data.\n\n" + detail + "\n```\n")
    return "```{admonition} Which run produced these numbers\n:class: note\n\n" + detail + "\n```\n"


def _run_times(root: Path, prof: Profile, runs: Path) -> str:
    """A table of each notebook's wall time in the run that produced this build, read from the runner's
    records (``runs/<profile>/.pipeline``), so the *Reproduce* chapter quotes measured times, not typed ones."""
    rows, total = [], 0.0
    for rel in toc_notebooks(root):
        state = runs / prof.name / ".pipeline" / f"{rel.stem}.json"
        seconds = float(json.loads(state.read_text()).get("seconds", 0.0)) if state.exists() else float("nan")
        total += seconds
        rows.append(f"| `{rel.stem}` | {seconds:.1f} s |")
    return (f"Measured wall time of each notebook in the run behind this build (profile **{prof.name}**, "
            f"{os.cpu_count()} CPU cores, Keras backend `{os.environ.get('KERAS_BACKEND', 'tensorflow')}`):\n\n"
            "| notebook | wall time |\n|---|---|\n" + "\n".join(rows)
            + f"\n| **all notebooks** | **{total:.1f} s** |\n")


def _hide_injected(nb_path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell`` so the book does not show it."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        nbformat.write(nb, nb_path)


def stage_book(root: Path, prof: Profile, runs: Path, build_dir: Path) -> Path:
    """Copy ``_config.yml``, ``_toc.yml``, ``book/`` and the executed notebooks into
    ``build_dir/stage/<profile>`` (the repository's layout), plus the generated run banner."""
    stage = build_dir / "stage" / prof.name
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "notebooks").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage / name)
    shutil.copytree(root / "book", stage / "book", ignore=shutil.ignore_patterns("_generated", "__pycache__"))
    for rel in toc_notebooks(root):
        executed = runs / prof.name / "notebooks" / rel.name
        if not executed.exists():
            raise PipelineError(f"{executed} is missing: run the pipeline before building the book")
        shutil.copy2(executed, stage / rel)
        _hide_injected(stage / rel)
    generated = stage / "book" / "_generated"
    generated.mkdir(parents=True, exist_ok=True)
    (generated / "run_banner.md").write_text(_banner(prof, runs))
    (generated / "run_times.md").write_text(_run_times(root, prof, runs))
    return stage


def build_book(stage: Path, path_output: Path) -> Path:
    """Build the staged book with jupyter-book (warnings are errors, nitpicky); returns the HTML folder."""
    shutil.rmtree(path_output / "_build" / ".doctrees", ignore_errors=True)  # a fresh environment: no stale labels
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(stage), "--path-output",
           str(path_output), "--warningiserror", "--nitpick", "--keep-going", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = _ANSI.sub("", proc.stdout + proc.stderr).strip().splitlines()
        problems = [ln for ln in lines if "WARNING" in ln or "ERROR" in ln or "Error" in ln]
        shown = "\n".join(problems[:40] or lines[-40:])
        more = f"\n… and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise PipelineError(f"the book build failed (exit {proc.returncode}; warnings are errors):\n{shown}{more}")
    html = path_output / "_build" / "html"
    if not (html / "index.html").exists():
        raise PipelineError(f"the book build left no {html / 'index.html'}")
    return html


def strip_notebook(path: Path) -> bool:
    """Remove outputs and execution counts from a source notebook; returns whether it changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.outputs or cell.execution_count is not None:
                changed = True
            cell.outputs, cell.execution_count = [], None
        for key in ("execution", "papermill"):
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
    if "papermill" in nb.metadata:
        del nb.metadata["papermill"]
        changed = True
    if changed:
        nbformat.write(nb, path)
    return changed
