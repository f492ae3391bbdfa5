"""Late fusion of the three classifiers' sigmoid outputs (the paper's Table 3), early fusion of their
penultimate features, and the leakage-safe helper that fits every method on validation predictions and
scores it on test.

Every late-fusion method has one small interface (:class:`FusionMethod`): ``fit(inputs, y)`` on a list of
``n × C`` probability matrices (one per modality, **validation-set** predictions) and ``predict(inputs)``
returning ``n × C`` probabilities in ``[0, 1]``. Explained in notebook 05 (*Fusion*).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from prodlib.metrics import bootstrap_ci, micro_f1, tune_class_thresholds

__all__ = [
    "CLASSIFIER_STAGES",
    "MODALITIES",
    "load_classifier_stages",
    "EarlyFusion",
    "FusionMethod",
    "FusionRun",
    "FusionSet",
    "LeakageError",
    "MaxPolicy",
    "MeanPolicy",
    "ModalitySubset",
    "PolicyNetwork",
    "RidgeFusion",
    "aligned_features",
    "class_thresholds_from_val",
    "default_policy_grid",
    "fit_and_predict",
    "fusion_set",
    "make_methods",
    "network_settings",
    "modality_importance",
    "score_table",
    "search_policy",
]

#: Modality order of every ``inputs`` list in this module.
MODALITIES: tuple[str, ...] = ("title", "description", "image")
#: The stage folder of each modality's classifier (notebooks 02–04).
CLASSIFIER_STAGES: dict[str, str] = {"title": "02_title", "description": "03_description", "image": "04_image"}


def load_classifier_stages(profile: Any, run_dir: Any, fingerprint: str) -> dict[str, Any]:
    """The three classifier stages of ``profile``'s run (in :data:`MODALITIES` order), refused unless they
    were all run on the data with ``fingerprint``. Notebooks 05 and 06."""
    from prodlib.artifacts import check_same_run, load_stage

    stages = {m: load_stage(profile, stage, run_dir, fingerprint=fingerprint)
              for m, stage in CLASSIFIER_STAGES.items()}
    check_same_run(stages.values())
    return stages


class LeakageError(RuntimeError):
    """A product that is evaluated was about to be used for fitting (or the reverse)."""


@runtime_checkable
class FusionMethod(Protocol):
    """A late-fusion policy: fitted on validation predictions, applied to test predictions (notebook 05)."""

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


# --------------------------------------------------------------------------------------------------
# Fixed policies
# --------------------------------------------------------------------------------------------------
class MaxPolicy:
    """Element-wise maximum of the modalities' probabilities (nothing to fit)."""

    name = "max"

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> MaxPolicy:
        _check_inputs(inputs, y)
        return self

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return np.max(np.stack(_check_inputs(inputs)), axis=0)


class MeanPolicy:
    """Element-wise mean of the modalities' probabilities (nothing to fit)."""

    name = "mean"

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> MeanPolicy:
        _check_inputs(inputs, y)
        return self

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return np.mean(np.stack(_check_inputs(inputs)), axis=0)


# --------------------------------------------------------------------------------------------------
# Ridge regression
# --------------------------------------------------------------------------------------------------
def _product_folds(n: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    folds = max(2, min(folds, n))
    return list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.arange(n)))


class RidgeFusion:
    """Ridge regression on the stacked probabilities, clipped to ``[0, 1]``.

    ``per="modality"``: one weight per modality shared by all classes (the paper's ``min ‖wA − y‖² + α‖w‖²``
    with ``w`` over modalities), fitted on the ``(product, class)`` pairs. ``per="full"``: the full linear map
    from the concatenated ``m·C`` inputs to ``C`` outputs. ``alpha`` is chosen among ``alphas`` by
    ``folds``-fold cross-validation over products of the fitting set (validation only).
    """

    def __init__(self, per: str = "modality", alphas: Sequence[float] = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0),
                 folds: int = 3, seed: int = 0) -> None:
        if per not in ("modality", "full"):
            raise ValueError(f"unknown ridge variant {per!r}; choose 'modality' or 'full'")
        self.per = per
        self.alphas = tuple(float(a) for a in alphas)
        self.folds = folds
        self.seed = seed
        self.name = "ridge" if per == "modality" else "ridge_full"
        self.alpha_: float | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | float | None = None

    def _design(self, arrays: list[np.ndarray]) -> np.ndarray:
        if self.per == "modality":
            return np.stack(arrays, axis=-1).reshape(-1, len(arrays))
        return np.hstack(arrays)

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> RidgeFusion:
        from sklearn.linear_model import RidgeCV

        arrays = _check_inputs(inputs, y)
        n, c = arrays[0].shape
        folds = _product_folds(n, self.folds, self.seed)
        x = self._design(arrays)
        if self.per == "modality":  # rows are (product, class) pairs: fold by product, never split a product
            rows = np.arange(n * c).reshape(n, c)
            folds = [(rows[tr].ravel(), rows[te].ravel()) for tr, te in folds]
            target = np.asarray(y, dtype=np.float64).reshape(-1)
        else:
            target = np.asarray(y, dtype=np.float64)
        model = RidgeCV(alphas=list(self.alphas), cv=folds).fit(x, target)
        self._model = model
        self.alpha_ = float(model.alpha_)
        self.coef_ = np.asarray(model.coef_)
        self.intercept_ = model.intercept_
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
        out = self._model.predict(self._design(arrays))
        return np.clip(out.reshape(arrays[0].shape), 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Policy networks (Keras)
# --------------------------------------------------------------------------------------------------
def _set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend (:func:`prodlib.train.set_seed`)."""
    from prodlib.train import set_seed

    set_seed(int(seed))


def _inner_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/stop split of ``n`` rows for early stopping (``fraction`` held out, at least 2 rows)."""
    order = np.random.default_rng(seed).permutation(n)
    n_stop = int(round(n * fraction))
    if fraction <= 0 or n_stop < 2 or n - n_stop < 2:
        return order, order[:0]
    return order[n_stop:], order[:n_stop]


def _bce(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _train_small(model: Any, x: np.ndarray, y: np.ndarray, x_stop: np.ndarray | None, y_stop: np.ndarray | None,
                 *, epochs: int, batch_size: int, learning_rate: float, patience: int, seed: int) -> dict[str, Any]:
    """Adam + binary cross-entropy, mini-batches in a plain ``train_on_batch`` loop; with a stopping set,
    early stopping on its loss and the best epoch's weights restored.

    The fusion networks are tiny: ``model.fit``'s per-epoch overhead would cost ten times the arithmetic.
    """
    import keras

    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be at least 1")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    best, best_epoch, best_weights, losses = np.inf, 0, None, []
    epoch = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        train_loss = [float(np.asarray(model.train_on_batch(x[b], y[b])).ravel()[0])
                      for b in np.array_split(order, max(1, int(np.ceil(len(x) / batch_size))))]
        if x_stop is None or y_stop is None or not len(x_stop):
            losses.append(float(np.mean(train_loss)))
            continue
        loss = _bce(y_stop, model.predict_on_batch(np.asarray(x_stop, dtype=np.float32)))
        losses.append(loss)
        if loss < best - 1e-6:
            best, best_epoch, best_weights = loss, epoch, model.get_weights()
        elif epoch - best_epoch >= patience:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    else:
        best_epoch = epoch
    return {"epochs_run": epoch, "best_epoch": best_epoch, "best_loss": float(np.min(losses)),
            "loss": losses}


class PolicyNetwork:
    """A dense network over the concatenated modality probabilities (the paper's policy network).

    ``units`` are the hidden layers; ``activations`` has one entry per layer including the output, whose
    activation must be ``sigmoid`` (the tri-modal network of the paper: sigmoid / tanh / sigmoid). Fitted on
    the validation predictions with ``inner_val`` of them held out for early stopping. On a small fitting
    set an epoch is only a few mini-batches, so training runs for at least ``min_updates`` mini-batch
    updates (more epochs; early stopping still applies).
    """

    def __init__(self, units: Sequence[int] = (200, 150), activations: Sequence[str] = ("relu", "relu", "sigmoid"),
                 *, epochs: int = 60, batch_size: int = 64, learning_rate: float = 1e-3, patience: int = 5,
                 inner_val: float = 0.2, min_updates: int = 0, seed: int = 0, name: str = "policy") -> None:
        units = tuple(int(u) for u in units)
        activations = tuple(activations)
        if len(activations) != len(units) + 1:
            raise ValueError(f"give one activation per layer: {len(units)} hidden + 1 output = "
                             f"{len(units) + 1}, got {len(activations)}")
        if activations[-1] != "sigmoid":
            raise ValueError("the output activation must be 'sigmoid' (probabilities in [0, 1])")
        if any(u < 1 for u in units):
            raise ValueError(f"hidden units must be positive, got {units}")
        self.units, self.activations = units, activations
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.inner_val, self.seed, self.name = patience, inner_val, seed, name
        self.min_updates = int(min_updates)
        self.model: Any = None
        self.history_: dict[str, Any] = {}

    def build(self, n_inputs: int, n_classes: int) -> Any:
        import keras

        layers: list[Any] = [keras.Input((n_inputs,))]
        for u, act in zip(self.units, self.activations[:-1], strict=True):
            layers.append(keras.layers.Dense(u, activation=act))
        layers.append(keras.layers.Dense(n_classes, activation=self.activations[-1]))
        return keras.Sequential(layers, name=self.name.replace("+", "_"))

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> PolicyNetwork:
        arrays = _check_inputs(inputs, y)
        x = np.hstack(arrays)
        _set_seed(self.seed)
        self.model = self.build(x.shape[1], arrays[0].shape[1])
        y = np.asarray(y, dtype=np.float32)
        fit_idx, stop_idx = _inner_split(len(x), self.inner_val, self.seed)
        stop = (x[stop_idx], y[stop_idx]) if len(stop_idx) else (None, None)
        per_epoch = max(1, int(np.ceil(len(fit_idx) / self.batch_size)))
        epochs = max(self.epochs, int(np.ceil(self.min_updates / per_epoch)))
        self.history_ = _train_small(self.model, x[fit_idx], y[fit_idx], *stop, epochs=epochs,
                                     batch_size=self.batch_size, learning_rate=self.learning_rate,
                                     patience=self.patience, seed=self.seed)
        return self

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("fit the policy network before predict")
        x = np.hstack(_check_inputs(inputs))
        return _predict(self.model, x)


def _predict(model: Any, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Probabilities of a small Keras model, in batches, as ``float32`` in [0, 1]."""
    parts = [np.asarray(model.predict_on_batch(x[i:i + batch_size]), dtype=np.float32)
             for i in range(0, len(x), batch_size)] or [np.zeros((0, model.output_shape[-1]), np.float32)]
    out = np.concatenate(parts)
    if not np.isfinite(out).all():
        raise FloatingPointError("the network produced non-finite outputs; lower the learning rate")
    return np.clip(out, 0.0, 1.0)


class ModalitySubset:
    """Apply ``method`` to some modalities only (a bi-modal policy network uses two of the three)."""

    def __init__(self, method: FusionMethod, use: Sequence[int], name: str | None = None) -> None:
        self.method, self.use = method, tuple(use)
        self.name = name or getattr(method, "name", "subset")

    def _pick(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if max(self.use) >= len(inputs):
            raise ValueError(f"modality index {max(self.use)} out of range for {len(inputs)} inputs")
        return [inputs[i] for i in self.use]

    def fit(self, inputs: Sequence[np.ndarray], y: np.ndarray) -> ModalitySubset:
        self.method.fit(self._pick(inputs), y)
        return self

    def predict(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return self.method.predict(self._pick(inputs))


def default_policy_grid(units: Sequence[int] = (200, 150)) -> list[dict[str, Any]]:
    """The small search of notebook 05: three activation patterns × the profile's units and half of them."""
    units = tuple(int(u) for u in units)
    half = tuple(max(4, u // 2) for u in units)
    patterns = [("sigmoid", "tanh", "sigmoid"), ("relu", "relu", "sigmoid"), ("tanh", "tanh", "sigmoid")]
    grid = []
    for u in (units, half):
        for acts in patterns:
            grid.append({"units": u, "activations": acts[: len(u)] + ("sigmoid",)})
    return grid


def search_policy(inputs: Sequence[np.ndarray], y: np.ndarray, grid: Sequence[Mapping[str, Any]], *,
                  folds: int = 3, seed: int = 0, progress: bool = True,
                  **network_kwargs: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick the policy network's hyper-parameters by ``folds``-fold CV on the *fitting* set (validation).

    Returns the best grid entry and a table of mean/sd fold micro-F1 per entry (best first).
    """
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
            rows.append({"units": "/".join(map(str, params["units"])),
                         "activations": "/".join(params["activations"]),
                         "cv_f1_mean": float(np.mean(scores)), "cv_f1_sd": float(np.std(scores)),
                         "params": dict(params)})
    table = pd.DataFrame(rows).sort_values("cv_f1_mean", ascending=False).reset_index(drop=True)
    return dict(table.loc[0, "params"]), table


def network_settings(profile: Any) -> dict[str, Any]:
    """Training settings of every policy network, from the profile: ``fusion_epochs``,
    ``fusion_batch_size``, ``fusion_learning_rate``, ``fusion_patience`` and ``fusion_min_updates`` (at least
    that many mini-batch updates, so that a small validation set still trains the network). Notebook 05."""
    return {"epochs": int(profile.fusion_epochs), "batch_size": int(profile.fusion_batch_size),
            "learning_rate": float(profile.fusion_learning_rate),
            "patience": int(profile.fusion_patience),
            "min_updates": int(profile.fusion_min_updates)}


def make_methods(profile: Any, trimodal: Mapping[str, Any] | None = None,
                 modalities: Sequence[str] = MODALITIES) -> dict[str, Callable[[int], FusionMethod]]:
    """Factories ``seed -> method`` for every row of the paper's Table 3 (plus ``ridge_full``).

    Keys follow :data:`prodlib.paper.FUSION`. ``trimodal`` overrides the tri-modal network's ``units`` and
    ``activations`` (e.g. the result of :func:`search_policy`); the default is the paper's sigmoid / tanh /
    sigmoid with ``profile.fusion_units``. The networks' training settings are :func:`network_settings`.
    """
    idx = {m: k for k, m in enumerate(modalities)}
    common = network_settings(profile)
    tri = {"units": tuple(profile.fusion_units), "activations": ("sigmoid", "tanh", "sigmoid")}
    tri.update(trimodal or {})
    folds = profile.fusion_folds

    def bimodal(a: str, b: str) -> Callable[[int], FusionMethod]:
        return lambda seed: ModalitySubset(
            PolicyNetwork(tuple(profile.fusion_units), ("relu", "relu", "sigmoid"), seed=seed,
                          name=f"{a}+{b}", **common), (idx[a], idx[b]), name=f"{a}+{b}")

    return {
        "max": lambda seed: MaxPolicy(),
        "mean": lambda seed: MeanPolicy(),
        "ridge": lambda seed: RidgeFusion("modality", folds=folds, seed=seed),
        "ridge_full": lambda seed: RidgeFusion("full", folds=folds, seed=seed),
        "image+description": bimodal("image", "description"),
        "image+title": bimodal("image", "title"),
        "title+description": bimodal("title", "description"),
        "trimodal": lambda seed: PolicyNetwork(seed=seed, name="trimodal", **tri, **common),
    }


# --------------------------------------------------------------------------------------------------
# The leakage-safe experiment
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FusionSet:
    """Products of one split: their ids, one probability matrix per modality (rows follow ``ids``) and labels."""

    ids: np.ndarray
    inputs: list[np.ndarray]
    y: np.ndarray
    split: str = ""

    def __post_init__(self) -> None:
        _check_inputs(self.inputs, self.y)
        if len(self.ids) != len(self.y):
            raise ValueError(f"{len(self.ids)} ids for {len(self.y)} label rows")
        if len(set(np.asarray(self.ids).tolist())) != len(self.ids):
            raise ValueError(f"duplicate product ids in the {self.split or 'fusion'} set")

    def subset(self, mask: np.ndarray) -> FusionSet:
        """The products where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        return FusionSet(self.ids[mask], [a[mask] for a in self.inputs], self.y[mask], self.split)


def fusion_set(stages: Sequence[Any], split: str, ids: Sequence[str], y: np.ndarray) -> FusionSet:
    """Gather each stage's predictions for ``split`` aligned to ``ids`` (the dataset's split order)."""
    ids = [str(i) for i in ids]
    inputs = [np.asarray(s.predictions(split).align(ids), dtype=np.float32) for s in stages]
    return FusionSet(np.asarray(ids), inputs, np.asarray(y), split)


def aligned_features(stages: Sequence[Any], split: str, ids: Sequence[str]) -> list[np.ndarray]:
    """Each stage's penultimate features for ``split`` (``features_<split>.npz``), rows in the order of
    ``ids``; raises :class:`prodlib.artifacts.ArtifactError` naming the stage when one is missing."""
    from prodlib.artifacts import ArtifactError

    out = []
    for stage in stages:
        fid, x = stage.features(split)
        index = {i: n for n, i in enumerate(fid.tolist())}
        missing = [i for i in ids if i not in index]
        if missing:
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

    @property
    def f1_sd(self) -> float:
        return float(np.std(list(self.f1.values()), ddof=1)) if len(self.f1) > 1 else math.nan


def fit_and_predict(methods: Mapping[str, Callable[[int], FusionMethod]], fit: FusionSet, evaluate: FusionSet,
                    *, seeds: Sequence[int] = (0,), threshold: float = 0.5,
                    progress: bool = True) -> dict[str, FusionRun]:
    """Fit every method on ``fit`` (validation) and predict ``evaluate`` (test), once per seed.

    Raises :class:`LeakageError` if a product is in both sets: no test id can reach a ``fit``. Fixed
    policies (max, mean) give the same result for every seed and are fitted once.
    """
    from tqdm.auto import tqdm

    overlap = set(fit.ids.tolist()) & set(evaluate.ids.tolist())
    if overlap:
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
            method.fit(fit.inputs, fit.y)
            probs = np.asarray(method.predict(evaluate.inputs), dtype=np.float32)
            if probs.shape != evaluate.y.shape or probs.min() < 0 or probs.max() > 1:
                raise ValueError(f"method {name!r} returned {probs.shape} outside [0, 1]")
            run.probs[int(seed)], run.fitted[int(seed)] = probs, method
            run.f1[int(seed)] = micro_f1(evaluate.y, probs, threshold)
            if isinstance(method, (MaxPolicy, MeanPolicy)):
                break
        runs[name] = run
    return runs


def score_table(probs: Mapping[str, np.ndarray], y: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                threshold: float = 0.5, class_thresholds: Mapping[str, np.ndarray] | None = None,
                f1_by_seed: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """Test micro-F1 (in %) with a bootstrap 95 % CI for each model; optional columns: F1 with per-class
    thresholds tuned on validation, and mean ± sd over seeds."""
    rows = []
    for name, p in probs.items():
        lo, hi = bootstrap_ci(y, p, threshold, n=n_boot, seed=seed)
        row: dict[str, Any] = {"model": name, "f1": 100 * micro_f1(y, p, threshold),
                               "ci_low": 100 * lo, "ci_high": 100 * hi}
        if class_thresholds is not None and name in class_thresholds:
            row["f1_tuned"] = 100 * micro_f1(y, p, class_thresholds[name])
        if f1_by_seed is not None and name in f1_by_seed and len(f1_by_seed[name]) > 1:
            vals = 100 * np.asarray(f1_by_seed[name], dtype=float)
            row["seeds_mean"], row["seeds_sd"], row["n_seeds"] = vals.mean(), vals.std(ddof=1), len(vals)
        rows.append(row)
    return pd.DataFrame(rows)


def class_thresholds_from_val(method: FusionMethod, fit: FusionSet, *, folds: int = 3,
                              seed: int = 0, refit: Callable[[int], FusionMethod] | None = None) -> np.ndarray:
    """Per-class thresholds for a *fitted* fusion method, tuned on validation without reusing its fit rows:
    out-of-fold predictions of ``refit(seed)`` models when ``refit`` is given, else the fitted model's own
    validation predictions (fine for fixed policies)."""
    if refit is None:
        return tune_class_thresholds(fit.y, method.predict(fit.inputs))
    oof = np.zeros_like(fit.y, dtype=np.float32)
    for tr, te in _product_folds(len(fit.y), folds, seed):
        m = refit(seed).fit([a[tr] for a in fit.inputs], fit.y[tr])
        oof[te] = m.predict([a[te] for a in fit.inputs])
    return tune_class_thresholds(fit.y, oof)


def modality_importance(method: FusionMethod, data: FusionSet, classes: Sequence[str], *,
                        modalities: Sequence[str] = MODALITIES, seed: int = 0) -> pd.DataFrame:
    """What a fitted fusion method relies on: for each class and modality, the drop in that class's F1
    when the modality's rows are shuffled across products (permutation importance; notebook 05)."""
    from prodlib.metrics import per_class_f1

    base = per_class_f1(data.y, method.predict(data.inputs))["f1"].to_numpy()
    rng = np.random.default_rng(seed)
    out = {}
    for k, name in enumerate(modalities[: len(data.inputs)]):
        shuffled = list(data.inputs)
        shuffled[k] = data.inputs[k][rng.permutation(len(data.y))]
        out[name] = base - per_class_f1(data.y, method.predict(shuffled))["f1"].to_numpy()
    frame = pd.DataFrame(out, index=list(classes))
    frame.index.name = "class"
    return frame


# --------------------------------------------------------------------------------------------------
# Early fusion
# --------------------------------------------------------------------------------------------------
class EarlyFusion:
    """A joint classifier over the concatenated penultimate features of the three classifiers, trained on
    the training split with early stopping on validation (the alternative to late fusion; notebook 05).

    Features are standardised with training-set statistics.
    """

    def __init__(self, units: Sequence[int] = (256,), dropout: float = 0.3, *, epochs: int = 40,
                 batch_size: int = 64, learning_rate: float = 1e-3, patience: int = 5, seed: int = 0) -> None:
        self.units, self.dropout = tuple(int(u) for u in units), float(dropout)
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.seed = patience, seed
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

        x = np.hstack([np.asarray(f, dtype=np.float32) for f in train])
        if not np.isfinite(x).all():
            raise ValueError("training features hold NaN or infinite values")
        self.mean_ = x.mean(axis=0)
        self.std_ = x.std(axis=0) + 1e-6
        x, xv = self._scale(train), self._scale(val)
        _set_seed(self.seed)
        layers: list[Any] = [keras.Input((x.shape[1],))]
        for u in self.units:
            layers += [keras.layers.Dense(u, activation="relu"), keras.layers.Dropout(self.dropout)]
        layers.append(keras.layers.Dense(np.asarray(y_train).shape[1], activation="sigmoid"))
        self.model = keras.Sequential(layers, name="early_fusion")
        self.history_ = _train_small(self.model, x, np.asarray(y_train, dtype=np.float32), xv,
                                     np.asarray(y_val, dtype=np.float32), epochs=self.epochs,
                                     batch_size=self.batch_size, learning_rate=self.learning_rate,
                                     patience=self.patience, seed=self.seed)
        return self

    def predict(self, features: Sequence[np.ndarray]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("fit the early-fusion model before predict")
        return _predict(self.model, self._scale(features))
