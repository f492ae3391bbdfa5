"""Profiles: every size, epoch count and threshold of a run, as a frozen dataclass. ``smoke`` runs the demo
catalog in minutes on a CPU, ``sample`` a real local catalog with shortened training, ``full`` the paper's scale
(GPU). Fields are explained in notebook 01 and the *Reproduce it yourself* chapter."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Profile", "PROFILES", "ProfileError", "get_profile", "default_profile_name", "profile_from_params",
           "validate_profile"]


class ProfileError(ValueError):
    """A profile name or override that does not exist or has the wrong type."""


@dataclass(frozen=True)
class Profile:
    """All knobs of one run of the study (notebook 01 and the *Reproduce* chapter)."""

    name: str
    description: str
    # --- data (notebook 01) ---
    catalog: str = "demo"
    """``demo`` (embedded synthetic catalog), ``env`` (``$PRODLIB_CATALOG``, ``[format:]path``) or ``amazon2014``."""
    demo_products: int = 1200
    n_products: int | None = None
    """Random sample of this many products (``None`` keeps all)."""
    test_size: float | int = 0.2
    """Fraction of the sample or absolute count (29,063 in the paper)."""
    val_size: float | int = 0.15
    """Carved from train, as a fraction of train or an absolute count."""
    label_mode: str = "flat"
    """``flat`` (every node name is a label, the paper's rule) or ``path`` (path-qualified names)."""
    label_min_count: int = 20
    image_max_side: int = 256
    min_modality_share: float = 0.2
    """A modality (title, description, image) is present when at least this share of the products carry it."""
    modalities: tuple[str, ...] = ()
    """The modalities to use, set by hand (e.g. ``title,image``); empty: decided by ``min_modality_share``."""
    # --- text classifiers (notebooks 02, 03) ---
    title_len: int = 57
    desc_len: int = 300
    max_vocab: int = 50_000
    embedding_dim: int = 300
    embeddings_trainable: bool = True
    title_embeddings: str = "glove"
    """Pretrained vectors for titles, one of ``glove``, ``word2vec`` or ``none`` (random)."""
    desc_embeddings: str = "word2vec"
    kim_windows: tuple[int, ...] = (3, 4, 5)
    kim_filters: int = 100
    dropout: float = 0.5
    text_epochs: int = 10
    text_batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 3
    # --- image classifier (notebook 04) ---
    image_size: int = 224
    image_epochs: int = 10
    image_batch_size: int = 32
    image_backbone: str = "resnet50"
    """``resnet50`` (the paper's), ``mobilenet`` or ``auto`` (ResNet-50 with ImageNet weights when they can be had,
    else MobileNet with ImageNet weights, else ResNet-50 from random weights)."""
    mobilenet_alpha: float = 0.25
    """MobileNet's width multiplier (0.25, 0.5, 0.75 or 1.0)."""
    trainable_layers: int = 40
    """Only the last K layers of the backbone train, as Keras counts them (40 in the paper)."""
    image_cache: bool = True
    """Cache the frozen part's activations once and train only the tail (fast on CPU)."""
    augment: bool = False
    image_weights: str = "imagenet"
    """``imagenet`` or ``none`` (random weights on purpose, the only way to train a named backbone without them)."""
    image_weights_file: str = ""
    """A local ImageNet weights file for the backbone (else ``$PRODLIB_IMAGE_WEIGHTS``, then Keras' cache)."""
    k_sweep: tuple[int, ...] = ()
    """Values of K swept in notebook 04 besides ``trainable_layers``; validation chooses among them."""
    image_random_baseline: bool = False
    """Also train the chosen backbone from random weights, as one row of notebook 04's sweep."""
    # --- fusion (notebook 05) ---
    fusion_epochs: int = 60
    fusion_batch_size: int = 64
    fusion_units: tuple[int, int] = (200, 150)
    fusion_learning_rate: float = 5e-3
    fusion_patience: int = 10
    fusion_min_updates: int = 600
    """Minimum mini-batch updates of a policy network, so a small validation set still trains it."""
    fusion_search: bool = True
    """Small hyper-parameter search of the tri-modal policy network (validation folds only)."""
    fusion_folds: int = 3
    fusion_fit_on: str = "val"
    """``val``: learned fusion methods fit on validation predictions; ``oof``: also on out-of-fold predictions of
    the training products (notebooks 02–04 then cross-fit each classifier ``oof_folds`` times)."""
    oof_folds: int = 3
    early_units: tuple[int, ...] = (200,)
    """Hidden layers of the early-fusion network (trained on the training split)."""
    early_epochs: int = 60
    early_learning_rate: float = 1e-3
    early_patience: int = 3
    bootstrap: int = 1000
    """Bootstrap resamples for 95 % confidence intervals of test micro-F1."""
    seeds: tuple[int, ...] = (0,)
    """Seeds of the learned fusion methods (mean ± sd in Table 3)."""
    classifier_seeds: tuple[int, ...] = ()
    """Extra seeds to retrain each single classifier with, for the mean and sd of Table 1 (the ``full`` profile)."""
    # --- everywhere ---
    threshold: float = 0.5
    per_class_thresholds: bool = False
    """Tune one threshold per class, instead of one global threshold, for the tables' tuned column (both are fitted
    on held-out predictions); per-class thresholds overfit small held-out sets."""
    threshold_min_support: int = 5
    """Per-class thresholds are tuned only for classes with this many positive held-out products (else 0.5)."""
    missed_min_support: int = 5
    """The most-missed tables (notebooks 02–04 and 06) rank only classes with this many test products."""
    seed: int = 42
    mixed_precision: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists), used in manifests and pipeline cache keys."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


PROFILES: dict[str, Profile] = {  # only the fields that differ from the defaults (the paper's values)
    "smoke": Profile(
        "smoke", "Embedded synthetic demo catalog, tiny models; offline, minutes on a laptop CPU.",
        label_min_count=15, title_len=24, desc_len=80, max_vocab=5000, embedding_dim=48, kim_filters=32,
        text_epochs=12, text_batch_size=16, image_size=64, image_epochs=6, image_backbone="auto", trainable_layers=10,
        image_random_baseline=True, fusion_epochs=40, fusion_units=(64, 48), fusion_search=False, early_units=(64,),
        early_epochs=40, bootstrap=200, fusion_fit_on="oof", missed_min_support=3),
    "sample": Profile(
        "sample", "A real catalog (PRODLIB_CATALOG: a local path or a category such as amazon2023:All_Beauty), "
        "5,000 products sampled while reading; the paper's architectures, shortened training; CPU-feasible.",
        catalog="env", n_products=5000, max_vocab=30_000, embedding_dim=100, text_epochs=12, text_batch_size=32,
        image_size=128, image_backbone="auto", image_epochs=40, k_sweep=(0, 10), image_random_baseline=True,
        fusion_epochs=80, early_epochs=80, seeds=(0, 1, 2), fusion_fit_on="oof"),
    "full": Profile(
        "full", "The paper's scale: 119,063 Amazon 2014 products, 122 classes, ResNet-50 at 224 px (GPU).",
        catalog="amazon2014", n_products=119_063, test_size=29_063, val_size=0.1, label_min_count=400,
        max_vocab=100_000, patience=2, image_epochs=8, image_batch_size=64, image_cache=False, augment=True,
        k_sweep=(0, 40, 80), mixed_precision=True, classifier_seeds=(1, 2)),
}


def default_profile_name() -> str:
    """The profile a notebook uses when none is given: ``$PRODLIB_PROFILE`` or ``smoke``."""
    return os.environ.get("PRODLIB_PROFILE", "smoke")


def get_profile(name: str | Profile | None = None, /, **overrides: Any) -> Profile:
    """The profile ``name`` (default :func:`default_profile_name`) with ``overrides`` applied.

    >>> get_profile("smoke", text_epochs=2).text_epochs
    2
    """
    if not isinstance(name, Profile):
        if (name := name or default_profile_name()) not in PROFILES:
            raise ProfileError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
                               "(set PRODLIB_PROFILE or pass --profile)")
        name = PROFILES[name]
    return validate_profile(_apply_overrides(name, overrides)) if overrides else name


def profile_from_params(name: str | Profile | None, overrides: Mapping[str, Any] | str | None = None) -> Profile:
    """The profile of a notebook's parameters cell: ``PROFILE`` and ``OVERRIDES`` (a mapping or its JSON text,
    as ``papermill -p`` passes it). Used by the first code cell of notebooks 02–06."""
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides or "{}")
        except json.JSONDecodeError as exc:
            raise ProfileError(f"OVERRIDES {overrides!r} is not a JSON object ({exc}); pass e.g. "
                               '\'{"text_epochs": 3}\' or use papermill -y') from None
    if not isinstance(overrides, Mapping | None):
        raise ProfileError(f"OVERRIDES must be a mapping of profile fields, got {type(overrides).__name__}")
    return get_profile(name, **dict(overrides or {}))


_FIXED = {"name", "description", "extra"}  # chosen by the profile, never by an override
_COUNT, _SIZE = ("an integer ≥ 1", lambda v: v >= 1), ("a fraction in (0, 1) or a count ≥ 1",
                                                       lambda v: 0 < v < 1 if isinstance(v, float) else v >= 1)
_RULES: dict[str, tuple[str, Any]] = {  # field: (what is allowed, test); the fields not named are free
    **dict.fromkeys(["demo_products", "label_min_count", "image_max_side", "title_len", "desc_len", "max_vocab",
                     "embedding_dim", "kim_filters", "text_epochs", "text_batch_size", "image_size", "image_epochs",
                     "image_batch_size", "fusion_epochs", "fusion_batch_size", "early_epochs", "bootstrap"], _COUNT),
    **dict.fromkeys(["patience", "fusion_patience", "early_patience", "fusion_min_updates", "trainable_layers"],
                    ("an integer ≥ 0", lambda v: v >= 0)),
    **dict.fromkeys(["learning_rate", "fusion_learning_rate", "early_learning_rate"],
                    ("a number > 0", lambda v: v > 0)),
    "test_size": _SIZE, "val_size": _SIZE,
    "n_products": ("none or an integer ≥ 1", lambda v: v is None or v >= 1),
    "fusion_folds": ("an integer ≥ 2", lambda v: v >= 2), "oof_folds": ("an integer ≥ 2", lambda v: v >= 2),
    "fusion_fit_on": ("val or oof", lambda v: v in ("val", "oof")),
    **dict.fromkeys(["threshold_min_support", "missed_min_support"], ("an integer ≥ 1", lambda v: v >= 1)),
    "dropout": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "min_modality_share": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "modalities": ("distinct names among title, description, image (none: decided from the data)",
                   lambda v: len(set(v)) == len(v) and set(v) <= {"title", "description", "image"}),
    "threshold": ("a number in (0, 1)", lambda v: 0 < v < 1),
    "mobilenet_alpha": ("one of 0.25, 0.5, 0.75, 1.0", lambda v: v in (0.25, 0.5, 0.75, 1.0)),
    "label_mode": ("flat or path", lambda v: v in ("flat", "path")),
    "title_embeddings": ("glove, word2vec or none", lambda v: v in ("glove", "word2vec", "none")),
    "desc_embeddings": ("glove, word2vec or none", lambda v: v in ("glove", "word2vec", "none")),
    "image_backbone": ("resnet50, mobilenet or auto", lambda v: v in ("resnet50", "mobilenet", "auto")),
    "image_weights": ("imagenet or none", lambda v: v in ("imagenet", "none")),
    "kim_windows": ("a non-empty list of integers ≥ 1", lambda v: v and all(_int(x) and x >= 1 for x in v)),
    "fusion_units": ("two integers ≥ 1", lambda v: len(v) == 2 and all(_int(x) and x >= 1 for x in v)),
    "early_units": ("a list of integers ≥ 1", lambda v: all(_int(x) and x >= 1 for x in v)),
    "k_sweep": ("a list of integers ≥ 0", lambda v: all(_int(x) and x >= 0 for x in v)),
    "seeds": ("a non-empty list of integers", lambda v: v and all(_int(x) for x in v)),
    "classifier_seeds": ("a list of integers", lambda v: all(_int(x) for x in v)),
}


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_profile(profile: Profile) -> Profile:
    """``profile`` itself when every field is in its allowed range (the table ``_RULES``), else a :class:`ProfileError`
    naming each bad field and what it allows. Run before anything runs (*Reproduce it yourself*)."""
    bad = []
    for key, (allowed, test) in _RULES.items():
        value = getattr(profile, key)
        try:
            ok = bool(test(value))
        except TypeError:
            ok = False
        if not ok:
            bad.append(f"{key}={value!r} (allowed: {allowed})")
    if bad:
        raise ProfileError(f"profile {profile.name!r} has bad values: {'; '.join(bad)}")
    return profile


def _apply_overrides(profile: Profile, overrides: dict[str, Any]) -> Profile:
    fields = [f.name for f in dataclasses.fields(profile) if f.name not in _FIXED]
    clean: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _FIXED:
            raise ProfileError(f"profile field {key!r} cannot be overridden; choose another profile with --profile "
                               "(and name an experiment's run folder with --run-name)")
        if key not in fields:
            raise ProfileError(f"unknown profile field {key!r}; valid fields: {', '.join(fields)}")
        clean[key] = _coerce(key, value, getattr(profile, key))
    return dataclasses.replace(profile, **clean)


def _number(key: str, value: Any, kind: type, what: str) -> Any:
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ProfileError(f"profile field {key!r} takes {what}, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ProfileError(f"profile field {key!r} takes {what}, got {value!r}") from None


def _coerce(key: str, value: Any, current: Any) -> Any:
    """Check ``value`` against the type of the field's current value; lists become tuples."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ProfileError(f"profile field {key!r} takes true/false, got {value!r}")
    if isinstance(current, tuple):
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if not isinstance(value, (list, tuple)):
            raise ProfileError(f"profile field {key!r} takes a list, got {value!r}")
        return tuple(int(v) if str(v).lstrip("-").isdigit() else v for v in value)
    if key in {"test_size", "val_size"}:  # "3" is a count, "0.3" or "1.0" a fraction (checked by validate_profile)
        digits = isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
        return _number(key, value, int if digits else float, "a fraction or a count")
    if isinstance(current, int):
        return _number(key, value, int, "an integer")
    if isinstance(current, float):
        return _number(key, value, float, "a number")
    if current is None and key == "n_products":
        return None if value in (None, "", "none", "None") else _number(key, value, int, "an integer or none")
    if isinstance(current, str) and not isinstance(value, str):
        raise ProfileError(f"profile field {key!r} takes a string, got {value!r}")
    return value
