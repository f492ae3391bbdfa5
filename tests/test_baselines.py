"""Tests of prodlib.baselines: the TF-IDF + one-vs-rest logistic regression reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodlib.baselines import TfidfBaseline, fit_tfidf_baseline, tfidf_baselines
from prodlib.metrics import micro_f1

WORDS = {0: ["pen", "ink", "ballpoint"], 1: ["dog", "leash", "chew"], 2: ["tent", "camping", "hiking"]}
FILLER = ["great", "new", "quality", "value", "item", "pack"]


def _texts(n, seed):
    rng = np.random.default_rng(seed)
    texts, y = [], np.zeros((n, 3), dtype=int)
    for i in range(n):
        labels = rng.choice(3, size=rng.integers(1, 3), replace=False)
        y[i, labels] = 1
        words = [str(rng.choice(WORDS[int(c)])) for c in labels for _ in range(2)]
        words += list(rng.choice(FILLER, 3))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, y


def test_tfidf_baseline_clearly_above_chance():
    train, y_train = _texts(90, 0)
    test, y_test = _texts(40, 1)
    probs = TfidfBaseline(C=10.0).fit(train, y_train).predict(test)
    assert probs.shape == y_test.shape and probs.min() >= 0 and probs.max() <= 1
    chance = micro_f1(y_test, np.full(y_test.shape, y_train.mean(0) >= 0.5))
    rand = micro_f1(y_test, np.random.default_rng(0).random(y_test.shape))
    f1 = micro_f1(y_test, probs)
    assert f1 > 0.9 and f1 > max(chance, rand) + 0.3


def test_c_is_tuned_on_validation_only():
    train, y_train = _texts(60, 2)
    val, y_val = _texts(30, 3)
    test, _ = _texts(20, 4)
    res = fit_tfidf_baseline("t", train, y_train, val, y_val, test, Cs=(0.01, 10.0))
    assert set(res.val_f1_by_C) == {0.01, 10.0}
    assert res.C == max(res.val_f1_by_C, key=res.val_f1_by_C.get)
    assert res.probs_test.shape == (20, 3)


def test_two_fields_and_empty_field():
    train, y = _texts(60, 5)
    empty = [""] * 60
    model = TfidfBaseline(C=10.0).fit([train, empty], y)
    assert model.predict([train[:5], [""] * 5]).shape == (5, 3)
    with pytest.raises(ValueError, match="text fields"):
        model.predict(train[:5])
    with pytest.raises(ValueError, match="C must be positive"):
        TfidfBaseline(C=0)


def test_tfidf_baselines_on_dataset_parts():
    parts, ys = {}, {}
    for k, (split, n) in enumerate([("train", 60), ("val", 20), ("test", 20)]):
        t, y = _texts(n, 10 + k)
        parts[split] = pd.DataFrame({"title": t, "description": [x.upper() for x in t]})
        ys[split] = y
    out = tfidf_baselines(parts, ys, Cs=(10.0,), progress=False)
    assert list(out) == ["tfidf_title", "tfidf_description", "tfidf_title+description"]
    for res in out.values():
        assert micro_f1(ys["test"], res.probs_test) > 0.8
