"""The setup cell of every notebook (first cell, tagged ``remove-cell``): detect Colab, report the GPU and export a
default profile so that the parameters cell's ``PROFILE = None`` resolves to it. Cheap: never imports TensorFlow,
JAX or PyTorch. Explained in the book's chapter *Reproduce it yourself* (section *Running on Colab*)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from prodlib.accelerate import accelerators
from prodlib.artifacts import repo_root, run_root
from prodlib.config import PROFILES, ProfileError

__all__ = ["SetupInfo", "choose_profile", "detect_gpus", "missing_stages", "on_colab", "repository_url",
           "run_missing_stages", "setup_notebook"]
GPU_HINT = "On Colab: Runtime > Change runtime type > Hardware accelerator: GPU (T4 is enough), then rerun."


@dataclass(frozen=True)
class SetupInfo:
    """What :func:`setup_notebook` found: Colab, GPU names, the default profile and why, ``$KERAS_BACKEND``, hints."""

    on_colab: bool
    gpus: tuple[str, ...]
    profile: str
    profile_reason: str
    keras_backend: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_gpu(self) -> bool:
        """At least one GPU is visible."""
        return bool(self.gpus)

    def summary(self) -> str:
        """The lines :func:`setup_notebook` prints."""
        return "\n".join([f"prodlib setup: {'Google Colab' if self.on_colab else 'local Python'}, "
                          f"Python {sys.version.split()[0]}",
                          f"  GPU: {', '.join(self.gpus) if self.gpus else 'none (CPU only)'}",
                          f"  Keras backend: {self.keras_backend}",
                          f"  profile: {self.profile} ({self.profile_reason})",
                          *(f"  note: {note}" for note in self.notes)])


def repository_url() -> str:
    """The study's repository, set once in ``_config.yml`` (``repository.url``); where pip installed prodlib from
    when there is no clone (Colab: the setup cell's install line); ``""`` when neither says."""
    if (config := repo_root() / "_config.yml").is_file():
        return str(((yaml.safe_load(config.read_text()) or {}).get("repository") or {}).get("url") or "")
    with contextlib.suppress(Exception):  # pip's record of a git install (PEP 610)
        return str(json.loads(importlib.metadata.distribution("prodlib").read_text("direct_url.json") or "")["url"])
    return ""


def on_colab(modules: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True inside Google Colab: ``google.colab`` is imported or ``$COLAB_RELEASE_TAG`` is set."""
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    return "google.colab" in modules or bool(environ.get("COLAB_RELEASE_TAG"))


def detect_gpus(*, nvidia_smi: str = "nvidia-smi", timeout: float = 5.0, modules: Mapping[str, object] | None = None,
                run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> tuple[str, ...]:
    """Names of the visible NVIDIA GPUs, e.g. ``("Tesla T4 (15360 MiB)",)``, from ``nvidia-smi``, else from
    TensorFlow, JAX or PyTorch **only if already imported**; empty when there is none. Never raises."""
    if exe := shutil.which(nvidia_smi):
        try:
            done = run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0:
            rows = [[p.strip() for p in line.split(",")] for line in done.stdout.splitlines()]
            if names := tuple(f"{r[0]} ({r[1]})" if len(r) > 1 and r[1] else r[0] for r in rows if r[0]):
                return names
    return tuple(getattr(d, "name", str(d)) for d in accelerators(sys.modules if modules is None else modules))


def choose_profile(*, colab: bool, has_gpu: bool, environ: Mapping[str, str] | None = None,
                   profile_env: str = "PRODLIB_PROFILE") -> tuple[str, str]:
    """``(name, reason)`` of the default profile: ``$PRODLIB_PROFILE`` (``profile_env``) if set, else ``sample`` if
    ``$PRODLIB_CATALOG`` is set (not on a CPU-only Colab), else ``smoke``; never ``full`` (hours on a GPU)."""
    environ = os.environ if environ is None else environ
    if chosen := environ.get(profile_env, "").strip():
        if chosen not in PROFILES:
            raise ProfileError(f"${profile_env}={chosen!r} is not a profile; choose one of {', '.join(PROFILES)}")
        return chosen, f"set by ${profile_env}"
    if environ.get("PRODLIB_CATALOG", "").strip():
        if has_gpu or not colab:
            return "sample", "chosen automatically: $PRODLIB_CATALOG names a real catalog"
        return "smoke", ("chosen automatically: $PRODLIB_CATALOG is set but this Colab runtime has no GPU; "
                         "turn one on for the sample profile")
    return "smoke", "chosen automatically: no real catalog configured ($PRODLIB_CATALOG unset)"


def missing_stages(notebook: str, profile: str, run_dir: str | os.PathLike[str] | None = None,
                   root: Path | None = None) -> list[str]:
    """The notebooks before ``notebook`` in the TOC of ``root`` whose stage has no finished run of ``profile`` in
    ``run_dir`` (no ``<NN>_*/manifest.json``): what a chapter opened alone needs first."""
    from prodlib.pipeline import toc_notebooks
    runs = run_root(run_dir) / profile
    return [rel.stem for rel in toc_notebooks(root or repo_root())
            if rel.stem[:2] < notebook[:2] and not any(runs.glob(f"{rel.stem[:2]}_*/manifest.json"))]


def run_missing_stages(notebook: str, profile: str, *, environ: Mapping[str, str] | None = None,
                       say: Callable[[str], None] = print) -> list[str]:
    """Run, through the runner, the earlier notebooks that ``notebook`` needs and that the run folder
    (``$PRODLIB_RUN_DIR``, e.g. on Google Drive, else ``./runs``) lacks; returns them. Without a clone (Colab after
    ``pip install``), the repository of :func:`repository_url` is cloned into ``./prodlib-repo`` first, for its
    notebooks."""
    environ = os.environ if environ is None else environ
    runs = run_root(environ.get("PRODLIB_RUN_DIR") or None).resolve()
    if not ((root := repo_root()) / "_toc.yml").is_file() and not (root := Path.cwd() / "prodlib-repo").is_dir():
        say(f"prodlib setup: cloning {repository_url()} into {root} for the notebooks of the earlier stages")
        subprocess.run(["git", "clone", "-q", "--depth", "1", repository_url(), str(root)], check=True)
    if not (missing := missing_stages(notebook, profile, runs, root)):
        return []
    say(f"prodlib setup: {notebook} reads what {', '.join(missing)} wrote for profile {profile!r}, and {runs} has "
        "no finished run of them (a fresh runtime): running them first, through the runner.")
    cmd = [sys.executable, "-m", "prodlib", "run", "--profile", profile, "--no-book", "--run-dir", str(runs)]
    cmd += [arg for stem in missing for arg in ("--only", stem[:2])]
    env = {**environ, "PRODLIB_PREPARING": "1"}  # the notebooks it runs do not prepare again
    with subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout or []:  # the runner's progress, line by line, into the notebook
            say(line.rstrip())
    if proc.returncode:
        raise RuntimeError(f"running {', '.join(missing)} failed (exit {proc.returncode}); see the lines above")
    return missing


def setup_notebook(notebook: str | None = None, *, profile_env: str = "PRODLIB_PROFILE",
                   environ: MutableMapping[str, str] | None = None, modules: Mapping[str, object] | None = None,
                   nvidia_smi: str = "nvidia-smi", quiet: bool = False) -> SetupInfo:
    """Detect Colab and the GPU, export the default profile as ``os.environ[profile_env]`` (an explicit ``PROFILE``
    parameter still wins) and print a short report; ``environ``, ``modules`` and ``nvidia_smi`` exist for tests.
    On Colab, the earlier stages ``notebook`` needs are run first when missing (:func:`run_missing_stages`)."""
    environ = os.environ if environ is None else environ
    colab = on_colab(modules, environ)
    gpus = detect_gpus(nvidia_smi=nvidia_smi, modules=modules)
    profile, reason = choose_profile(colab=colab, has_gpu=bool(gpus), environ=environ, profile_env=profile_env)
    environ[profile_env] = profile
    notes: list[str] = []
    if colab and not gpus:
        notes.append("no GPU in this runtime. " + GPU_HINT)
    if profile == "smoke":
        notes.append("smoke runs the synthetic demo catalog: its numbers illustrate the method, they are not "
                     "the paper's. For real data set PRODLIB_CATALOG=format:path and PRODLIB_PROFILE=sample.")
    if profile == "full" and not gpus:
        notes.append("the full profile trains ResNet-50 on ~119k images: expect days on a CPU; use a GPU.")
    if colab:
        notes.append(f"outputs go to {run_root(environ.get('PRODLIB_RUN_DIR') or None)}/{profile}/, lost when the "
                     "runtime is recycled unless PRODLIB_RUN_DIR points at Google Drive; earlier stages this notebook "
                     "needs are run first when missing.")
    info = SetupInfo(on_colab=colab, gpus=gpus, profile=profile, profile_reason=reason,
                     keras_backend=environ.get("KERAS_BACKEND") or "tensorflow", notes=tuple(notes))
    if not quiet:
        print(info.summary())
    if colab and notebook and not environ.get("PRODLIB_PREPARING"):
        run_missing_stages(notebook, profile, environ=environ, say=print)
    return info
