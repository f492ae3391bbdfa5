"""Fusion (notebook 05): the late-fusion methods of the paper's Table 3, early fusion, and the leakage-safe
experiment that fits every method on validation predictions and scores it on test. A late-fusion method
(:class:`FusionMethod`) has ``fit(inputs, y)`` on a list of ``n × C`` probability matrices (one per modality) and
``predict(inputs)`` returning ``n × C`` probabilities in ``[0, 1]``; a method whose ``mask`` is true also takes
``present=``, the ``n × m`` presence matrix of :func:`presence` (1 = the product has that modality)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from prodlib.artifacts import CLASSIFIER_STAGES, ArtifactError
from prodlib.metrics import fit_threshold, micro_f1, per_class_f1, product_f1
from prodlib.splits import product_folds as _product_folds

__all__ = ["EarlyFusion", "FixedRule", "FusionMethod", "FusionRun", "FusionSet", "LeakageError", "MODALITIES",
           "MaxPolicy", "MeanPolicy", "ModalityPicker", "ModalitySubset", "PolicyNetwork", "RidgeFusion",
           "aligned_features", "blank_modality", "default_policy_grid", "early_fusion", "fit_and_predict",
           "fusion_set", "fusion_threshold", "main_method", "main_network", "make_methods", "modality_importance",
           "naive_fusion", "network_settings", "oracle_probs", "presence", "search_policy", "trimodal_config"]

#: Modality order of every ``inputs`` list in this module.
MODALITIES: tuple[str, ...] = tuple(CLASSIFIER_STAGES)


class LeakageError(RuntimeError):
    """A product that is evaluated was about to be used for fitting (or the reverse)."""


@runtime_checkable
class FusionMethod(Protocol):
    """A late-fusion policy: fitted on validation predictions, applied to test predictions."""

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> FusionMethod: ...

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray: ...


def _check_inputs(inputs: Sequence[np.ndarray], y: np.ndarray | None = None) -> list[np.ndarray]:
    """Validate a list of equal-shape ``n × C`` matrices (and ``y`` of the same shape)."""
    if isinstance(inputs, np.ndarray) or not len(inputs):
        raise ValueError("inputs must be a non-empty list of n × C probability matrices, one per modality")
    arrays = [np.asarray(a, dtype=np.float32) for a in inputs]
    shape = arrays[0].shape
    for k, a in enumerate(arrays):
        if a.ndim != 2 or a.shape != shape:
            raise ValueError(f"input {k} has shape {a.shape}; every modality must be {shape} (n × classes)")
        if not np.isfinite(a).all():
            raise ValueError(f"input {k} holds NaN or infinite values; fill missing predictions first")
    if y is not None and np.asarray(y).shape != shape:
        raise ValueError(f"labels have shape {np.asarray(y).shape}; expected {shape}")
    return arrays


class FixedRule:
    """A fixed element-wise rule over the modalities' probabilities (nothing to fit)."""

    name = ""
    _reduce: Any = None

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> FixedRule:
        _check_inputs(inputs, y)
        return self

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return type(self)._reduce(np.stack(_check_inputs(inputs)), axis=0)


class MaxPolicy(FixedRule):
    """Element-wise maximum of the modalities' probabilities."""

    name, _reduce = "max", np.max


class MeanPolicy(FixedRule):
    """Element-wise mean of the modalities' probabilities."""

    name, _reduce = "mean", np.mean


class RidgeFusion:
    """Ridge on the stacked probabilities, clipped to ``[0, 1]``: ``per="modality"`` one weight per modality (the
    paper's), ``per="full"`` the ``m·C → C`` linear map; ``alpha`` among ``alphas`` by CV over the fitting products."""

    def __init__(self, per: str = "modality", alphas: Sequence[float] = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0),
                 folds: int = 3, seed: int = 0) -> None:
        if per not in ("modality", "full"):
            raise ValueError(f"unknown ridge variant {per!r}; choose 'modality' or 'full'")
        self.per, self.folds, self.seed = per, folds, seed
        self.alphas = tuple(float(a) for a in alphas)
        self.name = "ridge" if per == "modality" else "ridge_full"
        self.alpha_: float | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | float | None = None

    def _design(self, arrays: list[np.ndarray]) -> np.ndarray:
        return np.stack(arrays, axis=-1).reshape(-1, len(arrays)) if self.per == "modality" else np.hstack(arrays)

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> RidgeFusion:
        from sklearn.linear_model import RidgeCV
        arrays = _check_inputs(inputs, y)
        n, c = arrays[0].shape
        folds = _product_folds(n, self.folds, self.seed)
        target = np.asarray(y, dtype=np.float64)
        if self.per == "modality":  # rows are (product, class) pairs: fold by product, never split a product
            rows = np.arange(n * c).reshape(n, c)
            folds = [(rows[tr].ravel(), rows[te].ravel()) for tr, te in folds]
            target = target.reshape(-1)
        self._model = model = RidgeCV(alphas=list(self.alphas), cv=folds).fit(self._design(arrays), target)
        self.alpha_, self.coef_, self.intercept_ = float(model.alpha_), np.asarray(model.coef_), model.intercept_
        self._shape = (len(arrays), c)
        return self

    @property
    def weights_(self) -> np.ndarray:
        """``per="modality"``: the ``m`` modality weights. ``per="full"``: an ``m × C`` matrix, each class's
        weight on each modality's probability *of that same class* (the diagonal blocks of the map)."""
        if self.coef_ is None:
            raise RuntimeError("fit the ridge model first")
        if self.per == "modality":
            return self.coef_.copy()
        m, c = self._shape
        blocks = self.coef_.reshape(c, m, c)  # [output class, modality, input class]
        return np.stack([np.diagonal(blocks[:, k, :]) for k in range(m)])

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError("fit the ridge model before predict")
        arrays = _check_inputs(inputs)
        return np.clip(self._model.predict(self._design(arrays)).reshape(arrays[0].shape), 0.0, 1.0)


def _inner_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/stop split of ``n`` rows for early stopping (``fraction`` held out, at least 2 rows)."""
    order = np.random.default_rng(seed).permutation(n)
    n_stop = int(round(n * fraction))
    return (order, order[:0]) if fraction <= 0 or n_stop < 2 or n - n_stop < 2 else (order[n_stop:], order[:n_stop])


class PolicyNetwork:
    """The paper's policy network: dense layers (``units``, one activation per layer, the output ``sigmoid``)
    over the concatenated modality probabilities; ``inner_val`` of the fitting rows held out for early
    stopping, and at least ``min_updates`` mini-batch updates so that a small fitting set still trains it.
    ``mask=True`` adds one input per modality, 1 when the product has it (``present=`` of ``fit`` and
    ``predict``), so that the network is told, not left to guess, that a modality is missing; it is then also fitted
    on one copy of the fitting rows per modality with that modality blanked (probabilities ``fill``, by default the
    rows' label prevalence; presence 0), so that it has seen each modality go missing (notebook 05)."""

    def __init__(self, units: Sequence[int] = (200, 150), activations: Sequence[str] = ("relu", "relu", "sigmoid"),
                 *, epochs: int = 60, batch_size: int = 64, learning_rate: float = 1e-3, patience: int = 5,
                 inner_val: float = 0.2, min_updates: int = 0, seed: int = 0, name: str = "policy",
                 mask: bool = False, fill: np.ndarray | None = None) -> None:
        units, activations = tuple(int(u) for u in units), tuple(activations)
        if len(activations) != len(units) + 1:
            raise ValueError(f"give one activation per layer: {len(units)} hidden + 1 output = "
                             f"{len(units) + 1}, got {len(activations)}")
        if activations[-1] != "sigmoid":
            raise ValueError("the output activation must be 'sigmoid' (probabilities in [0, 1])")
        if any(u < 1 for u in units):
            raise ValueError(f"hidden units must be positive, got {units}")
        self.units, self.activations, self.min_updates = units, activations, int(min_updates)
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.inner_val, self.seed, self.name, self.mask = patience, inner_val, seed, name, mask
        self.fill = None if fill is None else np.asarray(fill, dtype=np.float32)
        self.model: Any = None
        self.history_: dict[str, Any] = {}

    def build(self, n_inputs: int, n_classes: int) -> Any:
        import keras
        hidden = zip(self.units, self.activations[:-1], strict=True)
        layers: list[Any] = [keras.Input((n_inputs,)), *(keras.layers.Dense(u, activation=act) for u, act in hidden),
                             keras.layers.Dense(n_classes, activation=self.activations[-1])]
        return keras.Sequential(layers, name=re.sub(r"[^A-Za-z0-9_.]", "_", self.name))  # a Keras scope name

    def _x(self, arrays: list[np.ndarray], present: np.ndarray | None) -> np.ndarray:
        if not self.mask:
            return np.hstack(arrays)
        if present is None or np.shape(present) != (len(arrays[0]), len(arrays)):
            raise ValueError(f"the masked network {self.name!r} needs present=, an n × {len(arrays)} matrix of 0/1 "
                             "(fusion.presence; build the FusionSet with fusion_set(..., ds=ds))")
        return np.hstack([*arrays, np.asarray(present, dtype=np.float32)])

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray, present: np.ndarray | None = None) -> PolicyNetwork:
        from prodlib.train import set_seed, train_small
        arrays = _check_inputs(inputs, y)
        x = self._x(arrays, present)
        set_seed(self.seed)
        self.model = self.build(x.shape[1], arrays[0].shape[1])
        y = np.asarray(y, dtype=np.float32)
        fit_idx, stop_idx = _inner_split(len(x), self.inner_val, self.seed)
        stop = (x[stop_idx], y[stop_idx]) if len(stop_idx) else (None, None)
        x_fit, y_fit = x[fit_idx], y[fit_idx]
        if self.mask:  # one blanked copy of the fitting rows per modality (the early-stopping rows stay as they are)
            fill = y_fit.mean(axis=0) if self.fill is None else self.fill
            rows, has = [a[fit_idx] for a in arrays], np.asarray(present)[fit_idx]
            x_fit = np.vstack([x_fit, *(self._x(*_blank(rows, has, k, fill)) for k in range(len(arrays)))])
            y_fit = np.vstack([y_fit] * (len(arrays) + 1))
        per_epoch = max(1, int(np.ceil(len(y_fit) / self.batch_size)))
        epochs = max(self.epochs, int(np.ceil(self.min_updates / per_epoch)))
        self.history_ = train_small(self.model, x_fit, y_fit, *stop, epochs=epochs,
                                     batch_size=self.batch_size, learning_rate=self.learning_rate,
                                     patience=self.patience, seed=self.seed)
        return self

    def predict(self, inputs: Sequence[np.ndarray], present: np.ndarray | None = None) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("fit the policy network before predict")
        return _predict(self.model, self._x(_check_inputs(inputs), present))


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    from prodlib.train import predict_proba
    return predict_proba(model, x, 4096)


class ModalitySubset:
    """Apply ``method`` to some modalities only (a bi-modal policy network uses two of the three)."""

    def __init__(self, method: FusionMethod, use: Sequence[int], name: str | None = None) -> None:
        self.method, self.use = method, tuple(use)
        self.name = name or getattr(method, "name", "subset")
        self.mask = bool(getattr(method, "mask", False))

    def _pick(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if max(self.use) >= len(inputs):
            raise ValueError(f"modality index {max(self.use)} out of range for {len(inputs)} inputs")
        return [inputs[i] for i in self.use]

    def _kw(self, present: np.ndarray | None) -> dict[str, Any]:
        return {"present": None if present is None else np.asarray(present)[:, self.use]} if self.mask else {}

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray, present: np.ndarray | None = None) -> ModalitySubset:
        self.method.fit(self._pick(inputs), y, **self._kw(present))
        return self

    def predict(self, inputs: Sequence[np.ndarray], present: np.ndarray | None = None) -> np.ndarray:
        return self.method.predict(self._pick(inputs), **self._kw(present))


def _best_modality(arrays: list[np.ndarray], y: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per product: the modality whose label set has the best F1 (the first on a tie), and whether it is unique."""
    f1 = np.stack([product_f1(y, a, threshold) for a in arrays])
    return f1.argmax(axis=0), (f1 == f1.max(axis=0)).sum(axis=0) == 1


def oracle_probs(inputs: Sequence[np.ndarray], y: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Headroom, not a method: per product, the probabilities of the single modality that is right with hindsight
    (best per-product F1; it reads the labels it is scored on): no fusion that picks one modality beats it.
    Notebook 05."""
    arrays = _check_inputs(inputs, y)
    pick, _ = _best_modality(arrays, np.asarray(y), threshold)
    return np.stack(arrays)[pick, np.arange(len(pick))]


class ModalityPicker:
    """Zahavy et al.'s class-agnostic policy: a small network reads each modality's ``top_k`` sorted confidences
    and picks one modality per product, whose probabilities it returns; it learns, on the fitting products where
    one modality is uniquely best (per-product F1), to pick that one."""

    name = "picker"

    def __init__(self, top_k: int = 3, units: int = 16, seed: int = 0, threshold: float = 0.5) -> None:
        self.top_k, self.units, self.seed, self.threshold = top_k, units, seed, threshold
        self.model: Any = None
        self.constant_ = 0

    def _x(self, arrays: list[np.ndarray]) -> np.ndarray:
        return np.hstack([-np.sort(-a, axis=1)[:, : self.top_k] for a in arrays])

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> ModalityPicker:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        arrays = _check_inputs(inputs, y)
        best, unique = _best_modality(arrays, np.asarray(y), self.threshold)
        x, target = self._x(arrays)[unique], best[unique]
        self.model, self.constant_ = None, int(np.bincount(best, minlength=len(arrays)).argmax())
        if len(set(target.tolist())) > 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.model = MLPClassifier((self.units,), max_iter=1000, random_state=self.seed).fit(x, target)
        return self

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        arrays = _check_inputs(inputs)
        n = len(arrays[0])
        pick = np.full(n, self.constant_) if self.model is None else self.model.predict(self._x(arrays))
        return np.stack(arrays)[pick, np.arange(n)]


def default_policy_grid(units: Sequence[int] = (200, 150)) -> list[dict[str, Any]]:
    """The small search of notebook 05: three activation patterns × the profile's units and half of them."""
    units = tuple(int(u) for u in units)
    half = tuple(max(4, u // 2) for u in units)
    patterns = [("sigmoid", "tanh", "sigmoid"), ("relu", "relu", "sigmoid"), ("tanh", "tanh", "sigmoid")]
    return [{"units": u, "activations": acts[: len(u)] + ("sigmoid",)} for u in (units, half) for acts in patterns]


def search_policy(inputs: Sequence[np.ndarray], y: np.ndarray, grid: Sequence[Mapping[str, Any]], *, folds: int = 3,
                  seed: int = 0, progress: bool = True, **network_kwargs: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """Policy-network settings by ``folds``-fold CV on the fitting set: best entry, table of mean/sd fold micro-F1."""
    from tqdm.auto import tqdm
    arrays = _check_inputs(inputs, y)
    y = np.asarray(y)
    if not grid:
        raise ValueError("the hyper-parameter grid is empty")
    splits = _product_folds(len(y), folds, seed)
    rows = []
    with tqdm(total=len(grid) * len(splits), desc="policy search", disable=not progress) as bar:
        for params in grid:
            scores = []
            for tr, te in splits:
                net = PolicyNetwork(**{**network_kwargs, **params, "seed": seed})
                net.fit([a[tr] for a in arrays], y[tr])
                scores.append(micro_f1(y[te], net.predict([a[te] for a in arrays])))
                bar.update()
            rows.append({"units": "/".join(map(str, params["units"])), "activations": "/".join(params["activations"]),
                         "cv_f1_mean": float(np.mean(scores)), "cv_f1_sd": float(np.std(scores)),
                         "params": dict(params)})
    table = pd.DataFrame(rows).sort_values("cv_f1_mean", ascending=False).reset_index(drop=True)
    return dict(table.loc[0, "params"]), table


def network_settings(profile: Any) -> dict[str, Any]:
    """Training settings of every policy network, from the profile's ``fusion_*`` fields. Notebook 05."""
    return {"epochs": int(profile.fusion_epochs), "batch_size": int(profile.fusion_batch_size),
            "learning_rate": float(profile.fusion_learning_rate), "patience": int(profile.fusion_patience),
            "min_updates": int(profile.fusion_min_updates)}


_PAIRS = (("image", "description"), ("image", "title"), ("title", "description"))  # the paper's bi-modal rows


def main_method(modalities: Sequence[str]) -> str:
    """The fused model the study reports first: the tri-modal network with three modalities, else the bi-modal
    policy network over the two there are (``image+title`` for titles and images). Notebook 05."""
    if len(modalities) == len(MODALITIES):
        return "trimodal"
    if pair := next((p for p in _PAIRS if set(p) == set(modalities)), None):
        return "+".join(pair)
    raise ValueError(f"fusion needs two or three of {', '.join(MODALITIES)}; got {list(modalities)}: with one "
                     "modality there is nothing to fuse")


def main_network(profile: Any, config: Mapping[str, Any] | None = None, modalities: Sequence[str] = MODALITIES, *,
                 mask: bool = False, fill: np.ndarray | None = None) -> Callable[[int], FusionMethod]:
    """Factory ``seed -> network`` of the main fused model (:func:`main_method`): the tri-modal network, by default
    the paper's sigmoid / tanh / sigmoid with ``profile.fusion_units``, or the bi-modal one over the two modalities
    there are (relu, relu, sigmoid); ``config`` overrides ``units`` and ``activations`` (:func:`trimodal_config`) and
    ``mask`` adds the presence inputs and the blanked copies (filled with ``fill``, :class:`PolicyNetwork`).
    Notebook 05."""
    main = main_method(modalities)
    units = tuple(profile.fusion_units)
    acts = ("sigmoid", "tanh", "sigmoid") if main == "trimodal" else ("relu", "relu", "sigmoid")
    settings = {"units": units, "activations": acts, **(config or {}), **network_settings(profile), "mask": mask,
                "fill": fill}
    name = main + (" masked" if mask else "")
    if main == "trimodal":
        return lambda seed: PolicyNetwork(seed=seed, name=name, **settings)
    use = tuple(list(modalities).index(m) for m in main.split("+"))
    return lambda seed: ModalitySubset(PolicyNetwork(seed=seed, name=main, **settings), use, name=name)


def make_methods(profile: Any, trimodal: Mapping[str, Any] | None = None,
                 modalities: Sequence[str] = MODALITIES) -> dict[str, Callable[[int], FusionMethod]]:
    """Factories ``seed -> method`` for every row of the paper's Table 3 (keys of :data:`prodlib.paper.FUSION`)
    that ``modalities`` allow (a bi-modal network only when both of its modalities are there, the tri-modal one
    only with all three; :func:`main_method` refuses one modality) plus ``ridge_full`` and Zahavy et al.'s
    ``picker``; ``trimodal`` is the main network's ``config`` (:func:`main_network`). Notebook 05."""
    main = main_method(modalities)
    idx = {m: k for k, m in enumerate(modalities)}

    def bimodal(a: str, b: str) -> Callable[[int], FusionMethod]:
        if f"{a}+{b}" == main:
            return main_network(profile, trimodal, modalities)
        return lambda seed: ModalitySubset(
            PolicyNetwork(tuple(profile.fusion_units), ("relu", "relu", "sigmoid"), seed=seed,
                          name=f"{a}+{b}", **network_settings(profile)), (idx[a], idx[b]), name=f"{a}+{b}")

    methods: dict[str, Callable[[int], FusionMethod]] = {
        "max": lambda seed: MaxPolicy(), "mean": lambda seed: MeanPolicy(),
        "ridge": lambda seed: RidgeFusion("modality", folds=profile.fusion_folds, seed=seed),
        "ridge_full": lambda seed: RidgeFusion("full", folds=profile.fusion_folds, seed=seed),
        **{f"{a}+{b}": bimodal(a, b) for a, b in _PAIRS if a in idx and b in idx}}
    if main == "trimodal":
        methods["trimodal"] = main_network(profile, trimodal, modalities)
    methods["picker"] = lambda seed: ModalityPicker(seed=seed, threshold=profile.threshold)
    return methods


@dataclass(frozen=True)
class FusionSet:
    """Products of one split: their ids, one probability matrix per modality (rows follow ``ids``), labels, and
    optionally ``present``, the ``n × m`` presence matrix of :func:`presence` (masked networks need it)."""

    ids: np.ndarray
    inputs: list[np.ndarray]
    y: np.ndarray
    split: str = ""
    present: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_inputs(self.inputs, self.y)
        if len(self.ids) != len(self.y):
            raise ValueError(f"{len(self.ids)} ids for {len(self.y)} label rows")
        if len(set(np.asarray(self.ids).tolist())) != len(self.ids):
            raise ValueError(f"duplicate product ids in the {self.split or 'fusion'} set")
        if self.present is not None and np.shape(self.present) != (len(self.ids), len(self.inputs)):
            want = (len(self.ids), len(self.inputs))
            raise ValueError(f"present has shape {np.shape(self.present)}; expected {want} (products × modalities)")


def presence(ds: Any, split: str, modalities: Sequence[str], missing_images: Sequence[str] = ()) -> np.ndarray:
    """``n × m`` float matrix of ``split`` (rows in the split's order), 1 where the product has the modality: a
    non-empty title or description, an image not in ``missing_images`` (chapter 4's ``missing_images.json``).
    Notebook 05."""
    part = ds.part(split)
    cols = [~np.isin(part.index.astype(str), [str(i) for i in missing_images]) if m == "image"
            else part[m].fillna("").astype(str).str.strip().ne("").to_numpy() for m in modalities]
    return np.stack(cols, axis=1).astype(np.float32)


def blank_modality(data: FusionSet, k: int, fill: np.ndarray) -> FusionSet:
    """``data`` with modality ``k`` missing for every product: its probabilities replaced by ``fill`` (a ``C``
    vector, e.g. the training prevalence that chapter 4 gives a product without an image) and its presence set to 0
    (the robustness table of notebook 05)."""
    inputs, present = _blank(data.inputs, data.present, k, fill)
    return FusionSet(data.ids, inputs, data.y, f"{data.split}, modality {k} blanked", present)


def _blank(inputs: Sequence[np.ndarray], present: np.ndarray | None, k: int,
           fill: np.ndarray) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Copies of ``inputs`` and ``present`` with modality ``k`` set to ``fill`` and absent."""
    out = list(inputs)
    out[k] = np.broadcast_to(np.asarray(fill, dtype=np.float32), out[k].shape).copy()
    if present is not None:
        present = np.array(present, dtype=np.float32)
        present[:, k] = 0.0
    return out, present


def fusion_set(stages: Sequence[Any] | Mapping[str, Any], split: str, ids: Sequence[str], y: np.ndarray, *,
               ds: Any = None) -> FusionSet:
    """Gather each stage's predictions for ``split`` aligned to ``ids`` (the dataset's split order); ``stages``
    is a list or the mapping of :func:`prodlib.artifacts.load_classifier_stages`. With ``ds`` (and the mapping),
    also the presence matrix (:func:`presence`; images from the image stage's ``missing_images.json``). Notebook 05."""
    present = None
    if ds is not None:
        if not isinstance(stages, Mapping):
            raise ValueError("give the stages as the mapping of load_classifier_stages to get the presence matrix")
        missing = stages["image"].load_json("missing_images") if "image" in stages else {}
        if split not in missing and "image" in stages:
            raise ArtifactError(f"the image stage's missing_images.json has no {split!r} list; rerun notebook 04")
        present = presence(ds, split, list(stages), missing.get(split, []))
    stages = list(stages.values()) if isinstance(stages, Mapping) else stages
    ids = [str(i) for i in ids]
    inputs = [np.asarray(s.predictions(split).align(ids), dtype=np.float32) for s in stages]
    return FusionSet(np.asarray(ids), inputs, np.asarray(y), split, present)


def aligned_features(stages: Sequence[Any] | Mapping[str, Any], split: str, ids: Sequence[str]) -> list[np.ndarray]:
    """Each stage's penultimate features for ``split`` (``features_<split>.npz``), rows in the order of
    ``ids``; raises :class:`prodlib.artifacts.ArtifactError` naming the stage when one is missing."""
    stages = list(stages.values()) if isinstance(stages, Mapping) else stages
    out = []
    for stage in stages:
        fid, x = stage.features(split)
        index = {i: n for n, i in enumerate(fid.tolist())}
        if missing := [i for i in ids if i not in index]:
            raise ArtifactError(f"stage {stage.stage!r} has no {split!r} features for {len(missing)} products, "
                                f"e.g. {missing[:3]}")
        out.append(np.asarray(x[[index[i] for i in ids]], dtype=np.float32))
    return out


@dataclass
class FusionRun:
    """One method fitted with several seeds: test predictions per seed and their micro-F1."""

    name: str
    probs: dict[int, np.ndarray] = field(default_factory=dict)
    f1: dict[int, float] = field(default_factory=dict)
    fitted: dict[int, Any] = field(default_factory=dict)

    @property
    def first(self) -> np.ndarray:
        """Predictions of the first seed (the ones saved and analysed)."""
        return self.probs[next(iter(self.probs))]

    @property
    def f1_mean(self) -> float:
        return float(np.mean(list(self.f1.values())))


def fit_and_predict(methods: Mapping[str, Callable[[int], FusionMethod]], fit: FusionSet, evaluate: FusionSet, *,
                    seeds: Sequence[int] = (0,), threshold: float = 0.5, progress: bool = True) -> dict[str, FusionRun]:
    """Fit every method on ``fit`` (validation) and predict ``evaluate`` (test), once per seed (fixed rules
    once). Raises :class:`LeakageError` if a product is in both sets: no test id can reach a ``fit``."""
    from tqdm.auto import tqdm
    if overlap := set(fit.ids.tolist()) & set(evaluate.ids.tolist()):
        raise LeakageError(f"{len(overlap)} products are in both the fitting set ({fit.split!r}) and the "
                           f"evaluation set ({evaluate.split!r}), e.g. {sorted(overlap)[:3]}; fit fusion on "
                           "validation predictions only")
    if not seeds:
        raise ValueError("give at least one seed")
    runs: dict[str, FusionRun] = {}
    for name, factory in tqdm(list(methods.items()), desc="fusion methods", disable=not progress):
        run = FusionRun(name)
        for seed in seeds:
            method = factory(int(seed))
            masked = getattr(method, "mask", False)  # a masked method is also told who has which modality
            method.fit(fit.inputs, fit.y, **({"present": fit.present} if masked else {}))
            probs = np.asarray(method.predict(evaluate.inputs, **({"present": evaluate.present} if masked else {})),
                               dtype=np.float32)
            if probs.shape != evaluate.y.shape or probs.min() < 0 or probs.max() > 1:
                raise ValueError(f"method {name!r} returned {probs.shape} outside [0, 1]")
            run.probs[int(seed)], run.fitted[int(seed)] = probs, method
            run.f1[int(seed)] = micro_f1(evaluate.y, probs, threshold)
            if isinstance(method, FixedRule):
                break
        runs[name] = run
    return runs


def fusion_threshold(method: FusionMethod, fit: FusionSet, *, folds: int = 3, seed: int = 0,
                              refit: Callable[[int], FusionMethod] | None = None, per_class: bool = False,
                              min_support: int = 5) -> float | np.ndarray:
    """The tuned threshold (:func:`prodlib.metrics.fit_threshold`) of a *fitted* fusion method, fitted on its
    fitting set without reusing its fit rows: out-of-fold predictions of ``refit(seed)`` models, or without
    ``refit`` the fitted model's own (fixed policies have nothing fitted)."""
    if refit is None:
        return fit_threshold(fit.y, method.predict(fit.inputs), per_class=per_class, min_support=min_support)
    oof = np.zeros_like(fit.y, dtype=np.float32)
    for tr, te in _product_folds(len(fit.y), folds, seed):
        oof[te] = refit(seed).fit([a[tr] for a in fit.inputs], fit.y[tr]).predict([a[te] for a in fit.inputs])
    return fit_threshold(fit.y, oof, per_class=per_class, min_support=min_support)


def modality_importance(method: FusionMethod, data: FusionSet, classes: Sequence[str], *,
                        modalities: Sequence[str] = MODALITIES, seed: int = 0) -> pd.DataFrame:
    """Per class and modality: a fitted method's F1 drop when that modality is shuffled over products (notebook 05)."""
    base = per_class_f1(data.y, method.predict(data.inputs))["f1"].to_numpy()
    rng = np.random.default_rng(seed)
    out = {}
    for k, name in enumerate(modalities[: len(data.inputs)]):
        shuffled = list(data.inputs)
        shuffled[k] = data.inputs[k][rng.permutation(len(data.y))]
        out[name] = base - per_class_f1(data.y, method.predict(shuffled))["f1"].to_numpy()
    return pd.DataFrame(out, index=pd.Index(list(classes), name="class"))


class EarlyFusion:
    """Early fusion: one classifier over the classifiers' concatenated penultimate features (standardised with
    training-set statistics), trained on the training split with early stopping on validation."""

    def __init__(self, units: Sequence[int] = (256,), dropout: float = 0.3, *, epochs: int = 40,
                 batch_size: int = 64, learning_rate: float = 1e-3, patience: int = 5, seed: int = 0) -> None:
        self.units, self.dropout, self.seed = tuple(int(u) for u in units), float(dropout), seed
        self.epochs, self.batch_size, self.learning_rate, self.patience = epochs, batch_size, learning_rate, patience
        self.model: Any = None
        self.history_: dict[str, Any] = {}

    def _scale(self, features: Sequence[np.ndarray]) -> np.ndarray:
        x = np.hstack([np.asarray(f, dtype=np.float32) for f in features])
        if x.shape[1] != len(self.mean_):
            raise ValueError(f"features have {x.shape[1]} columns; the model was fitted on {len(self.mean_)}")
        return (x - self.mean_) / self.std_

    def fit(self, train: Sequence[np.ndarray], y_train: np.ndarray, val: Sequence[np.ndarray],
            y_val: np.ndarray) -> EarlyFusion:
        import keras

        from prodlib.train import set_seed, train_small
        x = np.hstack([np.asarray(f, dtype=np.float32) for f in train])
        if not np.isfinite(x).all():
            raise ValueError("training features hold NaN or infinite values")
        self.mean_, self.std_ = x.mean(axis=0), x.std(axis=0) + 1e-6
        x, xv = self._scale(train), self._scale(val)
        set_seed(self.seed)
        layers: list[Any] = [keras.Input((x.shape[1],))]
        for u in self.units:
            layers += [keras.layers.Dense(u, activation="relu"), keras.layers.Dropout(self.dropout)]
        y_train, y_val = np.asarray(y_train, dtype=np.float32), np.asarray(y_val, dtype=np.float32)
        layers.append(keras.layers.Dense(y_train.shape[1], activation="sigmoid"))
        self.model = keras.Sequential(layers, name="early_fusion")
        self.history_ = train_small(self.model, x, y_train, xv, y_val, epochs=self.epochs, batch_size=self.batch_size,
                                     learning_rate=self.learning_rate, patience=self.patience, seed=self.seed)
        return self

    def predict(self, features: Sequence[np.ndarray]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("fit the early-fusion model before predict")
        return _predict(self.model, self._scale(features))

    def hidden(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """The last hidden layer's activations (ReLU, no dropout): a learned joint vector per product (notebook 07)."""
        if self.model is None:
            raise RuntimeError("fit or load the early-fusion model first")
        h = self._scale(features)
        for layer in [la for la in self.model.layers if getattr(la, "kernel", None) is not None][:-1]:
            w, b = layer.get_weights()
            h = np.maximum(h @ w + b, 0.0)
        return h.astype(np.float32)

    def save(self, folder: str | Path) -> None:
        """Write the network and its feature scaling into ``folder`` (stage ``05_fusion``)."""
        self.model.save(Path(folder) / "early_fusion.keras")
        np.savez(Path(folder) / "early_fusion_scale.npz", mean=self.mean_, std=self.std_)

    @classmethod
    def load(cls, folder: str | Path) -> EarlyFusion:
        """The network :meth:`save` wrote (chapter 7 reuses chapter 5's instead of training another)."""
        import keras
        if not (path := Path(folder) / "early_fusion.keras").exists():
            raise ArtifactError(f"{path} does not exist; rerun notebook 05 (early fusion could not run there?)")
        net = cls()
        net.model = keras.models.load_model(path)
        scale = np.load(Path(folder) / "early_fusion_scale.npz")
        net.mean_, net.std_ = scale["mean"], scale["std"]
        return net


def trimodal_config(fit: FusionSet, profile: Any) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Tri-modal network ``units``/``activations``: the :func:`search_policy` pick if ``profile.fusion_search``, else
    the paper's sigmoid/tanh/sigmoid with ``profile.fusion_units`` (and no table). With two modalities (``fit`` has
    two inputs) the main network is the paper's bi-modal one, relu/relu/sigmoid, and nothing is searched: the
    paper searched the tri-modal network only. Notebook 05."""
    if len(fit.inputs) == 2:
        return {"units": tuple(profile.fusion_units), "activations": ("relu", "relu", "sigmoid")}, None
    if not profile.fusion_search:
        return {"units": tuple(profile.fusion_units), "activations": ("sigmoid", "tanh", "sigmoid")}, None
    best, table = search_policy(fit.inputs, fit.y, default_policy_grid(profile.fusion_units),
                                folds=profile.fusion_folds, seed=profile.seed, **network_settings(profile))
    return best, table.drop(columns="params")


def early_fusion(stages: Mapping[str, Any], ds: Any, profile: Any) -> tuple[dict[int, np.ndarray], EarlyFusion]:
    """Early fusion's test probabilities for each seed of ``profile.seeds`` and the first seed's network: an
    :class:`EarlyFusion` network (``early_*`` settings, ``fusion_batch_size``) on the classifiers' penultimate
    features, trained on train, early-stopped on validation; :class:`~prodlib.artifacts.ArtifactError` if a stage
    saved no features. Notebook 05."""
    f_train, f_val, f_test = (aligned_features(stages, s, ds.splits[s]) for s in ("train", "val", "test"))
    out, nets = {}, []
    for seed in profile.seeds:
        net = EarlyFusion(profile.early_units, epochs=profile.early_epochs, batch_size=profile.fusion_batch_size,
                          learning_rate=profile.early_learning_rate, patience=profile.early_patience, seed=seed)
        out[int(seed)] = net.fit(f_train, ds.y("train"), f_val, ds.y("val")).predict(f_test)
        nets.append(net)
    return out, nets[0]


def naive_fusion(stages: Mapping[str, Any], ds: Any, factory: Callable[[int], FusionMethod], evaluate: FusionSet,
                 seed: int) -> tuple[FusionRun, FusionSet]:
    """The naive variant, as a warning: the method of ``factory`` fitted on the classifiers' outputs for their
    own *training* products and scored on ``evaluate``; also returns that training set. Raises
    :class:`prodlib.artifacts.ArtifactError` when a stage saved no training-set predictions. Notebook 05."""
    train = fusion_set(stages, "train", ds.splits["train"], ds.y("train"))
    return fit_and_predict({"naive": factory}, train, evaluate, seeds=(seed,), progress=False)["naive"], train
