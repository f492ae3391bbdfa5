import numpy as np
import pytest
from sklearn.metrics import f1_score

from prodlib.metrics import (
    bootstrap_ci,
    evaluate,
    fit_threshold,
    micro_f1,
    most_missed,
    paired_bootstrap,
    product_f1,
    tune_class_thresholds,
    tune_threshold,
)


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
    per_class = tune_class_thresholds(y, p, min_support=1)
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


def test_paired_bootstrap_finds_the_better_model_and_its_sign():
    rng = np.random.default_rng(0)
    y = rng.random((300, 5)) < 0.3
    good = np.where(y, 0.9, 0.1)
    noisy = np.where(rng.random(y.shape) < 0.25, 1 - good, good)  # a quarter of the cells flipped
    d, lo, hi = paired_bootstrap(y, good, noisy, n=500, seed=1)
    assert d == pytest.approx(micro_f1(y, good) - micro_f1(y, noisy))
    assert 0 < lo <= d <= hi
    d2, lo2, hi2 = paired_bootstrap(y, noisy, good, n=500, seed=1)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))
    assert paired_bootstrap(y, noisy, noisy, n=200) == (0.0, 0.0, 0.0)


def test_paired_interval_is_narrower_than_the_unpaired_intervals_suggest():
    rng = np.random.default_rng(3)
    y = rng.random((200, 4)) < 0.4
    a = np.where(rng.random(y.shape) < 0.2, np.where(y, 0.2, 0.8), np.where(y, 0.8, 0.2))  # a fifth wrong
    b = a.copy()
    b[:8] = np.where(y[:8], 0.2, 0.8)  # b is wrong everywhere on 8 products, as a elsewhere
    _, lo, hi = paired_bootstrap(y, a, b, n=500, seed=0)
    la, ha = bootstrap_ci(y, a, n=500, seed=0)
    lb, hb = bootstrap_ci(y, b, n=500, seed=0)
    assert lo > 0 and min(ha, hb) > max(la, lb)  # the separate intervals overlap, the paired one excludes 0


def test_class_thresholds_need_support_and_ties_go_to_the_default():
    y = np.zeros((20, 2), bool)
    y[:10, 0] = True
    y[:2, 1] = True  # class 1 has 2 positives only
    p = np.where(y, 0.7, 0.2)  # every threshold in (0.2, 0.7] is perfect: a tie
    t = tune_class_thresholds(y, p, min_support=5)
    assert t[0] == pytest.approx(0.5) and t[1] == 0.5
    p[:, 0] = np.where(y[:, 0], 0.3, 0.1)  # now only thresholds in (0.1, 0.3] are perfect
    assert tune_class_thresholds(y, p, min_support=5)[0] == pytest.approx(0.3)
    assert fit_threshold(y, np.where(y, 0.7, 0.2)) == pytest.approx(0.5)
    assert fit_threshold(y, p, per_class=True, min_support=1).shape == (2,)


def test_product_f1():
    y = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]], bool)
    p = np.array([[0.9, 0.1, 0.0], [0.0, 0.0, 0.0], [0.0, 0.9, 0.0]])
    assert product_f1(y, p).tolist() == pytest.approx([2 / 3, 1.0, 0.0])
