"""Profiles: every size, epoch count and threshold of a run, as data.

A profile is a frozen dataclass. ``smoke`` runs the embedded synthetic catalog in minutes on a CPU
(the default of ``make book``), ``sample`` runs a real catalog from a local path with the paper's
architectures and shortened training, ``full`` is the paper's scale (GPU). Notebooks read their profile
with :func:`get_profile`; the book chapter *Reproduce it yourself* explains each field.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Profile",
    "PROFILES",
    "ProfileError",
    "get_profile",
    "profile_names",
    "default_profile_name",
    "profile_from_params",
]


class ProfileError(ValueError):
    """A profile name or override that does not exist or has the wrong type."""


@dataclass(frozen=True)
class Profile:
    """All knobs of one run of the study (explained in notebook 01 and the *Reproduce* chapter)."""

    name: str
    description: str
    # --- data (notebook 01) ---------------------------------------------------------------------
    catalog: str = "demo"
    """The product source, one of ``demo`` (embedded synthetic catalog), ``env`` (the path in the
    ``PRODLIB_CATALOG`` environment variable, optionally ``format:path``) or ``amazon2014``."""
    demo_products: int = 1200
    """Number of synthetic products when ``catalog == "demo"``."""
    n_products: int | None = None
    """Random sample of this many products (``None`` keeps all)."""
    test_size: float | int = 0.2
    """Size of the test split, as a fraction of the sample or an absolute count (29,063 in the paper)."""
    val_size: float | int = 0.15
    """Size of the validation split carved from train, as a fraction of train or an absolute count."""
    label_mode: str = "flat"
    """``flat`` (every node name is a label, the paper's rule) or ``path`` (path-qualified names)."""
    label_min_count: int = 20
    """Classes with fewer products are dropped (400 in the paper)."""
    image_max_side: int = 256
    """Validated images are stored with at most this many pixels on the long side."""
    # --- text classifiers (notebooks 02, 03) ------------------------------------------------------
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
    """Early stopping patience (epochs without a better validation micro-F1)."""
    # --- image classifier (notebook 04) -----------------------------------------------------------
    image_size: int = 224
    image_epochs: int = 10
    image_batch_size: int = 32
    trainable_layers: int = 40
    """Only the last K layers of ResNet-50 train (40 in the paper)."""
    image_cache: bool = True
    """Cache the frozen part's activations once and train only the tail (fast on CPU)."""
    augment: bool = False
    image_weights: str = "imagenet"
    """``imagenet`` (used when available, else an honest random-init fallback) or ``none``."""
    k_sweep: tuple[int, ...] = ()
    """Values of K swept in notebook 04 when non-empty."""
    # --- fusion (notebook 05) ---------------------------------------------------------------------
    fusion_epochs: int = 60
    fusion_batch_size: int = 64
    fusion_units: tuple[int, int] = (200, 150)
    fusion_learning_rate: float = 5e-3
    fusion_patience: int = 10
    fusion_min_updates: int = 600
    """Policy networks train for at least this many mini-batch updates, so that a small validation set
    (they are fitted on validation predictions) still trains them."""
    fusion_search: bool = True
    """Run the small hyper-parameter search of the tri-modal policy network (validation folds only)."""
    fusion_folds: int = 3
    bootstrap: int = 1000
    """Bootstrap resamples for 95 % confidence intervals of test micro-F1."""
    seeds: tuple[int, ...] = (0,)
    """Seeds for repeated runs (mean ± sd) where the budget allows."""
    # --- everywhere ---------------------------------------------------------------------------------
    threshold: float = 0.5
    seed: int = 42
    mixed_precision: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **overrides: Any) -> Profile:
        """A copy with ``overrides`` applied, each checked against the field's type."""
        return _apply_overrides(self, overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, used in manifests and pipeline cache keys."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="Embedded synthetic demo catalog, tiny models; offline, minutes on a laptop CPU.",
        catalog="demo",
        demo_products=1200,
        label_min_count=15,
        title_len=24,
        desc_len=80,
        max_vocab=5000,
        embedding_dim=48,
        kim_filters=32,
        text_epochs=12,
        text_batch_size=16,
        patience=3,
        image_size=64,
        image_epochs=6,
        image_batch_size=32,
        trainable_layers=10,
        image_weights="none",
        fusion_epochs=40,
        fusion_units=(64, 48),
        fusion_search=False,
        bootstrap=200,
        seeds=(0,),
    ),
    "sample": Profile(
        name="sample",
        description="A real catalog from a local path (PRODLIB_CATALOG); the paper's architectures, "
        "shortened training; CPU-feasible.",
        catalog="env",
        label_min_count=20,
        title_len=57,
        desc_len=300,
        max_vocab=30_000,
        embedding_dim=100,
        kim_filters=100,
        text_epochs=12,
        text_batch_size=32,
        patience=3,
        image_size=128,
        image_epochs=5,
        image_batch_size=32,
        k_sweep=(0, 10),
        fusion_epochs=80,
        fusion_search=True,
        bootstrap=1000,
        seeds=(0, 1, 2),
    ),
    "full": Profile(
        name="full",
        description="The paper's scale: 119,063 Amazon 2014 products, 122 classes, ResNet-50 at 224 px (GPU).",
        catalog="amazon2014",
        n_products=119_063,
        test_size=29_063,
        val_size=0.1,
        label_min_count=400,
        title_len=57,
        desc_len=300,
        max_vocab=100_000,
        embedding_dim=300,
        text_epochs=10,
        text_batch_size=64,
        patience=2,
        image_size=224,
        image_epochs=8,
        image_batch_size=64,
        image_cache=False,
        augment=True,
        k_sweep=(0, 40, 80),
        fusion_epochs=60,
        fusion_search=True,
        bootstrap=1000,
        seeds=(0,),
        mixed_precision=True,
    ),
}


def profile_names() -> list[str]:
    """Names of the built-in profiles."""
    return list(PROFILES)


def default_profile_name() -> str:
    """The profile a notebook uses when none is given: ``$PRODLIB_PROFILE`` or ``smoke``."""
    return os.environ.get("PRODLIB_PROFILE", "smoke")


def get_profile(name: str | Profile | None = None, **overrides: Any) -> Profile:
    """Return the profile called ``name`` with ``overrides`` applied.

    >>> get_profile("smoke", text_epochs=2).text_epochs
    2

    Raises :class:`ProfileError` naming the valid choices for an unknown profile or field.
    """
    if isinstance(name, Profile):
        base = name
    else:
        name = name or default_profile_name()
        if name not in PROFILES:
            raise ProfileError(
                f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
                "(set PRODLIB_PROFILE or pass --profile)"
            )
        base = PROFILES[name]
    return _apply_overrides(base, overrides) if overrides else base


def profile_from_params(name: str | Profile | None, overrides: Mapping[str, Any] | str | None = None) -> Profile:
    """The profile of a notebook's parameters cell: ``PROFILE`` and ``OVERRIDES``, a mapping or its JSON text
    (as ``papermill -p`` passes it). Used by the first code cell of notebooks 02–06."""
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides or "{}")
        except json.JSONDecodeError as exc:
            raise ProfileError(f"OVERRIDES {overrides!r} is not a JSON object ({exc}); pass e.g. "
                               '\'{"text_epochs": 3}\' or use papermill -y') from None
    if not isinstance(overrides, Mapping | None):
        raise ProfileError(f"OVERRIDES must be a mapping of profile fields, got {type(overrides).__name__}")
    return get_profile(name, **dict(overrides or {}))


def _apply_overrides(profile: Profile, overrides: dict[str, Any]) -> Profile:
    fields = {f.name: f for f in dataclasses.fields(profile)}
    clean: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields or key == "name":
            valid = ", ".join(k for k in fields if k != "name")
            raise ProfileError(f"unknown profile field {key!r}; valid fields: {valid}")
        current = getattr(profile, key)
        clean[key] = _coerce(key, value, current)
    return dataclasses.replace(profile, **clean)


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
            value = [v for v in value.replace(",", " ").split()]
        if not isinstance(value, (list, tuple)):
            raise ProfileError(f"profile field {key!r} takes a list, got {value!r}")
        return tuple(int(v) if str(v).lstrip("-").isdigit() else v for v in value)
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(value, float) and key in {"test_size", "val_size"}:
            return value
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ProfileError(f"profile field {key!r} takes an integer, got {value!r}") from None
    if isinstance(current, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ProfileError(f"profile field {key!r} takes a number, got {value!r}") from None
        if key in {"test_size", "val_size"} and number >= 1 and float(number).is_integer():
            return int(number)
        return number
    if current is None and key == "n_products":
        if value in (None, "", "none", "None"):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ProfileError(f"profile field {key!r} takes an integer or none, got {value!r}") from None
    if isinstance(current, str) and not isinstance(value, str):
        raise ProfileError(f"profile field {key!r} takes a string, got {value!r}")
    return value
