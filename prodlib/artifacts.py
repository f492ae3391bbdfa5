"""The run-folder contract: what each notebook writes into ``runs/<profile>/<stage>/`` and how the next
one reads it back.

Every stage folder holds ``manifest.json`` (profile, data fingerprint, seed, package versions, git
commit, device, wall time, notes such as which pretrained weights were really used), ``metrics.json``
and outputs keyed by product id (``predictions_<split>.npz``). Readers refuse to mix stages of different
profiles or data fingerprints. Explained in notebook 01 (*Data exploration*) and the *Reproduce* chapter.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from prodlib.config import Profile

__all__ = [
    "ArtifactError",
    "ArtifactMismatch",
    "Predictions",
    "StageArtifacts",
    "StageOutput",
    "check_same_run",
    "load_stage",
    "run_root",
    "stage_path",
]

_VERSIONED = ("numpy", "pandas", "scikit-learn", "keras", "tensorflow", "tensorflow-cpu", "jax",
              "torch", "gensim", "pillow", "papermill")


class ArtifactError(RuntimeError):
    """A stage folder is missing or unreadable."""


class ArtifactMismatch(ArtifactError):
    """Artifacts from different profiles or data fingerprints were about to be mixed."""


def run_root(run_dir: str | os.PathLike[str] | None = None) -> Path:
    """The root of all runs: ``run_dir``, else ``$PRODLIB_RUN_DIR``, else ``./runs``."""
    return Path(run_dir or os.environ.get("PRODLIB_RUN_DIR") or "runs")


def stage_path(profile: str | Profile, stage: str, run_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<run_root>/<profile>/<stage>``."""
    name = profile.name if isinstance(profile, Profile) else profile
    return run_root(run_dir) / name / stage


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n")
    os.replace(tmp, path)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a run's numbers (absent ones are left out)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    """The repository's HEAD commit (with ``-dirty`` when there are local changes), or ``None``."""
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_info() -> dict[str, Any]:
    """Keras backend and the accelerators it sees (``[]`` on a CPU-only machine)."""
    info: dict[str, Any] = {"keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
                            "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import keras

        info["keras_backend"] = keras.backend.backend()
        backend = info["keras_backend"]
        if backend == "jax":
            import jax

            info["devices"] = [str(d) for d in jax.devices() if d.platform != "cpu"]
        elif backend == "tensorflow":
            import tensorflow as tf

            info["devices"] = [d.name for d in tf.config.list_physical_devices("GPU")]
        elif backend == "torch":
            import torch

            info["devices"] = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                               if torch.cuda.is_available() else [])
    except Exception as exc:  # device probing must never break a run
        info["devices_error"] = f"{type(exc).__name__}: {exc}"
    return info


@dataclass(frozen=True)
class Predictions:
    """Sigmoid outputs of one stage for one split: rows follow ``ids``, columns follow ``classes``."""

    ids: np.ndarray
    probs: np.ndarray
    classes: list[str]

    def align(self, ids: Sequence[str]) -> np.ndarray:
        """Rows of ``probs`` in the order of ``ids``; raises if an id is missing."""
        index = {i: n for n, i in enumerate(self.ids.tolist())}
        missing = [i for i in ids if i not in index]
        if missing:
            raise ArtifactError(f"{len(missing)} requested ids have no prediction, e.g. {missing[:3]}")
        return self.probs[[index[i] for i in ids]]


class StageOutput:
    """Writer for one stage's folder; the manifest is written by :meth:`finish` (or on ``with`` exit).

    >>> out = StageOutput(profile, "02_title", fingerprint=ds.fingerprint)   # doctest: +SKIP
    >>> out.save_predictions("test", ids, probs, classes); out.finish(weights="glove")  # doctest: +SKIP
    """

    def __init__(self, profile: Profile, stage: str, *, fingerprint: str,
                 run_dir: str | os.PathLike[str] | None = None, seed: int | None = None,
                 inputs: Iterable[str] = ()) -> None:
        self.profile = profile
        self.stage = stage
        self.fingerprint = fingerprint
        self.seed = profile.seed if seed is None else seed
        self.inputs = list(inputs)
        self.path = stage_path(profile, stage, run_dir)
        self.path.mkdir(parents=True, exist_ok=True)
        old = self.path / "manifest.json"
        if old.exists():  # a stale manifest must never vouch for half-rewritten outputs
            old.unlink()
        self.notes: dict[str, Any] = {}
        self._t0 = time.perf_counter()
        self._started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def save_predictions(self, split: str, ids: Sequence[str], probs: np.ndarray,
                         classes: Sequence[str]) -> Path:
        """Save ``probs`` (n × classes, in [0, 1]) for ``split`` keyed by product ``ids``."""
        probs = np.asarray(probs, dtype=np.float32)
        ids_arr = np.asarray([str(i) for i in ids])
        if probs.ndim != 2 or probs.shape != (len(ids_arr), len(classes)):
            raise ValueError(f"probs has shape {probs.shape}; expected ({len(ids_arr)}, {len(classes)})")
        if len(set(ids_arr.tolist())) != len(ids_arr):
            raise ValueError("duplicate product ids in predictions")
        if probs.size and (np.nanmin(probs) < 0 or np.nanmax(probs) > 1):
            raise ValueError("probabilities must lie in [0, 1]")
        path = self.path / f"predictions_{split}.npz"
        tmp = self.path / f".predictions_{split}.tmp.npz"
        np.savez_compressed(tmp, ids=ids_arr, probs=probs, classes=np.asarray(list(classes)))
        os.replace(tmp, path)
        return path

    def save_features(self, split: str, ids: Sequence[str], features: np.ndarray) -> Path:
        """Save per-product feature vectors (e.g. a classifier's penultimate layer, for early fusion)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(ids):
            raise ValueError(f"features have shape {features.shape}; expected ({len(ids)}, d)")
        path = self.path / f"features_{split}.npz"
        tmp = self.path / f".features_{split}.tmp.npz"
        np.savez_compressed(tmp, ids=np.asarray([str(i) for i in ids]), features=features)
        os.replace(tmp, path)
        return path

    def save_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Write ``metrics.json``."""
        path = self.path / "metrics.json"
        write_json(path, dict(metrics))
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        """Write any other JSON output (``name`` without or with ``.json``)."""
        path = self.path / (name if name.endswith(".json") else f"{name}.json")
        write_json(path, obj)
        return path

    def finish(self, **notes: Any) -> dict[str, Any]:
        """Write ``manifest.json``; ``notes`` (e.g. ``weights="random init"``) are recorded in it."""
        self.notes.update(notes)
        manifest = {
            "stage": self.stage,
            "profile": self.profile.name,
            "profile_settings": self.profile.to_dict(),
            "data_fingerprint": self.fingerprint,
            "seed": self.seed,
            "inputs": self.inputs,
            "versions": package_versions(),
            "git_commit": git_commit(),
            "device": device_info(),
            "started": self._started,
            "wall_time_s": round(time.perf_counter() - self._t0, 2),
            "notes": self.notes,
        }
        write_json(self.path / "manifest.json", manifest)
        return manifest

    def __enter__(self) -> StageOutput:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.finish()


class StageArtifacts:
    """Read access to a finished stage folder (see :func:`load_stage`)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def stage(self) -> str:
        return str(self.manifest["stage"])

    @property
    def profile(self) -> str:
        return str(self.manifest["profile"])

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["data_fingerprint"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.load_json("metrics")

    def load_json(self, name: str) -> Any:
        path = self.path / (name if name.endswith(".json") else f"{name}.json")
        if not path.exists():
            raise ArtifactError(f"{path} does not exist; rerun stage {self.stage!r}")
        return json.loads(path.read_text())

    def predictions(self, split: str) -> Predictions:
        """The stage's predictions for ``split`` (``val`` or ``test``)."""
        path = self.path / f"predictions_{split}.npz"
        if not path.exists():
            raise ArtifactError(f"{path} does not exist; stage {self.stage!r} saved no {split!r} predictions")
        with np.load(path, allow_pickle=False) as data:
            return Predictions(ids=data["ids"], probs=data["probs"], classes=data["classes"].tolist())

    def features(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, features)`` saved by :meth:`StageOutput.save_features` for ``split``."""
        path = self.path / f"features_{split}.npz"
        if not path.exists():
            raise ArtifactError(f"{path} does not exist; stage {self.stage!r} saved no {split!r} features")
        with np.load(path, allow_pickle=False) as data:
            return data["ids"], data["features"]

    def __repr__(self) -> str:
        return f"StageArtifacts({self.stage!r}, profile={self.profile!r}, fingerprint={self.fingerprint[:12]!r})"


def load_stage(profile: str | Profile, stage: str, run_dir: str | os.PathLike[str] | None = None, *,
               fingerprint: str | None = None) -> StageArtifacts:
    """Open ``runs/<profile>/<stage>``; refuse it if unfinished or from another profile or data.

    ``fingerprint``, when given, must equal the stage's data fingerprint.
    """
    name = profile.name if isinstance(profile, Profile) else profile
    path = stage_path(name, stage, run_dir)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise ArtifactError(
            f"stage {stage!r} has no finished run for profile {name!r} ({manifest_path} is missing); "
            f"run it first: python -m prodlib run --profile {name}"
        )
    manifest = json.loads(manifest_path.read_text())
    art = StageArtifacts(path, manifest)
    if art.profile != name:
        raise ArtifactMismatch(f"{path} holds a run of profile {art.profile!r}, not {name!r}")
    if fingerprint is not None and art.fingerprint != fingerprint:
        raise ArtifactMismatch(
            f"stage {stage!r} was run on other data (fingerprint {art.fingerprint[:12]}) than the current "
            f"dataset ({fingerprint[:12]}); rerun it: python -m prodlib run --profile {name} --force"
        )
    return art


def check_same_run(stages: Iterable[StageArtifacts]) -> str:
    """Return the shared data fingerprint of ``stages``; raise :class:`ArtifactMismatch` naming the odd one."""
    stages = list(stages)
    if not stages:
        raise ArtifactError("no stages given")
    first = stages[0]
    for other in stages[1:]:
        if other.profile != first.profile:
            raise ArtifactMismatch(
                f"cannot mix profiles: {first.stage!r} is from {first.profile!r}, "
                f"{other.stage!r} from {other.profile!r}"
            )
        if other.fingerprint != first.fingerprint:
            raise ArtifactMismatch(
                f"cannot mix data: {first.stage!r} has fingerprint {first.fingerprint[:12]}, "
                f"{other.stage!r} has {other.fingerprint[:12]}; rerun the older stage"
            )
    return first.fingerprint
