"""A classical reference for Tables 1 and 3 (notebook 05): TF-IDF and one-vs-rest logistic regression, fitted
on train, ``C`` tuned on validation micro-F1, scored on test."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prodlib.metrics import micro_f1

__all__ = ["BaselineResult", "TfidfBaseline", "fit_tfidf_baseline", "tfidf_baselines"]

class TfidfBaseline:
    """TF-IDF (word uni+bigrams, one vectoriser per text field) → one-vs-rest logistic regression. Texts are
    one list of texts, or a list of fields (lists of texts of equal length)."""

    def __init__(self, C: float = 1.0, max_features: int = 50_000, ngram_range: tuple[int, int] = (1, 2),
                 min_df: int = 1, seed: int = 0) -> None:
        if C <= 0:
            raise ValueError(f"C must be positive, got {C}")
        self.C, self.max_features, self.ngram_range, self.min_df, self.seed = C, max_features, ngram_range, min_df, seed
        self.vectorizers: list[Any] = []
        self.model: Any = None

    @staticmethod
    def _fields(texts: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
        if len(texts) and isinstance(texts[0], str):
            return [[str(t) for t in texts]]
        fields = [[("" if t is None else str(t)) for t in f] for f in texts]  # type: ignore[union-attr]
        if len({len(f) for f in fields}) > 1:
            raise ValueError("every text field must have one entry per product")
        return fields

    def _transform(self, fields: list[list[str]]) -> Any:
        from scipy.sparse import hstack

        if len(fields) != len(self.vectorizers):
            raise ValueError(f"got {len(fields)} text fields; the model was fitted on {len(self.vectorizers)}")
        return hstack([v.transform(f) for v, f in zip(self.vectorizers, fields, strict=True)]).tocsr()

    def fit(self, texts: Sequence[str] | Sequence[Sequence[str]], y: np.ndarray) -> TfidfBaseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        fields, y = self._fields(texts), np.asarray(y)
        if y.ndim != 2 or len(y) != len(fields[0]):
            raise ValueError(f"labels have shape {y.shape}; expected ({len(fields[0])}, n_classes)")
        self.vectorizers = []
        for f in fields:
            try:
                vec = TfidfVectorizer(lowercase=True, ngram_range=self.ngram_range, max_features=self.max_features,
                                      min_df=self.min_df, sublinear_tf=True, token_pattern=r"(?u)\b\w\w+\b").fit(f)
            except ValueError:  # a field with no words at all (e.g. every description empty)
                vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 1)).fit([*f, "_"])
            self.vectorizers.append(vec)
        clf = LogisticRegression(C=self.C, solver="liblinear", max_iter=1000, random_state=self.seed)
        with warnings.catch_warnings():  # classes absent from train become constant predictors
            warnings.simplefilter("ignore", UserWarning)
            self.model = OneVsRestClassifier(clf).fit(self._transform(fields), y)
        return self

    def predict(self, texts: Sequence[str] | Sequence[Sequence[str]]) -> np.ndarray:
        """``float32`` probabilities, products × classes."""
        if self.model is None:
            raise RuntimeError("fit the baseline before predict")
        return np.asarray(self.model.predict_proba(self._transform(self._fields(texts))), dtype=np.float32)


@dataclass
class BaselineResult:
    """A tuned baseline: its ``C``, validation F1 per ``C`` tried, and validation/test probabilities."""

    name: str
    C: float
    val_f1_by_C: dict[float, float]
    probs_val: np.ndarray
    probs_test: np.ndarray
    model: TfidfBaseline = field(repr=False)


def fit_tfidf_baseline(name: str, train: Sequence[Any], y_train: np.ndarray, val: Sequence[Any], y_val: np.ndarray,
                       test: Sequence[Any], *, Cs: Sequence[float] = (0.3, 1.0, 3.0, 10.0, 30.0),
                       threshold: float = 0.5, seed: int = 0, **kwargs: Any) -> BaselineResult:
    """Fit on train for each ``C``; keep the best validation micro-F1 (first on ties; test never chooses)."""
    if not Cs:
        raise ValueError("give at least one value of C")
    scores: dict[float, float] = {}
    best: tuple[float, TfidfBaseline, np.ndarray] | None = None
    for C in map(float, Cs):
        model = TfidfBaseline(C=C, seed=seed, **kwargs).fit(train, y_train)
        pv = model.predict(val)
        scores[C] = micro_f1(y_val, pv, threshold)
        if best is None or scores[C] > best[0]:
            best = (scores[C], model, pv)
    assert best is not None
    _, model, pv = best
    return BaselineResult(name, model.C, scores, pv, model.predict(test), model)


def tfidf_baselines(parts: Mapping[str, Any], ys: Mapping[str, np.ndarray], *, progress: bool = True,
                    modalities: Sequence[str] = ("title", "description"), **kwargs: Any) -> dict[str, BaselineResult]:
    """``tfidf_title``, ``tfidf_description`` and ``tfidf_title+description`` on ``parts`` (``train``/``val``/
    ``test`` frames with those columns) and ``ys`` (their label matrices); only those whose texts are among the
    study's ``modalities`` (a baseline on a left-out text would only learn the class priors). Notebook 05."""
    from tqdm.auto import tqdm

    specs = {"tfidf_title": ("title",), "tfidf_description": ("description",),
             "tfidf_title+description": ("title", "description")}
    out = {}
    specs = {name: cols for name, cols in specs.items() if set(cols) <= set(modalities)}
    for name, cols in tqdm(specs.items(), desc="TF-IDF baselines", disable=not progress):
        data = {s: [parts[s][c].fillna("").astype(str).tolist() for c in cols] for s in ("train", "val", "test")}
        out[name] = fit_tfidf_baseline(name, data["train"], ys["train"], data["val"], ys["val"], data["test"],
                                       **kwargs)
    return out
