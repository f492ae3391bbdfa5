"""Run folders: what each notebook writes into ``runs/<profile>/<stage>/`` (manifest, metrics, outputs by product id)
and how the next reads it back, never mixing profiles or data. Notebook 01, *Reproduce it yourself*."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from prodlib.config import Profile

__all__ = ["ArtifactError", "ArtifactMismatch", "Predictions", "StageArtifacts", "StageOutput", "atomic_write",
           "CLASSIFIER_STAGES", "ModalityAbsent", "check_same_run", "load_classifier_stages", "load_stage", "repo_root",
           "run_root", "stage_path", "start_stage", "write_json"]

_VERSIONED = ("numpy", "pandas", "scikit-learn", "keras", "tensorflow", "tensorflow-cpu", "jax",
              "torch", "gensim", "pillow", "papermill")


class ArtifactError(RuntimeError):
    """A stage folder is missing or unreadable."""


class ArtifactMismatch(ArtifactError):
    """Artifacts from different profiles or data fingerprints were about to be mixed."""


def repo_root() -> Path:
    """The repository (holding ``_toc.yml``) above ``prodlib/``, else the working folder (e.g. on Colab)."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "_toc.yml").is_file() else Path.cwd()


def run_root(run_dir: str | os.PathLike[str] | None = None) -> Path:
    """The root of all runs: ``run_dir``, else ``$PRODLIB_RUN_DIR``, else ``<repo_root>/runs``."""
    return Path(run_dir or os.environ.get("PRODLIB_RUN_DIR") or repo_root() / "runs")


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp path beside ``path`` that replaces it only if the block succeeds; every file prodlib writes uses it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def stage_path(profile: str | Profile, stage: str, run_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<run_root>/<profile>/<stage>``."""
    return run_root(run_dir) / (profile.name if isinstance(profile, Profile) else profile) / stage


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a run's numbers (absent ones are left out)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        with suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_commit() -> str | None:
    """The repository's HEAD commit (with ``-dirty`` when there are local changes), or ``None``."""
    def git(*args: str, check: bool = False) -> str:
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True, timeout=5,
                              check=check).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD", check=True)
        return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_info() -> dict[str, Any]:
    """Keras backend and the accelerators it sees (``[]`` on a CPU-only machine)."""
    from prodlib.accelerate import accelerators
    info: dict[str, Any] = {"keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
                            "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import keras
        info["keras_backend"] = keras.backend.backend()
        info["devices"] = [str(d) for d in accelerators()]
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
        if missing := [i for i in ids if i not in index]:
            raise ArtifactError(f"{len(missing)} requested ids have no prediction, e.g. {missing[:3]}")
        return self.probs[[index[i] for i in ids]]


class StageOutput:
    """Writer for one stage's folder; :meth:`finish` writes the manifest (any old one is removed now)."""

    def __init__(self, profile: Profile, stage: str, *, fingerprint: str, run_dir: str | os.PathLike[str] | None = None,
                 seed: int | None = None, inputs: Iterable[str] = ()) -> None:
        self.profile, self.stage, self.fingerprint, self.inputs = profile, stage, fingerprint, list(inputs)
        self.seed = profile.seed if seed is None else seed
        self.path = stage_path(profile, stage, run_dir)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "manifest.json").unlink(missing_ok=True)  # a stale manifest must never vouch for new outputs
        self.notes: dict[str, Any] = {}
        self._t0, self._started = time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds")

    def _save_npz(self, kind: str, split: str, **arrays: np.ndarray) -> Path:
        path = self.path / f"{kind}_{split}.npz"
        with atomic_write(path) as tmp:
            np.savez_compressed(tmp, **arrays)
        return path

    def save_predictions(self, split: str, ids: Sequence[str], probs: np.ndarray, classes: Sequence[str]) -> Path:
        """Save ``probs`` (n × classes, in [0, 1]) for ``split`` keyed by product ``ids``."""
        probs, ids_arr = np.asarray(probs, dtype=np.float32), np.asarray([str(i) for i in ids])
        if probs.ndim != 2 or probs.shape != (len(ids_arr), len(classes)):
            raise ValueError(f"probs has shape {probs.shape}; expected ({len(ids_arr)}, {len(classes)})")
        if len(set(ids_arr.tolist())) != len(ids_arr):
            raise ValueError("duplicate product ids in predictions")
        if probs.size and (np.nanmin(probs) < 0 or np.nanmax(probs) > 1):
            raise ValueError("probabilities must lie in [0, 1]")
        return self._save_npz("predictions", split, ids=ids_arr, probs=probs, classes=np.asarray(list(classes)))

    def save_features(self, split: str, ids: Sequence[str], features: np.ndarray) -> Path:
        """Save per-product feature vectors (e.g. a classifier's penultimate layer, for early fusion)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) != len(ids):
            raise ValueError(f"features have shape {features.shape}; expected ({len(ids)}, d)")
        return self._save_npz("features", split, ids=np.asarray([str(i) for i in ids]), features=features)

    def save_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Write ``metrics.json``."""
        return self.save_json("metrics", dict(metrics))

    def save_json(self, name: str, obj: Any) -> Path:
        """Write any other JSON output (``name`` without or with ``.json``)."""
        write_json(path := self.path / (name if name.endswith(".json") else f"{name}.json"), obj)
        return path

    def finish(self, **notes: Any) -> dict[str, Any]:
        """Write ``manifest.json``; ``notes`` (e.g. ``weights="random init"``) are recorded in it."""
        self.notes.update(notes)
        manifest = {"stage": self.stage, "profile": self.profile.name, "profile_settings": self.profile.to_dict(),
                    "data_fingerprint": self.fingerprint, "seed": self.seed, "inputs": self.inputs,
                    "versions": package_versions(), "git_commit": git_commit(), "device": device_info(),
                    "started": self._started, "wall_time_s": round(time.perf_counter() - self._t0, 2),
                    "notes": self.notes}
        write_json(self.path / "manifest.json", manifest)
        return manifest


class StageArtifacts:
    """Read access to a finished stage folder (see :func:`load_stage`)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path, self.manifest, self.stage = path, manifest, str(manifest["stage"])
        self.profile, self.fingerprint = str(manifest["profile"]), str(manifest["data_fingerprint"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.load_json("metrics")

    def load_json(self, name: str) -> Any:
        if not (path := self.path / (name if name.endswith(".json") else f"{name}.json")).exists():
            raise ArtifactError(f"{path} does not exist; rerun stage {self.stage!r}")
        return _read(path, lambda: json.loads(path.read_text()), self.stage)

    def _npz(self, kind: str, split: str) -> dict[str, np.ndarray]:
        if not (path := self.path / f"{kind}_{split}.npz").exists():
            raise ArtifactError(f"{path} does not exist; stage {self.stage!r} saved no {split!r} {kind}")
        def load() -> dict[str, np.ndarray]:
            with np.load(path, allow_pickle=False) as data:
                return dict(data)

        return _read(path, load, self.stage)

    def predictions(self, split: str) -> Predictions:
        """The stage's predictions for ``split`` (``val`` or ``test``)."""
        data = self._npz("predictions", split)
        return Predictions(ids=data["ids"], probs=data["probs"], classes=data["classes"].tolist())

    def features(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, features)`` saved by :meth:`StageOutput.save_features` for ``split``."""
        data = self._npz("features", split)
        return data["ids"], data["features"]

    def __repr__(self) -> str:
        return f"StageArtifacts({self.stage!r}, profile={self.profile!r}, fingerprint={self.fingerprint[:12]!r})"


def _read(path: Path, load: Any, stage: str) -> Any:
    """``load()``, with an :class:`ArtifactError` that names the file and the fix when the file is corrupt."""
    try:
        return load()
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path} is unreadable ({type(exc).__name__}: {exc}); rerun stage {stage!r} with "
                            "python -m prodlib run --force") from None


def load_stage(profile: str | Profile, stage: str, run_dir: str | os.PathLike[str] | None = None, *,
               fingerprint: str | None = None) -> StageArtifacts:
    """Open ``runs/<profile>/<stage>``; refused if unfinished, from another profile or other data (``fingerprint``)."""
    name = profile.name if isinstance(profile, Profile) else profile
    path = stage_path(name, stage, run_dir)
    if not (manifest_path := path / "manifest.json").exists():
        raise ArtifactError(f"stage {stage!r} has no finished run for profile {name!r} ({manifest_path} is missing); "
                            f"run it first: python -m prodlib run --profile {name}")
    art = StageArtifacts(path, _read(manifest_path, lambda: json.loads(manifest_path.read_text()), stage))
    if art.profile != name:
        raise ArtifactMismatch(f"{path} holds a run of profile {art.profile!r}, not {name!r}")
    if fingerprint is not None and art.fingerprint != fingerprint:
        raise ArtifactMismatch(f"stage {stage!r} was run on other data (fingerprint {art.fingerprint[:12]}) than the "
                               f"current dataset ({fingerprint[:12]}); rerun it: python -m prodlib run --profile "
                               f"{name} --force")
    return art


def check_same_run(stages: Iterable[StageArtifacts]) -> str:
    """Return the shared data fingerprint of ``stages``; raise :class:`ArtifactMismatch` naming the odd one."""
    if not (stages := list(stages)):
        raise ArtifactError("no stages given")
    first = stages[0]
    for other in stages[1:]:
        if other.profile != first.profile:
            raise ArtifactMismatch(f"cannot mix profiles: {first.stage!r} is from {first.profile!r}, "
                                   f"{other.stage!r} from {other.profile!r}")
        if other.fingerprint != first.fingerprint:
            raise ArtifactMismatch(f"cannot mix data: {first.stage!r} has fingerprint {first.fingerprint[:12]}, "
                                   f"{other.stage!r} has {other.fingerprint[:12]}; rerun the older stage")
    return first.fingerprint


#: The stage folder of each modality's classifier (notebooks 02–04), in the order of every fusion input list.
CLASSIFIER_STAGES: dict[str, str] = {"title": "02_title", "description": "03_description", "image": "04_image"}


def load_classifier_stages(profile: str | Profile, run_dir: str | os.PathLike[str] | None, fingerprint: str,
                           modalities: Iterable[str] = tuple(CLASSIFIER_STAGES)) -> dict[str, StageArtifacts]:
    """The classifier stages of ``modalities`` (``Dataset.modalities``: those notebook 01 kept), refused unless all
    ran on the data ``fingerprint`` (notebooks 05–07)."""
    stages = {m: load_stage(profile, stage, run_dir, fingerprint=fingerprint)
              for m, stage in CLASSIFIER_STAGES.items() if m in set(modalities)}
    check_same_run(stages.values())
    return stages


FUSION_STAGES = ("05_fusion", "07_embeddings")  # stages that combine the modalities: they need two or more


class ModalityAbsent(ArtifactError):
    """A classifier notebook started for a modality that notebook 01 found absent from the catalog."""


def start_stage(stage: str, profile: str | Profile | None = None, run_dir: str | os.PathLike[str] | None = None,
                overrides: Mapping[str, Any] | str | None = None, inputs: Iterable[str] = ("01_data",)) -> tuple[
                    Profile, Any, StageOutput]:
    """The first lines of notebooks 02–06: profile (with ``overrides``, a mapping or JSON text), seed,
    accelerators, the dataset of notebook 01 and the stage's output folder (opened now, so its wall time is
    the notebook's). Returns ``(profile, dataset, output)``."""
    from prodlib.accelerate import configure_accelerators
    from prodlib.config import profile_from_params
    from prodlib.dataset import load_dataset
    from prodlib.train import set_seed
    prof = profile_from_params(profile, overrides)
    set_seed(prof.seed)
    accel = configure_accelerators(prof)
    ds = load_dataset(prof, run_dir)
    decided = ds.stats.get("modalities", {})
    if (m := {s: m for m, s in CLASSIFIER_STAGES.items()}.get(stage)) and m not in decided.get("present", [m]):
        raise ModalityAbsent(f"{stage} stops: notebook 01 left the {m} out of this study ({decided['why'][m]}), and "
                             "a classifier without its input would only learn the class priors. Set the profile's "
                             "modalities or min_modality_share to include it, or use a catalog that carries it")
    absent = {s for m, s in CLASSIFIER_STAGES.items() if m not in ds.modalities}
    inputs = [s for s in inputs if s not in absent]  # a left-out modality's stage is no input
    if stage in FUSION_STAGES and len(ds.modalities) < 2:
        raise ModalityAbsent(f"{stage} stops: notebook 01 kept only the {ds.modalities[0]} ("
                             + "; ".join(decided["why"][m] for m in decided["why"] if m not in ds.modalities)
                             + "): with one modality there is nothing to fuse")
    out = StageOutput(prof, stage, fingerprint=ds.fingerprint, run_dir=run_dir, inputs=list(inputs))
    out.notes["accelerators"] = accel
    sizes = ", ".join(f"{split} {len(ids):,}" for split, ids in ds.splits.items())
    print(f"profile {prof.name!r}: {len(ds.table):,} products, {ds.n_classes} classes ({sizes}); "
          f"seed {prof.seed}; writing {out.path}")
    return prof, ds, out
