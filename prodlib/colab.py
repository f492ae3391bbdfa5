"""The setup cell of every notebook: detect Colab, report the GPU, pick a default profile.

The first cell of each notebook (tagged ``remove-cell``, so the book does not show it) is::

    import sys
    if "google.colab" in sys.modules:
        %pip install -q "prodlib @ git+https://github.com/prodlib-study/prodlib"
    from prodlib.colab import setup_notebook
    setup_notebook()

:func:`setup_notebook` is cheap (well under a second): it never imports TensorFlow, JAX or PyTorch; it
asks ``nvidia-smi`` for the GPUs, and asks a deep-learning library only if one is already imported.
When ``$PRODLIB_PROFILE`` is unset it chooses a default profile for the hardware and data at hand (see
:func:`choose_profile`) and exports it, so that the parameters cell's ``PROFILE = None`` resolves to it.
Explained in the book's chapter *Reproduce it yourself* (section *Running on Colab*).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from prodlib.config import PROFILES, ProfileError

__all__ = [
    "REPOSITORY_URL",
    "SetupInfo",
    "choose_profile",
    "detect_gpus",
    "on_colab",
    "setup_notebook",
]

REPOSITORY_URL = "https://github.com/prodlib-study/prodlib"
"""The study's repository; Colab installs ``prodlib`` from it."""

GPU_HINT = "On Colab: Runtime > Change runtime type > Hardware accelerator: GPU (T4 is enough), then rerun."


@dataclass(frozen=True)
class SetupInfo:
    """What :func:`setup_notebook` found and decided."""

    on_colab: bool
    """Running inside Google Colab."""
    gpus: tuple[str, ...]
    """Names of the visible NVIDIA GPUs (empty without one)."""
    profile: str
    """The profile a notebook runs when its parameters cell leaves ``PROFILE = None``."""
    profile_reason: str
    """Why that profile was chosen (set by the user, or chosen for the hardware and data)."""
    keras_backend: str
    """``$KERAS_BACKEND`` (Keras 3's default, ``tensorflow``, when unset)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Hints printed for the reader (how to turn on a GPU, where the data must come from)."""

    @property
    def has_gpu(self) -> bool:
        """At least one GPU is visible."""
        return bool(self.gpus)

    def summary(self) -> str:
        """The lines :func:`setup_notebook` prints."""
        where = "Google Colab" if self.on_colab else "local Python"
        gpu = ", ".join(self.gpus) if self.gpus else "none (CPU only)"
        lines = [
            f"prodlib setup: {where}, Python {sys.version.split()[0]}",
            f"  GPU: {gpu}",
            f"  Keras backend: {self.keras_backend}",
            f"  profile: {self.profile} ({self.profile_reason})",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def on_colab(modules: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True inside Google Colab: ``google.colab`` is imported or ``$COLAB_RELEASE_TAG`` is set."""
    modules = sys.modules if modules is None else modules
    environ = os.environ if environ is None else environ
    return "google.colab" in modules or bool(environ.get("COLAB_RELEASE_TAG"))


def detect_gpus(*, nvidia_smi: str = "nvidia-smi", timeout: float = 5.0,
                modules: Mapping[str, object] | None = None,
                run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> tuple[str, ...]:
    """Names of the visible NVIDIA GPUs, e.g. ``("Tesla T4 (15360 MiB)",)``; empty when there is none.

    Asks ``nvidia-smi`` (found on ``$PATH`` or given as a path); when it is absent or fails, asks
    TensorFlow, JAX or PyTorch **only if already imported** (importing one would take seconds).
    Never raises: a probe that fails counts as "no GPU".
    """
    exe = shutil.which(nvidia_smi)
    if exe:
        try:
            done = run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0:
            names = []
            for line in done.stdout.splitlines():
                parts = [p.strip() for p in line.split(",")]
                if parts and parts[0]:
                    names.append(f"{parts[0]} ({parts[1]})" if len(parts) > 1 and parts[1] else parts[0])
            if names:
                return tuple(names)
    return _gpus_from_loaded_backend(sys.modules if modules is None else modules)


def _gpus_from_loaded_backend(modules: Mapping[str, object]) -> tuple[str, ...]:
    """GPUs seen by an already-imported deep-learning library (never imports one)."""
    try:
        if "tensorflow" in modules:
            tf = modules["tensorflow"]
            return tuple(d.name for d in tf.config.list_physical_devices("GPU"))  # type: ignore[attr-defined]
        if "jax" in modules:
            jax = modules["jax"]
            return tuple(str(d) for d in jax.devices() if d.platform == "gpu")  # type: ignore[attr-defined]
        if "torch" in modules:
            torch = modules["torch"]
            cuda = torch.cuda  # type: ignore[attr-defined]
            return tuple(cuda.get_device_name(i) for i in range(cuda.device_count())) if cuda.is_available() else ()
    except Exception:  # a probe must never break the setup cell
        return ()
    return ()


def choose_profile(*, colab: bool, has_gpu: bool, environ: Mapping[str, str] | None = None,
                   profile_env: str = "PRODLIB_PROFILE") -> tuple[str, str]:
    """The default profile and the reason, as ``(name, reason)``.

    1. ``$PRODLIB_PROFILE`` (or ``profile_env``) when set — it must name a profile;
    2. ``sample`` when a real catalog is configured (``$PRODLIB_CATALOG``) and the machine can train on it
       in reasonable time: a GPU, or any machine that is not a CPU-only Colab runtime;
    3. ``smoke`` otherwise (the embedded synthetic catalog: needs no data, minutes on a CPU).

    ``full`` is never chosen automatically: it downloads the 3 GB Amazon catalog and trains for hours on
    a GPU; ask for it explicitly (``PRODLIB_PROFILE=full``).
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get(profile_env, "").strip()
    if chosen:
        if chosen not in PROFILES:
            raise ProfileError(f"${profile_env}={chosen!r} is not a profile; choose one of {', '.join(PROFILES)}")
        return chosen, f"set by ${profile_env}"
    if environ.get("PRODLIB_CATALOG", "").strip():
        if has_gpu or not colab:
            return "sample", "chosen automatically: $PRODLIB_CATALOG names a real catalog"
        return "smoke", ("chosen automatically: $PRODLIB_CATALOG is set but this Colab runtime has no GPU; "
                         "turn one on for the sample profile")
    return "smoke", "chosen automatically: no real catalog configured ($PRODLIB_CATALOG unset)"


def setup_notebook(*, profile_env: str = "PRODLIB_PROFILE", environ: MutableMapping[str, str] | None = None,
                   modules: Mapping[str, object] | None = None, nvidia_smi: str = "nvidia-smi",
                   quiet: bool = False) -> SetupInfo:
    """Detect Colab and the GPU, choose and export the default profile, print a short report.

    Called by the first cell of every notebook. Sets ``os.environ[profile_env]`` when unset, so that the
    parameters cell's ``PROFILE = None`` resolves to the chosen profile; an explicit ``PROFILE`` in the
    parameters cell (or papermill's ``-p PROFILE …``) still wins. ``environ``, ``modules`` and
    ``nvidia_smi`` exist for tests. Explained in the *Reproduce it yourself* chapter.
    """
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
        run_dir = environ.get("PRODLIB_RUN_DIR") or str(Path.cwd() / "runs")
        notes.append(f"outputs go to {run_dir}/{profile}/ (lost when the runtime is recycled). Notebooks 02-06 "
                     "read what the earlier notebooks wrote: in a fresh runtime run them in order, "
                     f"or all at once: !git clone --depth 1 {REPOSITORY_URL} /content/prodlib-repo && "
                     f"cd /content/prodlib-repo && python -m prodlib run --profile {profile} --no-book "
                     f"--run-dir {run_dir}")
    info = SetupInfo(on_colab=colab, gpus=gpus, profile=profile, profile_reason=reason,
                     keras_backend=environ.get("KERAS_BACKEND") or "tensorflow", notes=tuple(notes))
    if not quiet:
        print(info.summary())
    return info
