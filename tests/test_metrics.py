import numpy as np
import pytest
from sklearn.metrics import f1_score

from prodlib.metrics import bootstrap_ci, evaluate, micro_f1, most_missed, tune_class_thresholds, tune_threshold


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 6)) < 0.3).astype(int)
    p = np.clip(y * 0.35 + rng.random((200, 6)) * 0.6, 0, 1)
    return y, p


def test_micro_and_macro_agree_with_scikit_learn(data):
    y, p = data
    ref_micro = f1_score(y, p >= 0.5, average="micro")
    ref_macro = f1_score(y, p >= 0.5, average="macro")
    res = evaluate(y, p, list("abcdef"))
    assert micro_f1(y, p) == pytest.approx(ref_micro)
    assert res["micro_f1"] == pytest.approx(ref_micro)
    assert res["macro_f1"] == pytest.approx(ref_macro)
    assert [r["class"] for r in res["per_class"]] == list("abcdef")


def test_most_missed_counts_products_whose_true_class_was_not_predicted():
    classes = ["Pens", "Toys", "Women"]
    y = np.array([[1, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]])
    p = np.array([[0.9, 0.0, 0.1], [0.2, 0.8, 0.0], [0.1, 0.9, 0.2], [0.0, 0.7, 0.9]])
    table = most_missed(y, p, classes, k=3)
    # Women: 3 true, predicted only for the last product -> 2 missed; Pens: 3 true, 2 missed; Toys: 0 of 2.
    assert table["label"].tolist() == ["Pens (2/3)", "Women (2/3)", "Toys (0/2)"]
    assert table.index.tolist() == [1, 2, 3]


def test_thresholds_are_tuned_on_the_given_data(data):
    y, p = data
    t = tune_threshold(y, p)
    assert micro_f1(y, p, t) >= micro_f1(y, p, 0.5)
    per_class = tune_class_thresholds(y, p)
    assert per_class.shape == (6,)
    assert micro_f1(y, p, per_class) >= micro_f1(y, p, 0.5) - 1e-9


def test_bootstrap_interval_brackets_the_estimate(data):
    y, p = data
    lo, hi = bootstrap_ci(y, p, n=300, seed=1)
    assert lo < micro_f1(y, p) < hi
    assert bootstrap_ci(y, p, n=300, seed=1) == (lo, hi)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        micro_f1(np.zeros((3, 2)), np.zeros((3, 3)))
